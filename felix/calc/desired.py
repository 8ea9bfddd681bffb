"""Snapshot of the datastore (typed resources) → the desired kernel state of this host. Pure.

The snapshot is keyed by datastore key, so the result depends only on the final value of each
key and never on the order in which updates arrived.
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TypeVar

from felix.calc import chains, hostendpoint, rules
from felix.calc.policy_chains import EndpointOptions
from felix.calc.snapshot import (
    DEFAULT_NORMAL_ROUTE_PRIORITY,
    EndpointView,
    NodeView,
    Snapshot,
    endpoint_view,
    node_view,
)
from felix.config import FelixConfig
from felix.drivers.iptables.rules import Rule
from libcalico.ipam.block import Block
from libcalico.model.resources import EncapMode, IPPool

PURE = True

T = TypeVar("T")

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
    set_type: str = "hash:net"         # hash:ip,port for named-port sets


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


def vtep_mac(node: str, version: int = 4) -> str:
    """Calico's derived VTEP MAC: 0x66 followed by the first five bytes of sha1(name)."""
    seed = node if version == 4 else node + "-v6"
    digest = hashlib.sha1(seed.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x66, *digest[:5]))


@dataclass(frozen=True, slots=True)
class _EndpointParams:
    rp_filter: str
    ipv6: bool
    proto: int
    nrp4: int
    nrp6: int


@dataclass(frozen=True, slots=True)
class _Contribution:
    """What one local endpoint (interface up) adds to the host state."""

    sysctls: dict[str, str]
    routes: dict[tuple[int, IPNet], Route]
    neighbours: dict[tuple[str, IPAddr], str]


_contributions: dict[str, tuple[EndpointView, _EndpointParams, _Contribution]] = {}


def _contribution(ep: EndpointView, p: _EndpointParams) -> _Contribution:
    """Memoised per endpoint: the snapshot makes a new view only when the resource changes,
    so an unchanged endpoint costs a lookup, not a recomputation."""
    hit = _contributions.get(ep.key)
    if hit is not None and hit[0] is ep and hit[1] == p:
        return hit[2]
    routes: dict[tuple[int, IPNet], Route] = {}
    neighbours: dict[tuple[str, IPAddr], str] = {}
    for net in ep.ipv4 + (ep.ipv6 if p.ipv6 else ()):
        # IPv6 routes have no scope in the kernel (always universe). The metric is the
        # normal route priority, as Calico v3.32: BIRD's calico_aggr exports a /32 from
        # inside a block only when krt_metric < NRP (KubeVirt live-migration routes).
        routes[(MAIN_TABLE, net)] = Route(
            net, dev=ep.iface, scope="link" if net.version == 4 else "global",
            proto=p.proto, metric=p.nrp4 if net.version == 4 else p.nrp6)
        if ep.mac and net.version == 4 and net.prefixlen == 32:
            neighbours[(ep.iface, net.network_address)] = ep.mac
    c = _Contribution(_iface_sysctls(ep.iface, p.rp_filter, p.ipv6 and bool(ep.ipv6)),
                      routes, neighbours)
    if len(_contributions) > 65536:
        _contributions.clear()
    _contributions[ep.key] = (ep, p, c)
    return c


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


_per_ifaces: list[object] = [None, {}]
"""[the interface map last asked about, {question: answer}]: the loop hands in the same map
until an interface changes, so the scans below run once per interface change."""


def _memo_ifaces(ifaces: Mapping[str, Iface], question: tuple[object, ...],
                 answer: Callable[[], T]) -> T:
    if _per_ifaces[0] is not ifaces:
        _per_ifaces[:] = [ifaces, {}]
    memo: dict[tuple[object, ...], object] = _per_ifaces[1]  # type: ignore[assignment]
    if question not in memo:
        memo[question] = answer()
    return memo[question]  # type: ignore[return-value]


def _iface_with(ifaces: Mapping[str, Iface], ip: IPAddr) -> Iface | None:
    def scan() -> Iface | None:
        for i in sorted(ifaces.values(), key=lambda x: x.name):
            if any(a.ip == ip for a in i.addrs):
                return i
        return None
    return _memo_ifaces(ifaces, ("with", ip), scan)


@functools.lru_cache(maxsize=65536)
def _mtu_iface(pattern: str, name: str) -> bool:
    return re.search(pattern, name) is not None


def auto_mtu(ifaces: Mapping[str, Iface], pattern: str, overhead: int) -> int:
    """Calico's auto MTU: the smallest MTU among host interfaces matching MTUIfacePattern,
    minus the encapsulation overhead."""
    def smallest() -> int:
        mtus = [i.mtu for i in ifaces.values() if i.mtu > 0 and _mtu_iface(pattern, i.name)]
        return min(mtus) if mtus else 1500
    return _memo_ifaces(ifaces, ("mtu", pattern), smallest) - overhead


def compute(snap: Snapshot, cfg: FelixConfig, ifaces: Mapping[str, Iface],
            rp_filter: str = "1") -> HostState:
    me = cfg.hostname
    pools = snap.of(IPPool)
    nodes = snap.nodes()
    blocks = snap.of(Block)
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

    params = _EndpointParams(rp_filter, cfg.ipv6_support, cfg.device_route_protocol, nrp4, nrp6)
    sysctls, routes, neighbours = st.sysctls, st.routes, st.neighbours
    for ep in local:
        iface = ifaces.get(ep.iface)
        if iface is None or not iface.up:
            continue
        c = _contribution(ep, params)
        sysctls.update(c.sysctls)
        routes.update(c.routes)
        neighbours.update(c.neighbours)

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
    # Policies and profiles: chains and IP sets kept incrementally (felix/calc/policy_*.py).
    policy = snap.policy_states(me, versions, EndpointOptions(
        cfg.vxlan_port, cfg.allow_vxlan_packets_from_workloads,
        cfg.allow_ipip_packets_from_workloads))
    index = snap.policy_index(me)
    governed = {iface: index.host_plan(key) for iface, key in hostendpoint.resolve(
        index.local_host_endpoints(), ifaces, cfg.interface_prefix).items()}
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
            failsafe_in=tuple((p.protocol, p.port, p.net) for p in cfg.failsafe_inbound_host_ports),
            failsafe_out=tuple((p.protocol, p.port, p.net)
                               for p in cfg.failsafe_outbound_host_ports),
        )
        eps = tuple(chains.endpoint_policy(e.iface, e.profiles) for e in local)
        for table, td in chains.build(opts, eps).items():
            st.tables[(v, table)] = td
        filt = st.tables[(v, "filter")].chains
        for name in [n for n in filt if n.startswith(_POLICY_CHAINS)]:
            del filt[name]
        filt.update(policy[v].chains)
        if governed:    # host endpoints (felix/calc/hostendpoint.py): raw, mangle, filter
            for table, hchains in hostendpoint.tables(
                    v, governed, policy[v], cfg.interface_prefix,
                    tuple(hostendpoint.FailsafePort(*p) for p in opts.failsafe_in),
                    tuple(hostendpoint.FailsafePort(*p) for p in opts.failsafe_out)).items():
                st.tables[(v, table)].chains.update(hchains)
        for name, ps in policy[v].ipsets.items():
            st.ipsets[name] = IPSet(fam, ps.members, ps.set_type)
    return st


_POLICY_CHAINS = ("cali-tw-", "cali-fw-", "cali-pi-", "cali-po-", "cali-pri-", "cali-pro-",
                  "cali-gi-", "cali-go-")


def _replace_vxlan(st: HostState, dev: VXLANDevice, mtu: int) -> HostState:
    return HostState(st.sysctls, st.routes, st.neighbours, st.fdb, st.ipsets, st.tables,
                     dev, st.ipip, st.workload_ifaces, mtu)


def _replace_ipip(st: HostState, dev: IPIPDevice) -> HostState:
    return HostState(st.sysctls, st.routes, st.neighbours, st.fdb, st.ipsets, st.tables,
                     st.vxlan, dev, st.workload_ifaces, st.mtu_vxlan)


__all__ = ["DEFAULT_NORMAL_ROUTE_PRIORITY", "EndpointView", "HostState", "Iface", "NodeView",
           "Route", "Rule", "Snapshot", "compute", "endpoint_view", "kernel_metric", "node_view",
           "vtep_mac"]
