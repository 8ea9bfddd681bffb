"""Linux wiring as Calico's dataplane does it, with `ip -batch` (one process per namespace).

Host side: veth `cali…` with MAC ee:ee:ee:ee:ee:ee, proxy ARP / proxy NDP, forwarding, and a
/32 (/128) route per workload address. Container side: CNI_IFNAME up with the addresses as
/32 (/128), a link route to 169.254.1.1 and the default route via it (IPv6: via the host
veth's link-local fe80::ecee:eeff:feee:eeee), ip_forward as container_settings says.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from libcalico import proc
from libcalico.errors import CalicoError, CommandFailed

HOST_MAC = "ee:ee:ee:ee:ee:ee"
GW4 = "169.254.1.1"
GW6 = "fe80::ecee:eeff:feee:eeee"
TIMEOUT = 20.0

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
    raw = bytearray(secrets.token_bytes(6))
    raw[0] = (raw[0] & 0xFE) | 0x02  # unicast, locally administered
    return ":".join(f"{b:02x}" for b in raw)


def _write(path: str, value: str, *, required: bool = True) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as exc:
        if required:
            raise WiringError(f"cannot set {path} to {value}: {exc}") from exc


def _ip_batch(lines: Sequence[str], netns: str | None = None) -> None:
    argv = ["ip", "-batch", "-"]
    if netns is not None:
        argv = ["nsenter", f"--net={netns}", *argv]
    try:
        proc.run(argv, input="\n".join(lines) + "\n", timeout=TIMEOUT)
    except CommandFailed as exc:
        raise WiringError(f"ip -batch failed{' in ' + netns if netns else ''}: "
                          f"{exc.stderr.strip() or exc.stdout.strip()}") from exc


def host_link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


def setup(w: Wiring) -> str:
    """Wire the workload; returns the container interface's MAC. A stale host veth of the
    same name (an earlier ADD for this workload) is removed first."""
    if host_link_exists(w.host_veth):
        proc.run(["ip", "link", "del", w.host_veth], timeout=TIMEOUT, check=False)
    has4 = any(i.version == 4 for i in w.ips)
    has6 = any(i.version == 6 for i in w.ips)
    mac = random_mac()
    queues = f" numtxqueues {w.num_queues} numrxqueues {w.num_queues}" if w.num_queues > 1 else ""
    try:
        _ip_batch([f"link add {w.host_veth} mtu {w.mtu} address {HOST_MAC}{queues} type veth "
                   f"peer name {w.ifname} mtu {w.mtu} address {mac}{queues} netns {w.netns}"])
    except WiringError as exc:
        if "File exists" in str(exc):
            raise WiringError(
                f"cannot create {w.ifname} in {w.netns}: an interface named {w.ifname} already "
                "exists in the container (remove it or use another CNI_IFNAME)") from None
        raise
    try:
        _host_sysctls(w.host_veth, has4, has6)
        _container(w, mac, has4, has6)
        _ip_batch([f"link set {w.host_veth} up"])
        _host_routes(w)
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
    script = [f"echo {fwd} > /proc/sys/net/ipv4/ip_forward"]
    if has6:
        script += [f"echo 0 > /proc/sys/net/ipv6/conf/{n}/disable_ipv6"
                   for n in ("all", "default", "lo")]
        script += [f"echo 0 > /proc/sys/net/ipv6/conf/{w.ifname}/accept_dad",
                   f"echo {fwd} > /proc/sys/net/ipv6/conf/all/forwarding"]
    script.append("exec ip -batch -")
    batch = [f"link set {w.ifname} up"]
    for ip in w.ips:
        extra = " nodad" if ip.version == 6 else ""
        batch.append(f"addr add {ip.ip}/{ip.max_prefixlen} dev {w.ifname}{extra}")
    if has4:
        batch.append(f"route add {GW4}/32 dev {w.ifname} scope link")
        batch += [f"route add {dst} via {GW4} dev {w.ifname}" for dst in w.routes4]
    if has6:
        batch += [f"route add {dst} via {GW6} dev {w.ifname}" for dst in w.routes6]
    try:
        proc.run(["nsenter", f"--net={w.netns}", "/bin/sh", "-ec", "; ".join(script)],
                 input="\n".join(batch) + "\n", timeout=TIMEOUT)
    except CommandFailed as exc:
        raise WiringError(f"configuring {w.ifname} in {w.netns} failed: "
                          f"{exc.stderr.strip()}") from exc


def _host_routes(w: Wiring) -> None:
    for ip in w.ips:
        dst = f"{ip.ip}/{ip.max_prefixlen}"
        fam = "-6" if ip.version == 6 else "-4"
        r = proc.run(["ip", fam, "route", "add", dst, "dev", w.host_veth, "scope", "link"],
                     timeout=TIMEOUT, check=False)
        if r.returncode == 0:
            continue
        if "File exists" not in r.stderr:
            raise WiringError(f"adding route {dst} dev {w.host_veth}: {r.stderr.strip()}")
        shown = proc.run(["ip", "-j", fam, "route", "show", "exact", dst], timeout=TIMEOUT)
        devs = {e.get("dev") for e in json.loads(shown.stdout or "[]")}
        if devs != {w.host_veth}:
            raise WiringError(
                f"route ({dst}) already exists for an interface other than '{w.host_veth}': "
                f"{sorted(d for d in devs if d)}; the address may be in use twice")


def teardown(netns: str, ifname: str, host_veth: str | None = None) -> None:
    """Remove the container interface (its veth peer and host routes go with it). Missing
    namespace or interface is success. `host_veth` (when given) is removed if still there."""
    if netns and os.path.exists(netns):
        r = proc.run(["nsenter", f"--net={netns}", "ip", "link", "del", ifname],
                     timeout=TIMEOUT, check=False)
        if r.returncode != 0 and "Cannot find device" not in r.stderr \
                and "No such" not in r.stderr and os.path.exists(netns):
            raise WiringError(f"removing {ifname} in {netns}: {r.stderr.strip()}")
    if host_veth and host_link_exists(host_veth):
        proc.run(["ip", "link", "del", host_veth], timeout=TIMEOUT, check=False)


def inspect(netns: str, ifname: str) -> tuple[set[str], list[dict[str, object]]]:
    """(addresses on `ifname` as `ip/prefix`, routes) inside the namespace."""
    addr = proc.run(["nsenter", f"--net={netns}", "ip", "-j", "addr", "show", "dev", ifname],
                    timeout=TIMEOUT, check=False)
    if addr.returncode != 0:
        raise WiringError(f"{ifname} not found in {netns}: {addr.stderr.strip()}")
    found = set()
    for link in json.loads(addr.stdout or "[]"):
        for a in link.get("addr_info", []):
            if a.get("scope") == "global":
                found.add(f"{a['local']}/{a['prefixlen']}")
    routes = proc.run(["nsenter", f"--net={netns}", "ip", "-j", "route", "show", "dev", ifname],
                      timeout=TIMEOUT, check=False)
    return found, json.loads(routes.stdout or "[]")
