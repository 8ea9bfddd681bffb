"""The `vxlan.calico` device: VNI, port, local address, parent, MAC, MTU and its one /32
address, recreated when an immutable attribute differs; removed (after in-sync) when VXLAN is
no longer wanted."""

from __future__ import annotations

import ipaddress
import logging

from felix.calc.desired import VXLAN_DEVICE, VXLANDevice
from felix.drivers.netlink import Link, Netlink, Op

log = logging.getLogger(__name__)


def plan(want: VXLANDevice | None, have: Link | None, allow_deletes: bool) -> list[Op]:
    ops: list[Op] = []
    name = VXLAN_DEVICE
    if want is None:
        if have is not None and allow_deletes:
            ops.append(Op("link-cmd", line=f"link del {name}"))
        return ops
    incompatible = have is not None and (
        have.kind != "vxlan" or have.vxlan_id != want.vni or have.vxlan_port != want.port
        or (have.vxlan_local or "") != str(want.local))
    if incompatible:
        ops.append(Op("link-cmd", line=f"link del {name}"))
        have = None
    if have is None:
        line = (f"link add {name} type vxlan id {want.vni} dstport {want.port} "
                f"local {want.local} nolearning")
        if want.parent:
            line += f" dev {want.parent}"
        ops.append(Op("link-cmd", line=line))
    if have is None or have.mac != want.mac:
        ops.append(Op("link-cmd", line=f"link set {name} address {want.mac}"))
    if have is None or have.mtu != want.mtu:
        ops.append(Op("link-cmd", line=f"link set {name} mtu {want.mtu}"))
    if have is None or not have.up:
        ops.append(Op("link-cmd", line=f"link set {name} up"))
    addr = ipaddress.IPv4Interface(f"{want.address}/32")
    have_addrs = set(have.addrs) if have else set()
    if addr not in have_addrs:
        ops.append(Op("link-cmd", line=f"addr replace {addr} dev {name}"))
    for a in sorted(have_addrs - {addr}, key=str):
        if a.version == 4:
            ops.append(Op("link-cmd", line=f"addr del {a} dev {name}"))
    return ops


def apply(nl: Netlink, want: VXLANDevice | None, links: dict[str, Link],
          allow_deletes: bool) -> tuple[int, list[str]]:
    ops = plan(want, links.get(VXLAN_DEVICE), allow_deletes)
    if not ops:
        return 0, []
    res = nl.apply(ops)
    return len(ops), [f"{op.line}: {why}" for op, why in res.failed]
