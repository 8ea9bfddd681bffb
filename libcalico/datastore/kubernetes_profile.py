"""Calico Profiles derived from Kubernetes Namespaces and ServiceAccounts in KDD, as
libcalico-go's `NamespaceToProfile` / `ServiceAccountToProfile` derive them.

- `kns.<namespace>`: ingress and egress `[Allow]`; labelsToApply `pcns.<label>` for each
  namespace label plus `pcns.projectcalico.org/name: <namespace>`.
- `ksa.<namespace>.<serviceaccount>`: no rules; labelsToApply `pcsa.<label>` plus
  `pcsa.projectcalico.org/name: <serviceaccount>`.
- UID: the Kubernetes object's, converted (`ConvertUID`); creationTimestamp: its own.
- Revisions are composite, `<namespace rv>/<serviceaccount rv>`: a namespace profile's is
  `<rv>/`, a service-account profile's `/<rv>`, a listing's and a watch event's both halves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libcalico.datastore.kubernetes_convert import convert_uid

PURE = True

NS_PREFIX = "kns."
SA_PREFIX = "ksa."


def parse_profile_name(name: str) -> tuple[str, str | None] | None:
    """(namespace, serviceaccount or None) for a Kubernetes-backed profile name."""
    if name.startswith(NS_PREFIX) and len(name) > len(NS_PREFIX):
        return name[len(NS_PREFIX):], None
    if name.startswith(SA_PREFIX):
        parts = name.split(".", 2)
        if len(parts) == 3 and parts[1] and parts[2]:
            return parts[1], parts[2]
    return None


def _meta(name: str, md: Mapping[str, Any]) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if md.get("uid"):
        meta["uid"] = convert_uid(str(md["uid"]))
    meta["creationTimestamp"] = md.get("creationTimestamp")
    return meta


def namespace_to_profile(ns: Mapping[str, Any]) -> dict[str, Any]:
    md: Mapping[str, Any] = ns.get("metadata") or {}
    name = str(md.get("name") or "")
    labels = {f"pcns.{k}": v for k, v in (md.get("labels") or {}).items()}
    labels["pcns.projectcalico.org/name"] = name
    return {"kind": "Profile", "apiVersion": "projectcalico.org/v3",
            "metadata": _meta(NS_PREFIX + name, md),
            "spec": {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}],
                     "labelsToApply": labels}}


def serviceaccount_to_profile(sa: Mapping[str, Any]) -> dict[str, Any]:
    md: Mapping[str, Any] = sa.get("metadata") or {}
    name = str(md.get("name") or "")
    ns = str(md.get("namespace") or "") or "default"
    labels = {f"pcsa.{k}": v for k, v in (md.get("labels") or {}).items()}
    labels["pcsa.projectcalico.org/name"] = name
    return {"kind": "Profile", "apiVersion": "projectcalico.org/v3",
            "metadata": _meta(f"{SA_PREFIX}{ns}.{name}", md),
            "spec": {"labelsToApply": labels}}


def join_revisions(ns_rev: str, sa_rev: str) -> str:
    return f"{ns_rev}/{sa_rev}"


def split_revision(rev: str) -> tuple[str, str] | None:
    """The two halves; ("", "") for "" or "0" (from the start); None when malformed."""
    if rev in ("", "0"):
        return "", ""
    parts = rev.split("/")
    return (parts[0], parts[1]) if len(parts) == 2 else None
