"""Resident CNI helper: `python -m calico_cni.helper [--socket PATH]`.

Listens on a unix socket (mode 0600, default /var/run/calico/cni-helper.sock) with every
plugin module already imported, and forks one child per call: the child runs the call with
the caller's environment and stdin exactly as the plugin process would (its own datastore
connection, its own namespace switches), writes the answer and exits. Forking keeps calls
isolated from each other and from the helper, and lets them run concurrently (the host IPAM
lock still serialises address assignment). SIGTERM/SIGINT stop it and remove the socket.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import signal
import socket
import sys

from calico_cni import context, ipam_plugin, plugin
from calico_cni.relay import DEFAULT_SOCKET, decode_request, read_frame

log = logging.getLogger("calico_cni.helper")

HANDLERS = {"calico": plugin.handle, "calico-ipam": ipam_plugin.handle}


def preload() -> None:
    """Import what calls import lazily (so that no child pays for it)."""
    import datetime  # noqa: F401 - block reclaim age
    import hashlib  # noqa: F401 - k8s veth names
    import random  # noqa: F401 - block candidates

    from calico_cni import (
        kdd,  # noqa: F401 - datastore_type kubernetes (the Kubernetes backend and client)
        kube,  # noqa: F401 - policy.type k8s
        wiring,
    )

    wiring.libc()  # ctypes and the libc handle for setns


def serve_one(conn: socket.socket) -> None:
    """Child side: read one request, run it, answer."""
    plugin_name, env, stdin = decode_request(read_frame(conn.recv))
    handler = HANDLERS[plugin_name]
    out = io.StringIO()
    rc = context.run(handler, environ=env, stdin=stdin, out=out)
    # logged before the answer: once the plugin has its answer, the log says so
    log.info("served %s %s rc=%d", plugin_name, env.get("CNI_COMMAND"), rc)
    body = b"%d\n" % rc + out.getvalue().encode()
    conn.sendall(b"%d\n" % len(body) + body)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="calico-cni-helper", description=__doc__)
    ap.add_argument("--socket", default=DEFAULT_SOCKET)
    args = ap.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    preload()
    path = args.socket
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.exists(path):
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(path)
            sys.exit(f"another helper is listening on {path}")
        except OSError:
            os.unlink(path)  # stale socket from a helper that died
        finally:
            probe.close()
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        srv.bind(path)
    finally:
        os.umask(old_umask)
    srv.listen(128)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel

    def stop(_sig: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    log.info("CNI helper listening on %s", path)
    try:
        while True:
            conn, _ = srv.accept()
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    srv.close()
                    signal.signal(signal.SIGTERM, signal.SIG_DFL)
                    signal.signal(signal.SIGINT, signal.SIG_DFL)
                    # with SIGCHLD ignored, waitpid() fails and subprocess would report
                    # every `ip` as successful: the child must reap its own children
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    serve_one(conn)
                except BaseException:  # the child must never return into the accept loop
                    log.exception("CNI helper call failed")
                    code = 1
                finally:
                    conn.close()
                    os._exit(code)
            conn.close()
    finally:
        srv.close()
        if os.path.exists(path):
            os.unlink(path)
        log.info("CNI helper stopped")


if __name__ == "__main__":
    main()
