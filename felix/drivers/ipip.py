"""The `tunl0` device (kernel ipip module): Felix always owns it when IPIP is enabled —
exists, MTU, its one /32 address, admin up. On a kernel without the ipip module the create
fails; the error is reported and retried, and routes via tunl0 stay pending."""

from __future__ import annotations

import ipaddress

from felix.calc.desired import IPIP_DEVICE, IPIPDevice
from felix.drivers.netlink import Link, Netlink, Op


def plan(want: IPIPDevice | None, have: Link | None) -> list[Op]:
    if want is None:
        return []     # tunl0 is the kernel's fallback device: never deleted
    ops: list[Op] = []
    name = IPIP_DEVICE
    if have is None:
        ops.append(Op("link-cmd", line=f"link add {name} type ipip"))
    if have is None or have.mtu != want.mtu:
        ops.append(Op("link-cmd", line=f"link set {name} mtu {want.mtu}"))
    if have is None or not have.up:
        ops.append(Op("link-cmd", line=f"link set {name} up"))
    have_addrs = {a for a in (have.addrs if have else ()) if a.version == 4}
    want_addr = (ipaddress.IPv4Interface(f"{want.address}/32")
                 if want.address is not None else None)
    if want_addr is not None and want_addr not in have_addrs:
        ops.append(Op("link-cmd", line=f"addr replace {want_addr} dev {name}"))
    for a in sorted(have_addrs - ({want_addr} if want_addr else set()), key=str):
        ops.append(Op("link-cmd", line=f"addr del {a} dev {name}"))
    return ops


def apply(nl: Netlink, want: IPIPDevice | None,
          links: dict[str, Link]) -> tuple[int, list[str]]:
    ops = plan(want, links.get(IPIP_DEVICE))
    if not ops:
        return 0, []
    res = nl.apply(ops)
    return len(ops), [f"{op.line}: {why}" for op, why in res.failed]
