"""The BGP view of one node: everything the BIRD templates print, computed from the key space.

This is Calico's GetBirdBGPConfig (confd.md c.4) plus what its aggr/ipam templates derive from
keys (b.2, b.3), as frozen values. Templates print fields; they make no decisions of their own
beyond layout. One `FamilyView` per IP family (`view.v4`, `view.v6`).

Every string in the view that reaches BIRD comes from a resource the codec validated and
confd.birdsafe checked, or is a `BirdText` assembled here from checked parts.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from confd import bgpfilter, keyspace, peerings
from confd.functions import BirdText, is_bird_string_safe
from confd.inputs import seconds
from libcalico.errors import CalicoError
from libcalico.model.resources_bgp import BGPConfigurationSpec, BindMode

PURE = True

BIRD_INT_MAX = 2147483647
DEFAULT_PRIORITY = 1024
OVERRIDE_PREFERENCE = 200
DEFAULT_IGNORED = ("cali*", "kube-ipvs*")


class ViewError(CalicoError):
    """The view cannot be computed (e.g. this node has no Node resource or no router id)."""


@dataclass(frozen=True)
class Community:
    values: tuple[int, ...]

    @property
    def large(self) -> bool:
        return len(self.values) == 3

    @property
    def text(self) -> BirdText:
        return BirdText(", ".join(str(x) for x in self.values))


@dataclass(frozen=True)
class Advertisement:
    cidr: str
    communities: tuple[Community, ...]


class Peer(NamedTuple):
    """One `protocol bgp` block. (A NamedTuple rather than a frozen dataclass: a full mesh
    makes thousands per render, and tuples are several times cheaper to build.)"""

    name: str
    kind: str
    """mesh | global | node | local_workload (a localWorkloadSelector peer)"""
    ip: str
    port: int
    """0: BIRD's default (179), no `port` clause."""
    as_number: int
    local_as: int
    """Non-zero: a per-peer `local as` line (BGPPeer localASNumber)."""
    source_address: str
    ttl_security: int
    internal: bool
    """Peer AS equals the effective local AS (iBGP): `calico_export_to_bgp_peers(true)`."""
    passive: bool
    restart_time: int | None
    keepalive_time: int | None
    rr_client: bool
    rr_cluster_id: str
    password: str | None
    next_hop_keep: bool
    next_hop_self: bool
    allow_local_as: int
    import_calls: tuple[BirdText, ...]
    export_calls: tuple[BirdText, ...]
    reachable_by: str


@dataclass(frozen=True)
class Block:
    cidr: str
    state: str
    blackhole: bool
    """Blocks smaller than a host route get a blackhole; /32 and /128 do not."""


@dataclass(frozen=True)
class KernelPool:
    cidr: str
    accept: bool
    comment: str


@dataclass(frozen=True)
class FamilyView:
    version: int
    node_ip: str
    """This node's address of this family, "" when it has none (the family is disabled)."""
    as_number: int
    router_id: str
    listen_address: str
    listen_port: int
    loglevel: str
    """debug | info | none"""
    ignored_interfaces: tuple[str, ...]
    default_interfaces: bool
    advertisements: tuple[Advertisement, ...]
    filter_functions: tuple[bgpfilter.FilterFunction, ...]
    peers: tuple[Peer, ...]
    normal_route_priority: int
    blocks: tuple[Block, ...]
    static_routes: tuple[str, ...]
    reject_cidrs: tuple[str, ...]
    reachable_routes: tuple[tuple[str, str], ...]
    """(peer host route, via) for peers with reachableBy."""
    export_disabled_pools: tuple[str, ...]
    export_pools: tuple[str, ...]
    reject_tunnel_interface: bool
    """Reject routes on tunl0 towards internal peers (always: Felix programs IPIP routes)."""
    rr_service_ranges: tuple[tuple[str, str], ...]
    """(kind, cidr) service ranges a route reflector accepts: kind is LB or external."""
    wireguard_next_hops: tuple[str, ...]
    kernel_pools: tuple[KernelPool, ...]
    kernel_pools_known: bool
    """False for IPv4 when this node's network is unknown: the pool lines are left out."""

    @property
    def enabled(self) -> bool:
        return bool(self.node_ip)

    @property
    def import_threshold(self) -> int:
        return BIRD_INT_MAX - self.normal_route_priority

    @property
    def debug(self) -> bool:
        return self.loglevel == "debug"

    @property
    def quiet(self) -> bool:
        return self.loglevel == "none"


@dataclass(frozen=True)
class NodeView:
    node: str
    v4: FamilyView
    v6: FamilyView
    keyspace: keyspace.KeySpace
    warnings: tuple[str, ...]

    def family(self, version: int) -> FamilyView:
        return self.v4 if version == 4 else self.v6


def hash_router_id(name: str) -> str:
    """Calico's HashToIPv4: the first four bytes of sha256(name); first octet > 223 loses 32."""
    b = bytearray(hashlib.sha256(name.encode()).digest()[:4])
    if b[0] > 223:
        b[0] -= 32
    return ".".join(str(x) for x in b)


def _router_id(values: Mapping[str, str], node: str, environ: Mapping[str, str]) -> str:
    rid = environ.get("CALICO_ROUTER_ID", "")
    if rid == "hash":
        return hash_router_id(node)
    if rid:
        try:
            return str(ipaddress.IPv4Address(rid))
        except ValueError as exc:
            raise ViewError(f"CALICO_ROUTER_ID {rid[:40]!r} is neither an IPv4 address "
                            "nor 'hash'") from exc
    ip = values.get(f"/calico/bgp/v1/host/{node}/ip_addr_v4", "")
    if not ip:
        raise ViewError(f"node {node} has no IPv4 address for a router id; "
                        "set CALICO_ROUTER_ID (an IPv4 address or 'hash')")
    return ip


def _key_suffix(ip: str, port: int) -> str:
    sep = "." if "." in ip else ":"
    name = ip.replace(sep, "_")
    return name + (f"_port_{port}" if port else "")


def _string_gt(a: str, b: str) -> bool:
    return a > b


def _communities(parsed: Mapping[str, Any], node: str, version: int) -> tuple[Advertisement, ...]:
    advs = parsed.get(f"/calico/bgp/v1/host/{node}/prefix_advertisements/ip_v{version}")
    if advs is None:
        advs = parsed.get(f"/calico/bgp/v1/global/prefix_advertisements/ip_v{version}")
    if not advs:
        return ()
    out = []
    for adv in advs:
        comms = []
        for c in adv["communities"]:
            comms.append(Community(tuple(int(x) for x in c.split(":"))))
        out.append(Advertisement(adv["cidr"], tuple(comms)))
    return tuple(out)


class _Context:
    """What every family computation needs: the key space, this node, the BGPConfiguration."""

    def __init__(self, ks: keyspace.KeySpace, node: str, environ: Mapping[str, str]) -> None:
        self.ks = ks
        self.values = ks.values
        self.res = ks.resources
        self.node = node
        self.environ = environ
        self.config: BGPConfigurationSpec = ks.resources.default_config
        self.host = f"/calico/bgp/v1/host/{node}/"
        self.warnings: list[str] = []
        self.hosts = ks.hosts

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)


def compute(ks: keyspace.KeySpace, node: str, environ: Mapping[str, str]) -> NodeView:
    ctx = _Context(ks, node, environ)
    if node not in ks.resources.nodes:
        raise ViewError(f"node {node} has no Node resource in the datastore")
    router_id = _router_id(ctx.values, node, environ)
    v4 = _family(ctx, 4, router_id)
    v6 = _family(ctx, 6, router_id)
    return NodeView(node=node, v4=v4, v6=v6, keyspace=ks, warnings=tuple(ctx.warnings))


def _loglevel(ctx: _Context) -> str:
    return ctx.get(ctx.host + "loglevel") or ctx.get("/calico/bgp/v1/global/loglevel") or "info"


def _family(ctx: _Context, version: int, router_id: str) -> FamilyView:
    me = ctx.hosts.get(ctx.node, {})
    node_ip = me.get(f"ip_addr_v{version}", "")
    node_as = int(me.get("as_num") or ctx.get("/calico/bgp/v1/global/as_num") or "64512")
    port_text = me.get("listen_port") or ctx.get("/calico/bgp/v1/global/listen_port")
    listen_port = int(port_text) if port_text else 0
    listen_address = node_ip if ctx.config.bind_mode == BindMode.NODE_IP else ""
    ignored = ctx.config.ignored_interfaces
    prio = (ctx.config.ipv4_normal_route_priority if version == 4
            else ctx.config.ipv6_normal_route_priority) or DEFAULT_PRIORITY
    functions: list[bgpfilter.FilterFunction] = []
    for name, spec in sorted(ctx.res.filters.items()):
        functions.extend(bgpfilter.functions(name, spec, version))
    peers = _peers(ctx, version, node_ip, node_as, functions) if node_ip else ()
    return FamilyView(
        version=version,
        node_ip=node_ip,
        as_number=node_as,
        router_id=router_id,
        listen_address=listen_address,
        listen_port=listen_port,
        loglevel=_loglevel(ctx),
        ignored_interfaces=ignored,
        default_interfaces=not ignored,
        advertisements=_communities(ctx.ks.parsed, ctx.node, version),
        filter_functions=tuple(functions),
        peers=peers,
        normal_route_priority=prio,
        blocks=_blocks(ctx, version),
        static_routes=_routes(ctx, "staticroutes", version),
        reject_cidrs=_routes(ctx, "rejectcidrs", version),
        reachable_routes=_reachable(ctx, version),
        export_disabled_pools=_pools(ctx, version, disabled=True),
        export_pools=_pools(ctx, version, disabled=False),
        reject_tunnel_interface=True,
        rr_service_ranges=_rr_ranges(ctx, version) if me.get("rr_cluster_id") else (),
        wireguard_next_hops=_wireguard(ctx, version),
        kernel_pools=_kernel_pools(ctx, version),
        kernel_pools_known=version == 6 or bool(me.get("network_v4")),
    )


# ----------------------------------------------------------------------------------------------
# Peers
# ----------------------------------------------------------------------------------------------


def _mesh(ctx: _Context, version: int, node_ip: str, node_as: int) -> list[Peer]:
    me = ctx.hosts.get(ctx.node, {})
    mesh = ctx.ks.parsed.get("/calico/bgp/v1/global/node_mesh") or {"enabled": True}
    if me.get("rr_cluster_id") or not mesh.get("enabled"):
        return []
    global_port = ctx.get("/calico/bgp/v1/global/listen_port")
    password = None
    pw = ctx.config.node_mesh_password
    ref = pw.secret_key_ref if pw is not None else None
    if ref is not None:
        password = peerings.secret(ctx.res, ref)
        if password is None:
            ctx.warnings.append("BGPConfiguration default: nodeMeshPassword secret not found; "
                                "mesh rendered without a password")
        elif not is_bird_string_safe(password):
            ctx.warnings.append("BGPConfiguration default: nodeMeshPassword holds a character "
                                "BIRD cannot quote; mesh rendered without a password")
            password = None
    restart = seconds(ctx.config.node_mesh_max_restart_time)
    out = []
    ip_field = f"ip_addr_v{version}"
    port = int(global_port) if global_port else 0
    for h in ctx.hosts.values():
        ip = h.get(ip_field, "")
        if not ip or ip == node_ip or h.get("rr_cluster_id"):
            continue
        peer_as = int(h.get("as_num") or node_as)
        own_port = h.get("listen_port")
        out.append(Peer(
            "Mesh_" + _key_suffix(ip, 0), "mesh", ip, int(own_port) if own_port else port,
            peer_as, 0, node_ip, 0, peer_as == node_as, _string_gt(ip, node_ip), restart,
            None, False, "", password, False, False, 0, (), (), "",
        ))
    return out


def _explicit(ctx: _Context, version: int, node_ip: str, node_as: int,
              fns: Mapping[tuple[str, str], bgpfilter.FilterFunction]) -> list[Peer]:
    me = ctx.hosts.get(ctx.node, {})
    my_cluster = me.get("rr_cluster_id", "")
    out = []
    for kind, prefix in (("global", "/calico/bgp/v1/global/"), ("node", ctx.host)):
        for d in ctx.ks.parsed_under(f"{prefix}peer_v{version}/"):
            ip = d["ip"]
            if ip == node_ip:
                continue
            peer_as = int(d["as_num"]) if d.get("as_num") else node_as
            local_as = int(d["local_as_num"]) if d.get("local_as_num") else 0
            effective = local_as or node_as
            same = peer_as == effective
            peer_cluster = d.get("rr_cluster_id") or ""
            rr_client = same and bool(my_cluster) and peer_cluster != my_cluster
            local_workload = bool(d.get("local_bgp_peer"))
            passive = bool(d.get("passive_mode")) or (
                (kind == "global" or local_workload) and bool(d.get("calico_node"))
                and _string_gt(ip, node_ip))
            nhm = d.get("next_hop_mode") or ""
            port = int(d.get("port") or 0)
            filters = tuple(d.get("filters") or ())
            prefix = ("Local_Workload_" if local_workload
                      else "Global_" if kind == "global" else "Node_")
            out.append(Peer(
                name=prefix + _key_suffix(ip, port),
                kind="local_workload" if local_workload else kind, ip=ip, port=port,
                as_number=peer_as, local_as=local_as,
                source_address=node_ip if d.get("source_addr", "UseNodeIP") == "UseNodeIP"
                else "",
                ttl_security=int(d.get("ttl_security") or 0),
                internal=same, passive=passive,
                restart_time=int(d["restart_time"]) if d.get("restart_time") else None,
                keepalive_time=int(d["keepalive_time"]) if d.get("keepalive_time") else None,
                rr_client=rr_client, rr_cluster_id=my_cluster if rr_client else "",
                password=d.get("password"),
                next_hop_keep=nhm == "Keep" or (not nhm and bool(d.get("keep_next_hop"))
                                                and not same),
                next_hop_self=nhm == "Self",
                allow_local_as=int(d.get("num_allow_local_as") or 0),
                import_calls=bgpfilter.calls(filters, fns, "import", same),
                export_calls=bgpfilter.calls(filters, fns, "export", same),
                reachable_by=d.get("reachable_by") or "",
            ))
    return out


def _peers(ctx: _Context, version: int, node_ip: str, node_as: int,
           functions: list[bgpfilter.FilterFunction]) -> tuple[Peer, ...]:
    fns = {(f.filter_name, f.direction): f for f in functions}
    peers = _mesh(ctx, version, node_ip, node_as) + _explicit(ctx, version, node_ip, node_as,
                                                              fns)
    by_name: dict[str, Peer] = {}
    for p in peers:
        by_name.setdefault(p.name, p)
    return tuple(by_name[n] for n in sorted(by_name))


# ----------------------------------------------------------------------------------------------
# Routes, pools, kernel programming
# ----------------------------------------------------------------------------------------------


def _blocks(ctx: _Context, version: int) -> tuple[Block, ...]:
    prefix = f"/calico/ipam/v2/host/{ctx.node}/ipv{version}/block/"
    out = []
    for k in ctx.ks.keys_under(prefix):
        seg = k[len(prefix):]
        cidr = seg.rsplit("-", 1)[0] + "/" + seg.rsplit("-", 1)[1]
        net = ipaddress.ip_network(cidr, strict=False)
        state = ctx.res.affinities.get(k, "")
        out.append(Block(str(net), state, net.prefixlen != net.max_prefixlen))
    return tuple(out)


def _routes(ctx: _Context, kind: str, version: int) -> tuple[str, ...]:
    prefix = f"/calico/{kind}{'v6' if version == 6 else ''}/"
    return tuple(v for _, v in ctx.ks.items_under(prefix))


def _reachable(ctx: _Context, version: int) -> tuple[tuple[str, str], ...]:
    out = []
    bits = 32 if version == 4 else 128
    for prefix in ("/calico/bgp/v1/global/", ctx.host):
        for d in ctx.ks.parsed_under(f"{prefix}peer_v{version}/"):
            if d.get("reachable_by"):
                out.append((f"{d['ip']}/{bits}", d["reachable_by"]))
    return tuple(out)


def _pool_docs(ctx: _Context, version: int) -> list[dict[str, Any]]:
    return list(ctx.ks.parsed_under(f"/calico/v1/ipam/v{version}/pool/"))


def _pools(ctx: _Context, version: int, disabled: bool) -> tuple[str, ...]:
    return tuple(sorted(p["cidr"] for p in _pool_docs(ctx, version)
                        if bool(p.get("disableBGPExport")) == disabled))


def _bird_programs(policy: str, pool: Mapping[str, Any]) -> bool:
    """Does BIRD program this pool's routes into the kernel (clusterRoutePolicyFromBGPConfig)?

    IPIP pools never: Calico would program them with `krt_tunnel`, which only its BIRD fork
    has; with stock BIRD, Felix programs IPIP routes (see docs/templates.md).
    """
    if pool.get("vxlan_mode") or pool.get("ipip_mode"):
        return False
    return policy in ("", "EnabledNoEncapOnly", "Enabled")


def _kernel_pools(ctx: _Context, version: int) -> tuple[KernelPool, ...]:
    policy = str(ctx.config.program_cluster_routes or "")
    out = []
    for p in _pool_docs(ctx, version):
        if p.get("vxlan_mode"):
            out.append(KernelPool(p["cidr"], False, "VXLAN routes are handled by Felix."))
        elif _bird_programs(policy, p):
            out.append(KernelPool(p["cidr"], True, ""))
        else:
            out.append(KernelPool(p["cidr"], False, "Cluster routes are handled by Felix."))
    return tuple(sorted(out, key=lambda k: k.cidr))


def _rr_ranges(ctx: _Context, version: int) -> tuple[tuple[str, str], ...]:
    out = []
    for kind, items in (("LB", ctx.config.service_load_balancer_ips),
                        ("external", ctx.config.service_external_ips)):
        for item in items:
            if item.cidr is not None and item.cidr.version == version:
                out.append((kind, str(item.cidr)))
    return tuple(out)


def _wireguard(ctx: _Context, version: int) -> tuple[str, ...]:
    me = ctx.hosts.get(ctx.node, {})
    if not me.get(f"wireguard_addr_v{version}"):
        return ()
    out = []
    for name, h in ctx.hosts.items():
        if name == ctx.node or not h.get(f"wireguard_addr_v{version}"):
            continue
        ip = h.get(f"ip_addr_v{version}", "")
        if ip:
            out.append(ip)
    return tuple(sorted(out))
