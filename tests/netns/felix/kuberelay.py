"""The session's Kubernetes API server, reachable from inside a host namespace at the address
its kubeconfig and serving certificate name (`https://127.0.0.1:PORT`), as a pod reaches
`kubernetes.default` through kube-proxy.

A listening socket is made inside the namespace (`setns(CLONE_NEWNET)` in a short-lived thread:
a socket keeps the namespace it was made in), and each connection accepted on it is spliced
to the real server in the root namespace. Felix in the namespace uses the admin kubeconfig
unchanged; nothing is added to the namespace's routes or iptables.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import threading

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def socket_in_netns(ns: str) -> socket.socket:
    """A TCP socket made inside the network namespace `/run/netns/<ns>`."""
    made: list[socket.socket] = []
    failed: list[BaseException] = []

    def make() -> None:
        fd = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {ns}: {os.strerror(err)}")
            made.append(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
        except BaseException as exc:  # handed to the caller's thread
            failed.append(exc)
        finally:
            os.close(fd)

    t = threading.Thread(target=make, name=f"setns-{ns}")
    t.start()
    t.join()
    if failed:
        raise failed[0]
    return made[0]


class KubeRelay:
    """127.0.0.1:`port` inside `ns` → 127.0.0.1:`port` in the root namespace."""

    def __init__(self, ns: str, port: int) -> None:
        self.ns, self.port = ns, port
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._closed = False
        self._listener = socket_in_netns(ns)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(64)
        self._thread = threading.Thread(target=self._accept, name=f"kuberelay-{ns}",
                                        daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                inner, _ = self._listener.accept()
            except OSError:
                return
            try:
                outer = socket.create_connection(("127.0.0.1", self.port), timeout=10)
                outer.settimeout(None)
            except OSError:
                inner.close()
                continue
            with self._lock:
                if self._closed:
                    inner.close()
                    outer.close()
                    return
                self._conns += [inner, outer]
            for src, dst in ((inner, outer), (outer, inner)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True,
                                 name=f"kuberelay-{self.ns}-pump").start()

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

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._conns = self._conns, []
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()
        self._thread.join(5)
