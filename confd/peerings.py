"""BGPPeers -> the peer keys of Calico's confd cache (its updatePeersV1, confd.md c.3).

    peerings(inputs, warnings) -> {"/calico/bgp/v1/global/peer_v4/<ip>[-<port>]": fields, ...}

Each BGPPeer gives peerings to an address (`peerIP`) or to the nodes its `peerSelector`
selects, for every node (global) or the nodes it applies to (`node`, `nodeSelector`). First
writer wins, global peers first, then by name; a global peering beats a node one to the same
address and port. The nodes a BGPPeer points at also peer back (reverse peerings) unless
`reversePeering: Manual`. Fields are Calico's `backends.BGPPeer` JSON names.

A `localWorkloadSelector` BGPPeer peers with local workloads instead: each endpoint-status
entry naming it (Felix's files, confd.epstatus) gives a passive peering to the entry's first
address of each family, with the BGPPeer's AS, local AS and filters and no source address,
password or timers (Calico's confd); on KDD this node's pods whose labels the selector matches
give the same peerings where no status entry names the BGPPeer. No reverse peerings.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from confd import epstatus
from confd.functions import is_bird_string_safe
from confd.inputs import Inputs, NodeInfo, PeerInfo, seconds
from libcalico.model import selector as calico_selector
from libcalico.model.resources_bgp import ReversePeering, SecretKeySelector

PURE = True

ROOT = "/calico/"
DEFAULT_AS = 64512
DEFAULT_PORT = 179


def node_as(res: Inputs, n: NodeInfo) -> int:
    return n.as_number or res.default_config.as_number or DEFAULT_AS


def node_port(res: Inputs, name: str) -> int:
    """The BGP port `name` listens on (its BGPConfiguration, else the default, else 179)."""
    own = res.configs.get(f"node.{name}")
    if own is not None and own.listen_port:
        return own.listen_port
    return res.default_config.listen_port or DEFAULT_PORT


def secret(res: Inputs, ref: SecretKeySelector | None) -> str | None:
    """The value a `secretKeyRef` names, or None when it is absent."""
    if ref is None:
        return None
    return res.secrets.get(f"{ref.name or ''}/{ref.key}")


def _matching(res: Inputs, sel: calico_selector.Selector) -> list[NodeInfo]:
    return [n for _, n in sorted(res.nodes.items()) if sel.evaluate(n.labels)]


def _node_peer(res: Inputs, n: NodeInfo, version: int) -> dict[str, Any] | None:
    ip = n.ip(version)
    if ip is None:
        return None
    port = node_port(res, n.name)
    return {
        "ip": str(ip),
        "as_num": str(node_as(res, n)),
        "rr_cluster_id": n.rr_cluster_id,
        "port": port if port != DEFAULT_PORT else 0,
    }


def _peer_fields(res: Inputs, p: PeerInfo, data: dict[str, Any],
                 warnings: list[str] | None = None) -> dict[str, Any]:
    """The peering's fields ({} when it must be skipped: a password BIRD cannot quote)."""
    s = p.spec
    nhm = str(s.next_hop_mode or "")
    rt, ka = seconds(s.max_restart_time), seconds(s.keepalive_time)
    base: dict[str, Any] = {
        "ip": "",
        "as_num": "",
        "local_as_num": str(s.local_as_number or ""),
        "rr_cluster_id": "",
        "password": None,
        "source_addr": str(s.source_address or "UseNodeIP"),
        "restart_time": "" if rt is None else str(rt),
        "keepalive_time": "" if ka is None else str(ka),
        "port": 0,
        "keep_next_hop": s.keep_original_next_hop and not nhm,
        "calico_node": False,
        "num_allow_local_as": s.num_allowed_local_as_numbers or 0,
        "ttl_security": s.ttl_security or 0,
        "filters": list(s.filters),
        "reachable_by": "",
        "passive_mode": False,
        "local_bgp_peer": False,
        "next_hop_mode": nhm,
        "peer_name": p.name,
    }
    ref = s.password.secret_key_ref if s.password is not None else None
    if ref is not None:
        value = secret(res, ref)
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


def _explicit_peers(res: Inputs, p: PeerInfo, warnings: list[str]) -> list[dict[str, Any]]:
    s = p.spec
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
    ip = s.peer_ip
    if ip is None:
        return []
    port = s.port or 0
    calico_node = False
    for n in res.nodes.values():
        if n.ip(ip.version) == ip:
            calico_node = True
            if not port and s.as_number == node_as(res, n):
                np = node_port(res, n.name)
                port = np if np != DEFAULT_PORT else 0
    reach = s.reachable_by
    if reach is not None and reach.version != ip.version:
        return []
    d = _peer_fields(res, p, {
        "ip": str(ip),
        "as_num": str(s.as_number or ""),
        "port": port if port != DEFAULT_PORT else 0,
        "calico_node": calico_node,
        "reachable_by": str(reach) if reach is not None else "",
    }, warnings)
    return [d] if d else []


def _workload_entries(res: Inputs, p: PeerInfo) -> list[epstatus.EndpointStatus]:
    """The endpoint-status entries naming `p`; else (KDD) this node's workloads its
    localWorkloadSelector matches, if `p` applies to this node."""
    entries = epstatus.for_peer(res.endpoint_status.values(), p.name)
    if entries or not res.workloads:
        return entries
    me = res.nodes.get(res.node)
    applies = p.is_global or p.spec.node == res.node or (
        p.node_selector is not None and me is not None and p.node_selector.evaluate(me.labels))
    if not applies:
        return []
    try:
        sel = calico_selector.parse(p.spec.local_workload_selector or "")
    except calico_selector.SelectorError:
        return []
    out = []
    for key, wep in sorted(res.workloads.items()):
        if not sel.evaluate(wep.metadata.labels):
            continue
        nets = wep.spec.ip_networks
        v4 = next((n.network_address for n in nets if n.version == 4), None)
        v6 = next((n.network_address for n in nets if n.version == 6), None)
        out.append(epstatus.EndpointStatus(
            key, p.name, v4 if isinstance(v4, ipaddress.IPv4Address) else None,
            v6 if isinstance(v6, ipaddress.IPv6Address) else None))
    return out


def _local_workload_peers(res: Inputs, p: PeerInfo) -> list[dict[str, Any]]:
    s = p.spec
    out = []
    for entry in _workload_entries(res, p):
        for ver in (4, 6):
            ip = entry.ip(ver)
            if ip is None:
                continue
            out.append({
                "ip": str(ip), "as_num": str(s.as_number or ""),
                "local_as_num": str(s.local_as_number or ""), "rr_cluster_id": "",
                "password": None, "source_addr": "None", "restart_time": "",
                "keepalive_time": "", "port": 0, "keep_next_hop": False, "calico_node": False,
                "num_allow_local_as": 0, "ttl_security": 0, "filters": list(s.filters),
                "reachable_by": "", "passive_mode": True, "local_bgp_peer": True,
                "next_hop_mode": "", "peer_name": p.name,
            })
    return out


def peer_key(d: dict[str, Any]) -> str:
    """`peer_v4/<ip>[-<port>]` (Calico's combineAddrAndPort: 179 is left out)."""
    ip = d["ip"]
    fam = "peer_v6" if ":" in ip else "peer_v4"
    port = d.get("port") or 0
    return f"{fam}/{ip}" + (f"-{port}" if port and port != DEFAULT_PORT else "")


def _local_nodes(res: Inputs, p: PeerInfo) -> list[str]:
    if p.node_selector is not None:
        return [n.name for n in _matching(res, p.node_selector)]
    return [p.spec.node] if p.spec.node else []


def peerings(res: Inputs, warnings: list[str]) -> dict[str, dict[str, Any]]:
    """Peer key -> fields, for every BGPPeer (and the reverse peerings they imply)."""
    out: dict[str, dict[str, Any]] = {}
    ordered = sorted(res.peers.values(), key=lambda p: (not p.is_global, p.name))
    for p in ordered:
        if p.spec.local_workload_selector:
            peers = _local_workload_peers(res, p)
        else:
            peers = _explicit_peers(res, p, warnings)
        if p.is_global:
            for d in peers:
                out.setdefault(f"{ROOT}bgp/v1/global/{peer_key(d)}", d)
            continue
        for name in _local_nodes(res, p):
            for d in peers:
                if f"{ROOT}bgp/v1/global/{peer_key(d)}" in out:
                    continue
                out.setdefault(f"{ROOT}bgp/v1/host/{name}/{peer_key(d)}", d)
    for p in ordered:
        if not p.spec.local_workload_selector and p.spec.reverse_peering != ReversePeering.MANUAL:
            _reverse(res, p, out)
    return out


def _reverse(res: Inputs, p: PeerInfo, out: dict[str, dict[str, Any]]) -> None:
    """The nodes `p` points at peer back to the nodes it applies to."""
    s = p.spec
    remote: list[tuple[NodeInfo, tuple[int, ...]]] = []
    if p.peer_selector is not None:
        remote = [(n, (4, 6)) for n in _matching(res, p.peer_selector)]
    elif s.peer_ip is not None:
        ip, port = s.peer_ip, s.port
        for n in sorted(res.nodes.values(), key=lambda n: n.name):
            if (n.ip(ip.version) == ip and s.as_number == node_as(res, n)
                    and (port is None or port == node_port(res, n.name))):
                remote.append((n, (ip.version,)))
    if not remote:
        return
    if p.node_selector is not None:
        targets = _matching(res, p.node_selector)
    elif s.node:
        targets = [res.nodes[s.node]] if s.node in res.nodes else []
    else:
        targets = sorted(res.nodes.values(), key=lambda n: n.name)
    for n, versions in remote:
        for t in targets:
            for ver in versions:
                data = _node_peer(res, t, ver)
                if data is None:
                    continue
                d = _peer_fields(res, p, data)
                if not d or f"{ROOT}bgp/v1/global/{peer_key(d)}" in out:
                    continue
                out.setdefault(f"{ROOT}bgp/v1/host/{n.name}/{peer_key(d)}", d)
