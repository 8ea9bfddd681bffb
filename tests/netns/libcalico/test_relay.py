"""libcalico.relay on a real namespace: a client inside the namespace reaches a server on the
root namespace's loopback through the relay, both directions and half-closes pass, cut
connections end while new ones are still relayed, a target that refuses closes the client,
and after close() nothing listens."""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from collections.abc import Iterator

import pytest

from libcalico.relay import Relay, socket_in_netns
from tests.fixtures.netns import NetnsFactory

pytestmark = [pytest.mark.netns]


class Echo:
    """A server on 127.0.0.1 in the root namespace that echoes until the peer half-closes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(c,), daemon=True).start()

    @staticmethod
    def _echo(c: socket.socket) -> None:
        with c, contextlib.suppress(OSError):
            while data := c.recv(65536):
                c.sendall(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


@pytest.fixture
def ns() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    nf = NetnsFactory()
    try:
        yield nf.new("relay")
    finally:
        nf.cleanup()


def _connect(ns: str, port: int) -> socket.socket:
    c = socket_in_netns(ns)
    c.settimeout(10)
    c.connect(("127.0.0.1", port))
    return c


def _read_all(c: socket.socket) -> bytes:
    out = b""
    while data := c.recv(65536):
        out += data
    return out


def test_client_in_namespace_reaches_root_loopback_server(ns: str) -> None:
    echo = Echo()
    relay = Relay(ns, ("127.0.0.1", 7001), ("127.0.0.1", echo.port))
    try:
        with _connect(ns, 7001) as c:
            payload = b"x" * 200_000

            def send() -> None:
                c.sendall(payload)
                c.shutdown(socket.SHUT_WR)

            threading.Thread(target=send, daemon=True).start()
            assert _read_all(c) == payload  # both ways, and the half-close passes through
    finally:
        relay.close()
        echo.close()


def test_dropped_connections_end_and_new_ones_are_relayed(ns: str) -> None:
    echo = Echo()
    relay = Relay(ns, ("127.0.0.1", 7002), ("127.0.0.1", echo.port))
    try:
        with _connect(ns, 7002) as old:
            old.sendall(b"a")
            assert old.recv(1) == b"a"
            relay.drop_connections()
            assert _read_all(old) == b""
        with _connect(ns, 7002) as new:
            new.sendall(b"b")
            assert new.recv(1) == b"b"
    finally:
        relay.close()
        echo.close()


def test_refusing_target_closes_the_client_and_close_stops_listening(ns: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as s:
        dead = s.getsockname()[1]  # closed below: nothing listens there
    relay = Relay(ns, ("127.0.0.1", 7003), ("127.0.0.1", dead), connect_timeout=2)
    try:
        with _connect(ns, 7003) as c:
            assert _read_all(c) == b""
    finally:
        relay.close()
    with pytest.raises(ConnectionRefusedError):
        _connect(ns, 7003)
