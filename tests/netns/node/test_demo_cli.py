"""The README's first command: `calico-node demo` end to end, leaving nothing behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from calico_node.demo import lab as labmod

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.bird]

BIN = Path(sys.executable).parent


def demo(*args: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    return subprocess.run([str(BIN / "calico-node"), "demo", *args], capture_output=True,
                          text=True, timeout=300, check=False,
                          env={**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "false"})


def leftovers() -> list[str]:
    ns = [e.name for e in labmod.NETNS_DIR.glob("cdemo*")] if labmod.NETNS_DIR.is_dir() else []
    return ns + [m for m in labmod.MOUNTPOINTS if Path(m).exists()]


def test_demo_reaches_every_pod_and_cleans_up() -> None:
    before = leftovers()
    r = demo("--nodes", "2", "--pods", "2")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = r.stdout
    assert "reachability: 12/12 pod pairs" in out
    assert out.count("Calico process is running.") == 2
    assert "| PEER ADDRESS |" in out and "Established" in out
    assert "=== workload endpoints" in out and out.count("-cni-") == 4
    assert "edge router:" in out
    assert "done: no namespace, process or file left" in out
    assert leftovers() == before


def test_ipip_without_kernel_module_says_so() -> None:
    before = leftovers()
    r = demo("--encap", "ipip", "--nodes", "2", "--pods", "1")
    if r.returncode == 2:
        assert "ipip module" in r.stderr
        print(f"ipip not available on this kernel: {r.stderr.strip()}")
    else:  # a kernel with ipip runs the demo for real
        assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
        assert "reachability: 2/2 pod pairs" in r.stdout
    assert leftovers() == before


def test_bad_arguments_exit_2() -> None:
    r = demo("--nodes", "0")
    assert r.returncode == 2 and "--nodes must be between 1 and 40" in r.stderr
