"""The kind table of the Kubernetes datastore (`kubernetes`): which Kubernetes object or
crd.projectcalico.org/v1 custom resource holds each v3 kind and key (`Kind`, its collection
path), how a key or list/watch prefix maps to one, how an object converts back to a KVPair,
and which writes KDD refuses (`OperationNotSupported`)."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from libcalico.datastore import kubernetes_convert as convert
from libcalico.datastore import kubernetes_ipam as kipam
from libcalico.datastore import kubernetes_knp as kknp
from libcalico.datastore import kubernetes_node as nodes
from libcalico.datastore import kubernetes_pod as pods
from libcalico.datastore import kubernetes_profile as profiles
from libcalico.datastore import kubernetes_service as kservice
from libcalico.datastore.api import KVPair
from libcalico.datastore.kubernetes_client import name_path
from libcalico.errors import DatastoreError, NotFound
from libcalico.model import keys

log = logging.getLogger("libcalico.datastore.kubernetes")

NOT_YET = frozenset({"Profile"})
"""(Profile is served, by the two _Kinds below, not through BY_PLURAL.)"""
V1_NAMES = {"IPAMConfiguration": ("ipamconfigs", "IPAMConfig")}
"""v3 kinds whose crd.projectcalico.org/v1 resource has another plural and kind."""
"""v3 kinds that KDD derives from other objects (or converts); not served here yet."""
NODE = "Node"
WEP = "WorkloadEndpoint"
CORE = {NODE: "nodes", WEP: "pods"}
"""v3 kinds kept in core Kubernetes objects -> their resource."""


@dataclass(frozen=True, slots=True)
class Kind:
    kind: str
    plural: str
    namespaced: bool
    resource: str = ""
    """The core resource (nodes, pods) holding this kind; empty for a custom resource."""
    ipam: bool = False
    """One of the IPAM custom resources (keys under /calico/ipam/v2/)."""
    cr_plural: str = ""
    cr_kind: str = ""
    """The v1 resource's plural and kind where they differ from the v3 ones."""
    api: str = "/api/v1"
    """Where the core resource is served (EndpointSlices: /apis/discovery.k8s.io/v1)."""

    @property
    def core(self) -> bool:
        return bool(self.resource)

    def collection(self, namespace: str | None) -> str:
        ns = f"/namespaces/{name_path(namespace)}" if namespace else ""
        if self.core:
            return f"{self.api}{ns}/{self.resource}"
        return f"/apis/{convert.GROUP_VERSION}{ns}/{self.cr_plural or self.plural}"


BY_PLURAL = {i.plural: Kind(i.kind, i.plural, i.namespaced, CORE.get(i.kind, ""),
                              cr_plural=V1_NAMES.get(i.kind, ("", ""))[0],
                              cr_kind=V1_NAMES.get(i.kind, ("", ""))[1])
              for i in keys.KINDS.values() if i.kind not in NOT_YET}
INTERFACE_PREFIX = os.environ.get("FELIX_INTERFACEPREFIX") or "cali"
IPAM = {p: Kind(k, p, False, ipam=True) for p, k in kipam.KINDS.items()}
SECRETS = Kind("Secret", "secrets", True, "secrets")
PROFILE_NS = Kind("Profile", "profiles", False, "namespaces")
PROFILE_SA = Kind("Profile", "profiles", False, "serviceaccounts")
SERVICES = {k: Kind(k, plural, True, plural, api=api)
             for k, (plural, api) in kservice.KINDS.items()}
"""Services and EndpointSlices, read-only (`kubernetes_service`, for confd)."""
KNP = Kind("NetworkPolicy", kknp.RESOURCE, True, kknp.RESOURCE, api=kknp.API)
"""Kubernetes NetworkPolicies as `knp.default.<name>` NetworkPolicies (`kubernetes_knp`)."""


def unsupported(what: str) -> DatastoreError:
    return DatastoreError(f"{what}: not supported by the Kubernetes datastore yet")


def resource(key: str) -> tuple[Kind, str | None, str]:
    parsed = keys.parse_resource_key(key)
    if parsed is None:
        raise unsupported(key)
    kind, namespace, name = parsed
    info = BY_PLURAL.get(keys.KINDS[kind].plural)
    if info is None:
        raise unsupported(key)
    return info, namespace, name


def scope(prefix: str) -> tuple[Kind, str | None]:
    """The kind (and namespace) a list/watch prefix covers; the prefix may go on into names."""
    if not prefix.startswith(keys.RESOURCE_ROOT):
        raise unsupported(prefix)
    parts = prefix[len(keys.RESOURCE_ROOT):].split("/")
    info = BY_PLURAL.get(parts[0])
    if info is None or len(parts) < 2:
        raise unsupported(prefix)
    if info.namespaced and len(parts) >= 3:
        return info, parts[1]
    return info, None


def service_scope(prefix: str) -> tuple[Kind, str | None]:
    found = kservice.scope(prefix)
    if found is None:
        raise unsupported(prefix)
    return SERVICES[found[0]], found[1]


def key_of(info: Kind, cr: dict[str, Any]) -> str:
    md = cr.get("metadata") or {}
    return keys.resource_key(info.kind, str(md.get("name")), md.get("namespace"))


def v3(info: Kind, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The v3 resource an object holds; None for a pod that has no WorkloadEndpoint. Raises
    PodError for a pod Calico cannot convert."""
    if info.kind == NODE:
        return nodes.node_to_v3(obj)
    if info.kind == WEP:
        return pods.pod_to_wep(obj, INTERFACE_PREFIX) if pods.valid(obj) else None
    if info is PROFILE_NS:
        return profiles.namespace_to_profile(obj)
    if info is PROFILE_SA:
        return profiles.serviceaccount_to_profile(obj)
    obj["kind"] = info.kind  # the v1 kind may differ (IPAMConfig)
    return convert.from_cr(obj)


def ipam_pair(info: Kind, obj: dict[str, Any]) -> KVPair | None:
    try:
        key, value = kipam.from_cr(info.plural, obj)
    except (ValueError, TypeError) as exc:
        log.warning("skipping %s %s: %s", info.plural, (obj.get("metadata") or {}).get("name"),
                    exc)
        return None
    return KVPair(key, value, str((obj.get("metadata") or {}).get("resourceVersion")))


def pair_or_none(info: Kind, obj: dict[str, Any]) -> KVPair | None:
    if info.kind in kservice.KINDS:
        return kservice.to_pair(info.kind, obj)
    if info is KNP:
        return kknp.to_pair(obj)
    if info.ipam:
        return ipam_pair(info, obj)
    try:
        doc = v3(info, obj)
    except pods.PodError as exc:
        md = obj.get("metadata") or {}
        log.warning("skipping pod %s/%s: %s", md.get("namespace"), md.get("name"), exc)
        return None
    if doc is None:
        return None
    md = doc["metadata"]
    return KVPair(keys.resource_key(info.kind, md["name"], md.get("namespace")),
                  json.dumps(doc, separators=(",", ":")),
                  str((obj.get("metadata") or {}).get("resourceVersion")))


def pair_of(info: Kind, obj: dict[str, Any]) -> KVPair:
    try:
        doc = v3(info, obj)
    except pods.PodError as exc:
        raise DatastoreError(f"{info.kind} of pod {key_of(info, obj)}: {exc}") from None
    if doc is None:
        raise NotFound(key_of(info, obj))
    md = doc["metadata"]
    return KVPair(keys.resource_key(info.kind, md["name"], md.get("namespace")),
                  json.dumps(doc, separators=(",", ":")),
                  str((obj.get("metadata") or {}).get("resourceVersion")))


def is_profile(key: str) -> bool:
    return key.startswith(keys.resource_prefix("Profile")[:-1])


def is_wep(key: str) -> bool:
    return key.startswith(keys.resource_prefix(WEP))


def is_node(key: str) -> bool:
    return key.startswith(keys.resource_prefix(NODE))


class OperationNotSupported(DatastoreError):
    """What KDD cannot do (Calico's ErrorOperationNotSupported), with Calico's message:
    `operation Create is not supported on Node(node-1)`."""

    def __init__(self, op: str, key: str) -> None:
        parsed = keys.parse_resource_key(key)
        if parsed is None:
            ident = key
        else:
            kind, namespace, name = parsed
            ident = f"{kind}({namespace}/{name})" if namespace else f"{kind}({name})"
        self.operation = op
        self.key = key
        super().__init__(f"operation {op} is not supported on {ident}")


def refuse_node(key: str, op: str) -> None:
    """Node: Create and Delete are refused (a Calico Node is its Kubernetes Node)."""
    if is_node(key):
        raise OperationNotSupported(op, key)
    refuse_wep(key, op)


def refuse_wep(key: str, op: str) -> None:
    """Profile and WorkloadEndpoint writes are refused (they are derived from Namespaces,
    ServiceAccounts and Pods)."""
    if is_profile(key) or key.startswith(keys.resource_prefix(WEP)) or kknp.is_knp_key(key):
        raise OperationNotSupported(op, key)
