"""Interface monitor: a netlink multicast socket for link/address events, each burst followed
by one listing; a full re-list also runs every InterfaceRefreshInterval. Posts the complete
interface map to the owner's queue whenever it changed."""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from collections.abc import Callable

from felix.drivers.netlink import Link, Netlink
from libcalico.errors import CalicoError

log = logging.getLogger(__name__)

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV6_IFADDR = 0x100


class InterfaceMonitor:
    def __init__(self, nl: Netlink, sink: Callable[[dict[str, Link]], object],
                 refresh: float) -> None:
        self.nl = nl
        self.sink = sink
        self.refresh = refresh
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ifacemon", daemon=True)
        self._last: dict[str, Link] | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)

    def _list(self) -> None:
        try:
            links = self.nl.list_links()
        except CalicoError as exc:
            log.warning("listing interfaces failed: %s", exc)
            return
        if links != self._last:
            self._last = links
            self.sink(links)

    def _run(self) -> None:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            sock.bind((0, RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR))
            sock.setblocking(False)
            self._list()
            next_full = time.monotonic() + self.refresh
            while not self._stop.is_set():
                r, _, _ = select.select([sock], [], [], min(0.5, self.refresh))
                if r:
                    # Drain the burst, then list once.
                    time.sleep(0.005)
                    while True:
                        try:
                            sock.recv(65536)
                        except BlockingIOError:
                            break
                        except OSError as exc:   # ENOBUFS: we missed events, list anyway
                            log.debug("netlink recv: %s", exc)
                            break
                    self._list()
                elif time.monotonic() >= next_full:
                    self._list()
                    next_full = time.monotonic() + self.refresh
        finally:
            sock.close()
