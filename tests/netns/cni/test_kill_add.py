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


def test_kill_during_calico_add(etcd: EtcdServer, netns_factory: NetnsFactory,
                                tmp_path: Path) -> None:
    be = GatewayBackend([etcd.endpoint])
    seed.cluster(be, ["kill-node"], {"p": {"cidr": "10.194.0.0/24", "blockSize": 29}})
    conf = {"cniVersion": "1.0.0", "name": "killnet", "type": "calico",
            "etcd_endpoints": etcd.endpoint, "nodename": "kill-node",
            "ipam_lock_file": str(tmp_path / "lock"), "ipam": {"type": "calico-ipam"}}
    rng = random.Random(4321)
    runs = []
    try:
        for i in range(16):
            ns = netns_factory.new(f"kill{i}")
            cid = f"killadd{i:05d}"
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
        runs.append(("killaddnext", f"/var/run/netns/{ns}"))
        rc, out = cnirun.run("ADD", conf, cid="killaddnext", netns=f"/var/run/netns/{ns}")
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
