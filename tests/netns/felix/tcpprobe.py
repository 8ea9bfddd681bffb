"""TCP probes for Felix's live tests: a server that answers `ok` on every port it is given,
and a one-connection client that says whether a port answers. Both run as `python -c` inside a
namespace (`ip netns exec`), so the probes see exactly what the namespace's traffic sees."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterable

SERVER = (
    "import socket, selectors, sys\n"
    "sel = selectors.DefaultSelector()\n"
    "for port in map(int, sys.argv[1:]):\n"
    "    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
    "    s.bind(('0.0.0.0', port)); s.listen(16); sel.register(s, selectors.EVENT_READ)\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    for key, _ in sel.select():\n"
    "        c, _ = key.fileobj.accept(); c.sendall(b'ok'); c.close()\n"
)
"""argv: the ports. Prints `ready` once every port listens."""
CLIENT = (
    "import socket, sys\n"
    "try:\n"
    "    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)\n"
    "    sys.exit(0 if c.recv(2) == b'ok' else 1)\n"
    "except OSError:\n"
    "    sys.exit(1)\n"
)
"""argv: address, port. Exits 0 when the server there answered `ok`."""


def serve(ns: str, ports: Iterable[int]) -> subprocess.Popen[bytes]:
    """A SERVER in namespace `ns` listening on `ports`, returned once it is ready (the caller
    kills it); killed here if it never gets ready."""
    server = subprocess.Popen(
        ["ip", "netns", "exec", ns, sys.executable, "-c", SERVER, *map(str, ports)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == b"ready"
    except BaseException:
        server.kill()
        server.wait(10)
        raise
    return server


def answers(ns: str, ip: str, port: int) -> bool:
    """Whether a SERVER at `ip`:`port` answers a new connection from namespace `ns`."""
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", CLIENT, ip,
                        str(port)], capture_output=True, timeout=30, check=False)
    return r.returncode == 0
