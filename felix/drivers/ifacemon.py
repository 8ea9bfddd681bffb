"""Interface monitor: keeps the map of host interfaces (up/down, MTU, addresses) current.

One full listing at start and every InterfaceRefreshInterval; in between, the link and
address events of a netlink multicast socket (parsed with pyroute2's rtnl marshal) update the
map one interface at a time, so that a new pod on a host with thousands of interfaces costs
an event, not a listing. The tunnel devices Felix manages are re-read on their own events
(their VXLAN attributes are not in the event). The complete map is posted to the owner's
queue whenever it changed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import logging
import select
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from felix.calc.desired import IPIP_DEVICE, VXLAN_DEVICE
from felix.drivers.netlink import Link, Netlink, sort_addrs
from libcalico.errors import CalicoError

log = logging.getLogger(__name__)

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100
IFF_UP = 0x1
DETAILED = (VXLAN_DEVICE, IPIP_DEVICE)


class LinkMap:
    """The interface map and the event arithmetic (no I/O except `refetch`)."""

    def __init__(self, refetch: Callable[[str], dict[str, Link]]) -> None:
        self.links: dict[str, Link] = {}
        self.by_index: dict[int, str] = {}
        self.refetch = refetch
        self.needs_full = True

    def replace(self, links: dict[str, Link]) -> None:
        self.links = dict(links)
        self.by_index = {lk.index: n for n, lk in links.items() if lk.index}
        self.needs_full = False

    def on_message(self, msg: Any) -> None:
        ev = msg.get("event")
        if ev in ("RTM_NEWLINK", "RTM_DELLINK"):
            name = msg.get_attr("IFLA_IFNAME")
            idx = int(msg["index"])
            if not name:
                return
            old_name = self.by_index.get(idx)
            renamed: Link | None = None
            if old_name and old_name != name:          # renamed: keep what we knew
                renamed = self.links.pop(old_name, None)
            if ev == "RTM_DELLINK":
                self.links.pop(name, None)
                self.by_index.pop(idx, None)
                return
            self.by_index[idx] = name
            if name in DETAILED:
                got = self.refetch(name)
                self.links.pop(name, None)
                self.links.update(got)
                return
            old = self.links.get(name) or Link(name, False, 0, index=idx)
            if renamed is not None:
                old = dataclasses.replace(renamed, name=name)
            oper = str(msg.get_attr("IFLA_OPERSTATE") or "")
            kind = old.kind
            info = msg.get_attr("IFLA_LINKINFO")
            if info is not None:
                kind = str(info.get_attr("IFLA_INFO_KIND") or kind)
            self.links[name] = dataclasses.replace(
                old, up=bool(msg["flags"] & IFF_UP) and oper in ("UP", "UNKNOWN"),
                mtu=int(msg.get_attr("IFLA_MTU") or old.mtu),
                mac=str(msg.get_attr("IFLA_ADDRESS") or old.mac).lower(), kind=kind,
                index=idx)
        elif ev in ("RTM_NEWADDR", "RTM_DELADDR"):
            name = self.by_index.get(int(msg["index"]))
            if name is None or name not in self.links:
                self.needs_full = True
                return
            text = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
            try:
                addr = ipaddress.ip_interface(f"{text}/{msg['prefixlen']}")
            except ValueError:
                return
            link = self.links[name]
            addrs = [a for a in link.addrs if a != addr]
            if ev == "RTM_NEWADDR":
                addrs.append(addr)
            self.links[name] = dataclasses.replace(link, addrs=sort_addrs(addrs))


class InterfaceMonitor:
    def __init__(self, nl: Netlink, sink: Callable[[dict[str, Link]], object],
                 refresh: float) -> None:
        self.nl = nl
        self.sink = sink
        self.refresh = refresh
        self.map = LinkMap(self._refetch)
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._thread = threading.Thread(target=self._run, name="ifacemon", daemon=True)
        self._posted: dict[str, Link] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")
        self._thread.join(5)
        self._wake_r.close()
        self._wake_w.close()

    def _refetch(self, name: str) -> dict[str, Link]:
        try:
            return self.nl.list_links(name)
        except CalicoError as exc:
            log.warning("reading interface %s failed: %s", name, exc)
            self.map.needs_full = True
            return {}

    def _full(self) -> None:
        try:
            self.map.replace(self.nl.list_links())
        except CalicoError as exc:
            log.warning("listing interfaces failed: %s", exc)
            self.map.needs_full = True

    def _post(self) -> None:
        if self.map.links != self._posted:
            self._posted = dict(self.map.links)
            self.sink(dict(self._posted))

    def _run(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        marshal = MarshalRtnl()
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 1024 * 1024)
            sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            sock.setblocking(False)
            self._full()       # subscribed first: nothing between listing and events is lost
            self._post()
            next_full = time.monotonic() + self.refresh
            while not self._stop.is_set():
                # Idle costs nothing: sleep until an event, the next full listing or stop().
                wait = max(0.0, min(next_full - time.monotonic(), 60.0))
                r, _, _ = select.select([sock, self._wake_r], [], [], wait)
                if self._stop.is_set():
                    break
                if sock in r:
                    while True:
                        try:
                            data = sock.recv(1 << 20)
                        except BlockingIOError:
                            break
                        except OSError as exc:    # ENOBUFS: events were lost
                            log.info("netlink events lost (%s): listing again", exc)
                            self.map.needs_full = True
                            break
                        for msg in marshal.parse(data):
                            self.map.on_message(msg)
                if self.map.needs_full or time.monotonic() >= next_full:
                    self._full()
                    next_full = time.monotonic() + self.refresh
                elif sock not in r:
                    continue        # woken for nothing: the map cannot have changed
                self._post()
        finally:
            sock.close()
