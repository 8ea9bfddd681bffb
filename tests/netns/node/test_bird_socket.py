"""calico-node's BIRD socket client, readiness checks and `calicoctl node status` against a
real BIRD (Debian 1.6) in a namespace, and the Felix checks against a real HTTP endpoint."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from calico_node import health
from libcalico import bird, birdctl
from tests.fixtures.netns import NetnsFactory

pytestmark = [pytest.mark.netns, pytest.mark.bird]

BIN = Path(sys.executable).parent
CONFIG = """router id 10.77.0.1;
protocol device {}
protocol bgp Mesh_10_77_0_2 { local 10.77.0.1 as 64512; neighbor 10.77.0.2 as 64512; }
protocol bgp Global_10_77_0_9 { local 10.77.0.1 as 64512; neighbor 10.77.0.9 as 65000; }
"""


@pytest.fixture
def bird_socket(netns_factory: NetnsFactory, tmp_path: Path) -> Iterator[Path]:
    ns = netns_factory.new("node-bird")
    subprocess.run(["ip", "-n", ns, "addr", "add", "10.77.0.1/24", "dev", "lo"], check=True)
    cfg = tmp_path / "bird.cfg"
    cfg.write_text(CONFIG)
    sock = tmp_path / "bird.ctl"
    p = subprocess.Popen(["ip", "netns", "exec", ns, "bird", "-d", "-c", str(cfg), "-s",
                          str(sock)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            assert time.monotonic() < deadline, "bird did not create its socket"
            time.sleep(0.05)
        yield sock
    finally:
        p.terminate()
        p.wait(10)


def test_show_protocols_from_real_bird(bird_socket: Path) -> None:
    protos = birdctl.show_protocols(str(bird_socket))
    assert {p.name for p in protos} >= {"device1", "Mesh_10_77_0_2", "Global_10_77_0_9"}
    peers = bird.peers(protos)
    assert [(str(p.address), p.peer_type) for p in peers] == [
        ("10.77.0.2", "node-to-node mesh"), ("10.77.0.9", "global")]
    assert not any(p.established for p in peers)


def test_bird_ready_and_live_checks(bird_socket: Path, tmp_path: Path) -> None:
    env = {"CALICO_NODENAME_FILE": str(tmp_path / "nodename")}
    (tmp_path / "nodename").write_text("node-1")
    v = health.bird_ready(str(bird_socket), env, time.time())
    assert not v.ok and "10.77.0.2" in v.reason
    assert health.bird_live(str(bird_socket)).ok
    gone = health.bird_ready(str(tmp_path / "missing.ctl"), env, time.time())
    assert not gone.ok and "not ready" in gone.reason
    # the command line: exit 1 and the reason on stderr
    r = subprocess.run([str(BIN / "calico-node"), "-bird-ready", "-bird-live"],
                       env={**os.environ, **env, "CALICO_RUN_DIR": str(tmp_path)},
                       capture_output=True, text=True, timeout=30, check=False)
    assert r.returncode == 1
    assert "BGP sessions not established: 10.77.0.2, 10.77.0.9" in r.stderr
    assert "BIRD is live" in r.stdout


class _Health(http.server.BaseHTTPRequestHandler):
    ready = True

    def do_GET(self) -> None:
        ok = self.path == "/liveness" or (self.path == "/readiness" and _Health.ready)
        self.send_response(200 if ok else 503)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def test_felix_checks_against_http_endpoint() -> None:
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Health)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        env = {"FELIX_HEALTHHOST": "127.0.0.1", "FELIX_HEALTHPORT": str(srv.server_port)}
        assert health.felix_check(env, "/readiness").ok
        assert health.felix_check(env, "/liveness").ok
        _Health.ready = False
        v = health.felix_check(env, "/readiness")
        assert not v.ok and "HTTP 503" in v.reason
    finally:
        srv.shutdown()
        srv.server_close()
    v = health.felix_check(env, "/readiness")
    assert not v.ok and "Felix is not ready" in v.reason
