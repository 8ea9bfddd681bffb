"""The calico-node image, built with podman from a debootstrap base (docker/build.sh) in a
private podman store, starts against the test etcd inside a node namespace and peers by BGP
with a node running calico-node natively."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from calico_node.demo import cluster as clustermod
from calico_node.demo import lab as labmod
from calico_node.demo import plan
from libcalico.datastore.etcd import EtcdBackend
from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.bird]

ROOT = Path(__file__).resolve().parents[3]
IMAGE = "localhost/calico-py/node:test"


@pytest.fixture
def podman() -> Iterator[list[str]]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    exe = shutil.which("podman")
    assert exe and shutil.which("runc") and shutil.which("debootstrap"), \
        "podman, runc and debootstrap must be installed (.ci/packages.txt)"
    state = Path(tempfile.mkdtemp(prefix="cpn", dir="/tmp"))
    base = [exe, "--runtime", "runc", "--cgroup-manager=cgroupfs", "--root", str(state / "s"),
            "--runroot", str(state / "r"), "--storage-driver", "vfs"]
    try:
        yield base
    finally:
        subprocess.run([*base, "rm", "-a", "-f", "-t", "0"], capture_output=True, check=False)
        subprocess.run([*base, "rmi", "-a", "-f"], capture_output=True, check=False)
        subprocess.run(["umount", "-R", str(state / "r")], capture_output=True, check=False)
        subprocess.run(["umount", "-R", str(state / "s")], capture_output=True, check=False)
        shutil.rmtree(state, ignore_errors=True)


def _diagnose(podman: list[str], name: str) -> str:
    state = subprocess.run([*podman, "inspect", "--format",
                            "{{.State.Status}} exit={{.State.ExitCode}}", name],
                           capture_output=True, text=True, check=False)
    logs = subprocess.run([*podman, "logs", "--tail", "60", name], capture_output=True,
                          text=True, check=False)
    return f"\ncontainer: {state.stdout.strip()}\n{logs.stdout[-4000:]}{logs.stderr[-4000:]}"


def test_image_starts_and_peers_with_a_native_node(etcd: EtcdServer,
                                                   podman: list[str]) -> None:
    had_build_dir = (ROOT / "build").exists()
    build = subprocess.run(["bash", str(ROOT / "docker" / "build.sh"), IMAGE],
                           env={**os.environ, "PODMAN": " ".join(podman)},
                           capture_output=True, text=True, timeout=900, check=False)
    if build.returncode != 0 and "runc" in build.stderr and "RUN" not in build.stderr:
        pytest.skip(f"podman cannot run containers on this kernel: {build.stderr[-500:]}")
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    assert not (ROOT / "build" / "wheels").exists()
    assert (ROOT / "build").exists() == had_build_dir

    lab = labmod.Lab(f"ct{os.getpid()}i", Path(tempfile.mkdtemp(prefix="calico-img-")))
    backend = EtcdBackend([etcd.endpoint])
    cl = clustermod.Cluster(clustermod.Options(nodes=2, edge=False), lab, etcd.endpoint,
                            backend, say=print)
    name = f"calico-node-test-{os.getpid()}"
    try:
        lab.ensure_mountpoints()
        cl.build_underlay()
        cl.seed()
        n1, n2 = (cl.add_node(p) for p in plan.nodes(2, False))
        env = cl.node_env(n1)
        run = [*podman, "run", "-d", "--name", name, "--privileged",
               "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
               "--network", f"ns:/run/netns/{n1.ns}",
               "-v", f"{n1.dir / 'run'}:/var/run/calico",
               "-v", f"{n1.dir / 'lib'}:/var/lib/calico"]
        for k in ("NODENAME", "ETCD_ENDPOINTS", "DATASTORE_TYPE", "IP_AUTODETECTION_METHOD",
                  "CALICO_IPV4POOL_CIDR", "CALICO_NETWORKING_BACKEND", "FELIX_IPV6SUPPORT"):
            run += ["-e", f"{k}={env[k]}"]
        r = subprocess.run([*run, IMAGE], capture_output=True, text=True, timeout=120,
                           check=False)
        assert r.returncode == 0, r.stderr
        cl.start_node(n2)
        cl.wait_started([n2])
        deadline = time.monotonic() + 90
        while not (n1.dir / "lib" / "nodename").exists():
            logs = subprocess.run([*podman, "logs", name], capture_output=True, text=True,
                                  check=False)
            assert time.monotonic() < deadline, f"container startup: {logs.stdout}{logs.stderr}"
            time.sleep(0.5)
        node = json.loads(backend.get(keys.resource_key("Node", "node-1")).value)
        assert node["spec"]["bgp"]["ipv4Address"] == str(n1.plan.ip)
        # BGP between the container's BIRD and the native node's BIRD
        cl.wait_established(timeout=90)
        assert {str(p.address) for p in cl.peers(n1) if p.established} == {
            str(n2.plan.ip.ip)}
        deadline = time.monotonic() + 90
        while True:
            chk = subprocess.run([*podman, "exec", name, "calico-node", "-felix-ready",
                                  "-bird-ready"], capture_output=True, text=True, timeout=60,
                                 check=False)
            if chk.returncode == 0:
                break
            assert time.monotonic() < deadline, chk.stdout + chk.stderr + _diagnose(podman, name)
            time.sleep(1)
        status = subprocess.run([*podman, "exec", name, "calicoctl", "node", "status"],
                                capture_output=True, text=True, timeout=60, check=False)
        assert "node-to-node mesh" in status.stdout, status.stdout + status.stderr + \
            _diagnose(podman, name)
    finally:
        subprocess.run([*podman, "rm", "-f", "-t", "10", name], capture_output=True,
                       check=False)
        cl.close()
        backend.close()
        lab.close()
