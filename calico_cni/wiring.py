"""Linux wiring as Calico's dataplane does it, with `ip -batch` (one process per namespace).

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
import ipaddress
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from libcalico import proc
from libcalico.errors import CalicoError, CommandFailed

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
    if host_link_exists(w.host_veth):
        proc.run(["ip", "link", "del", w.host_veth], timeout=TIMEOUT, check=False)
    has4 = any(i.version == 4 for i in w.ips)
    has6 = any(i.version == 6 for i in w.ips)
    mac = random_mac()
    queues = f" numtxqueues {w.num_queues} numrxqueues {w.num_queues}" if w.num_queues > 1 else ""
    host = [f"link add {w.host_veth} mtu {w.mtu} address {HOST_MAC}{queues} type veth "
            f"peer name {w.ifname} mtu {w.mtu} address {mac}{queues} netns {w.netns}",
            f"link set {w.host_veth} up"]
    host += [f"route add {i.ip}/{i.max_prefixlen} dev {w.host_veth} scope link "
             f"metric {ROUTE_METRIC}" for i in w.ips]
    # A route to the address on another interface means it is in use twice. With a metric
    # of our own, `route add` only collides with a route of the same metric, so the batch
    # also lists every route to each IPv4 address (batch lines are IPv4-only; IPv6 is
    # checked apart, and only for dual-stack or IPv6 workloads).
    host += [f"route show exact {i.ip}/32" for i in w.ips if i.version == 4]
    r = proc.run(["ip", "-j", "-batch", "-"], input="\n".join(host) + "\n", timeout=TIMEOUT,
                 check=False)
    if r.returncode != 0 and not host_link_exists(w.host_veth):
        if "File exists" in r.stderr:
            raise WiringError(
                f"cannot create {w.ifname} in {w.netns}: an interface named {w.ifname} "
                "already exists in the container (remove it or use another CNI_IFNAME)")
        raise WiringError(f"creating veth {w.host_veth}: {r.stderr.strip()}")
    try:
        if r.returncode != 0:
            _host_routes(w, r.stderr)
        else:
            _foreign_routes(w, _json_arrays(r.stdout))
            for ip in w.ips:
                if ip.version == 6:
                    shown = proc.run(["ip", "-j", "-6", "route", "show", "exact",
                                      f"{ip.ip}/128"], timeout=TIMEOUT)
                    _foreign_routes(w, _json_arrays(shown.stdout))
        _host_sysctls(w.host_veth, has4, has6)
        _container(w, mac, has4, has6)
    except BaseException:
        proc.run(["ip", "link", "del", w.host_veth], timeout=TIMEOUT, check=False)
        raise
    return mac


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


def _container(w: Wiring, mac: str, has4: bool, has6: bool) -> None:
    fwd = "1" if w.allow_ip_forwarding else "0"
    batch = [f"link set {w.ifname} up"]
    for ip in w.ips:
        extra = " nodad" if ip.version == 6 else ""
        batch.append(f"addr add {ip.ip}/{ip.max_prefixlen} dev {w.ifname}{extra}")
    if has4:
        batch.append(f"route add {GW4}/32 dev {w.ifname} scope link")
        batch += [f"route add {dst} via {GW4} dev {w.ifname}" for dst in w.routes4]
    if has6:
        batch += [f"route add {dst} via {GW6} dev {w.ifname}" for dst in w.routes6]
    with in_netns(w.netns):
        _write("/proc/sys/net/ipv4/ip_forward", fwd)
        if has6:
            for n in ("all", "default", "lo"):
                _write(f"/proc/sys/net/ipv6/conf/{n}/disable_ipv6", "0")
            _write(f"/proc/sys/net/ipv6/conf/{w.ifname}/accept_dad", "0")
            _write("/proc/sys/net/ipv6/conf/all/forwarding", fwd)
        try:
            proc.run(["ip", "-batch", "-"], input="\n".join(batch) + "\n", timeout=TIMEOUT)
        except CommandFailed as exc:
            raise WiringError(f"configuring {w.ifname} in {w.netns} failed: "
                              f"{exc.stderr.strip()}") from exc


def _json_arrays(text: str) -> list[dict[str, Any]]:
    """The routes in `ip -j` output: one JSON array per `show` line of a batch."""
    out: list[dict[str, Any]] = []
    dec = json.JSONDecoder()
    i, text = 0, text.strip()
    while i < len(text):
        try:
            val, i = dec.raw_decode(text, i)
        except ValueError as exc:
            raise WiringError(f"unreadable `ip -j route` output: {exc}") from exc
        if isinstance(val, list):
            out += [e for e in val if isinstance(e, dict)]
        while i < len(text) and text[i].isspace():
            i += 1
    return out


def _foreign_routes(w: Wiring, routes: list[dict[str, Any]]) -> None:
    mine = {str(i.ip) for i in w.ips}
    for e in routes:
        dst = str(e.get("dst", "")).removesuffix("/32").removesuffix("/128")
        if dst in mine and e.get("dev") != w.host_veth:
            raise WiringError(
                f"route ({dst}/{ipaddress.ip_address(dst).max_prefixlen}) already exists for "
                f"an interface other than '{w.host_veth}': ['{e.get('dev')}'] (metric "
                f"{e.get('metric', 0)}); the address may be in use twice")


def _host_routes(w: Wiring, stderr: str) -> None:
    """The host batch stopped at a route: `EEXIST` is fine only when the existing route is
    on this workload's veth (Calico's rule); add whatever the batch did not get to."""
    for ip in w.ips:
        dst = f"{ip.ip}/{ip.max_prefixlen}"
        fam = "-6" if ip.version == 6 else "-4"
        shown = proc.run(["ip", "-j", fam, "route", "show", "exact", dst], timeout=TIMEOUT)
        devs = {e.get("dev") for e in json.loads(shown.stdout or "[]")}
        if devs == {w.host_veth}:
            continue
        if devs:
            raise WiringError(
                f"route ({dst}) already exists for an interface other than '{w.host_veth}': "
                f"{sorted(d for d in devs if d)}; the address may be in use twice")
        r = proc.run(["ip", fam, "route", "add", dst, "dev", w.host_veth, "scope", "link",
                      "metric", str(ROUTE_METRIC)],
                     timeout=TIMEOUT, check=False)
        if r.returncode != 0:
            raise WiringError(f"adding route {dst} dev {w.host_veth}: {r.stderr.strip()} "
                              f"(host batch: {stderr.strip()})")


def teardown(netns: str, ifname: str, host_veth: str | None = None) -> None:
    """Remove the container interface (its veth peer and host routes go with it). Missing
    namespace or interface is success. `host_veth` (when given) is removed if still there."""
    if netns and os.path.exists(netns):
        try:
            with in_netns(netns):
                present = os.path.exists(f"/proc/sys/net/ipv4/conf/{ifname}")
                r = proc.run(["ip", "link", "del", ifname], timeout=TIMEOUT, check=False) \
                    if present else None
        except WiringError:
            if os.path.exists(netns):
                raise
            r = None
        if r is not None and r.returncode != 0 and "Cannot find device" not in r.stderr:
            raise WiringError(f"removing {ifname} in {netns}: {r.stderr.strip()}")
    if host_veth and host_link_exists(host_veth):
        proc.run(["ip", "link", "del", host_veth], timeout=TIMEOUT, check=False)


def inspect(netns: str, ifname: str) -> tuple[set[str], list[dict[str, object]]]:
    """(addresses on `ifname` as `ip/prefix`, routes) inside the namespace."""
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
