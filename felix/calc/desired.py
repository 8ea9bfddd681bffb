"""Snapshot of the datastore (typed resources) → the desired kernel state of this host. Pure.

The snapshot is keyed by datastore key, so the result depends only on the final value of each
key and never on the order in which updates arrived.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from felix.calc import chains, rules
from felix.calc.kernelsafe import kernel_mac
from felix.config import FelixConfig
from felix.drivers.iptables.rules import Rule
from libcalico.ipam.block import Block
from libcalico.model import codec, selector
from libcalico.model.resources import (
    BGPConfiguration,
    EncapMode,
    FelixConfiguration,
    IPPool,
    Node,
    Profile,
    WorkloadEndpoint,
)

PURE = True

VXLAN_DEVICE = "vxlan.calico"
IPIP_DEVICE = "tunl0"
PROTO_FELIX = 80
MAIN_TABLE = 254

IPNet = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddr = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Iface:
    """A host interface as the interface monitor last saw it."""

    name: str
    up: bool
    mtu: int = 1500
    addrs: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...] = ()


@dataclass(frozen=True, slots=True, order=True)
class Route:
    dst: IPNet
    type: str = "unicast"             # unicast | blackhole
    dev: str | None = None
    gateway: IPAddr | None = None
    onlink: bool = False
    scope: str = "global"             # link | global
    proto: int = PROTO_FELIX
    table: int = MAIN_TABLE
    # Part of the route's identity in the kernel: routes that differ only in metric coexist.
    # IPv6 has no metric 0 (the kernel turns it into 1024), see `kernel_metric`.
    metric: int = 0

    @property
    def key(self) -> tuple[int, IPNet, int]:
        """The kernel's identity of a main/other-table route: (table, dst, metric)."""
        return (self.table, self.dst, kernel_metric(self.dst.version, self.metric))


IPV6_DEFAULT_METRIC = 1024
DEFAULT_NORMAL_ROUTE_PRIORITY = 1024


def kernel_metric(version: int, metric: int) -> int:
    """The metric the kernel reports for a route written with `metric` (IPv6: 0 ⇒ 1024)."""
    return IPV6_DEFAULT_METRIC if version == 6 and metric == 0 else metric


@dataclass(frozen=True, slots=True)
class VXLANDevice:
    name: str
    vni: int
    port: int
    local: ipaddress.IPv4Address
    parent: str | None
    mac: str
    mtu: int
    address: ipaddress.IPv4Address


@dataclass(frozen=True, slots=True)
class IPIPDevice:
    name: str
    mtu: int
    address: ipaddress.IPv4Address | None


@dataclass(frozen=True, slots=True)
class IPSet:
    family: str                        # inet | inet6
    members: frozenset[str]


@dataclass(frozen=True)
class HostState:
    sysctls: dict[str, str] = field(default_factory=dict)
    routes: dict[tuple[int, IPNet], Route] = field(default_factory=dict)
    neighbours: dict[tuple[str, IPAddr], str] = field(default_factory=dict)
    fdb: dict[tuple[str, str], IPAddr] = field(default_factory=dict)
    ipsets: dict[str, IPSet] = field(default_factory=dict)
    tables: dict[tuple[int, str], chains.TableDesired] = field(default_factory=dict)
    vxlan: VXLANDevice | None = None
    ipip: IPIPDevice | None = None
    workload_ifaces: frozenset[str] = frozenset()
    mtu_vxlan: int = 0


@dataclass(frozen=True, slots=True)
class EndpointView:
    """The facts of one WorkloadEndpoint that the calculation reads, taken once per resource
    (the resource itself has passed the codec and kernelsafe)."""

    key: str
    node: str
    iface: str
    mac: str | None
    ipv4: tuple[ipaddress.IPv4Network, ...]
    ipv6: tuple[ipaddress.IPv6Network, ...]
    profiles: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    ipv4: ipaddress.IPv4Interface | None
    ipv6: ipaddress.IPv6Interface | None
    vxlan_addr: ipaddress.IPv4Address | None
    vxlan_mac: str | None
    ipip_addr: ipaddress.IPv4Address | None


def endpoint_view(key: str, wep: WorkloadEndpoint) -> EndpointView:
    s = wep.spec
    v4 = sorted({n for n in s.ip_networks if isinstance(n, ipaddress.IPv4Network)})
    v6 = sorted({n for n in s.ip_networks if isinstance(n, ipaddress.IPv6Network)})
    return EndpointView(key, s.node or "", s.interface_name or "",
                        kernel_mac(s.mac) if s.mac else None, tuple(v4), tuple(v6),
                        s.profiles, tuple(sorted(wep.metadata.labels.items())))


def node_view(node: Node) -> NodeView:
    s = node.spec
    bgp = s.bgp
    v4 = bgp.ipv4_interface if bgp is not None else None
    v6 = bgp.ipv6_interface if bgp is not None else None
    if v4 is None:
        for a in s.addresses:
            cand = ipaddress.ip_interface(str(a.address))
            if isinstance(cand, ipaddress.IPv4Interface):
                v4 = cand
                break
    vx = s.ipv4_vxlan_tunnel_addr
    ipip = bgp.ipv4_ipip_tunnel_addr if bgp is not None else None
    return NodeView(node.metadata.name, v4, v6,
                    vx if isinstance(vx, ipaddress.IPv4Address) else None,
                    kernel_mac(s.vxlan_tunnel_mac_addr) if s.vxlan_tunnel_mac_addr else None,
                    ipip if isinstance(ipip, ipaddress.IPv4Address) else None)


T = TypeVar("T")


class Snapshot:
    """The typed resources Felix reads (libcalico.model resources and IPAM blocks), by
    datastore key. `apply` is the only mutator."""

    def __init__(self) -> None:
        self.objects: dict[str, object] = {}
        self._by_type: dict[type, dict[str, object]] = {}
        self._endpoints_by_node: dict[str, dict[str, EndpointView]] = {}
        self._endpoints: dict[str, EndpointView] = {}
        self._nodes: dict[str, NodeView] = {}
        self._felix_specs: dict[str, dict[str, object]] = {}

    def apply(self, key: str, obj: object | None) -> None:
        old = self.objects.pop(key, None)
        if old is not None:
            self._by_type[type(old)].pop(key, None)
            view = self._endpoints.pop(key, None)
            if view is not None:
                self._endpoints_by_node.get(view.node, {}).pop(key, None)
            self._nodes.pop(key, None)
            self._felix_specs.pop(key, None)
        if obj is None:
            return
        self.objects[key] = obj
        self._by_type.setdefault(type(obj), {})[key] = obj
        if isinstance(obj, WorkloadEndpoint):
            view = self._endpoints[key] = endpoint_view(key, obj)
            self._endpoints_by_node.setdefault(view.node, {})[key] = view
        elif isinstance(obj, Node):
            self._nodes[key] = node_view(obj)
        elif isinstance(obj, FelixConfiguration):
            spec = codec.encode(obj).get("spec")
            self._felix_specs[obj.metadata.name] = dict(spec) if isinstance(spec, dict) else {}

    def of(self, cls: type[T]) -> list[T]:
        return list(self._by_type.get(cls, {}).values())  # type: ignore[arg-type]

    def endpoints_on(self, node: str) -> list[EndpointView]:
        """Endpoints of one node (indexed: other nodes' endpoints cost nothing)."""
        return list(self._endpoints_by_node.get(node, {}).values())

    def endpoints(self) -> list[EndpointView]:
        return list(self._endpoints.values())

    def nodes(self) -> dict[str, NodeView]:
        return {n.name: n for n in self._nodes.values()}

    def felix_config(self, hostname: str) -> tuple[dict[str, object] | None,
                                                   dict[str, object] | None]:
        """(FelixConfiguration `node.<hostname>` spec, `default` spec) in Calico's JSON
        shape, as felix.config reads them."""
        return (self._felix_specs.get(f"node.{hostname}"), self._felix_specs.get("default"))

    def normal_route_priorities(self) -> tuple[int, int]:
        """(IPv4, IPv6) normal route priority: BGPConfiguration `default`'s
        ipv4NormalRoutePriority / ipv6NormalRoutePriority, else 1024 (Calico's default). The
        same values confd writes as NRP into BIRD's `krt_metric < NRP` export test."""
        v4 = v6 = DEFAULT_NORMAL_ROUTE_PRIORITY
        for o in self.of(BGPConfiguration):
            if o.metadata.name == "default":
                v4 = o.spec.ipv4_normal_route_priority or v4
                v6 = o.spec.ipv6_normal_route_priority or v6
        return v4, v6


def vtep_mac(node: str, version: int = 4) -> str:
    """Calico's derived VTEP MAC: 0x66 followed by the first five bytes of sha1(name)."""
    seed = node if version == 4 else node + "-v6"
    digest = hashlib.sha1(seed.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x66, *digest[:5]))


def _endpoint_sysctls(ep: EndpointView, rp_filter: str, ipv6: bool) -> dict[str, str]:
    return _iface_sysctls(ep.iface, rp_filter, ipv6 and bool(ep.ipv6))


@functools.lru_cache(maxsize=16384)
def _iface_sysctls(i: str, rp_filter: str, ipv6: bool) -> dict[str, str]:
    """Cached (keyed by cheap strings): callers only read the result."""
    out = {
        f"net/ipv6/conf/{i}/accept_ra": "0",
        f"net/ipv4/conf/{i}/route_localnet": "1",
        f"net/ipv4/neigh/{i}/proxy_delay": "0",
        f"net/ipv4/conf/{i}/proxy_arp": "1",
        f"net/ipv4/conf/{i}/forwarding": "1",
        f"net/ipv4/conf/{i}/rp_filter": rp_filter,
    }
    if ipv6:
        out[f"net/ipv6/conf/{i}/proxy_ndp"] = "1"
        out[f"net/ipv6/conf/{i}/forwarding"] = "1"
    return out


def _effective_labels(e: EndpointView, profiles: Mapping[str, Profile]
                      ) -> tuple[tuple[str, str], ...]:
    """Labels inherited from the endpoint's profiles (labelsToApply, in order), overridden
    by the endpoint's own labels, as Calico computes them for selectors."""
    merged: dict[str, str] = {}
    for name in e.profiles:
        p = profiles.get(name)
        if p is not None:
            merged.update(p.spec.labels_to_apply)
    merged.update(e.labels)
    return tuple(sorted(merged.items()))


@functools.lru_cache(maxsize=65536)
def _selects(canonical: str, labels: tuple[tuple[str, str], ...]) -> bool:
    return selector.parse(canonical).evaluate(dict(labels))


def _mode(p: IPPool, attr: str) -> EncapMode:
    m = getattr(p.spec, attr)
    return EncapMode.NEVER if m is None else EncapMode(m)


def _encap_enabled(setting: str, pools: list[IPPool], attr: str) -> bool:
    if setting:
        return setting == "true"
    return any(_mode(p, attr) != EncapMode.NEVER and not p.spec.disabled for p in pools)


def _pool_for(pools: list[IPPool], net: IPNet) -> IPPool | None:
    best: IPPool | None = None
    for p in pools:
        c = p.spec.cidr
        if (c.version == net.version and net.subnet_of(c)  # type: ignore[arg-type]
                and (best is None or c.prefixlen > best.spec.cidr.prefixlen)):
            best = p
    return best


def _iface_with(ifaces: Mapping[str, Iface], ip: IPAddr) -> Iface | None:
    for i in sorted(ifaces.values(), key=lambda x: x.name):
        if any(a.ip == ip for a in i.addrs):
            return i
    return None


@functools.lru_cache(maxsize=65536)
def _mtu_iface(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None


def auto_mtu(ifaces: Mapping[str, Iface], pattern: str, overhead: int) -> int:
    """Calico's auto MTU: the smallest MTU among host interfaces matching MTUIfacePattern,
    minus the encapsulation overhead."""
    mtus = [i.mtu for i in ifaces.values() if i.mtu > 0 and _mtu_iface(pattern, i.name)]
    return (min(mtus) if mtus else 1500) - overhead


def compute(snap: Snapshot, cfg: FelixConfig, ifaces: Mapping[str, Iface],
            rp_filter: str = "1") -> HostState:
    me = cfg.hostname
    pools = snap.of(IPPool)
    nodes = snap.nodes()
    blocks = snap.of(Block)
    profiles = {p.metadata.name: p for p in snap.of(Profile)}
    local = sorted(snap.endpoints_on(me), key=lambda e: e.key)
    # Two endpoints claiming one interface: the first by key wins (deterministic).
    by_iface: dict[str, EndpointView] = {}
    for e in local:
        by_iface.setdefault(e.iface, e)
    local = [by_iface[i] for i in sorted(by_iface)]
    mynode = nodes.get(me)
    vxlan_on = _encap_enabled(cfg.vxlan_enabled, pools, "vxlan_mode")
    ipip_on = _encap_enabled(cfg.ipip_enabled, pools, "ipip_mode")

    nrp4, nrp6 = snap.normal_route_priorities()
    st = HostState(workload_ifaces=frozenset(by_iface))
    if cfg.ip_forwarding == "Enabled":
        st.sysctls["net/ipv4/ip_forward"] = "1"
        if cfg.ipv6_support:
            st.sysctls["net/ipv6/conf/all/forwarding"] = "1"

    for ep in local:
        iface = ifaces.get(ep.iface)
        if iface is None or not iface.up:
            continue
        st.sysctls.update(_endpoint_sysctls(ep, rp_filter, cfg.ipv6_support))
        for net in ep.ipv4 + (ep.ipv6 if cfg.ipv6_support else ()):
            # IPv6 routes have no scope in the kernel (always universe). The metric is the
            # normal route priority, as Calico v3.32: BIRD's calico_aggr exports a /32 from
            # inside a block only when krt_metric < NRP (KubeVirt live-migration routes).
            st.routes[(MAIN_TABLE, net)] = Route(
                net, dev=ep.iface, scope="link" if net.version == 4 else "global",
                proto=cfg.device_route_protocol, metric=nrp4 if net.version == 4 else nrp6)
            if ep.mac and net.version == 4 and net.prefixlen == 32:
                st.neighbours[(ep.iface, net.network_address)] = ep.mac

    my_ip = mynode.ipv4 if mynode else None
    parent = _iface_with(ifaces, my_ip.ip) if my_ip else None
    auto = auto_mtu(ifaces, cfg.mtu_iface_pattern, 0) if (vxlan_on or ipip_on) else 1500
    vx_mtu = cfg.vxlan_mtu or auto - 50
    ipip_mtu = cfg.ipip_mtu or auto - 20
    if vxlan_on and mynode and my_ip and mynode.vxlan_addr:
        st = _replace_vxlan(st, VXLANDevice(
            VXLAN_DEVICE, cfg.vxlan_vni, cfg.vxlan_port, my_ip.ip,
            parent.name if parent else None, mynode.vxlan_mac or vtep_mac(me), vx_mtu,
            mynode.vxlan_addr), vx_mtu)
    if ipip_on:
        st = _replace_ipip(st, IPIPDevice(IPIP_DEVICE, ipip_mtu,
                                          mynode.ipip_addr if mynode else None))

    # Remote VTEPs.
    if st.vxlan is not None:
        for n in sorted(nodes.values(), key=lambda n: n.name):
            if n.name == me or n.vxlan_addr is None or n.ipv4 is None:
                continue
            mac = n.vxlan_mac or vtep_mac(n.name)
            st.neighbours[(VXLAN_DEVICE, n.vxlan_addr)] = mac
            st.fdb[(VXLAN_DEVICE, mac)] = n.ipv4.ip

    ipip_routes = cfg.program_cluster_routes in ("Enabled", "EnabledIPIPOnly")
    noencap_routes = cfg.program_cluster_routes in ("Enabled", "EnabledNoEncapOnly")
    for b in sorted(blocks, key=lambda b: (b.cidr.version, b.cidr)):
        host = b.host()
        if host is None:
            continue
        pool = _pool_for(pools, b.cidr)
        if host == me:
            if b.cidr.prefixlen != b.cidr.max_prefixlen:
                st.routes[(MAIN_TABLE, b.cidr)] = Route(
                    b.cidr, type="blackhole",
                    metric=kernel_metric(b.cidr.version, 0))
            continue
        node = nodes.get(host)
        if pool is None or node is None or node.ipv4 is None or b.cidr.version != 4:
            continue
        same = bool(my_ip) and node.ipv4.ip in my_ip.network  # type: ignore[union-attr]
        vxm, ipm = _mode(pool, "vxlan_mode"), _mode(pool, "ipip_mode")
        via_vx = vxm == EncapMode.ALWAYS or (vxm == EncapMode.CROSS_SUBNET and not same)
        via_ipip = ipm == EncapMode.ALWAYS or (ipm == EncapMode.CROSS_SUBNET and not same)
        if via_vx:
            if st.vxlan is not None and node.vxlan_addr is not None:
                st.routes[(MAIN_TABLE, b.cidr)] = Route(
                    b.cidr, dev=VXLAN_DEVICE, gateway=node.vxlan_addr, onlink=True,
                    proto=cfg.device_route_protocol)
        elif via_ipip:
            if st.ipip is not None and ipip_routes:
                st.routes[(MAIN_TABLE, b.cidr)] = Route(
                    b.cidr, dev=IPIP_DEVICE, gateway=node.ipv4.ip, onlink=True)
        elif same and parent is not None and (vxm == EncapMode.CROSS_SUBNET or
                                              noencap_routes):
            st.routes[(MAIN_TABLE, b.cidr)] = Route(
                b.cidr, dev=parent.name, gateway=node.ipv4.ip, onlink=True)

    # IP sets.
    versions = [4] + ([6] if cfg.ipv6_support and (
        any(p.spec.cidr.version == 6 for p in pools) or any(e.ipv6 for e in local)) else [])
    selectors: set[str] = set()
    for e in local:
        for name in e.profiles:
            selectors |= chains.selectors_of(profiles.get(name))
    members: dict[str, tuple[set[str], set[str]]] = {s: (set(), set()) for s in selectors}
    if selectors:
        for any_ep in snap.endpoints():
            labels = _effective_labels(any_ep, profiles)
            for s in selectors:
                if _selects(s, labels):
                    members[s][0].update(str(n) for n in any_ep.ipv4)
                    members[s][1].update(str(n) for n in any_ep.ipv6)
    for s, (m4, m6) in members.items():
        st.ipsets[rules.set_name(4, rules.selector_set_id(s))] = IPSet("inet", frozenset(m4))
        if 6 in versions:
            st.ipsets[rules.set_name(6, rules.selector_set_id(s))] = IPSet(
                "inet6", frozenset(m6))
    for v in versions:
        fam = "inet" if v == 4 else "inet6"
        vp = [p.spec for p in pools if p.spec.cidr.version == v]
        st.ipsets[rules.set_name(v, "network-ip-pools")] = IPSet(
            fam, frozenset(str(p.cidr) for p in vp))
        st.ipsets[rules.set_name(v, "masq-ipam-pools")] = IPSet(
            fam, frozenset(str(p.cidr) for p in vp if p.nat_outgoing and not p.disabled))
        hosts = set()
        for n in nodes.values():
            a = n.ipv4 if v == 4 else n.ipv6
            if a is not None:
                hosts.add(str(a.ip))
        st.ipsets[rules.set_name(v, "all-hosts-net")] = IPSet(fam, frozenset(hosts))
        if v == 4 and st.vxlan is not None:
            st.ipsets[rules.set_name(4, "all-vxlan-net")] = IPSet(fam, frozenset(
                str(n.ipv4.ip) for n in nodes.values()
                if n.name != me and n.vxlan_addr is not None and n.ipv4 is not None))

        tunnels = []
        if v == 4 and st.ipip is not None and st.ipip.address is not None:
            tunnels.append(IPIP_DEVICE)
        if v == 4 and st.vxlan is not None:
            tunnels.append(VXLAN_DEVICE)
        opts = chains.RuleOptions(
            ip_version=v, prefixes=cfg.interface_prefix,
            vxlan=st.vxlan is not None, ipip=st.ipip is not None, vxlan_port=cfg.vxlan_port,
            insert_mode=cfg.chain_insert_mode,
            endpoint_to_host_action=cfg.default_endpoint_to_host_action,
            allow_vxlan_from_workloads=cfg.allow_vxlan_packets_from_workloads,
            allow_ipip_from_workloads=cfg.allow_ipip_packets_from_workloads,
            nat_outgoing=any(p.nat_outgoing and not p.disabled for p in vp),
            tunnel_devices=tuple(tunnels),
            failsafe_in=tuple((p.protocol, p.port) for p in cfg.failsafe_inbound_host_ports),
            failsafe_out=tuple((p.protocol, p.port) for p in cfg.failsafe_outbound_host_ports),
        )
        eps = tuple(chains.EndpointPolicy(e.iface, e.profiles) for e in local)
        for table, td in chains.build(opts, eps, profiles).items():
            st.tables[(v, table)] = td
    return st


def _replace_vxlan(st: HostState, dev: VXLANDevice, mtu: int) -> HostState:
    return HostState(st.sysctls, st.routes, st.neighbours, st.fdb, st.ipsets, st.tables,
                     dev, st.ipip, st.workload_ifaces, mtu)


def _replace_ipip(st: HostState, dev: IPIPDevice) -> HostState:
    return HostState(st.sysctls, st.routes, st.neighbours, st.fdb, st.ipsets, st.tables,
                     st.vxlan, dev, st.workload_ifaces, st.mtu_vxlan)


__all__ = ["HostState", "Iface", "Route", "Rule", "Snapshot", "compute", "kernel_metric",
           "vtep_mac"]
