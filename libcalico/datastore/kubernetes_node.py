"""Calico's v3 Node <-> the Kubernetes Node that holds it in KDD, as libcalico-go's
`resources/node.go` maps them (`K8sNodeToCalico`, `mergeCalicoNodeIntoK8sNode`).

Read: the BGP, VXLAN, wireguard and interface fields come from `projectcalico.org/*`
annotations, each checked and dropped when invalid (as `getAnnotation` does); labels are the
Calico-only labels (annotation `projectcalico.org/labels`) overlaid by the Kubernetes labels,
whose whole map is also exposed as the annotation `projectcalico.org/kube-labels`;
annotations come from `projectcalico.org/annotations`; `orchRefs` names the Kubernetes node;
`addresses` are the BGP addresses (CalicoNodeIP) then the Node's InternalIP/ExternalIP;
`status.podCIDRs` is `spec.podCIDRs`. The UID is the Node's own (not converted).

Write (an update; KDD cannot create or delete a Node): onto a fresh copy of the Node, every
annotation above is set or removed from the v3 Node (a missing `bgp` removes all five BGP
annotations); labels inherited from Kubernetes (those in `projectcalico.org/kube-labels`) are
not written back, and the Kubernetes labels are never touched.
"""

from __future__ import annotations

import copy
import ipaddress
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

PURE = True

A = "projectcalico.org/"
IPV4_ADDRESS = A + "IPv4Address"
IPV6_ADDRESS = A + "IPv6Address"
AS_NUMBER = A + "ASNumber"
RR_CLUSTER_ID = A + "RouteReflectorClusterID"
IPIP_TUNNEL = A + "IPv4IPIPTunnelAddr"
VXLAN_V4 = A + "IPv4VXLANTunnelAddr"
VXLAN_V6 = A + "IPv6VXLANTunnelAddr"
VXLAN_MAC = A + "VXLANTunnelMACAddr"
VXLAN_MAC_V6 = A + "VXLANTunnelMACAddrV6"
WG_V4 = A + "IPv4WireguardInterfaceAddr"
WG_V6 = A + "IPv6WireguardInterfaceAddr"
WG_KEY = A + "WireguardPublicKey"
WG_KEY_V6 = A + "WireguardPublicKeyV6"
INTERFACES = A + "Interfaces"
LABELS = A + "labels"
ANNOTATIONS = A + "annotations"
KUBE_LABELS = A + "kube-labels"

_IFACE = re.compile(r"[A-Za-z0-9_.@:-]{1,15}")
_MAC = re.compile(r"([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}")


def _cidr(version: int) -> Callable[[str], bool]:
    def ok(value: str) -> bool:
        try:
            return ipaddress.ip_interface(value).version == version
        except ValueError:
            return False
    return ok


def _net(version: int) -> Callable[[str], bool]:
    def ok(value: str) -> bool:
        try:
            return ipaddress.ip_network(value, strict=False).version == version
        except ValueError:
            return False
    return ok


def _mac(value: str) -> bool:
    return bool(_MAC.fullmatch(value))  # not match(): `$` would accept a trailing newline


def parse_as_number(text: str) -> int | None:
    """Plain (0..4294967295) or dotted (`a.b`, each 0..65535) AS number; None if neither."""
    parts = text.split(".")
    try:
        nums = [int(p) for p in parts]
    except ValueError:
        return None
    if any(not p.isdigit() for p in parts):
        return None
    if len(nums) == 1 and 0 <= nums[0] <= 0xFFFFFFFF:
        return nums[0]
    if len(nums) == 2 and all(0 <= n <= 0xFFFF for n in nums):
        return nums[0] << 16 | nums[1]
    return None


def _checked(ok: Callable[[str], bool]) -> Callable[[str], str | None]:
    return lambda value: value if ok(value) else None


_SECTIONS = ("bgp", "spec", "wireguard", "status")
_ANNOTATED: tuple[tuple[str, str, str, Callable[[str], object | None]], ...] = (
    ("bgp", "asNumber", AS_NUMBER, parse_as_number),
    ("bgp", "ipv4Address", IPV4_ADDRESS, _checked(_cidr(4))),
    ("bgp", "ipv6Address", IPV6_ADDRESS, _checked(_cidr(6))),
    ("bgp", "ipv4IPIPTunnelAddr", IPIP_TUNNEL, _checked(_net(4))),
    ("bgp", "routeReflectorClusterID", RR_CLUSTER_ID, _checked(_net(4))),
    ("spec", "ipv4VXLANTunnelAddr", VXLAN_V4, _checked(_net(4))),
    ("spec", "vxlanTunnelMACAddr", VXLAN_MAC, _checked(_mac)),
    ("spec", "ipv6VXLANTunnelAddr", VXLAN_V6, _checked(_net(6))),
    ("spec", "vxlanTunnelMACAddrV6", VXLAN_MAC_V6, _checked(_mac)),
    ("wireguard", "interfaceIPv4Address", WG_V4, _checked(_net(4))),
    ("wireguard", "interfaceIPv6Address", WG_V6, _checked(_net(6))),
    ("status", "wireguardPublicKey", WG_KEY, str),
    ("status", "wireguardPublicKeyV6", WG_KEY_V6, str),
)
"""The fields kept in one annotation each, read and written from this one table: (where in
the v3 Node: spec, spec.bgp, spec.wireguard or status; the field; the annotation; the reader,
giving the value or None for an invalid annotation, which is dropped). In the v3 JSON's field
order."""


def _json_map(annotations: Mapping[str, str], key: str) -> dict[str, str]:
    try:
        value = json.loads(annotations.get(key) or "null")
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def _interfaces(annotations: Mapping[str, str]) -> list[dict[str, Any]]:
    try:
        value = json.loads(annotations.get(INTERFACES) or "null")
    except ValueError:
        return []
    out: list[dict[str, Any]] = []
    for item in value if isinstance(value, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) \
                or not _IFACE.fullmatch(item["name"]):
            return []  # an invalid annotation is dropped whole
        addrs = item.get("addresses") or []
        if not isinstance(addrs, list) or not all(
                isinstance(a, str) and (_cidr(4)(a) or _cidr(6)(a)) for a in addrs):
            return []
        out.append({"name": item["name"], **({"addresses": addrs} if addrs else {})})
    return out


def _go_map_json(m: Mapping[str, str] | None) -> str:
    if m is None:
        return "null"
    return json.dumps({k: m[k] for k in sorted(m)}, separators=(",", ":"), ensure_ascii=False)


def node_to_v3(node: Mapping[str, Any]) -> dict[str, Any]:
    """The v3 Node (JSON object, no resourceVersion) for the Kubernetes Node `node`."""
    md: Mapping[str, Any] = node.get("metadata") or {}
    ann: Mapping[str, str] = md.get("annotations") or {}
    k8s_labels: dict[str, str] | None = md.get("labels")
    name = str(md.get("name") or "")

    labels = _json_map(ann, LABELS)
    labels.update(k8s_labels or {})
    annotations = _json_map(ann, ANNOTATIONS)
    annotations[KUBE_LABELS] = _go_map_json(k8s_labels)

    found: dict[str, dict[str, Any]] = {where: {} for where in _SECTIONS}
    for where, field, key, read in _ANNOTATED:
        if text := ann.get(key):
            value = read(text)
            if value is not None:
                found[where][field] = value
    bgp, wireguard = found["bgp"], found["wireguard"]

    spec: dict[str, Any] = {}
    if bgp:
        spec["bgp"] = bgp
    spec.update(found["spec"])
    spec["orchRefs"] = [{"nodeName": name, "orchestrator": "k8s"}]
    if wireguard:
        spec["wireguard"] = wireguard
    addresses = [{"address": bgp[k], "type": "CalicoNodeIP"}
                 for k in ("ipv4Address", "ipv6Address") if k in bgp]
    for a in (node.get("status") or {}).get("addresses") or []:
        if a.get("type") in ("InternalIP", "ExternalIP") and a.get("address"):
            addresses.append({"address": a["address"], "type": a["type"]})
    if addresses:
        spec["addresses"] = addresses
    if ifaces := _interfaces(ann):
        spec["interfaces"] = ifaces

    status = found["status"]
    pod_cidrs = (node.get("spec") or {}).get("podCIDRs") or []
    if pod_cidrs:
        status["podCIDRs"] = list(pod_cidrs)

    meta: dict[str, Any] = {"name": name}
    if md.get("uid"):
        meta["uid"] = md["uid"]
    meta["creationTimestamp"] = md.get("creationTimestamp")
    if labels:
        meta["labels"] = labels
    meta["annotations"] = annotations
    out: dict[str, Any] = {"kind": "Node", "apiVersion": "projectcalico.org/v3",
                           "metadata": meta, "spec": spec}
    if status:
        out["status"] = status
    return out


def _put(ann: dict[str, str], key: str, value: Any) -> None:
    if value not in (None, "", [], {}):
        ann[key] = value if isinstance(value, str) else str(value)
    else:
        ann.pop(key, None)


def merge_into_node(v3: Mapping[str, Any], node: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the Kubernetes Node `node` carrying the v3 Node `v3` in its annotations."""
    out = copy.deepcopy(dict(node))
    md = out.setdefault("metadata", {})
    ann: dict[str, str] = dict(md.get("annotations") or {})
    vmd: Mapping[str, Any] = v3.get("metadata") or {}
    labels = dict(vmd.get("labels") or {})
    annotations = dict(vmd.get("annotations") or {})
    stash = annotations.pop(KUBE_LABELS, None)
    if stash:
        try:
            inherited = json.loads(stash) or {}
        except ValueError:
            inherited = {}
        for k in inherited if isinstance(inherited, dict) else {}:
            labels.pop(k, None)
    _put(ann, LABELS, _go_map_json(labels) if labels else None)
    _put(ann, ANNOTATIONS, _go_map_json(annotations) if annotations else None)

    spec: Mapping[str, Any] = v3.get("spec") or {}
    fields: dict[str, Mapping[str, Any]] = {
        "spec": spec, "bgp": spec.get("bgp") or {}, "wireguard": spec.get("wireguard") or {},
        "status": v3.get("status") or {}}
    for where, field, key, _ in _ANNOTATED:
        _put(ann, key, fields[where].get(field))
    ifaces = spec.get("interfaces") or []
    _put(ann, INTERFACES, json.dumps(ifaces, separators=(",", ":")) if ifaces else None)
    md["annotations"] = ann
    return out
