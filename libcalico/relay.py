"""A TCP relay between a network namespace and the root namespace, for labs and tests.

`socket_in_netns(ns)` makes a socket inside `/run/netns/<ns>` from a short-lived thread that
enters the namespace (a socket keeps the namespace it was made in), so the calling thread
never changes namespace. `Relay(ns, listen, target)` listens at `listen` inside `ns` and
splices each accepted connection to `target` reached from the root namespace: processes in a
namespace reach a server on the root namespace's loopback (etcd, the Kubernetes API server)
with no interface, route or rule added anywhere.

Used by the demo (`calico_node.demo.lab`) and Felix's live tests
(`tests/netns/felix/kuberelay.py`).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading
from pathlib import Path

CLONE_NEWNET = 0x40000000
NETNS_DIR = Path("/run/netns")


def socket_in_netns(ns: str, family: int = socket.AF_INET,
                    kind: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
    """A socket created inside namespace `ns` (by a short-lived thread that enters it), so
    that the calling thread never changes namespace."""
    result: list[socket.socket | BaseException] = []

    def work() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(NETNS_DIR / ns, os.O_RDONLY)
            try:
                if libc.setns(fd, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {ns}: {os.strerror(err)}")
            finally:
                os.close(fd)
            result.append(socket.socket(family, kind, proto))
        except BaseException as exc:  # handed back to the caller
            result.append(exc)

    t = threading.Thread(target=work, name=f"netns-{ns}")
    t.start()
    t.join()
    got = result[0]
    if isinstance(got, BaseException):
        raise got
    return got


class Relay:
    """A TCP relay: listens at `listen` inside namespace `ns`, connects to `target` from the
    root namespace (within `connect_timeout` seconds; a connection it cannot pass on is
    closed), and copies bytes both ways until each side shuts down."""

    def __init__(self, ns: str, listen: tuple[str, int], target: tuple[str, int], *,
                 connect_timeout: float = 5.0) -> None:
        self.ns = ns
        self.target = target
        self.connect_timeout = connect_timeout
        self.sock = socket_in_netns(ns)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(listen)
        self.sock.listen(128)
        self._closed = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, name=f"relay-{ns}", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=self.connect_timeout)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                if self._closed.is_set():  # close() ran meanwhile: nothing may outlive it
                    client.close()
                    upstream.close()
                    return
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True,
                                 name=f"relay-{self.ns}-pump").start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            with contextlib.suppress(OSError):
                dst.shutdown(socket.SHUT_WR)

    def drop_connections(self) -> None:
        """Cut every open connection (as an outage would); new ones are still accepted."""
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def close(self) -> None:
        with self._lock:
            self._closed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.drop_connections()
        self._thread.join(5)
