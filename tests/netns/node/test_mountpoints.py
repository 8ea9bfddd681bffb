"""Concurrent demos/tests share calico-node's mountpoints: a run that finishes never removes
a mountpoint another run still has a node mounted on; the last one removes them."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from calico_node.demo import lab as labmod


def test_mountpoint_kept_while_another_run_uses_it(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    existed = {m: Path(m).exists() for m in labmod.MOUNTPOINTS}
    a = labmod.Lab("ctmpa", Path(tempfile.mkdtemp(prefix="calico-mp-")))
    b = labmod.Lab("ctmpb", Path(tempfile.mkdtemp(prefix="calico-mp-")))
    holder: subprocess.Popen[bytes] | None = None
    try:
        a.ensure_mountpoints()
        b.ensure_mountpoints()
        assert all(Path(m).is_dir() for m in labmod.MOUNTPOINTS)
        src = tmp_path / "etc"
        src.mkdir()
        holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             f"mount --bind {src} /etc/calico && echo ready && exec sleep 60"],
            stdout=subprocess.PIPE)
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ready"
        assert labmod.mounted_anywhere("/etc/calico")
        a.close()  # a's nodes are gone, b's "node" still has /etc/calico mounted
        assert Path("/etc/calico").is_dir()
        holder.kill()
        holder.wait()
        holder = None
        b.close()
        for m, was in existed.items():
            assert Path(m).exists() == was, m
        assert not labmod.MOUNTPOINT_LEDGER.exists() or all(existed.values())
    finally:
        if holder is not None:
            holder.kill()
            holder.wait()
        a.close()
        b.close()
