"""A client for BIRD's control socket (what `birdc -s SOCKET` speaks), with a timeout.

Shared by calico-node (health) and calicoctl (`node status`); the reply parser is the pure
`libcalico.bird`."""

from __future__ import annotations

import socket
import time

from libcalico import bird
from libcalico.errors import CommandFailed

BIRD_SOCKET = "/var/run/calico/bird.ctl"
BIRD6_SOCKET = "/var/run/calico/bird6.ctl"


def query(path: str, command: str, timeout: float = 5.0) -> str:
    """Send one command and return the whole reply (greeting included).

    Raises CommandFailed when the socket cannot be reached or the reply does not end."""
    argv = ("bird-socket", path, command)
    deadline = time.monotonic() + timeout
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            greeting = _read_until(s, lambda t: "\n" in t, deadline)
            s.sendall(command.encode() + b"\n")
            reply = _read_until(s, bird.reply_complete, deadline)
    except OSError as exc:
        raise CommandFailed(argv, None, "", str(exc), reason="could not talk to BIRD") from exc
    return greeting + reply


def _read_until(s: socket.socket, done: object, deadline: float) -> str:
    buf = b""
    check = done if callable(done) else (lambda t: True)
    while True:
        text = buf.decode(errors="replace")
        if check(text) and text.endswith("\n"):
            return text
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no complete reply from BIRD")
        s.settimeout(remaining)
        chunk = s.recv(65536)
        if not chunk:
            raise ConnectionError("BIRD closed the control socket")
        buf += chunk


def show_protocols(path: str, timeout: float = 5.0) -> tuple[bird.Protocol, ...]:
    return bird.parse_protocols(query(path, "show protocols", timeout))
