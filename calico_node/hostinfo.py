"""The host's interfaces and route lookups, read with iproute2 (`ip -j`)."""

from __future__ import annotations

import ipaddress
import json

from calico_node.autodetect import Interface, IPAddress, IPInterface
from libcalico import proc
from libcalico.errors import CommandFailed, ConfigError


def interfaces(runner: proc.Runner = proc.run) -> list[Interface]:
    out = runner(["ip", "-j", "addr", "show"], timeout=10).stdout
    try:
        links = json.loads(out or "[]")
    except ValueError as exc:
        raise ConfigError(f"cannot parse `ip -j addr show`: {exc}") from exc
    result: list[Interface] = []
    for link in links:
        addrs: list[IPInterface] = []
        for a in link.get("addr_info", []):
            try:
                addrs.append(ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}"))
            except (KeyError, ValueError):
                continue
        result.append(Interface(str(link.get("ifname", "")), tuple(addrs)))
    return result


def route_source(dest: IPAddress, runner: proc.Runner = proc.run) -> IPAddress | None:
    """The source address the kernel would pick towards `dest` (no packet is sent)."""
    try:
        out = runner(["ip", "-j", f"-{dest.version}", "route", "get", str(dest)],
                     timeout=10).stdout
    except CommandFailed:
        return None
    try:
        routes = json.loads(out or "[]")
        src = routes[0].get("prefsrc") if routes else None
        return ipaddress.ip_address(src) if src else None
    except (ValueError, IndexError, AttributeError):
        return None
