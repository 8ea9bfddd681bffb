"""The key space: Calico's confd cache synthesised from a snapshot of raw etcd keys.

Calico's confd never reads `/calico/bgp/v1/...` from etcd; it builds those keys in memory from
v3 resources (confd.md c.1/c.2). This module does the same, purely:

    snapshot (raw etcd key → JSON as stored)  ──►  KeySpace.values (Calico cache key → string)

Keys produced (all under `/calico/`):

- `bgp/v1/global/{as_num,node_mesh,loglevel,listen_port,prefix_advertisements/ip_v4|ip_v6}`
- `bgp/v1/host/<n>/{ip_addr_v4,ip_addr_v6,network_v4,network_v6,as_num,rr_cluster_id,
  wireguard_addr_v4,wireguard_addr_v6,listen_port,loglevel,prefix_advertisements/...}`
- `bgp/v1/global/peer_v4|peer_v6/<ip>[-<port>]`, `bgp/v1/host/<n>/peer_v4|peer_v6/...` (JSON),
  from BGPPeers (peerIP, peerSelector), first writer wins, plus reverse peerings
- `v1/ipam/v4|v6/pool/<cidr ->`  (JSON, IPPoolV3ToV1 shape)
- `ipam/v2/host/<node>/ipv4|ipv6/block/<cidr ->` (this node's, pending ones dropped)
- `staticroutes[v6]/<cidr ->`, `rejectcidrs[v6]/<cidr ->` (BGPConfiguration service ranges)
- `resources/v3/projectcalico.org/{nodes,bgppeers,bgpconfigurations,bgpfilters}/<name>` as stored

Decoding of v3 resources lives in one place (`Resources`/`_decode`): JSON dicts read with
Calico's field names. Values are untrusted: a resource that cannot be decoded, or whose fields
would be unsafe in BIRD (addresses, AS numbers, names), is left out and reported in
`KeySpace.warnings` naming the resource and the field; it never reaches a template.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confd import bgpfilter
from confd.functions import is_bird_string_safe
from libcalico.model import keys as calico_keys
from libcalico.model import selector as calico_selector

PURE = True

ROOT = "/calico/"
V3 = calico_keys.RESOURCE_ROOT
IPAM_HOST = calico_keys.IPAM_ROOT + "host/"
SECRETS_PREFIX = "/calico/secrets/"
"""Our etcd-mode stand-in for Kubernetes Secrets (Calico reads BGP passwords from Secrets in
$NAMESPACE): `/calico/secrets/<secret name>/<key>` holds the secret value as plain text."""
DEFAULT_AS = "64512"
DEFAULT_PORT = 179
LB_EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAME = re.compile(r"[a-z0-9]([a-z0-9.\-]{0,251}[a-z0-9])?\Z")
_CONFIG_NAME = re.compile(r"(default|node\.[a-z0-9]([a-z0-9.\-]{0,251}[a-z0-9])?)\Z")
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)(h|ms|m|s|us|µs|ns))+?")


class DecodeError(ValueError):
    """One field of one resource is unusable: `field` says which."""

    def __init__(self, field_path: str, reason: str) -> None:
        self.field_path = field_path
        super().__init__(f"{field_path}: {reason}")


# ----------------------------------------------------------------------------------------------
# Decoding (the one place that reads raw v3 JSON; swap for libcalico.model.codec when it lands)
# ----------------------------------------------------------------------------------------------


def _dict(v: Any, path: str) -> dict[str, Any]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise DecodeError(path, "expected an object")
    return v


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
    host_fields: tuple[tuple[str, str], ...] = ()
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
        host_fields=tuple(fields),
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


# ----------------------------------------------------------------------------------------------
# The decoded resources, with a cache keyed by (key, value text)
# ----------------------------------------------------------------------------------------------


@dataclass
class Resources:
    nodes: dict[str, Node] = field(default_factory=dict)
    peers: dict[str, Peer] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """BGPConfiguration name → spec (`default`, `node.<name>`)."""
    filters: dict[str, dict[str, Any]] = field(default_factory=dict)
    """BGPFilter name → spec."""
    pools: dict[str, Pool] = field(default_factory=dict)
    affinities: dict[str, str] = field(default_factory=dict)
    """Affinity key (raw etcd) → state, this node's only, pending dropped."""
    secrets: dict[str, str] = field(default_factory=dict)
    """`<secret name>/<key>` → secret value (BGP passwords), from SECRETS_PREFIX keys."""
    raw: dict[str, str] = field(default_factory=dict)
    """Raw v3 keys (nodes, bgppeers, bgpconfigurations, bgpfilters) copied into the key space."""
    warnings: list[str] = field(default_factory=list)


_KINDS = {"nodes": "Node", "bgppeers": "BGPPeer", "bgpconfigurations": "BGPConfiguration",
          "bgpfilters": "BGPFilter", "ippools": "IPPool"}


def _decode(plural: str, name: str, text: str) -> object:
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
    comms = spec.get("communities") or []
    if not isinstance(comms, list):
        raise DecodeError("spec.communities", "expected a list")
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
    advs = spec.get("prefixAdvertisements") or []
    if not isinstance(advs, list):
        raise DecodeError("spec.prefixAdvertisements", "expected a list")
    for i, a in enumerate(advs):
        path = f"spec.prefixAdvertisements[{i}]"
        a = _dict(a, path)
        _network(a.get("cidr"), f"{path}.cidr")
        cs = a.get("communities") or []
        if not isinstance(cs, list):
            raise DecodeError(f"{path}.communities", "expected a list")
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
        items = spec.get(f) or []
        if not isinstance(items, list):
            raise DecodeError(f"spec.{f}", "expected a list")
        for i, item in enumerate(items):
            item = _dict(item, f"spec.{f}[{i}]")
            if item.get("cidr"):
                _network(item["cidr"], f"spec.{f}[{i}].cidr")
    ifaces = spec.get("ignoredInterfaces") or []
    if not isinstance(ifaces, list):
        raise DecodeError("spec.ignoredInterfaces", "expected a list")
    for i, pat in enumerate(ifaces):
        if not isinstance(pat, str) or not pat or "\\" in pat or not is_bird_string_safe(pat):
            raise DecodeError(f"spec.ignoredInterfaces[{i}]",
                              "interface pattern holds characters BIRD cannot quote")
    pw = spec.get("nodeMeshPassword")
    if pw is not None:
        _dict(_dict(pw, "spec.nodeMeshPassword").get("secretKeyRef"),
              "spec.nodeMeshPassword.secretKeyRef")


class KeySpaceBuilder:
    """Builds key spaces, remembering decoded resources between calls."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, object, str]] = {}

    def decode(self, snapshot: Mapping[str, str], node: str) -> Resources:
        res = Resources()
        cache = self._cache
        seen: set[str] = set()
        aff_prefix = f"{IPAM_HOST}{node}/"
        for key, text in snapshot.items():
            if key.startswith(aff_prefix):
                _affinity(res, key, text)
                continue
            if key.startswith(SECRETS_PREFIX):
                res.secrets[key[len(SECRETS_PREFIX):]] = text
                continue
            if not key.startswith(V3):
                continue
            parts = key[len(V3):].split("/")
            if len(parts) != 2 or parts[0] not in _KINDS:
                continue
            plural, name = parts
            seen.add(key)
            hit = cache.get(key)
            if hit is not None and hit[0] == text:
                obj, err = hit[1], hit[2]
            else:
                try:
                    obj, err = _decode(plural, name, text), ""
                except DecodeError as exc:
                    obj, err = None, f"{_KINDS[plural]} {name[:80]!r} ignored: {exc}"
                cache[key] = (text, obj, err)
            if err:
                res.warnings.append(err)
                continue
            if obj is None:
                continue
            if plural != "ippools":
                res.raw[key] = text
            if isinstance(obj, Node):
                res.nodes[name] = obj
            elif isinstance(obj, Peer):
                res.peers[name] = obj
            elif isinstance(obj, Pool):
                res.pools[name] = obj
            elif plural == "bgpconfigurations":
                res.configs[name] = obj  # type: ignore[assignment]
            else:
                res.filters[name] = obj  # type: ignore[assignment]
        if len(cache) > len(seen) * 2 + 64:
            for k in [k for k in cache if k not in seen]:
                del cache[k]
        res.warnings.sort()
        return res

    def build(self, snapshot: Mapping[str, str], node: str,
              environ: Mapping[str, str]) -> KeySpace:
        res = self.decode(snapshot, node)
        return synthesise(res, node, environ)


def _affinity(res: Resources, key: str, text: str) -> None:
    parsed = calico_keys.parse_affinity_key(key)
    if parsed is None:
        return
    try:
        value = json.loads(text)
    except ValueError:
        res.warnings.append(f"block affinity {key} ignored: not JSON")
        return
    if not isinstance(value, dict):
        res.warnings.append(f"block affinity {key} ignored: not a JSON object")
        return
    state = value.get("state", "")
    if not isinstance(state, str) or state == "pending" or value.get("deleted") is True:
        return
    res.affinities[key] = state


# ----------------------------------------------------------------------------------------------
# Synthesis
# ----------------------------------------------------------------------------------------------


class KeySpace:
    """The synthesised keys (`values`) plus the decoded resources they came from. Read-only
    once built; `sorted_keys` is computed on first use and shared by every reader."""

    def __init__(self, values: Mapping[str, str], resources: Resources,
                 warnings: tuple[str, ...],
                 hosts: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.values = values
        self.hosts: Mapping[str, Mapping[str, str]] = hosts or {}
        """Node name → the leaf keys of `/calico/bgp/v1/host/<name>/` (ip_addr_v4, as_num,
        listen_port...): the same data as `values`, indexed for the view."""
        self.resources = resources
        self.warnings = warnings
        self._sorted: list[str] | None = None

    @property
    def sorted_keys(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.values)
        return self._sorted

    def keys_under(self, prefix: str) -> list[str]:
        """Keys starting with `prefix`, in byte order (memkv's order)."""
        keys = self.sorted_keys
        i = bisect.bisect_left(keys, prefix)
        j = bisect.bisect_left(keys, prefix + "\U0010ffff")
        return keys[i:j]

    def items_under(self, prefix: str) -> list[tuple[str, str]]:
        values = self.values
        return [(k, values[k]) for k in self.keys_under(prefix)]


def _seg(net: IPNetwork) -> str:
    return str(net).replace("/", "-")


def _loglevel(v: Any) -> str:
    text = v.lower() if isinstance(v, str) else ""
    return text if text in ("debug", "info") else "none"


def _prefix_advertisements(spec: Mapping[str, Any], version: int, where: str,
                           warnings: list[str]) -> str:
    named: dict[str, str] = {}
    for c in spec.get("communities") or []:
        named[c["name"]] = c["value"]
    out = []
    for adv in spec.get("prefixAdvertisements") or []:
        net = ipaddress.ip_network(adv["cidr"], strict=False)
        if net.version != version:
            continue
        values: set[str] = set()
        for c in adv.get("communities") or []:
            value = named.get(c, c)
            try:
                bgpfilter._community(value, "")
            except bgpfilter.FilterError:
                warnings.append(f"BGPConfiguration {where!r}: community {c[:60]!r} of "
                                f"{net} is not defined; left out")
                continue
            values.add(value)
        out.append({"cidr": str(net), "communities": sorted(values)})
    return json.dumps(out, separators=(",", ":"))


def _global_port(res: Resources) -> int:
    port = res.configs.get("default", {}).get("listenPort")
    return port if isinstance(port, int) and port else DEFAULT_PORT


def _node_port(res: Resources, name: str) -> int:
    port = res.configs.get(f"node.{name}", {}).get("listenPort")
    return port if isinstance(port, int) and port else _global_port(res)


def synthesise(res: Resources, node: str, environ: Mapping[str, str]) -> KeySpace:
    v: dict[str, str] = {}
    warnings = list(res.warnings)
    g = ROOT + "bgp/v1/global/"
    default = res.configs.get("default", {})
    gas = asn(default.get("asNumber"), "asNumber")
    v[g + "as_num"] = str(gas) if gas else DEFAULT_AS
    mesh = default.get("nodeToNodeMeshEnabled")
    v[g + "node_mesh"] = json.dumps({"enabled": mesh is not False}, separators=(",", ":"))
    v[g + "loglevel"] = _loglevel(default.get("logSeverityScreen") or "info")
    if default.get("listenPort"):
        v[g + "listen_port"] = str(default["listenPort"])
    if default.get("prefixAdvertisements"):
        for ver in (4, 6):
            v[g + f"prefix_advertisements/ip_v{ver}"] = _prefix_advertisements(
                default, ver, "default", warnings)
    for name, spec in res.configs.items():
        if not name.startswith("node."):
            continue
        h = f"{ROOT}bgp/v1/host/{name[5:]}/"
        if spec.get("listenPort"):
            v[h + "listen_port"] = str(spec["listenPort"])
        if spec.get("logSeverityScreen"):
            v[h + "loglevel"] = _loglevel(spec["logSeverityScreen"])
        if spec.get("prefixAdvertisements"):
            merged = dict(spec)
            merged["communities"] = [*(default.get("communities") or []),
                                     *(spec.get("communities") or [])]
            for ver in (4, 6):
                v[h + f"prefix_advertisements/ip_v{ver}"] = _prefix_advertisements(
                    merged, ver, name, warnings)
    hosts: dict[str, dict[str, str]] = {}
    for n in res.nodes.values():
        h = f"{ROOT}bgp/v1/host/{n.name}/"
        fields = dict(n.host_fields)
        hosts[n.name] = fields
        for leaf, value in n.host_fields:
            v[h + leaf] = value
    for name in res.configs:
        if name.startswith("node.") and name[5:] in hosts:
            prefix = f"{ROOT}bgp/v1/host/{name[5:]}/"
            for leaf in ("listen_port", "loglevel"):
                if prefix + leaf in v:
                    hosts[name[5:]][leaf] = v[prefix + leaf]
    for pool in res.pools.values():
        key = f"{ROOT}v1/ipam/v{pool.cidr.version}/pool/{_seg(pool.cidr)}"
        v[key] = json.dumps({
            "cidr": str(pool.cidr),
            "ipip": "tunl0" if pool.ipip_mode else "",
            "ipip_mode": pool.ipip_mode,
            "vxlan_mode": pool.vxlan_mode,
            "masquerade": pool.nat_outgoing,
            "ipam": not pool.disabled,
            "disabled": pool.disabled,
            "disableBGPExport": pool.disable_bgp_export,
            "assignment_mode": pool.assignment_mode,
        }, separators=(",", ":"))
    for key, state in res.affinities.items():
        v["/calico/" + key[len("/calico/"):]] = json.dumps(
            {"state": state, "deleted": False}, separators=(",", ":"))
    _static_routes(v, res, node, environ)
    _peerings(v, res, warnings)
    v.update(res.raw)
    return KeySpace(values=v, resources=res, warnings=tuple(warnings), hosts=hosts)


def _static_routes(v: dict[str, str], res: Resources, node: str,
                   environ: Mapping[str, str]) -> None:
    default = res.configs.get("default", {})
    cidrs: list[IPNetwork] = []
    cluster = [c.strip() for c in environ.get("CALICO_ADVERTISE_CLUSTER_IPS", "").split(",")
               if c.strip()]
    sources: list[Any] = [{"cidr": c} for c in cluster] or list(
        default.get("serviceClusterIPs") or [])
    sources += list(default.get("serviceExternalIPs") or [])
    if default.get("serviceLoadBalancerAggregation", "Enabled") != "Disabled":
        sources += list(default.get("serviceLoadBalancerIPs") or [])
    for item in sources:
        text = item.get("cidr") if isinstance(item, dict) else None
        if not text:
            continue
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if net.prefixlen == net.max_prefixlen:
            continue
        cidrs.append(net)
    me = res.nodes.get(node)
    excluded = me is not None and me.labels.get(LB_EXCLUDE_LABEL) == "true"
    for net in cidrs:
        suffix = "v6" if net.version == 6 else ""
        v[f"{ROOT}rejectcidrs{suffix}/{_seg(net)}"] = str(net)
        if not excluded:
            v[f"{ROOT}staticroutes{suffix}/{_seg(net)}"] = str(net)


# ----------------------------------------------------------------------------------------------
# Peerings (Calico's updatePeersV1, confd.md c.3)
# ----------------------------------------------------------------------------------------------


def _matching(res: Resources, sel: calico_selector.Selector) -> list[Node]:
    return [n for _, n in sorted(res.nodes.items()) if sel.evaluate(n.labels)]


def _node_as(res: Resources, n: Node) -> int:
    return n.as_number or int(res.configs.get("default", {}).get("asNumber") or DEFAULT_AS)


def _node_peer(res: Resources, n: Node, version: int) -> dict[str, Any] | None:
    ip = n.ip(version)
    if ip is None:
        return None
    port = _node_port(res, n.name)
    return {
        "ip": str(ip),
        "as_num": str(_node_as(res, n)),
        "rr_cluster_id": n.rr_cluster_id,
        "port": port if port != DEFAULT_PORT else 0,
    }


def secret(res: Resources, ref: Any) -> str | None:
    """The value a `secretKeyRef` names, or None when it is absent."""
    if not isinstance(ref, dict):
        return None
    return res.secrets.get(f"{ref.get('name', '')}/{ref.get('key', '')}")


def _peer_fields(res: Resources, p: Peer, data: dict[str, Any],
                 warnings: list[str] | None = None) -> dict[str, Any]:
    spec = p.raw
    base: dict[str, Any] = {
        "ip": "",
        "as_num": "",
        "local_as_num": "",
        "rr_cluster_id": "",
        "password": None,
        "source_addr": spec.get("sourceAddress") or "UseNodeIP",
        "restart_time": "",
        "keepalive_time": "",
        "port": 0,
        "keep_next_hop": False,
        "calico_node": False,
        "num_allow_local_as": 0,
        "ttl_security": 0,
        "filters": list(spec.get("filters") or []),
        "reachable_by": "",
        "passive_mode": False,
        "local_bgp_peer": False,
        "next_hop_mode": "",
        "peer_name": p.name,
    }
    nhm = spec.get("nextHopMode") or ""
    local_as = asn(spec.get("localASNumber"), "spec.localASNumber")
    base.update({
        "local_as_num": str(local_as or ""),
        "ttl_security": int(spec.get("ttlSecurity") or 0),
        "num_allow_local_as": int(spec.get("numAllowedLocalASNumbers") or 0),
        "keep_next_hop": bool(spec.get("keepOriginalNextHop")) and not nhm,
        "next_hop_mode": nhm,
    })
    rt = duration_seconds(spec.get("maxRestartTime"), "spec.maxRestartTime")
    if rt is not None:
        base["restart_time"] = str(rt)
    ka = duration_seconds(spec.get("keepaliveTime"), "spec.keepaliveTime")
    if ka is not None:
        base["keepalive_time"] = str(ka)
    pw = spec.get("password")
    if isinstance(pw, dict) and isinstance(pw.get("secretKeyRef"), dict):
        value = secret(res, pw["secretKeyRef"])
        if value is None:
            if warnings is not None:
                warnings.append(f"BGPPeer {p.name!r}: password secret not found; "
                                "peering rendered without a password")
        elif not is_bird_string_safe(value):
            if warnings is not None:
                warnings.append(f"BGPPeer {p.name!r}: password holds a character BIRD cannot "
                                "quote (double quote, newline or control character); "
                                "peering skipped")
            return {}
        else:
            base["password"] = value
    base.update(data)
    return base


def _explicit_peers(res: Resources, p: Peer, warnings: list[str]) -> list[dict[str, Any]]:
    spec = p.raw
    if p.peer_selector is not None:
        out = []
        for n in _matching(res, p.peer_selector):
            for ver in (4, 6):
                d = _node_peer(res, n, ver)
                if d is not None:
                    d = _peer_fields(res, p, d, warnings)
                    if d:
                        out.append(d)
        return out
    if p.peer_ip is None:
        return []
    ip = p.peer_ip
    port = p.peer_port or 0
    calico_node = False
    for n in res.nodes.values():
        if n.ip(ip.version) == ip:
            calico_node = True
            if not port and p.as_number == _node_as(res, n):
                np = _node_port(res, n.name)
                port = np if np != DEFAULT_PORT else 0
    reach = spec.get("reachableBy") or ""
    if reach and ipaddress.ip_address(reach).version != ip.version:
        return []
    d = _peer_fields(res, p, {
        "ip": str(ip),
        "as_num": str(p.as_number or ""),
        "port": port if port != DEFAULT_PORT else 0,
        "calico_node": calico_node,
        "reachable_by": reach,
    }, warnings)
    return [d] if d else []


def _peer_key(d: Mapping[str, Any]) -> str:
    ip = ipaddress.ip_address(d["ip"])
    fam = f"peer_v{ip.version}"
    port = d.get("port") or 0
    return f"{fam}/{ip}" + (f"-{port}" if port and port != DEFAULT_PORT else "")


def _local_nodes(res: Resources, p: Peer) -> list[str]:
    if p.node_selector is not None:
        return [n.name for n in _matching(res, p.node_selector)]
    return [p.node] if p.node else []


def _peerings(v: dict[str, str], res: Resources, warnings: list[str]) -> None:
    out: dict[str, dict[str, Any]] = {}
    ordered = sorted(res.peers.values(), key=lambda p: (not p.is_global, p.name))
    for p in ordered:
        if p.local_workload_selector:
            warnings.append(f"BGPPeer {p.name!r}: localWorkloadSelector peers need endpoint "
                            "status files and are not rendered")
            continue
        peers = _explicit_peers(res, p, warnings)
        if p.is_global:
            for d in peers:
                out.setdefault(f"{ROOT}bgp/v1/global/{_peer_key(d)}", d)
            continue
        for name in _local_nodes(res, p):
            for d in peers:
                gk = f"{ROOT}bgp/v1/global/{_peer_key(d)}"
                if gk in out:
                    continue
                out.setdefault(f"{ROOT}bgp/v1/host/{name}/{_peer_key(d)}", d)
    # Reverse peerings: the nodes a BGPPeer points at peer back to the nodes it applies to.
    for p in ordered:
        if p.local_workload_selector or p.raw.get("reversePeering") == "Manual":
            continue
        remote: list[tuple[Node, tuple[int, ...]]] = []
        if p.peer_selector is not None:
            remote = [(n, (4, 6)) for n in _matching(res, p.peer_selector)]
        elif p.peer_ip is not None:
            ip, port = p.peer_ip, p.peer_port
            for n in sorted(res.nodes.values(), key=lambda n: n.name):
                np = _node_port(res, n.name)
                if (n.ip(ip.version) == ip and p.as_number == _node_as(res, n)
                        and (port is None or port == np)):
                    remote.append((n, (ip.version,)))
        if not remote:
            continue
        if p.node_selector is not None:
            targets = _matching(res, p.node_selector)
        elif p.node:
            targets = [res.nodes[p.node]] if p.node in res.nodes else []
        else:
            targets = sorted(res.nodes.values(), key=lambda n: n.name)
        for n, versions in remote:
            for t in targets:
                for ver in versions:
                    data = _node_peer(res, t, ver)
                    if data is None:
                        continue
                    d = _peer_fields(res, p, data)
                    if not d:
                        continue
                    gk = f"{ROOT}bgp/v1/global/{_peer_key(d)}"
                    if gk in out:
                        continue
                    out.setdefault(f"{ROOT}bgp/v1/host/{n.name}/{_peer_key(d)}", d)
    for k, d in out.items():
        v[k] = json.dumps(d, separators=(",", ":"), sort_keys=True)


def iter_nodes_sorted(res: Resources) -> Iterable[Node]:
    return (res.nodes[k] for k in sorted(res.nodes))
