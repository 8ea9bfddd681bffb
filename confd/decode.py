"""Decoding v3 resources for confd: raw JSON as stored in etcd → validated values.

The one place confd reads Calico's v3 JSON (Calico's field names). Values are untrusted input
to BIRD: names must be Kubernetes names, addresses and CIDRs must parse, AS numbers and ports
must be in range, interface patterns and community strings must be safe to print. A resource
that fails raises DecodeError naming the field; the key space leaves it out and warns.

(The shared libcalico.model.codec validates Calico's own rules for calicoctl; confd keeps this
narrower decoder because it must also refuse what is valid for Calico but unsafe for BIRD, and
because it must keep strings, such as BGPFilter CIDRs, exactly as stored.)
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from confd import bgpfilter
from confd.functions import is_bird_string_safe
from libcalico.model import selector as calico_selector

PURE = True

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAME = re.compile(r"[a-z0-9]([a-z0-9.\-]{0,251}[a-z0-9])?\Z")
_CONFIG_NAME = re.compile(r"(default|node\.[a-z0-9]([a-z0-9.\-]{0,251}[a-z0-9])?)\Z")
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns))+?")


class DecodeError(ValueError):
    """One field of one resource is unusable: `field` says which."""

    def __init__(self, field_path: str, reason: str) -> None:
        self.field_path = field_path
        super().__init__(f"{field_path}: {reason}" if field_path else reason)


# ----------------------------------------------------------------------------------------------
# Decoding (the one place that reads raw v3 JSON; swap for libcalico.model.codec when it lands)
# ----------------------------------------------------------------------------------------------


def _dict(v: Any, path: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise DecodeError(path, "expected an object")
    return v


def _list(v: Any, path: str) -> list[Any]:
    """An optional list (absent or empty: [])."""
    items = v or []
    if not isinstance(items, list):
        raise DecodeError(path, "expected a list")
    return items


def _str(v: Any, path: str) -> str:
    if v is None:
        return ""
    if not isinstance(v, str):
        raise DecodeError(path, "expected a string")
    return v


def asn(v: Any, path: str) -> int | None:
    """AS number (int, or a string such as "64512" or "1.10" asdot)."""
    if v is None or v == "" or v == 0:
        return None
    if isinstance(v, bool):
        raise DecodeError(path, "expected an AS number")
    if isinstance(v, int):
        n = v
    elif isinstance(v, str) and re.fullmatch(r"\d{1,10}", v):
        n = int(v)
    elif isinstance(v, str) and re.fullmatch(r"\d{1,5}\.\d{1,5}", v):
        hi, lo = (int(x) for x in v.split("."))
        if hi > 65535 or lo > 65535:
            raise DecodeError(path, f"bad AS number {v!r}")
        n = hi * 65536 + lo
    else:
        raise DecodeError(path, f"bad AS number {str(v)[:40]!r}")
    if not 0 < n <= 0xFFFFFFFF:
        raise DecodeError(path, f"AS number {n} out of range")
    return n


def _int(v: Any, path: str, lo: int, hi: int) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise DecodeError(path, f"expected an integer in [{lo}, {hi}]")
    return v


def _interface_cidr(v: Any, path: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface | None:
    text = _str(v, path)
    if not text:
        return None
    try:
        return ipaddress.ip_interface(text)
    except ValueError as exc:
        raise DecodeError(path, f"bad address {text[:60]!r}") from exc


def _network(v: Any, path: str) -> IPNetwork:
    text = _str(v, path)
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise DecodeError(path, f"bad CIDR {text[:60]!r}") from exc


def _labels(meta: dict[str, Any]) -> dict[str, str]:
    labels = _dict(meta.get("labels"), "metadata.labels")
    for k, v in labels.items():
        if not isinstance(v, str):
            raise DecodeError(f"metadata.labels.{k}", "label value must be a string")
    return labels


def duration_seconds(v: Any, path: str) -> int | None:
    """A Go duration ("120s", "1m30s", "500ms") in whole seconds, rounded (Calico rounds)."""
    text = _str(v, path)
    if not text:
        return None
    if text == "0":
        return 0
    pos, total = 0, 0.0
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * scale[m.group(2)]
        pos = m.end()
    if pos != len(text) or pos == 0:
        raise DecodeError(path, f"bad duration {text[:40]!r}")
    return int(total + 0.5)


@dataclass(frozen=True)
class Node:
    name: str
    labels: Mapping[str, str]
    ipv4: ipaddress.IPv4Interface | None
    ipv6: ipaddress.IPv6Interface | None
    as_number: int | None
    rr_cluster_id: str
    wireguard_v4: str
    wireguard_v6: str
    host_fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """The leaves of `/calico/bgp/v1/host/<name>/` this Node produces (computed at decode;
    read-only)."""
    host_keys: tuple[tuple[str, str], ...] = ()
    """The same as full keys → values, ready to copy into the key space."""
    """The `/calico/bgp/v1/host/<name>/` leaves this Node produces (computed once, at decode)."""

    def ip(self, version: int) -> IPAddress | None:
        iface = self.ipv4 if version == 4 else self.ipv6
        return iface.ip if iface is not None else None


@dataclass(frozen=True)
class Peer:
    """A v3 BGPPeer, decoded."""

    name: str
    node: str
    node_selector: calico_selector.Selector | None
    peer_selector: calico_selector.Selector | None
    local_workload_selector: str
    peer_ip: IPAddress | None
    peer_port: int | None
    as_number: int | None
    raw: Mapping[str, Any]
    """The spec as stored (for fields copied without interpretation)."""

    @property
    def is_global(self) -> bool:
        return not self.node and self.node_selector is None


@dataclass(frozen=True)
class Pool:
    name: str
    cidr: IPNetwork
    ipip_mode: str
    vxlan_mode: str
    nat_outgoing: bool
    disabled: bool
    disable_bgp_export: bool
    assignment_mode: str


def decode_node(name: str, doc: dict[str, Any]) -> Node:
    meta = _dict(doc.get("metadata"), "metadata")
    spec = _dict(doc.get("spec"), "spec")
    bgp = _dict(spec.get("bgp"), "spec.bgp")
    wg = _dict(spec.get("wireguard"), "spec.wireguard")
    v4 = _interface_cidr(bgp.get("ipv4Address"), "spec.bgp.ipv4Address")
    v6 = _interface_cidr(bgp.get("ipv6Address"), "spec.bgp.ipv6Address")
    if v4 is not None and not isinstance(v4, ipaddress.IPv4Interface):
        raise DecodeError("spec.bgp.ipv4Address", "not an IPv4 address")
    if v6 is not None and not isinstance(v6, ipaddress.IPv6Interface):
        raise DecodeError("spec.bgp.ipv6Address", "not an IPv6 address")
    rr = _str(bgp.get("routeReflectorClusterID"), "spec.bgp.routeReflectorClusterID")
    if rr:
        try:
            ipaddress.IPv4Address(rr)
        except ValueError as exc:
            raise DecodeError("spec.bgp.routeReflectorClusterID",
                              "must be an IPv4 address") from exc
    wg4 = _interface_cidr(wg.get("interfaceIPv4Address"), "spec.wireguard.interfaceIPv4Address")
    wg6 = _interface_cidr(wg.get("interfaceIPv6Address"), "spec.wireguard.interfaceIPv6Address")
    as_number = asn(bgp.get("asNumber"), "spec.bgp.asNumber")
    fields = [("ip_addr_v4", str(v4.ip) if v4 else ""), ("ip_addr_v6", str(v6.ip) if v6 else "")]
    if v4:
        fields.append(("network_v4", str(v4.network)))
    if v6:
        fields.append(("network_v6", str(v6.network)))
    if as_number:
        fields.append(("as_num", str(as_number)))
    fields += [("rr_cluster_id", rr), ("wireguard_addr_v4", str(wg4.ip) if wg4 else ""),
               ("wireguard_addr_v6", str(wg6.ip) if wg6 else "")]
    return Node(
        name=name,
        labels=_labels(meta),
        ipv4=v4,
        ipv6=v6,
        as_number=as_number,
        rr_cluster_id=rr,
        wireguard_v4=str(wg4.ip) if wg4 else "",
        wireguard_v6=str(wg6.ip) if wg6 else "",
        host_fields=dict(fields),
        host_keys=tuple((f"/calico/bgp/v1/host/{name}/{leaf}", value) for leaf, value in fields),
    )


def parse_peer_ip(text: str, path: str = "spec.peerIP") -> tuple[IPAddress, int | None]:
    """`ip`, `ip:port` (v4) or `[v6]:port`."""
    port: int | None = None
    host = text
    m = re.fullmatch(r"\[([0-9a-fA-F:.]+)\]:(\d{1,5})", text)
    if m:
        host, port = m.group(1), int(m.group(2))
    elif text.count(":") == 1:
        host, _, p = text.partition(":")
        if not p.isdigit() or len(p) > 5:
            raise DecodeError(path, f"bad port in {text[:60]!r}")
        port = int(p)
    try:
        ip = ipaddress.ip_address(host)
    except ValueError as exc:
        raise DecodeError(path, f"bad peer IP {text[:60]!r}") from exc
    if port is not None and not 0 < port < 65536:
        raise DecodeError(path, f"port {port} out of range")
    return ip, port


def _selector(text: Any, path: str) -> calico_selector.Selector | None:
    s = _str(text, path)
    if not s:
        return None
    try:
        return calico_selector.parse(s)
    except calico_selector.SelectorError as exc:
        raise DecodeError(path, str(exc)) from exc


def decode_peer(name: str, doc: dict[str, Any]) -> Peer:
    spec = _dict(doc.get("spec"), "spec")
    node = _str(spec.get("node"), "spec.node")
    if node and not _NAME.match(node):
        raise DecodeError("spec.node", "not a valid node name")
    ip: IPAddress | None = None
    port: int | None = None
    peer_ip = _str(spec.get("peerIP"), "spec.peerIP")
    if peer_ip:
        ip, port = parse_peer_ip(peer_ip)
    for f in ("reachableBy",):
        v = _str(spec.get(f), f"spec.{f}")
        if v:
            try:
                ipaddress.ip_address(v)
            except ValueError as exc:
                raise DecodeError(f"spec.{f}", f"bad address {v[:60]!r}") from exc
    for f, lo, hi in (("ttlSecurity", 0, 255), ("numAllowedLocalASNumbers", 0, 10)):
        _int(spec.get(f), f"spec.{f}", lo, hi)
    asn(spec.get("localASNumber"), "spec.localASNumber")
    for f in ("maxRestartTime", "keepaliveTime"):
        duration_seconds(spec.get(f), f"spec.{f}")
    filters = spec.get("filters") or []
    if not isinstance(filters, list) or not all(
        isinstance(x, str) and _NAME.match(x) for x in filters
    ):
        raise DecodeError("spec.filters", "must be a list of BGPFilter names")
    for f, allowed in (("sourceAddress", {"", "UseNodeIP", "None"}),
                       ("nextHopMode", {"", "Auto", "Self", "Keep"}),
                       ("reversePeering", {"", "Auto", "Manual"})):
        if _str(spec.get(f), f"spec.{f}") not in allowed:
            raise DecodeError(f"spec.{f}", f"must be one of {sorted(allowed - {''})}")
    return Peer(
        name=name,
        node=node,
        node_selector=_selector(spec.get("nodeSelector"), "spec.nodeSelector"),
        peer_selector=_selector(spec.get("peerSelector"), "spec.peerSelector"),
        local_workload_selector=_str(spec.get("localWorkloadSelector"),
                                     "spec.localWorkloadSelector"),
        peer_ip=ip,
        peer_port=port,
        as_number=asn(spec.get("asNumber"), "spec.asNumber"),
        raw=spec,
    )


_ENCAP = {"": "", "Never": "", "Always": "always", "CrossSubnet": "cross-subnet"}


def decode_pool(name: str, doc: dict[str, Any]) -> Pool:
    spec = _dict(doc.get("spec"), "spec")
    cidr = _network(spec.get("cidr"), "spec.cidr")
    ipip = _str(spec.get("ipipMode"), "spec.ipipMode")
    vxlan = _str(spec.get("vxlanMode"), "spec.vxlanMode")
    if ipip not in _ENCAP:
        raise DecodeError("spec.ipipMode", "must be Never, Always or CrossSubnet")
    if vxlan not in _ENCAP:
        raise DecodeError("spec.vxlanMode", "must be Never, Always or CrossSubnet")
    return Pool(
        name=name,
        cidr=cidr,
        ipip_mode=_ENCAP[ipip],
        vxlan_mode=_ENCAP[vxlan],
        nat_outgoing=bool(spec.get("natOutgoing")),
        disabled=bool(spec.get("disabled")),
        disable_bgp_export=bool(spec.get("disableBGPExport")),
        assignment_mode=_str(spec.get("assignmentMode"), "spec.assignmentMode") or "Automatic",
    )


KINDS = {"nodes": "Node", "bgppeers": "BGPPeer", "bgpconfigurations": "BGPConfiguration",
          "bgpfilters": "BGPFilter", "ippools": "IPPool"}


def decode_resource(plural: str, name: str, text: str) -> object:
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise DecodeError("", f"not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise DecodeError("", "not a JSON object")
    if plural == "bgpconfigurations" and not _CONFIG_NAME.match(name):
        # Calico names per-node configurations node.<nodename>; other names are ignored.
        return None
    if plural != "bgpconfigurations" and not _NAME.match(name):
        raise DecodeError("metadata.name", "not a valid resource name")
    if plural == "nodes":
        return decode_node(name, doc)
    if plural == "bgppeers":
        return decode_peer(name, doc)
    if plural == "ippools":
        return decode_pool(name, doc)
    spec = _dict(doc.get("spec"), "spec")
    if plural == "bgpfilters":
        try:
            bgpfilter.validate(spec)
        except bgpfilter.FilterError as exc:
            raise DecodeError(exc.field_path, str(exc).split(": ", 1)[-1]) from exc
    if plural == "bgpconfigurations":
        validate_config(spec)
    return spec


_COMMUNITY_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.\-]{0,252}\Z")


def validate_config(spec: dict[str, Any]) -> None:
    """BGPConfiguration fields that reach BIRD, checked before any is used."""
    asn(spec.get("asNumber"), "spec.asNumber")
    _int(spec.get("listenPort"), "spec.listenPort", 0, 65535)
    for f in ("ipv4NormalRoutePriority", "ipv6NormalRoutePriority"):
        _int(spec.get(f), f"spec.{f}", 0, 2147483646)
    if spec.get("nodeToNodeMeshEnabled") not in (None, True, False):
        raise DecodeError("spec.nodeToNodeMeshEnabled", "expected a boolean")
    _str(spec.get("logSeverityScreen"), "spec.logSeverityScreen")
    duration_seconds(spec.get("nodeMeshMaxRestartTime"), "spec.nodeMeshMaxRestartTime")
    for f, allowed in (("bindMode", {"", "None", "NodeIP"}),
                       ("programClusterRoutes", {"", "Enabled", "Disabled", "EnabledIPIPOnly",
                                                 "EnabledNoEncapOnly"}),
                       ("serviceLoadBalancerAggregation", {"", "Enabled", "Disabled"})):
        if _str(spec.get(f), f"spec.{f}") not in allowed:
            raise DecodeError(f"spec.{f}", f"must be one of {sorted(allowed - {''})}")
    named: set[str] = set()
    comms = _list(spec.get("communities"), "spec.communities")
    for i, c in enumerate(comms):
        path = f"spec.communities[{i}]"
        c = _dict(c, path)
        name = _str(c.get("name"), f"{path}.name")
        if not _COMMUNITY_NAME.match(name):
            raise DecodeError(f"{path}.name", "not a valid community name")
        try:
            bgpfilter._community(c.get("value"), f"{path}.value")
        except bgpfilter.FilterError as exc:
            raise DecodeError(exc.field_path, "bad community value") from exc
        named.add(name)
    advs = _list(spec.get("prefixAdvertisements"), "spec.prefixAdvertisements")
    for i, a in enumerate(advs):
        path = f"spec.prefixAdvertisements[{i}]"
        a = _dict(a, path)
        _network(a.get("cidr"), f"{path}.cidr")
        cs = _list(a.get("communities"), f"{path}.communities")
        for j, c in enumerate(cs):
            # A name may be defined here or (for node.<name>) in the default configuration;
            # names that resolve to nothing are dropped when the keys are built.
            if isinstance(c, str) and (c in named or _COMMUNITY_NAME.match(c)):
                continue
            try:
                bgpfilter._community(c, f"{path}.communities[{j}]")
            except bgpfilter.FilterError as exc:
                raise DecodeError(exc.field_path,
                                  "neither a community name nor a community value") from exc
    for f in ("serviceClusterIPs", "serviceExternalIPs", "serviceLoadBalancerIPs"):
        items = _list(spec.get(f), f"spec.{f}")
        for i, item in enumerate(items):
            item = _dict(item, f"spec.{f}[{i}]")
            if item.get("cidr"):
                _network(item["cidr"], f"spec.{f}[{i}].cidr")
    ifaces = _list(spec.get("ignoredInterfaces"), "spec.ignoredInterfaces")
    for i, pat in enumerate(ifaces):
        if not isinstance(pat, str) or not pat or "\\" in pat or not is_bird_string_safe(pat):
            raise DecodeError(f"spec.ignoredInterfaces[{i}]",
                              "interface pattern holds characters BIRD cannot quote")
    pw = spec.get("nodeMeshPassword")
    if pw is not None:
        _dict(_dict(pw, "spec.nodeMeshPassword").get("secretKeyRef"),
              "spec.nodeMeshPassword.secretKeyRef")
