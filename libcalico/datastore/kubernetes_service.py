"""Kubernetes Services and EndpointSlices as read-only keys (KDD only), for confd's service IP
advertisement (Calico's route generator, `confd/pkg/backends/calico/routes.go`).

    /calico/kubernetes/services/<namespace>/<name>        a core v1 Service
    /calico/kubernetes/endpointslices/<namespace>/<name>  a discovery.k8s.io/v1 EndpointSlice

Each value is the part of the object the route generator reads, as compact JSON (so a change
elsewhere in the object, a status condition or managedFields, is no change of the value):
Service `spec.type`, `clusterIP(s)`, `externalIPs`, `loadBalancerIP`, `externalTrafficPolicy`,
`status.loadBalancer.ingress[].ip`; EndpointSlice its `kubernetes.io/service-name` label,
`addressType` and each endpoint's `addresses`, `nodeName` and `conditions.ready`.

`decode_service` / `decode_slice` turn a value into typed records. Addresses are parsed
exactly (`ipaddress`): anything that is not an address ("None", a CIDR, text) is left out, so
only plain addresses ever reach BIRD.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from libcalico.datastore.api import KVPair
from libcalico.errors import ValidationError
from libcalico.model.types import IPAddress

PURE = True

PREFIX = "/calico/kubernetes/"
SERVICES_PREFIX = PREFIX + "services/"
SLICES_PREFIX = PREFIX + "endpointslices/"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"

SERVICE = "KubernetesService"
ENDPOINT_SLICE = "KubernetesEndpointSlice"
KINDS = {SERVICE: ("services", "/api/v1"),
         ENDPOINT_SLICE: ("endpointslices", "/apis/discovery.k8s.io/v1")}
"""Kind -> (resource, API prefix): Calico's KDD kinds for the raw objects (read-only)."""
_BY_PLURAL = {plural: kind for kind, (plural, _) in KINDS.items()}


def scope(prefix: str) -> tuple[str, str | None] | None:
    """(kind, namespace or None) of a list/watch prefix under PREFIX; None if it names none."""
    if not prefix.startswith(PREFIX):
        return None
    parts = prefix[len(PREFIX):].split("/")
    kind = _BY_PLURAL.get(parts[0])
    if kind is None or len(parts) < 2:
        return None
    return kind, (parts[1] if len(parts) >= 3 and parts[1] else None)


def target(key: str) -> tuple[str, str, str] | None:
    """(kind, namespace, name) of one object's key."""
    if not key.startswith(PREFIX):
        return None
    parts = key[len(PREFIX):].split("/")
    if len(parts) != 3 or not all(parts) or parts[0] not in _BY_PLURAL:
        return None
    return _BY_PLURAL[parts[0]], parts[1], parts[2]


def key(kind: str, namespace: str, name: str) -> str:
    return f"{PREFIX}{KINDS[kind][0]}/{namespace}/{name}"


def _strings(v: Any) -> list[str]:
    return [str(x) for x in v] if isinstance(v, list) else []


def _service_value(obj: Mapping[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec") or {}
    ingress = ((obj.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
    return {
        "type": str(spec.get("type") or "ClusterIP"),
        "clusterIP": str(spec.get("clusterIP") or ""),
        "clusterIPs": _strings(spec.get("clusterIPs")),
        "externalIPs": _strings(spec.get("externalIPs")),
        "loadBalancerIP": str(spec.get("loadBalancerIP") or ""),
        "externalTrafficPolicy": str(spec.get("externalTrafficPolicy") or ""),
        "ingressIPs": [str(i.get("ip")) for i in ingress
                       if isinstance(i, dict) and i.get("ip")],
    }


def _slice_value(obj: Mapping[str, Any]) -> dict[str, Any]:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    endpoints = []
    for ep in obj.get("endpoints") or []:
        if not isinstance(ep, dict):
            continue
        ready = (ep.get("conditions") or {}).get("ready")
        endpoints.append({"addresses": _strings(ep.get("addresses")),
                          "nodeName": str(ep.get("nodeName") or ""),
                          "ready": ready is not False})
    return {"service": str(labels.get(SERVICE_NAME_LABEL) or ""),
            "addressType": str(obj.get("addressType") or ""), "endpoints": endpoints}


def to_pair(kind: str, obj: Mapping[str, Any]) -> KVPair | None:
    """The key and value of a Service or EndpointSlice object (None without a name)."""
    md = obj.get("metadata") or {}
    name, namespace = md.get("name"), md.get("namespace")
    if not name or not namespace:
        return None
    value = _service_value(obj) if kind == SERVICE else _slice_value(obj)
    return KVPair(key(kind, str(namespace), str(name)),
                  json.dumps(value, separators=(",", ":")), str(md.get("resourceVersion") or ""))


# ---------------------------------------------------------------------------------------------
# Typed records (the ResourceCache decoders)


def _ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _ips(texts: Any) -> tuple[IPAddress, ...]:
    return tuple(ip for ip in (_ip(t) for t in _strings(texts)) if ip is not None)


@dataclass(frozen=True, slots=True)
class Service:
    """What the route generator reads of a Service."""

    namespace: str
    name: str
    type: str
    cluster_ip: IPAddress | None
    """`spec.clusterIP`; None for headless ("None") or unset."""
    external_ips: tuple[IPAddress, ...]
    load_balancer_ip: IPAddress | None
    ingress_ips: tuple[IPAddress, ...]
    external_traffic_policy: str


@dataclass(frozen=True, slots=True)
class SliceEndpoint:
    node: str
    addresses: tuple[IPAddress, ...]
    ready: bool


@dataclass(frozen=True, slots=True)
class EndpointSlice:
    namespace: str
    name: str
    service: str
    """The Service it belongs to (its `kubernetes.io/service-name` label)."""
    address_type: str
    endpoints: tuple[SliceEndpoint, ...]


def _doc(key_: str, value: str, kind: str) -> tuple[str, str, dict[str, Any]]:
    t = target(key_)
    if t is None or t[0] != kind:
        raise ValidationError(f"{key_}: not a {kind} key")
    try:
        doc = json.loads(value)
    except ValueError as exc:
        raise ValidationError(f"{key_}: not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise ValidationError(f"{key_}: not a JSON object")
    return t[1], t[2], doc


def decode_service(key_: str, value: str) -> Service:
    namespace, name, d = _doc(key_, value, SERVICE)
    lb = _ip(str(d.get("loadBalancerIP") or ""))
    return Service(namespace, name, str(d.get("type") or "ClusterIP"),
                   _ip(str(d.get("clusterIP") or "")), _ips(d.get("externalIPs")), lb,
                   _ips(d.get("ingressIPs")), str(d.get("externalTrafficPolicy") or ""))


def decode_slice(key_: str, value: str) -> EndpointSlice:
    namespace, name, d = _doc(key_, value, ENDPOINT_SLICE)
    eps = tuple(SliceEndpoint(str(e.get("nodeName") or ""), _ips(e.get("addresses")),
                              e.get("ready") is not False)
                for e in d.get("endpoints") or [] if isinstance(e, dict))
    return EndpointSlice(namespace, name, str(d.get("service") or ""),
                         str(d.get("addressType") or ""), eps)
