"""The plugins' fast path: hand the call to a resident helper when one is running.

A CNI plugin is a new process for every container operation, and most of an ADD's time is
the interpreter importing the plugin. `python -m calico_cni.helper` keeps everything
imported and forks a child per call; the plugin process then only needs this module (os,
sys, socket, json) to pass its environment and stdin over a unix socket and print the answer.
Without a helper (no socket, or nobody listening) the plugin runs the call itself, so the
helper is an optimisation, never a dependency.

Only the standard library is imported here, on purpose.
"""

from __future__ import annotations

import json
import os
import socket
import sys

DEFAULT_SOCKET = "/var/run/calico/cni-helper.sock"
ENV_SOCKET = "CALICO_CNI_HELPER_SOCKET"
TIMEOUT = 150.0


def socket_path() -> str | None:
    path = os.environ.get(ENV_SOCKET, DEFAULT_SOCKET)
    return None if path in ("", "none") else path


def try_relay(plugin: str) -> int | None:
    """Run the call through the helper; None when there is no helper to ask."""
    path = socket_path()
    if path is None or not os.path.exists(path):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError:
        sock.close()
        return None
    try:
        sock.settimeout(TIMEOUT)
        stdin = b"" if os.environ.get("CNI_COMMAND") == "VERSION" else sys.stdin.buffer.read()
        request = {"plugin": plugin, "env": dict(os.environ),
                   "stdin": stdin.decode("utf-8", "surrogateescape")}
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
        answer = json.loads(data)
        sys.stdout.write(answer["stdout"])
        if answer.get("stderr"):
            sys.stderr.write(answer["stderr"])
        return int(answer["rc"])
    except (OSError, ValueError, KeyError) as exc:
        # The helper took the call and then failed us: the call may have been (partly)
        # done, so running it again here could double it. Let the runtime retry.
        sys.stdout.write(json.dumps({"code": 11, "msg": f"CNI helper at {path} failed: {exc}",
                                     "details": f"retry; unset {ENV_SOCKET} or stop the "
                                                "helper to run without it"}))
        return 1
    finally:
        sock.close()
