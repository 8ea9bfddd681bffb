"""The plugins' fast path: hand the call to a resident helper when one is running.

A CNI plugin is a new process for every container operation, and most of an ADD's time is
the interpreter importing the plugin. `python -m calico_cni.helper` keeps everything
imported and forks a child per call; the plugin process then only needs this module to pass
its environment and stdin over a unix socket and print the answer. Without a helper (no
socket, or nobody listening) the plugin runs the call itself, so the helper is an
optimisation, never a dependency.

Wire format (both directions length-prefixed, so no JSON codec is needed on this side):
request  = b"%d\\n" % len(body) + body, body = plugin NUL (KEY=VALUE NUL)* NUL stdin
answer   = b"%d\\n" % len(body) + body, body = b"<rc>\\n" + stdout bytes

Only C-level modules are imported here, on purpose: this runs on every ADD.
"""

from __future__ import annotations

import _socket
import os
import sys

DEFAULT_SOCKET = "/var/run/calico/cni-helper.sock"
ENV_SOCKET = "CALICO_CNI_HELPER_SOCKET"
TIMEOUT = 150.0


def exit_now(rc: int) -> None:
    """End the plugin process: flush what it printed and exit without the interpreter's
    teardown (freeing every module costs more than a whole DEL's datastore work). Nothing
    is left to clean up by then: the datastore connection and the lock are closed."""
    for stream in (sys.stdout, sys.stderr):
        try:  # noqa: SIM105 - contextlib is not a C-level module (see above)
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(rc)


def socket_path() -> str | None:
    path = os.environ.get(ENV_SOCKET, DEFAULT_SOCKET)
    return None if path in ("", "none") else path


def encode_request(plugin: str, env: dict[str, str], stdin: bytes) -> bytes:
    parts = [plugin.encode()]
    parts += [f"{k}={v}".encode("utf-8", "surrogateescape") for k, v in env.items()
              if "\0" not in k and "\0" not in v]
    body = b"\0".join(parts) + b"\0\0" + stdin
    return b"%d\n" % len(body) + body


def decode_request(body: bytes) -> tuple[str, dict[str, str], bytes]:
    head, _, stdin = body.partition(b"\0\0")
    items = head.split(b"\0")
    env = {}
    for item in items[1:]:
        k, _, v = item.decode("utf-8", "surrogateescape").partition("=")
        env[k] = v
    return items[0].decode(), env, stdin


def read_frame(recv: object) -> bytes:
    """One length-prefixed frame from `recv(n) -> bytes`."""
    buf = b""
    fn = recv  # typed loosely: socket.recv and _socket.socket.recv both fit
    while b"\n" not in buf:
        chunk = fn(65536)  # type: ignore[operator]
        if not chunk:
            raise ConnectionResetError("connection closed before the frame header")
        buf += chunk
    head, _, rest = buf.partition(b"\n")
    size = int(head)
    while len(rest) < size:
        chunk = fn(max(65536, size - len(rest)))  # type: ignore[operator]
        if not chunk:
            raise ConnectionResetError("connection closed mid-frame")
        rest += chunk
    return rest[:size]


def try_relay(plugin: str) -> int | None:
    """Run the call through the helper; None when there is no helper to ask."""
    path = socket_path()
    if path is None or not os.path.exists(path):
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    try:
        sock.settimeout(TIMEOUT)
        stdin = b"" if os.environ.get("CNI_COMMAND") == "VERSION" else sys.stdin.buffer.read()
        sock.sendall(encode_request(plugin, dict(os.environ), stdin))
        answer = read_frame(sock.recv)
        rc, _, out = answer.partition(b"\n")
        sys.stdout.buffer.write(out)
        sys.stdout.flush()
        return int(rc)
    except (OSError, ValueError) as exc:
        # The helper took the call and then failed us: the call may have been (partly)
        # done, so running it again here could double it. Let the runtime retry.
        import json  # the error path only

        sys.stdout.write(json.dumps({
            "code": 11, "msg": f"CNI helper at {path} failed: {exc}",
            "details": f"retry; unset {ENV_SOCKET} or stop the helper to run without it"}))
        return 1
    finally:
        sock.close()
