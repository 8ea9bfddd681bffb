"""A real container runtime drives the plugins: Debian's podman (CNI network backend) starts
a busybox container (an image made with `podman import` from Debian's busybox-static) through
a conflist of `calico` (with `calico-ipam`) chained with Debian's `portmap`. The container gets
a Calico address, the host reaches it, and removing the container releases the address and
the endpoint."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libcalico.datastore.gateway import GatewayBackend
from libcalico.ipam.check import check
from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer
from tests.integration.ipam import seed
from tests.netns.cni import cnirun

pytestmark = pytest.mark.netns
PODMAN = shutil.which("podman")
BUSYBOX = "/bin/busybox"


@pytest.fixture
def podman(etcd: EtcdServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    if PODMAN is None or shutil.which("runc") is None or not os.path.exists(BUSYBOX):
        pytest.fail("podman, runc and busybox-static must be installed (.ci/packages.txt)")
    rootfs = tmp_path / "rootfs"
    for d in ("bin", "proc", "sys", "dev", "etc", "tmp"):
        (rootfs / d).mkdir(parents=True)
    shutil.copy(BUSYBOX, rootfs / "bin" / "busybox")
    for c in ("sh", "ip", "sleep", "cat"):
        (rootfs / "bin" / c).symlink_to("busybox")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "calico").symlink_to(cnirun.CALICO)
    (plugins / "calico-ipam").symlink_to(cnirun.CALICO_IPAM)
    netdir = tmp_path / "net"
    netdir.mkdir()
    (netdir / "calipod.conflist").write_text(json.dumps({
        "cniVersion": "1.0.0", "name": "calipod", "plugins": [
            {"type": "calico", "etcd_endpoints": etcd.endpoint, "nodename": "pod-node",
             "ipam_lock_file": str(tmp_path / "ipam.lock"), "ipam": {"type": "calico-ipam"}},
            {"type": "portmap", "snat": True, "capabilities": {"portMappings": True}},
        ]}))
    conf = tmp_path / "containers.conf"
    conf.write_text(
        "[containers]\n"
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]\n'
        "[network]\n"
        'network_backend = "cni"\n'
        f'cni_plugin_dirs = ["{plugins}", "/usr/lib/cni"]\n'
        f'network_config_dir = "{netdir}"\n')
    be = GatewayBackend([etcd.endpoint])
    seed.cluster(be, ["pod-node"], {"podpool": {"cidr": "10.198.0.0/24", "blockSize": 28}})
    state = Path(tempfile.mkdtemp(prefix="cpm", dir="/tmp"))  # podman wants a short runroot
    base = [PODMAN, "--runtime", "runc", "--cgroup-manager=cgroupfs",
            "--root", str(state / "s"), "--runroot", str(state / "r"),
            "--tmpdir", str(state / "t"), "--events-backend", "none",
            "--storage-driver", "vfs"]
    # (libcni's result cache /var/lib/cni and podman's blob cache under /var/lib/containers
    # are fixed paths shared with any other podman user on the machine: left alone)
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    names: list[str] = []

    def pm(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([*base, *args], env=env, capture_output=True, text=True,
                           timeout=120, check=False)
        if check and r.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {r.stdout}{r.stderr}")
        return r

    # an image made from Debian's busybox-static with `podman import` (no registry)
    tarball = tmp_path / "busybox.tar"
    with tarfile.open(tarball, "w") as tf:
        tf.add(rootfs, arcname=".")
    pm("import", str(tarball), "localhost/calico-test-busybox:latest")
    yield {"pm": pm, "image": "localhost/calico-test-busybox:latest", "be": be, "names": names}
    for n in names:
        pm("rm", "-f", "-t", "0", n, check=False)
    pm("rmi", "-f", "localhost/calico-test-busybox:latest", check=False)
    _wait_for_podman_helpers(str(state))
    subprocess.run(["umount", "-R", str(state / "r")], capture_output=True, check=False)
    shutil.rmtree(state, ignore_errors=True)
    be.close()


def _wait_for_podman_helpers(state: str, timeout: float = 15.0) -> None:
    """conmon starts `podman container cleanup` after the container exits; wait until no
    process using this test's podman state is left (they exit by themselves) before the
    state directory is removed."""
    deadline = time.monotonic() + timeout
    idle_since: float | None = None
    while time.monotonic() < deadline:
        busy = False
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if state.encode() in cmdline:
                busy = True
                break
        now = time.monotonic()
        if busy:
            idle_since = None
        elif idle_since is None:
            idle_since = now
        elif now - idle_since >= 1.5:  # conmon's exit command starts just after it exits
            return
        time.sleep(0.05)


def test_podman_container_gets_calico_address(podman: dict[str, Any]) -> None:
    pm, be = podman["pm"], podman["be"]
    name = f"calitest{os.getpid()}"
    podman["names"].append(name)
    pm("run", "-d", "--name", name, "--network", "calipod", podman["image"], "/bin/sleep", "600")
    cid = pm("inspect", "--format", "{{.Id}}", name).stdout.strip()
    out = pm("exec", name, "/bin/ip", "-4", "addr", "show", "eth0").stdout
    addr = next(line.split()[1] for line in out.splitlines() if "inet " in line)
    assert addr.startswith("10.198.0.") and addr.endswith("/32"), out
    ip = addr.split("/")[0]
    routes = pm("exec", name, "/bin/ip", "route").stdout
    assert "default via 169.254.1.1 dev eth0" in routes

    weps = [json.loads(kv.value) for kv in
            be.list(keys.resource_prefix("WorkloadEndpoint")).kvs]
    assert [w["spec"]["containerID"] for w in weps] == [cid]
    assert weps[0]["spec"]["ipNetworks"] == [addr]
    veth = weps[0]["spec"]["interfaceName"]
    assert veth == "cali" + cid[:11]

    r = subprocess.run(["ping", "-c", "1", "-W", "2", ip], capture_output=True, text=True,
                       timeout=30, check=False)
    assert r.returncode == 0, r.stdout + r.stderr

    pm("rm", "-f", "-t", "0", name)
    podman["names"].remove(name)
    assert be.list(keys.resource_prefix("WorkloadEndpoint")).kvs == ()
    assert be.list(keys.HANDLE_PREFIX).kvs == ()
    assert subprocess.run(["ip", "link", "show", veth], capture_output=True,
                          check=False).returncode != 0
    report = check(be)
    assert report.clean and report.allocations == {}, report.lines()
