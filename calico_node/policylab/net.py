"""The lab's servers and probes: sockets made inside the pods' namespaces and served by
threads of the lab process (nothing runs in the pods, so nothing is left in them).

A TCP or SCTP server accepts and closes; a UDP server echoes each datagram. A probe is
reachable when a TCP/SCTP connection is accepted or a UDP datagram is answered within
`timeout` seconds (a refusal, a reset or silence is not reachable)."""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import selectors
import socket
import threading

from calico_node.demo import lab as labmod

log = logging.getLogger(__name__)

_KINDS = {"TCP": (socket.SOCK_STREAM, 0), "UDP": (socket.SOCK_DGRAM, 0),
          "SCTP": (socket.SOCK_STREAM, socket.IPPROTO_SCTP)}


def sctp_available(ns: str) -> bool:
    """Whether this kernel makes SCTP sockets (the sctp module)."""
    try:
        labmod.socket_in_netns(ns, socket.AF_INET, *_KINDS["SCTP"]).close()
    except OSError:
        return False
    return True


class Servers:
    def __init__(self) -> None:
        self._sel = selectors.DefaultSelector()
        self._socks: list[socket.socket] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._serve, name="policylab-servers",
                                        daemon=True)
        self._thread.start()

    def listen(self, ns: str, port: int, protocol: str) -> None:
        kind, proto = _KINDS[protocol]
        s = labmod.socket_in_netns(ns, socket.AF_INET, kind, proto)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", port))
            if kind == socket.SOCK_STREAM:
                s.listen(128)
            s.setblocking(False)
        except OSError:
            s.close()
            raise
        with self._lock:
            self._socks.append(s)
            self._sel.register(s, selectors.EVENT_READ, protocol)

    def _serve(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                empty = not self._socks
            if empty:
                self._stop.wait(0.1)
                continue
            for key, _ in self._sel.select(timeout=0.2):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                with contextlib.suppress(OSError):
                    if key.data == "UDP":
                        data, peer = s.recvfrom(2048)
                        s.sendto(data, peer)
                    else:
                        conn, _ = s.accept()
                        conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            for s in self._socks:
                with contextlib.suppress(Exception):
                    self._sel.unregister(s)
                s.close()
            self._socks.clear()
        self._sel.close()


def probe(ns: str, ip: ipaddress.IPv4Address, port: int, protocol: str,
          timeout: float = 1.0) -> bool:
    """Whether a client in namespace `ns` reaches `ip:port` over `protocol`."""
    kind, proto = _KINDS[protocol]
    s = labmod.socket_in_netns(ns, socket.AF_INET, kind, proto)
    with s:
        s.settimeout(timeout)
        try:
            s.connect((str(ip), port))
            if protocol == "UDP":
                s.send(b"policy-lab")
                s.recv(2048)
        except OSError:  # timeout, refused, unreachable
            return False
        return True
