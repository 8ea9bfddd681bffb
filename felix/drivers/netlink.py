"""The kernel's routes, neighbours, FDB entries and links, behind one small protocol.

`IpBatchNetlink` reads with `ip -N -j …` / `bridge -j …` and writes in batches with
`ip -force -batch -` / `bridge -force -batch -` through libcalico.proc: one process per batch,
whatever its size (measured in bench/felix.py; per-object pyroute2 calls are ~20× slower on
this machine, see docs/felix.md). With `-force` a failed line does not stop the batch; the
failed line numbers are read from stderr so that only those operations stay pending.
`FakeNetlink` (in tests) implements the same protocol in memory.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

from felix.calc.desired import IPAddr, Route
from libcalico import proc
from libcalico.errors import CommandFailed

TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Link:
    name: str
    up: bool
    mtu: int
    mac: str = ""
    kind: str = ""
    addrs: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...] = ()
    vxlan_id: int | None = None
    vxlan_port: int | None = None
    vxlan_local: str | None = None
    index: int = 0


@dataclass(frozen=True, slots=True)
class Op:
    """One write. kind: route-replace, route-del, neigh-replace, neigh-del, fdb-replace,
    fdb-del, link-cmd (raw `ip` batch line for device management)."""

    kind: str
    route: Route | None = None
    dev: str = ""
    ip: IPAddr | None = None
    mac: str = ""
    line: str = ""


@dataclass
class BatchResult:
    failed: list[tuple[Op, str]] = field(default_factory=list)


class Netlink(Protocol):
    def list_routes(self) -> list[Route]: ...
    def list_neighbours(self) -> dict[tuple[str, IPAddr], str]: ...
    def list_fdb(self, dev: str) -> dict[tuple[str, str], IPAddr]: ...
    def list_links(self, name: str | None = None) -> dict[str, Link]: ...
    def apply(self, ops: Sequence[Op]) -> BatchResult: ...


def _route_spec(r: Route) -> str:
    parts = []
    if r.type == "blackhole":
        parts.append("blackhole")
    parts.append(str(r.dst))
    if r.gateway is not None:
        parts += ["via", str(r.gateway)]
    if r.dev:
        parts += ["dev", r.dev]
    if r.onlink:
        parts.append("onlink")
    if r.type != "blackhole":
        parts += ["scope", r.scope]
    parts += ["proto", str(r.proto), "metric", str(r.metric), "table", str(r.table)]
    return " ".join(parts)


def render_ip(op: Op) -> str | None:
    if op.kind == "route-replace":
        assert op.route is not None
        return f"route replace {_route_spec(op.route)}"
    if op.kind == "route-del":
        assert op.route is not None
        r = op.route
        spec = ("blackhole " if r.type == "blackhole" else "") + str(r.dst)
        if r.dev:
            spec += f" dev {r.dev}"
        # The metric names which of several routes to one destination goes.
        return f"route del {spec} metric {r.metric} table {r.table}"
    if op.kind == "neigh-replace":
        return f"neigh replace {op.ip} lladdr {op.mac} dev {op.dev} nud permanent"
    if op.kind == "neigh-del":
        return f"neigh del {op.ip} dev {op.dev}"
    if op.kind == "link-cmd":
        return op.line
    return None


def render_bridge(op: Op) -> str | None:
    if op.kind == "fdb-replace":
        return f"fdb replace {op.mac} dev {op.dev} dst {op.ip} self permanent"
    if op.kind == "fdb-del":
        return f"fdb del {op.mac} dev {op.dev} dst {op.ip} self"
    return None


def sort_addrs(addrs: Sequence[ipaddress.IPv4Interface | ipaddress.IPv6Interface]
               ) -> tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]:
    """One canonical order, so that a listing and a sequence of events compare equal."""
    return tuple(sorted(set(addrs), key=lambda a: (a.version, int(a.ip), a.network.prefixlen)))


def link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}") or os.path.exists(
        f"/proc/sys/net/ipv4/conf/{name}")


SMALL_NEIGH_BATCH = 16
NUD_PERMANENT = 0x80

_FAILED_RE = re.compile(r"Command failed -:(\d+)")


# Listings repeat the same addresses at every refresh: parse each text once (ipaddress's
# parsers, IPv6 in particular, were most of a refresh's CPU with thousands of veths).
_address = functools.lru_cache(maxsize=65536)(ipaddress.ip_address)
_interface = functools.lru_cache(maxsize=65536)(ipaddress.ip_interface)


@functools.lru_cache(maxsize=65536)
def _parse_dst(text: str, family: int) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    if text == "default":
        text = "0.0.0.0/0" if family == 4 else "::/0"
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


class IpBatchNetlink:
    def __init__(self, runner: proc.Runner = proc.run, netns: str | None = None) -> None:
        self._run = runner
        self._netns = netns
        self._prefix = ["ip", "netns", "exec", netns] if netns else []
        self._ipr: Any = None

    def _neigh_pyroute2(self, ops: list[Op]) -> list[tuple[Op, str]]:
        failed: list[tuple[Op, str]] = []
        if self._ipr is None:
            self._ipr = IPRoute()
        for op in ops:
            try:
                idx = socket.if_nametoindex(op.dev)
            except OSError:
                failed.append((op, f"Cannot find device {op.dev}"))
                continue
            assert op.ip is not None
            fam = socket.AF_INET if op.ip.version == 4 else socket.AF_INET6
            try:
                if op.kind == "neigh-replace":
                    self._ipr.neigh("replace", dst=str(op.ip), lladdr=op.mac, ifindex=idx,
                                    family=fam, state=NUD_PERMANENT)
                else:
                    self._ipr.neigh("del", dst=str(op.ip), ifindex=idx, family=fam)
            except NetlinkError as exc:
                failed.append((op, str(exc)))
        return failed

    def close(self) -> None:
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None

    def _json(self, argv: list[str]) -> list[dict[str, Any]]:
        out = self._run([*self._prefix, *argv], timeout=TIMEOUT).stdout.strip()
        if not out:
            return []
        try:
            data = json.loads(out)
        except ValueError as exc:
            raise CommandFailed(argv, 0, out[:500], "", reason=f"unreadable JSON: {exc}") from exc
        return data if isinstance(data, list) else []

    def list_routes(self) -> list[Route]:
        routes: list[Route] = []
        for fam in (4, 6):
            for r in self._json(["ip", "-N", "-j", f"-{fam}", "route", "show", "table",
                                 "main"]):
                dst = _parse_dst(str(r.get("dst", "")), fam)
                if dst is None:
                    continue
                # With -N, iproute2 omits defaults: table main, type unicast, proto boot.
                if str(r.get("table", "254")) not in ("254", "main"):
                    continue
                rtype = {"1": "unicast", "unicast": "unicast", "6": "blackhole",
                         "blackhole": "blackhole"}.get(str(r.get("type", "1")))
                if rtype is None:
                    continue
                proto = str(r.get("protocol", "3"))
                gw = r.get("gateway")
                routes.append(Route(
                    # The kernel shows IPv6 blackholes on "lo"; we never name a device.
                    dst=dst, type=rtype, dev=None if rtype == "blackhole" else r.get("dev"),
                    gateway=_address(gw) if gw else None,
                    onlink="onlink" in (r.get("flags") or []),
                    scope="link" if str(r.get("scope")) in ("253", "link") else "global",
                    proto=int(proto) if proto.isdigit() else 0,
                    table=254, metric=int(r.get("metric", 0))))
        return routes

    def list_neighbours(self) -> dict[tuple[str, IPAddr], str]:
        out: dict[tuple[str, IPAddr], str] = {}
        for n in self._json(["ip", "-j", "neigh", "show", "nud", "permanent"]):
            if "lladdr" in n and "dst" in n and "dev" in n:
                out[(n["dev"], _address(n["dst"]))] = str(n["lladdr"]).lower()
        return out

    def list_fdb(self, dev: str) -> dict[tuple[str, str], IPAddr]:
        out: dict[tuple[str, str], IPAddr] = {}
        try:
            entries = self._json(["bridge", "-j", "fdb", "show", "dev", dev])
        except CommandFailed:
            return out
        for e in entries:
            if e.get("dst") and e.get("mac"):
                out[(dev, str(e["mac"]).lower())] = _address(e["dst"])
        return out

    def list_links(self, name: str | None = None) -> dict[str, Link]:
        """All links, or just `name` (empty when it does not exist)."""
        links: dict[str, Link] = {}
        argv = ["ip", "-j", "-d", "addr", "show"]
        if name is not None:
            if not link_exists(name):
                return links
            argv += ["dev", name]
        try:
            listing = self._json(argv)
        except CommandFailed:
            if name is None:
                raise
            return links           # vanished between the check and the listing
        for link in listing:
            name = link.get("ifname")
            if not name:
                continue
            addrs: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
            for a in link.get("addr_info") or []:
                try:
                    addrs.append(_interface(f"{a['local']}/{a['prefixlen']}"))
                except (KeyError, ValueError):
                    continue
            flags = link.get("flags") or []
            info = link.get("linkinfo") or {}
            data = info.get("info_data") or {}
            oper = str(link.get("operstate", ""))
            links[name] = Link(
                name=name,
                up="UP" in flags and oper in ("UP", "UNKNOWN"),
                mtu=int(link.get("mtu", 0)),
                mac=str(link.get("address", "")).lower(),
                kind=str(info.get("info_kind", "")),
                addrs=sort_addrs(addrs),
                vxlan_id=data.get("id"), vxlan_port=data.get("port"),
                vxlan_local=data.get("local"), index=int(link.get("ifindex", 0)))
        return links

    def apply(self, ops: Sequence[Op]) -> BatchResult:
        res = BatchResult()
        # `ip neigh` dumps every link before it starts (~40 ms with 2,000 veths here), so a
        # few neighbour writes go over an in-process pyroute2 socket instead; big batches
        # (the first programming) still use one `ip -batch`.
        neigh = [op for op in ops if op.kind in ("neigh-replace", "neigh-del")]
        if 0 < len(neigh) <= SMALL_NEIGH_BATCH and self._netns is None:
            res.failed += self._neigh_pyroute2(neigh)
            ops = [op for op in ops if op.kind not in ("neigh-replace", "neigh-del")]
        for tool, render in (("ip", render_ip), ("bridge", render_bridge)):
            lines: list[str] = []
            which: list[Op] = []
            for op in ops:
                line = render(op)
                if line is not None:
                    lines.append(line)
                    which.append(op)
            if not lines:
                continue
            done = self._run([*self._prefix, tool, "-force", "-batch", "-"],
                             input="\n".join(lines) + "\n", timeout=TIMEOUT, check=False)
            if done.returncode == 0:
                continue
            failed = {int(m) for m in _FAILED_RE.findall(done.stderr)}
            if not failed:
                res.failed += [(op, done.stderr.strip()[:200]) for op in which]
                continue
            errlines = done.stderr.splitlines()
            for n in sorted(failed):
                if 1 <= n <= len(which):
                    reason = next((errlines[i - 1] for i, e in enumerate(errlines)
                                   if e.endswith(f"-:{n}") and i > 0), "failed")
                    res.failed.append((which[n - 1], reason))
        return res
