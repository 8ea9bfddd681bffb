"""The typed Calico resources calico-node writes (libcalico.model), pure.

Startup reads the Node through `libcalico.client.Client`, changes only the fields it manages
with `dataclasses.replace` and writes it back with a compare-and-swap, so labels and every
other field written by users or other tools are kept.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import replace

from calico_node.settings import PoolSettings
from libcalico.model.resources import (
    AllowedUse,
    AssignmentMode,
    EncapMode,
    IPPool,
    IPPoolSpec,
    Metadata,
    Node,
    NodeAddress,
    NodeAddressType,
    NodeBGPSpec,
)
from libcalico.model.types import IPAddress

PURE = True


def pool_resource(p: PoolSettings) -> IPPool:
    """The default pool calico-node creates from the CALICO_IPVxPOOL_* settings."""
    return IPPool(metadata=Metadata(name=p.name), spec=IPPoolSpec(
        cidr=p.cidr, vxlan_mode=EncapMode(p.vxlan_mode), ipip_mode=EncapMode(p.ipip_mode),
        nat_outgoing=p.nat_outgoing, disable_bgp_export=p.disable_bgp_export,
        block_size=p.block_size, node_selector=p.node_selector,
        allowed_uses=(AllowedUse.WORKLOAD, AllowedUse.TUNNEL),
        assignment_mode=AssignmentMode.AUTOMATIC))


def vxlan_mac(node: str) -> str:
    """The VTEP MAC Felix derives for a node: 0x66 followed by sha1(name)[0:5]."""
    digest = hashlib.sha1(node.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x66, *digest[:5]))


def node_address(node: Node, version: int) -> str | None:
    """The Node's BGP address as stored (with its prefix length when it has one)."""
    bgp = node.spec.bgp
    if bgp is None:
        return None
    a = bgp.ipv4_address if version == 4 else bgp.ipv6_address
    return None if a is None else str(a)


def node_ip(node: Node, version: int) -> IPAddress | None:
    """The Node's BGP address without its prefix length."""
    text = node_address(node, version)
    return None if text is None else ipaddress.ip_interface(text).ip


def _bgp(node: Node, bgp: NodeBGPSpec) -> Node:
    """`node` with `bgp` (None when nothing is left: Calico refuses an empty BGP spec)."""
    return replace(node, spec=replace(node.spec, bgp=None if bgp == NodeBGPSpec() else bgp))


def update_node(
    node: Node, *, ipv4: str | None, ipv6: str | None, as_number: int | None,
    keep_v4: bool, keep_v6: bool,
) -> Node:
    """`node` with the addresses (`spec.bgp`, `spec.addresses` CalicoNodeIP) and AS
    calico-node manages set; every other field as it was."""
    bgp = node.spec.bgp or NodeBGPSpec()
    if not keep_v4:
        bgp = replace(bgp, ipv4_address=ipaddress.ip_interface(ipv4) if ipv4 else None)
    if not keep_v6:
        bgp = replace(bgp, ipv6_address=ipaddress.ip_interface(ipv6) if ipv6 else None)
    if as_number is not None:
        bgp = replace(bgp, as_number=as_number)
    mine = tuple(NodeAddress(address=a, type=NodeAddressType.CALICO_NODE_IP)
                 for a in (bgp.ipv4_address, bgp.ipv6_address) if a is not None)
    others = tuple(a for a in node.spec.addresses
                   if a.type != NodeAddressType.CALICO_NODE_IP)
    out = _bgp(node, bgp)
    return replace(out, spec=replace(out.spec, addresses=mine + others))


def set_tunnel(node: Node, kind: str, addr: str | None, mac: str | None = None) -> Node:
    """Set or clear a tunnel address: kind is "ipip" or "vxlan"."""
    ip = ipaddress.IPv4Address(addr) if addr else None
    if kind == "ipip":
        if node.spec.bgp is None and ip is None:
            return node
        return _bgp(node, replace(node.spec.bgp or NodeBGPSpec(), ipv4_ipip_tunnel_addr=ip))
    if ip is None:
        return replace(node, spec=replace(node.spec, ipv4_vxlan_tunnel_addr=None,
                                          vxlan_tunnel_mac_addr=None))
    return replace(node, spec=replace(
        node.spec, ipv4_vxlan_tunnel_addr=ip,
        vxlan_tunnel_mac_addr=mac if mac else node.spec.vxlan_tunnel_mac_addr))


def tunnel_addr(node: Node, kind: str) -> str | None:
    if kind == "ipip":
        a = node.spec.bgp.ipv4_ipip_tunnel_addr if node.spec.bgp else None
    else:
        a = node.spec.ipv4_vxlan_tunnel_addr
    return None if a is None else str(a)
