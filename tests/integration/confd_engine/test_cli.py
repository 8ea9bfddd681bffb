"""The calico-confd command line: the offline `render` subcommand and start-up errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.integration.confd_engine import cluster as c

SNAPSHOT = """\
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: n1}
spec: {bgp: {ipv4Address: 10.20.0.1/24}}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: n2}
spec: {bgp: {ipv4Address: 10.20.0.2/24}}
"""


def confd(*args: str) -> subprocess.CompletedProcess[str]:
    env = c.env("http://127.0.0.1:1", "")
    env.pop("NODENAME")
    return subprocess.run([sys.executable, "-m", "confd", *args], env=env, cwd=c.REPO,
                          capture_output=True, text=True, timeout=60, check=False)


def test_render_writes_the_six_files_without_a_datastore(tmp_path: Path) -> None:
    (tmp_path / "snap.yaml").write_text(SNAPSHOT)
    r = confd("render", "--node", "n1", "--from", str(tmp_path / "snap.yaml"),
              "--out", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(c.FILES)
    assert "protocol bgp Mesh_10_20_0_2" in (tmp_path / "out" / "bird.cfg").read_text()


def test_render_rejects_bad_input_and_writes_nothing(tmp_path: Path) -> None:
    (tmp_path / "snap.yaml").write_text(SNAPSHOT.replace("10.20.0.2/24", "not-an-ip"))
    r = confd("render", "--node", "n1", "--from", str(tmp_path / "snap.yaml"),
              "--out", str(tmp_path / "out"))
    assert r.returncode == 1
    assert "spec.bgp.ipv4Address" in r.stderr and "not-an-ip" in r.stderr, r.stderr
    assert not (tmp_path / "out").exists()


def test_daemon_without_node_name_fails(tmp_path: Path) -> None:
    r = confd("--onetime", "--confdir", str(c.REPO))
    assert r.returncode == 1
    assert "NODENAME" in r.stderr


def test_missing_template_is_a_startup_error(tmp_path: Path) -> None:
    confdir = c.make_confdir(tmp_path, reload_log=tmp_path / "r", copy_templates=True)
    (confdir / "templates" / "bird_aggr.cfg.template").unlink()
    r = confd("--onetime", "--node", "n1", "--confdir", str(confdir))
    assert r.returncode == 1
    assert "bird_aggr.cfg.template not found" in r.stderr
