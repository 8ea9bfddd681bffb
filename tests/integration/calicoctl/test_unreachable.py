"""calicoctl with no reachable datastore answers at once (no 10 s call deadline) with the
endpoint it tried, in each command's words, and exit status 1 (as calicoctl)."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.calicoctl.conftest import CALICOCTL


@pytest.fixture
def closed_endpoint() -> Iterator[str]:
    """A loopback port bound and never listened on: every connection is refused, and no
    other process can take the port while the test runs."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{s.getsockname()[1]}"
    finally:
        s.close()


def run(args: list[str], endpoint: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    cfg = tmp_path / "calicoctl.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
                   f"spec:\n  datastoreType: etcdv3\n  etcdEndpoints: {endpoint}\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ETCD_", "CALICO_", "DATASTORE_"))}
    return subprocess.run([str(CALICOCTL), *args, "--config", str(cfg)], capture_output=True,
                          text=True, timeout=60, check=False,
                          env={**env, "GRPC_ENABLE_FORK_SUPPORT": "false"})


def test_version_names_the_endpoint(closed_endpoint: str, tmp_path: Path) -> None:
    r = run(["version"], closed_endpoint, tmp_path)
    assert r.returncode == 1, r
    assert r.stdout.startswith("Client Version:"), r.stdout
    assert "Unable to retrieve Cluster Version or Type: " in r.stderr, r.stderr
    assert f"etcd {closed_endpoint} unavailable" in r.stderr
    assert "Connection refused" in r.stderr


@pytest.mark.parametrize(("args", "words"), [
    (["get", "ippools"], "Failed to get resources: "),
    (["ipam", "show"], ""),
])
def test_datastore_commands_name_the_endpoint(closed_endpoint: str, tmp_path: Path,
                                              args: list[str], words: str) -> None:
    r = run(args, closed_endpoint, tmp_path)
    assert r.returncode == 1, r
    assert f"{words}etcd {closed_endpoint} unavailable: cannot connect" in r.stderr, r.stderr


def test_every_endpoint_tried_is_named(closed_endpoint: str, tmp_path: Path) -> None:
    other = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    other.bind(("127.0.0.1", 0))
    try:
        second = f"http://127.0.0.1:{other.getsockname()[1]}"
        r = run(["get", "nodes"], f"{closed_endpoint},{second}", tmp_path)
    finally:
        other.close()
    assert r.returncode == 1, r
    assert f"etcd {closed_endpoint} unavailable" in r.stderr
    assert f"etcd {second} unavailable" in r.stderr
