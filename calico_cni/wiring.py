"""Linux wiring as Calico's dataplane does it, over rtnetlink (`calico_cni.netlink`: no `ip`
process on ADD and DEL; CHECK reads with `ip -j`).

Host side: veth `cali…` with MAC ee:ee:ee:ee:ee:ee, proxy ARP / proxy NDP, forwarding, and a
/32 (/128) route per workload address with metric 1024 (Calico v3.32's normal route priority,
the metric Felix gives local workload routes: BIRD exports a route from inside a block only
when its metric is below it, so these stay off the BGP sessions; and Felix finds the route
already right). Container side: CNI_IFNAME up with the addresses as
/32 (/128), a link route to 169.254.1.1 and the default route via it (IPv6: via the host
veth's link-local fe80::ecee:eeff:feee:eeee), ip_forward as container_settings says.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from calico_cni import netlink
from libcalico.errors import CalicoError

HOST_MAC = "ee:ee:ee:ee:ee:ee"
GW4 = "169.254.1.1"
GW6 = "fe80::ecee:eeff:feee:eeee"
TIMEOUT = 20.0
CLONE_NEWNET = 0x40000000
# BGPConfiguration ipv4/ipv6NormalRoutePriority default. A cluster that sets another value
# gets the route rewritten by Felix (metric is part of its route identity).
ROUTE_METRIC = 1024

Iface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


class WiringError(CalicoError):
    pass


@dataclass(frozen=True, slots=True)
class Wiring:
    """What to wire: the container end in `netns`, the host end, addresses, routes."""

    netns: str
    ifname: str
    host_veth: str
    ips: tuple[Iface, ...]  # full-length prefixes (/32, /128)
    mtu: int
    routes4: tuple[str, ...] = ("0.0.0.0/0",)
    routes6: tuple[str, ...] = ("::/0",)
    allow_ip_forwarding: bool = False
    num_queues: int = 1


def random_mac() -> str:
    raw = bytearray(os.urandom(6))
    raw[0] = (raw[0] & 0xFE) | 0x02  # unicast, locally administered
    return ":".join(f"{b:02x}" for b in raw)


def _write(path: str, value: str, *, required: bool = True) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        if required:
            raise WiringError(f"cannot set {path} to {value}: {exc}") from exc


def host_link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


_LIBC: list[Any] = []


def libc() -> Any:
    """libc through ctypes, loaded on first use (only wiring needs it)."""
    if not _LIBC:
        import ctypes

        _LIBC.append(ctypes.CDLL(None, use_errno=True))
    return _LIBC[0]


@contextlib.contextmanager
def in_netns(path: str) -> Iterator[None]:
    """Run the body (and the processes it starts) in the network namespace at `path`, then
    come back. setns(2) through libc: one `ip` process instead of nsenter + sh + ip."""
    import ctypes

    c = libc()
    home = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    try:
        try:
            target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise WiringError(f"cannot open network namespace {path}: {exc.strerror}") from exc
        try:
            if c.setns(target, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise WiringError(f"cannot enter network namespace {path}: {os.strerror(err)}")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if c.setns(home, CLONE_NEWNET) != 0:  # pragma: no cover - kernel refused
                os.write(2, b"calico: cannot return to the host network namespace\n")
                os._exit(70)
    finally:
        os.close(home)


def setup(w: Wiring) -> str:
    """Wire the workload; returns the container interface's MAC. A stale host veth of the
    same name (an earlier ADD for this workload) is removed first."""
    mac = random_mac()
    with netlink.Netlink() as nl:
        if host_link_exists(w.host_veth):
            with contextlib.suppress(OSError):
                nl.delete_link(w.host_veth)
        _veth(nl, w, mac)
        try:
            _host_routes(nl, w)
            _host_sysctls(w.host_veth, any(i.version == 4 for i in w.ips),
                          any(i.version == 6 for i in w.ips))
            _container(w)
        except BaseException:
            with contextlib.suppress(OSError):
                nl.delete_link(w.host_veth)
            raise
    return mac


def _veth(nl: netlink.Netlink, w: Wiring, mac: str) -> None:
    """The veth pair, the host end up, the container end in its namespace."""
    try:
        fd = os.open(w.netns, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise WiringError(f"cannot open network namespace {w.netns}: {exc.strerror}") from exc
    try:
        nl.add_veth(w.host_veth, HOST_MAC, w.ifname, mac, w.mtu, fd, w.num_queues)
    except netlink.NetlinkError as exc:
        if exc.errno == errno.EEXIST and not host_link_exists(w.host_veth):
            raise WiringError(
                f"cannot create {w.ifname} in {w.netns}: an interface named {w.ifname} "
                "already exists in the container (remove it or use another CNI_IFNAME)"
                ) from exc
        raise WiringError(f"creating veth {w.host_veth}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _host_routes(nl: netlink.Netlink, w: Wiring) -> None:
    """A /32 (/128) route per address on the host veth. An existing route to the address on
    another interface, whatever its metric, means the address is in use twice (with a
    metric of our own, adding ours only collides with a route of the same metric, so every
    route to each address is listed too)."""
    index = socket.if_nametoindex(w.host_veth)
    for ip in w.ips:
        try:
            nl.add_route(ip.network, index, metric=ROUTE_METRIC)
        except netlink.NetlinkError as exc:
            if exc.errno != errno.EEXIST:  # EEXIST: the listing below says whose it is
                raise WiringError(f"adding route {ip.network} dev {w.host_veth}: "
                                  f"{exc.strerror}") from exc
    for version in sorted({ip.version for ip in w.ips}):
        mine = {ip.network for ip in w.ips}
        _foreign_routes(w, [_shown(dst, oif, metric) for dst, oif, metric
                            in nl.routes(version) if dst in mine])


def _shown(dst: ipaddress.IPv4Network | ipaddress.IPv6Network, oif: int, metric: int
           ) -> dict[str, Any]:
    """A route as `ip -j route` shows it (no metric key for metric 0)."""
    try:
        dev = socket.if_indextoname(oif) if oif else ""
    except OSError:
        dev = f"if{oif}"
    out: dict[str, Any] = {"dst": str(dst.network_address), "dev": dev}
    if metric:
        out["metric"] = metric
    return out


def _host_sysctls(veth: str, has4: bool, has6: bool) -> None:
    if has4:
        _write(f"/proc/sys/net/ipv4/conf/{veth}/route_localnet", "1")
        _write(f"/proc/sys/net/ipv4/neigh/{veth}/proxy_delay", "0", required=False)
        _write(f"/proc/sys/net/ipv4/conf/{veth}/proxy_arp", "1")
        _write(f"/proc/sys/net/ipv4/conf/{veth}/forwarding", "1")
    if has6:
        _write(f"/proc/sys/net/ipv6/conf/{veth}/accept_dad", "0")
        _write(f"/proc/sys/net/ipv6/conf/{veth}/disable_ipv6", "0")
        _write(f"/proc/sys/net/ipv6/conf/{veth}/proxy_ndp", "1")
        _write(f"/proc/sys/net/ipv6/conf/{veth}/forwarding", "1")
    _write(f"/proc/sys/net/ipv6/conf/{veth}/accept_ra", "0", required=False)


def _container(w: Wiring) -> None:
    has4 = any(i.version == 4 for i in w.ips)
    has6 = any(i.version == 6 for i in w.ips)
    fwd = "1" if w.allow_ip_forwarding else "0"
    with in_netns(w.netns):
        _write("/proc/sys/net/ipv4/ip_forward", fwd)
        if has6:
            for n in ("all", "default", "lo"):
                _write(f"/proc/sys/net/ipv6/conf/{n}/disable_ipv6", "0")
            _write(f"/proc/sys/net/ipv6/conf/{w.ifname}/accept_dad", "0")
            _write("/proc/sys/net/ipv6/conf/all/forwarding", fwd)
        try:
            with netlink.Netlink() as nl:
                nl.set_up(w.ifname)
                index = socket.if_nametoindex(w.ifname)
                for ip in w.ips:
                    nl.add_address(index, ip.ip, nodad=ip.version == 6)
                if has4:
                    gw4 = ipaddress.IPv4Address(GW4)
                    nl.add_route(ipaddress.IPv4Network(f"{GW4}/32"), index)
                    for dst in w.routes4:
                        nl.add_route(ipaddress.ip_network(dst), index, gateway=gw4)
                if has6:
                    gw6 = ipaddress.IPv6Address(GW6)
                    for dst in w.routes6:
                        nl.add_route(ipaddress.ip_network(dst), index, gateway=gw6)
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise WiringError(f"configuring {w.ifname} in {w.netns} failed: {reason}"
                              ) from exc


def _foreign_routes(w: Wiring, routes: list[dict[str, Any]]) -> None:
    mine = {str(i.ip) for i in w.ips}
    for e in routes:
        dst = str(e.get("dst", "")).removesuffix("/32").removesuffix("/128")
        if dst in mine and e.get("dev") != w.host_veth:
            raise WiringError(
                f"route ({dst}/{ipaddress.ip_address(dst).max_prefixlen}) already exists for "
                f"an interface other than '{w.host_veth}': ['{e.get('dev')}'] (metric "
                f"{e.get('metric', 0)}); the address may be in use twice")


def teardown(netns: str, ifname: str, host_veth: str | None = None) -> None:
    """Remove the container interface (its veth peer and host routes go with it). Missing
    namespace or interface is success. `host_veth` (when given) is removed if still there."""
    if netns and os.path.exists(netns):
        try:
            with in_netns(netns):
                if os.path.exists(f"/proc/sys/net/ipv4/conf/{ifname}"):
                    _delete_link(ifname, netns)
        except WiringError:
            if os.path.exists(netns):
                raise
    if host_veth and host_link_exists(host_veth):
        with contextlib.suppress(OSError), netlink.Netlink() as nl:
            nl.delete_link(host_veth)


def _delete_link(ifname: str, netns: str) -> None:
    """`ip link del` in the namespace the thread is in; a link already gone is fine."""
    try:
        with netlink.Netlink() as nl:
            nl.delete_link(ifname)
    except netlink.NetlinkError as exc:
        if exc.errno != errno.ENODEV:
            raise WiringError(f"removing {ifname} in {netns}: {exc.strerror}") from exc
    except OSError as exc:
        raise WiringError(f"removing {ifname} in {netns}: {exc}") from exc


def inspect(netns: str, ifname: str) -> tuple[set[str], list[dict[str, object]]]:
    """(addresses on `ifname` as `ip/prefix`, routes) inside the namespace (CHECK only)."""
    import json

    from libcalico import proc

    with in_netns(netns):
        addr = proc.run(["ip", "-j", "addr", "show", "dev", ifname], timeout=TIMEOUT,
                        check=False)
        routes = proc.run(["ip", "-j", "route", "show", "dev", ifname], timeout=TIMEOUT,
                          check=False)
    if addr.returncode != 0:
        raise WiringError(f"{ifname} not found in {netns}: {addr.stderr.strip()}")
    found = set()
    for link in json.loads(addr.stdout or "[]"):
        for a in link.get("addr_info", []):
            if a.get("scope") == "global":
                found.add(f"{a['local']}/{a['prefixlen']}")
    return found, json.loads(routes.stdout or "[]")
