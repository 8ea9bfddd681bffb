"""The `calico` plugin killed with SIGKILL at random points of ADD (IPAM, wiring, endpoint
write): everything left in the datastore is reported by the IPAM check, the next ADD settles
every unfinished block claim, and the runtime's DEL (which a runtime issues after a failed
ADD) cleans up the rest. `tests/integration/ipam/test_crash_points.py` stops an ADD after
each of its writes in turn; this test kills at random points, wiring included."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from libcalico.datastore.gateway import GatewayBackend
from libcalico.ipam.check import check
from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer
from tests.fixtures.netns import NetnsFactory
from tests.integration.ipam import seed
from tests.netns.cni import cnirun

pytestmark = pytest.mark.netns

ROOT = Path(__file__).resolve().parents[3]


def test_kill_during_calico_add(etcd: EtcdServer, netns_factory: NetnsFactory,
                                tmp_path: Path) -> None:
    be = GatewayBackend([etcd.endpoint])
    # per-run container IDs and pool: host veths and routes are in the root namespace
    run = f"{os.getpid() % 1000:03d}"
    seed.cluster(be, ["kill-node"], {"p": {"cidr": f"10.194.{os.getpid() % 256}.0/24",
                                            "blockSize": 29}})
    conf = {"cniVersion": "1.0.0", "name": "killnet", "type": "calico",
            "etcd_endpoints": etcd.endpoint, "nodename": "kill-node",
            "ipam_lock_file": str(tmp_path / "lock"), "ipam": {"type": "calico-ipam"}}
    rng = random.Random(4321)
    runs = []
    try:
        for i in range(16):
            ns = netns_factory.new(f"kill{i}")
            cid = f"k{run}add{i:04d}"
            runs.append((cid, f"/var/run/netns/{ns}"))
            env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": cid,
                   "CNI_NETNS": f"/var/run/netns/{ns}", "CNI_IFNAME": "eth0",
                   "CNI_PATH": "/usr/lib/cni", "CALICO_CNI_HELPER_SOCKET": "none"}
            p = subprocess.Popen([cnirun.CALICO], stdin=subprocess.PIPE,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
            assert p.stdin is not None
            p.stdin.write(json.dumps(conf).encode())
            p.stdin.close()
            time.sleep(rng.uniform(0.02, 0.3))
            if p.poll() is None:
                p.kill()
            p.wait()

        # the next ADD on the host settles whatever the killed ones left unfinished
        ns = netns_factory.new("killnext")
        runs.append((f"k{run}next", f"/var/run/netns/{ns}"))
        rc, out = cnirun.run("ADD", conf, cid=f"k{run}next", netns=f"/var/run/netns/{ns}")
        assert rc == 0, out

        report = check(be)
        print("\n".join(report.lines()))
        assert report.affinity_problems == [] and report.block_problems == [], report.lines()
        weps = {json.loads(kv.value)["spec"]["containerID"]
                for kv in be.list(keys.resource_prefix("WorkloadEndpoint")).kvs}
        for ip, (handle, _) in report.allocations.items():
            cid = (handle or "").split(".", 1)[1]
            if cid not in weps:
                assert (ip, handle) in report.leaked, f"{ip} of {handle} not reported"
        assert not report.in_use_unallocated and not report.duplicates
        for kv in be.list(keys.HANDLE_PREFIX).kvs:
            hid = kv.key[len(keys.HANDLE_PREFIX):]
            held = sum(1 for h, _ in report.allocations.values() if h == hid)
            if held != sum(json.loads(kv.value)["block"].values()):
                assert any(hid in p for p in report.handle_problems)
    finally:
        # what a runtime does after an ADD it saw fail: DEL
        for cid, path in runs:
            rc, out = cnirun.run("DEL", conf, cid=cid, netns=path)
            assert rc == 0, out
            subprocess.run(["ip", "link", "del", "cali" + cid[:11]], capture_output=True,
                           check=False)
    final = check(be)
    assert final.clean and final.allocations == {}, final.lines()
    assert be.list(keys.HANDLE_PREFIX).kvs == ()
    assert be.list(keys.resource_prefix("WorkloadEndpoint")).kvs == ()
    be.close()


BLOCK = 4  # addresses per block (blockSize 30)


@pytest.mark.parametrize("plain", [False, True], ids=["batch", "plain"])
def test_calico_add_stopped_after_every_write(etcd: EtcdServer, netns_factory: NetnsFactory,
                                              tmp_path: Path, plain: bool) -> None:
    """The whole `calico` ADD (IPAM, wiring, endpoint) stopped after its 1st, 2nd, … write
    while claiming the host's second block; then the DEL of an earlier container frees room
    in the first block, one more ADD (served from it) and the DELs: the check is clean."""
    be = GatewayBackend([etcd.endpoint])
    conf = {"cniVersion": "1.0.0", "name": "stopnet", "type": "calico",
            "etcd_endpoints": etcd.endpoint, "nodename": "stop-node",
            "ipam_lock_file": str(tmp_path / "lock"), "ipam": {"type": "calico-ipam"}}
    made: list[tuple[str, str]] = []
    # host veths (cali + 11 characters of the container ID) and host routes live in the root
    # namespace: a per-run token and pool keep a concurrent run of this test out of the way
    run = f"{os.getpid() % 1000:03d}"
    pool = f"10.195.{os.getpid() % 256}.0/24"

    def add(cid: str, after: int = 0, count: Path | None = None) -> int:
        """The ADD's exit status (137: stopped); a failure other than the stop raises."""
        path = f"/var/run/netns/{netns_factory.new(cid[-12:])}"
        made.append((cid, path))
        env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": cid, "CNI_NETNS": path,
               "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni",
               "CRASHPOINT_AFTER": str(after), "CRASHPOINT_PLAIN": "1" if plain else "0",
               "CRASHPOINT_COUNT": str(count or "")}
        r = subprocess.run([sys.executable, "-m", "tests.integration.ipam.crashpoint", "calico"],
                           input=json.dumps(conf), env=env, cwd=ROOT, capture_output=True,
                           text=True, timeout=120, check=False)
        assert r.returncode in (0, 137), (cid, r.returncode, r.stdout, r.stderr)
        return r.returncode

    def delete(cid: str) -> None:
        path = dict(made)[cid]
        rc, out = cnirun.run("DEL", conf, cid=cid, netns=path)
        assert rc == 0, out
        subprocess.run(["ip", "link", "del", "cali" + cid[:11]], capture_output=True,
                       check=False)

    def run_case(tag: str, after: int, count: Path | None = None) -> int:
        etcd.wipe()
        seed.cluster(be, ["stop-node"], {"p": {"cidr": pool, "blockSize": 30}})
        early = [f"{tag}early{i}" for i in range(BLOCK)]
        for cid in early:
            assert add(cid) == 0
        rc = add(f"{tag}stopped", after, count)
        return rc

    try:
        counter = tmp_path / "writes"
        assert run_case(f"{run}c", 0, counter) == 0
        total = int(counter.read_text())
        for cid, _ in list(made):
            delete(cid)
        for n in range(1, total + 1):
            tag = f"{run}n{n}"
            assert run_case(tag, n) == 137
            delete(f"{tag}early0")  # room in the first block again
            assert add(f"{tag}next") == 0
            report = check(be)
            assert report.affinity_problems == [] and report.block_problems == [], \
                (n, report.lines())
            for cid in [f"{tag}early{i}" for i in range(1, BLOCK)] + [f"{tag}stopped",
                                                                      f"{tag}next"]:
                delete(cid)
            final = check(be)
            assert final.clean and final.allocations == {}, (n, final.lines())
            assert be.list(keys.resource_prefix("WorkloadEndpoint")).kvs == ()
    finally:
        for cid, _ in made:
            subprocess.run(["ip", "link", "del", "cali" + cid[:11]], capture_output=True,
                           check=False)
        be.close()
