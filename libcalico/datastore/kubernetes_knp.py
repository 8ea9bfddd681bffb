"""Kubernetes NetworkPolicies (networking.k8s.io/v1) served by the Kubernetes backend as
read-only Calico NetworkPolicies `knp.default.<name>`, beside the NetworkPolicy custom
resources, under the one v3 NetworkPolicy key prefix (as libcalico-go's KDD NetworkPolicy
client served them before Calico split them out into a kind of their own, see below).

- get of a `knp.default.<name>` key reads `networkpolicies/<name>` of networking.k8s.io/v1
  and converts it (`libcalico.model.k8s_networkpolicy`, Calico's K8sNetworkPolicyToCalico;
  rules Calico cannot convert are dropped, as there); its revision is the object's
  resourceVersion;
- a list of the NetworkPolicy prefix (or one namespace of it) is the custom resources' and the
  Kubernetes objects', merged; its revision is composite, `<crd rv>/<k8s rv>`;
- a watch after such a revision watches both, merged (`kubernetes_mergedwatch`), each event stamped
  with both halves as they stand after it; a 410 on either half is Compacted (the syncer
  relists); `""`/`"0"` watches both from now;
- create, update, apply and delete of a `knp.default.` name are refused
  (`operation Create is not supported on NetworkPolicy(ns/knp.default.x)`).

Calico v3.32 itself keeps the Calico NetworkPolicy client CRD-only and serves these objects as
the KDD-only kind KubernetesNetworkPolicy (list and watch only), which its Felix syncer adds
on KDD; here they share the NetworkPolicy prefix so that every consumer of it (Felix's
syncer, calicoctl) sees them without a second kind.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from libcalico.datastore.api import KVPair, Listing
from libcalico.errors import ValidationError
from libcalico.model import codec, keys
from libcalico.model import k8s_networkpolicy as knp

log = logging.getLogger(__name__)

KIND = "NetworkPolicy"
PREFIX = keys.resource_prefix(KIND)
NAME_PREFIX = knp.NAME_PREFIX
RESOURCE = "networkpolicies"
API = "/apis/networking.k8s.io/v1"


def covers(prefix: str) -> bool:
    """A list/watch prefix of the NetworkPolicies (all, or one namespace's)."""
    return prefix.startswith(PREFIX)


def is_knp_key(key: str) -> bool:
    """The key of a Kubernetes-backed policy (`.../networkpolicies/<ns>/knp.default.<n>`)."""
    parsed = keys.parse_resource_key(key)
    return (parsed is not None and parsed[0] == KIND
            and parsed[2].startswith(NAME_PREFIX) and len(parsed[2]) > len(NAME_PREFIX))


def target(key: str) -> tuple[str, str]:
    """(namespace, Kubernetes name) of a `knp.default.` key (`is_knp_key`)."""
    parsed = keys.parse_resource_key(key)
    assert parsed is not None
    return str(parsed[1] or "default"), parsed[2][len(NAME_PREFIX):]


def to_pair(obj: Mapping[str, Any]) -> KVPair | None:
    """The converted policy of one Kubernetes NetworkPolicy; None (logged) when Calico could
    not convert it."""
    md = obj.get("metadata") or {}
    try:
        converted = knp.convert(obj)
    except ValidationError as exc:
        log.warning("skipping NetworkPolicy %s/%s: %s", md.get("namespace"), md.get("name"),
                    exc)
        return None
    for why in converted.dropped:
        log.debug("NetworkPolicy %s/%s: dropping %s", md.get("namespace"), md.get("name"), why)
    pol = converted.policy
    return KVPair(keys.resource_key(KIND, pol.metadata.name, pol.metadata.namespace),
                  codec.dumps(pol), str(md.get("resourceVersion") or ""))


def join_revisions(crd_rev: str, k8s_rev: str) -> str:
    return f"{crd_rev}/{k8s_rev}"


def split_revision(rev: str) -> tuple[str, str]:
    """The two halves of a composite revision; ("", "") for "" or "0" (from now). Raises
    ValidationError for anything else."""
    if rev in ("", "0"):
        return "", ""
    parts = rev.split("/")
    if len(parts) != 2:
        raise ValidationError(f"network policy revision {rev!r} is not <crd rv>/<k8s rv>")
    return parts[0], parts[1]


def merge_listings(crds: Listing, k8s: Iterable[KVPair], k8s_rev: str, prefix: str) -> Listing:
    """One listing of both halves, sorted by key, with the composite revision."""
    kvs = [*crds.kvs, *(p for p in k8s if p.key.startswith(prefix))]
    kvs.sort(key=lambda p: p.key)
    return Listing(tuple(kvs), join_revisions(crds.revision, k8s_rev))
