"""Snapshot of the datastore → the desired kernel state of this host. Pure.

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

from felix.calc import chains
from felix.calc.inputs import (
    BGPConfigResource,
    Block,
    Endpoint,
    FelixConfigResource,
    NodeInfo,
    Obj,
    Pool,
    Profile,
)
from felix.config import FelixConfig
from felix.drivers.iptables.rules import Rule
from libcalico.model import selector

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


class Snapshot:
    """The datastore objects Felix reads, by key. `apply` is the only mutator."""

    def __init__(self) -> None:
        self.objects: dict[str, Obj] = {}
        self._by_type: dict[type, dict[str, Obj]] = {}
        self._endpoints_by_node: dict[str, dict[str, Endpoint]] = {}

    def apply(self, key: str, obj: Obj | None) -> None:
        old = self.objects.pop(key, None)
        if old is not None:
            self._by_type[type(old)].pop(key, None)
            if isinstance(old, Endpoint):
                self._endpoints_by_node.get(old.node, {}).pop(key, None)
        if obj is not None:
            self.objects[key] = obj
            self._by_type.setdefault(type(obj), {})[key] = obj
            if isinstance(obj, Endpoint):
                self._endpoints_by_node.setdefault(obj.node, {})[key] = obj

    def of(self, cls: type[Obj]) -> list[Obj]:
        return list(self._by_type.get(cls, {}).values())

    def endpoints_on(self, node: str) -> list[Endpoint]:
        """Endpoints of one node (indexed: other nodes' endpoints cost nothing)."""
        return list(self._endpoints_by_node.get(node, {}).values())

    def felix_config(self, hostname: str) -> tuple[dict[str, object] | None,
                                                   dict[str, object] | None]:
        glob = node = None
        for o in self.of(FelixConfigResource):
            if isinstance(o, FelixConfigResource):
                if o.name == "default":
                    glob = o.spec
                elif o.name == f"node.{hostname}":
                    node = o.spec
        return node, glob

    def normal_route_priorities(self) -> tuple[int, int]:
        """(IPv4, IPv6) normal route priority: BGPConfiguration `default`'s
        ipv4NormalRoutePriority / ipv6NormalRoutePriority, else 1024 (Calico's default). The
        same values confd writes as NRP into BIRD's `krt_metric < NRP` export test."""
        v4 = v6 = DEFAULT_NORMAL_ROUTE_PRIORITY
        for o in self.of(BGPConfigResource):
            if isinstance(o, BGPConfigResource) and o.name == "default":
                v4 = o.ipv4_normal_route_priority or v4
                v6 = o.ipv6_normal_route_priority or v6
        return v4, v6


def vtep_mac(node: str, version: int = 4) -> str:
    """Calico's derived VTEP MAC: 0x66 followed by the first five bytes of sha1(name)."""
    seed = node if version == 4 else node + "-v6"
    digest = hashlib.sha1(seed.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x66, *digest[:5]))


def _endpoint_sysctls(ep: Endpoint, rp_filter: str, ipv6: bool) -> dict[str, str]:
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


def _effective_labels(e: Endpoint, profiles: Mapping[str, Profile]
                      ) -> tuple[tuple[str, str], ...]:
    """Labels inherited from the endpoint's profiles (labelsToApply, in order), overridden
    by the endpoint's own labels, as Calico computes them for selectors."""
    merged: dict[str, str] = {}
    for name in e.profiles:
        p = profiles.get(name)
        if p is not None:
            merged.update(p.labels_to_apply)
    merged.update(e.labels)
    return tuple(sorted(merged.items()))


@functools.lru_cache(maxsize=65536)
def _selects(canonical: str, labels: tuple[tuple[str, str], ...]) -> bool:
    return selector.parse(canonical).evaluate(dict(labels))


def _encap_enabled(setting: str, pools: list[Pool], attr: str) -> bool:
    if setting:
        return setting == "true"
    return any(getattr(p, attr) != "Never" and not p.disabled for p in pools)


def _pool_for(pools: list[Pool], net: IPNet) -> Pool | None:
    best: Pool | None = None
    for p in pools:
        if (p.cidr.version == net.version and net.subnet_of(p.cidr)  # type: ignore[arg-type]
                and (best is None or p.cidr.prefixlen > best.cidr.prefixlen)):
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
    pools = [p for p in snap.of(Pool) if isinstance(p, Pool)]
    nodes = {n.name: n for n in snap.of(NodeInfo) if isinstance(n, NodeInfo)}
    blocks = [b for b in snap.of(Block) if isinstance(b, Block)]
    profiles = {p.name: p for p in snap.of(Profile) if isinstance(p, Profile)}
    local = sorted(snap.endpoints_on(me), key=lambda e: e.key)
    # Two endpoints claiming one interface: the first by key wins (deterministic).
    by_iface: dict[str, Endpoint] = {}
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
        if b.host is None:
            continue
        pool = _pool_for(pools, b.cidr)
        if b.host == me:
            if b.cidr.prefixlen != b.cidr.max_prefixlen:
                st.routes[(MAIN_TABLE, b.cidr)] = Route(
                    b.cidr, type="blackhole",
                    metric=kernel_metric(b.cidr.version, 0))
            continue
        node = nodes.get(b.host)
        if pool is None or node is None or node.ipv4 is None or b.cidr.version != 4:
            continue
        same = bool(my_ip) and node.ipv4.ip in my_ip.network  # type: ignore[union-attr]
        via_vx = pool.vxlan_mode == "Always" or (pool.vxlan_mode == "CrossSubnet" and not same)
        via_ipip = pool.ipip_mode == "Always" or (pool.ipip_mode == "CrossSubnet" and not same)
        if via_vx:
            if st.vxlan is not None and node.vxlan_addr is not None:
                st.routes[(MAIN_TABLE, b.cidr)] = Route(
                    b.cidr, dev=VXLAN_DEVICE, gateway=node.vxlan_addr, onlink=True,
                    proto=cfg.device_route_protocol)
        elif via_ipip:
            if st.ipip is not None and ipip_routes:
                st.routes[(MAIN_TABLE, b.cidr)] = Route(
                    b.cidr, dev=IPIP_DEVICE, gateway=node.ipv4.ip, onlink=True)
        elif same and parent is not None and (pool.vxlan_mode == "CrossSubnet" or
                                              noencap_routes):
            st.routes[(MAIN_TABLE, b.cidr)] = Route(
                b.cidr, dev=parent.name, gateway=node.ipv4.ip, onlink=True)

    # IP sets.
    versions = [4] + ([6] if cfg.ipv6_support and (
        any(p.cidr.version == 6 for p in pools) or any(e.ipv6 for e in local)) else [])
    selectors: set[str] = set()
    for e in local:
        for name in e.profiles:
            selectors |= chains.selectors_of(profiles.get(name))
    members: dict[str, tuple[set[str], set[str]]] = {s: (set(), set()) for s in selectors}
    if selectors:
        for any_ep in snap.of(Endpoint):
            assert isinstance(any_ep, Endpoint)
            labels = _effective_labels(any_ep, profiles)
            for s in selectors:
                if _selects(s, labels):
                    members[s][0].update(str(n) for n in any_ep.ipv4)
                    members[s][1].update(str(n) for n in any_ep.ipv6)
    for s, (m4, m6) in members.items():
        st.ipsets[chains.set_name(4, chains.selector_set_id(s))] = IPSet("inet", frozenset(m4))
        if 6 in versions:
            st.ipsets[chains.set_name(6, chains.selector_set_id(s))] = IPSet(
                "inet6", frozenset(m6))
    for v in versions:
        fam = "inet" if v == 4 else "inet6"
        vp = [p for p in pools if p.cidr.version == v]
        st.ipsets[chains.set_name(v, "network-ip-pools")] = IPSet(
            fam, frozenset(str(p.cidr) for p in vp))
        st.ipsets[chains.set_name(v, "masq-ipam-pools")] = IPSet(
            fam, frozenset(str(p.cidr) for p in vp if p.nat_outgoing and not p.disabled))
        hosts = set()
        for n in nodes.values():
            a = n.ipv4 if v == 4 else n.ipv6
            if a is not None:
                hosts.add(str(a.ip))
        st.ipsets[chains.set_name(v, "all-hosts-net")] = IPSet(fam, frozenset(hosts))
        if v == 4 and st.vxlan is not None:
            st.ipsets[chains.set_name(4, "all-vxlan-net")] = IPSet(fam, frozenset(
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
