"""The datastore objects Felix reads, decoded from Calico's etcd JSON.

Felix only needs a handful of fields; this decoder is tolerant of unknown fields (as Calico's
update processors are) and strict about the values it uses: anything that would end up in a
route, a neighbour entry or an iptables rule is validated here, and a value that fails makes
the whole object invalid (treated as absent, with the reason reported).
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from libcalico.model import keys, selector

PURE = True

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network

_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_IFACE_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")
_NAME_RE = re.compile(r"^[a-zA-Z0-9_.:/-]{1,253}$")


class BadInput(ValueError):
    """A datastore value Felix cannot use; the message names the key and field."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    key: str
    node: str
    iface: str
    mac: str | None
    ipv4: tuple[ipaddress.IPv4Network, ...]
    ipv6: tuple[ipaddress.IPv6Network, ...]
    profiles: tuple[str, ...]
    labels: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Pool:
    name: str
    cidr: IPNet
    vxlan_mode: str          # Never | Always | CrossSubnet
    ipip_mode: str
    nat_outgoing: bool
    disabled: bool


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    ipv4: ipaddress.IPv4Interface | None
    ipv6: ipaddress.IPv6Interface | None
    vxlan_addr: ipaddress.IPv4Address | None
    vxlan_mac: str | None
    ipip_addr: ipaddress.IPv4Address | None


@dataclass(frozen=True, slots=True)
class Block:
    cidr: IPNet
    host: str | None


@dataclass(frozen=True, slots=True)
class RuleSpec:
    action: str                               # Allow | Deny | Pass | Log
    ip_version: int | None
    protocol: str | None                      # tcp/udp/icmp/sctp/... or a number
    not_protocol: str | None
    src_nets: tuple[IPNet, ...]
    dst_nets: tuple[IPNet, ...]
    not_src_nets: tuple[IPNet, ...]
    not_dst_nets: tuple[IPNet, ...]
    src_ports: tuple[str, ...]                # "80" or "1000:2000"
    dst_ports: tuple[str, ...]
    unsupported: str = ""                     # non-empty ⇒ the rule cannot be rendered
    src_selector: str = ""                    # canonical selector text ("" = none)
    dst_selector: str = ""
    not_src_selector: str = ""
    not_dst_selector: str = ""


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    ingress: tuple[RuleSpec, ...]
    egress: tuple[RuleSpec, ...]
    labels_to_apply: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class FelixConfigResource:
    name: str
    spec: dict[str, Any]

    def __hash__(self) -> int:
        return hash((self.name, json.dumps(self.spec, sort_keys=True)))


@dataclass(frozen=True, slots=True)
class BGPConfigResource:
    """The BGPConfiguration fields Felix uses: the normal route priorities (the metric of
    local workload routes, which BIRD compares with the same values)."""

    name: str
    ipv4_normal_route_priority: int | None
    ipv6_normal_route_priority: int | None


Obj = Endpoint | Pool | NodeInfo | Block | Profile | FelixConfigResource | BGPConfigResource

_PRIORITY_MAX = 2**31 - 2      # Calico's validation: 1 .. MaxInt32-1


def _net(text: Any, where: str) -> IPNet:
    if not isinstance(text, str):
        raise BadInput(f"{where}: not a string")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError as exc:
        raise BadInput(f"{where}: {exc}") from exc


def _addr_of(text: Any, where: str) -> ipaddress.IPv4Address | None:
    if not text:
        return None
    try:
        a = ipaddress.ip_interface(str(text)).ip
    except ValueError as exc:
        raise BadInput(f"{where}: {exc}") from exc
    if not isinstance(a, ipaddress.IPv4Address):
        raise BadInput(f"{where}: not IPv4")
    return a


def _mac(text: Any, where: str) -> str | None:
    if not text:
        return None
    if not isinstance(text, str) or not _MAC_RE.match(text):
        raise BadInput(f"{where}: not a MAC address: {text!r}")
    return text.lower()


def _name(text: Any, where: str) -> str:
    if not isinstance(text, str) or not _NAME_RE.match(text):
        raise BadInput(f"{where}: bad name {text!r}")
    return text


def decode(key: str, value: str | None) -> tuple[str, Obj | None]:
    """(identity, object) for one datastore key; object None when deleted.
    Identity is the key itself. Raises BadInput for values Felix cannot use and
    KeyError for keys Felix does not read."""
    if value is None:
        return key, None
    try:
        doc = json.loads(value)
    except ValueError as exc:
        raise BadInput(f"{key}: not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise BadInput(f"{key}: not a JSON object")
    cidr = keys.parse_block_key(key)
    if cidr is not None and key.startswith(keys.IPAM_ROOT + "assignment/"):
        return key, _block(key, cidr, doc)
    parsed = keys.parse_resource_key(key)
    if parsed is None:
        raise KeyError(key)
    kind, _ns, name = parsed
    spec = doc.get("spec") or {}
    if not isinstance(spec, dict):
        raise BadInput(f"{key}: spec is not an object")
    if kind == "WorkloadEndpoint":
        meta = doc.get("metadata") or {}
        return key, _endpoint(key, spec, meta if isinstance(meta, dict) else {})
    if kind == "IPPool":
        return key, _pool(key, name, spec)
    if kind == "Node":
        return key, _node(key, name, spec)
    if kind == "Profile":
        return key, _profile(key, name, spec)
    if kind == "FelixConfiguration":
        return key, FelixConfigResource(name, dict(spec))
    if kind == "BGPConfiguration":
        return key, BGPConfigResource(
            name, _priority(spec.get("ipv4NormalRoutePriority"),
                            f"{key}: spec.ipv4NormalRoutePriority"),
            _priority(spec.get("ipv6NormalRoutePriority"),
                      f"{key}: spec.ipv6NormalRoutePriority"))
    raise KeyError(key)


def _priority(v: Any, where: str) -> int | None:
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= _PRIORITY_MAX:
        raise BadInput(f"{where}: {v!r} is not an integer from 1 to {_PRIORITY_MAX}")
    return v


def _block(key: str, cidr: IPNet, doc: dict[str, Any]) -> Block:
    aff = doc.get("affinity")
    host = None
    if isinstance(aff, str) and aff.startswith("host:"):
        host = aff[len("host:"):]
    if doc.get("cidr") and _net(doc["cidr"], f"{key}: cidr") != cidr:
        raise BadInput(f"{key}: cidr {doc['cidr']} does not match the key")
    return Block(cidr, host)


def _endpoint(key: str, spec: dict[str, Any], meta: dict[str, Any]) -> Endpoint:
    iface = spec.get("interfaceName")
    if not isinstance(iface, str) or not _IFACE_RE.match(iface):
        raise BadInput(f"{key}: spec.interfaceName: bad interface name {iface!r}")
    v4: list[ipaddress.IPv4Network] = []
    v6: list[ipaddress.IPv6Network] = []
    for i, n in enumerate(spec.get("ipNetworks") or []):
        net = _net(n, f"{key}: spec.ipNetworks[{i}]")
        if isinstance(net, ipaddress.IPv4Network):
            v4.append(net)
        else:
            v6.append(net)
    profiles = tuple(_name(p, f"{key}: spec.profiles") for p in spec.get("profiles") or [])
    return Endpoint(key, str(spec.get("node") or ""), iface,
                    _mac(spec.get("mac"), f"{key}: spec.mac"),
                    tuple(sorted(set(v4))), tuple(sorted(set(v6))), profiles,
                    _labels(meta.get("labels"), f"{key}: metadata.labels"))


def _mode(v: Any, where: str) -> str:
    s = str(v or "Never")
    if s not in ("Never", "Always", "CrossSubnet"):
        raise BadInput(f"{where}: {s!r} is not Never, Always or CrossSubnet")
    return s


def _pool(key: str, name: str, spec: dict[str, Any]) -> Pool:
    return Pool(name, _net(spec.get("cidr"), f"{key}: spec.cidr"),
                _mode(spec.get("vxlanMode"), f"{key}: spec.vxlanMode"),
                _mode(spec.get("ipipMode"), f"{key}: spec.ipipMode"),
                bool(spec.get("natOutgoing")), bool(spec.get("disabled")))


def _node(key: str, name: str, spec: dict[str, Any]) -> NodeInfo:
    bgp = spec.get("bgp") or {}
    v4 = v6 = None
    if bgp.get("ipv4Address"):
        try:
            v4 = ipaddress.IPv4Interface(bgp["ipv4Address"])
        except ValueError as exc:
            raise BadInput(f"{key}: spec.bgp.ipv4Address: {exc}") from exc
    if bgp.get("ipv6Address"):
        try:
            v6 = ipaddress.IPv6Interface(bgp["ipv6Address"])
        except ValueError as exc:
            raise BadInput(f"{key}: spec.bgp.ipv6Address: {exc}") from exc
    if v4 is None:
        for a in spec.get("addresses") or []:
            try:
                cand = ipaddress.ip_interface(str(a.get("address", "")))
            except ValueError:
                continue
            if isinstance(cand, ipaddress.IPv4Interface):
                v4 = cand
                break
    return NodeInfo(name, v4, v6,
                    _addr_of(spec.get("ipv4VXLANTunnelAddr"), f"{key}: spec.ipv4VXLANTunnelAddr"),
                    _mac(spec.get("vxlanTunnelMACAddr"), f"{key}: spec.vxlanTunnelMACAddr"),
                    _addr_of(bgp.get("ipv4IPIPTunnelAddr"), f"{key}: spec.bgp.ipv4IPIPTunnelAddr"))


_PROTO_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9-]{0,15}|\d{1,3})$")
_PORT_RE = re.compile(r"^\d{1,5}(:\d{1,5})?$")


def _ports(values: Any, where: str) -> tuple[tuple[str, ...], str]:
    out: list[str] = []
    for v in values or []:
        s = str(v)
        if not _PORT_RE.match(s):
            return (), f"{where}: named or bad port {s!r} not supported"
        a, _, b = s.partition(":")
        if int(a) > 65535 or (b and (int(b) > 65535 or int(b) < int(a))):
            raise BadInput(f"{where}: bad port range {s!r}")
        out.append(s)
    return tuple(out), ""


def _rule(r: Any, where: str) -> RuleSpec:
    if not isinstance(r, dict):
        raise BadInput(f"{where}: not an object")
    action = str(r.get("action", ""))
    if action not in ("Allow", "Deny", "Pass", "Log"):
        raise BadInput(f"{where}: action {action!r} is not Allow, Deny, Pass or Log")
    proto = r.get("protocol")
    nproto = r.get("notProtocol")
    for p, f in ((proto, "protocol"), (nproto, "notProtocol")):
        if p is not None and not _PROTO_RE.match(str(p)):
            raise BadInput(f"{where}.{f}: bad protocol {p!r}")
    src = r.get("source") or {}
    dst = r.get("destination") or {}
    unsupported = ""
    for side, d in (("source", src), ("destination", dst)):
        for f in ("namespaceSelector", "serviceAccounts", "services", "notPorts"):
            if d.get(f):
                unsupported = f"{where}.{side}.{f} is not supported by this Felix"
    sels = {}
    for side, d in (("source", src), ("destination", dst)):
        for f in ("selector", "notSelector"):
            text = d.get(f)
            if text:
                try:
                    sels[(side, f)] = str(selector.parse(str(text)))
                except selector.SelectorError as exc:
                    raise BadInput(f"{where}.{side}.{f}: {exc}") from exc
    if r.get("icmp") or r.get("notICMP") or r.get("http"):
        unsupported = f"{where}: icmp/http matches are not supported by this Felix"
    sp, u1 = _ports(src.get("ports"), f"{where}.source.ports")
    dp, u2 = _ports(dst.get("ports"), f"{where}.destination.ports")
    unsupported = unsupported or u1 or u2
    ipv = r.get("ipVersion")
    if ipv not in (None, 4, 6):
        raise BadInput(f"{where}.ipVersion: {ipv!r}")

    def nets(d: dict[str, Any], f: str) -> tuple[IPNet, ...]:
        return tuple(_net(n, f"{where}.{f}") for n in d.get(f) or [])

    return RuleSpec(action, ipv, str(proto).lower() if proto is not None else None,
                    str(nproto).lower() if nproto is not None else None,
                    nets(src, "nets"), nets(dst, "nets"), nets(src, "notNets"),
                    nets(dst, "notNets"), sp, dp, unsupported,
                    sels.get(("source", "selector"), ""),
                    sels.get(("destination", "selector"), ""),
                    sels.get(("source", "notSelector"), ""),
                    sels.get(("destination", "notSelector"), ""))


def _profile(key: str, name: str, spec: dict[str, Any]) -> Profile:
    _name(name, f"{key}: metadata.name")
    ing = tuple(_rule(r, f"{key}: spec.ingress[{i}]")
                for i, r in enumerate(spec.get("ingress") or []))
    eg = tuple(_rule(r, f"{key}: spec.egress[{i}]")
               for i, r in enumerate(spec.get("egress") or []))
    return Profile(name, ing, eg, _labels(spec.get("labelsToApply"), f"{key}: spec.labelsToApply"))


def _labels(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if not value:
        return ()
    if not isinstance(value, dict):
        raise BadInput(f"{where}: not an object")
    return tuple(sorted((str(k), str(v)) for k, v in value.items()))
