"""calico-ipam killed with SIGKILL at random points during ADD: whatever it leaves behind
(an address without an endpoint, a handle without addresses, an unfinished block claim) is
reported by the IPAM check, and releasing what the check reports restores a clean state."""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

from libcalico.datastore.gateway import GatewayBackend
from libcalico.errors import NotFound
from libcalico.ipam import block as blk
from libcalico.ipam.check import check
from libcalico.ipam.client import IPAMClient
from libcalico.ipam.records import Affinity
from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer
from tests.integration.ipam import seed

ROOT = Path(__file__).resolve().parents[3]
IPAM_BIN = str(Path(sys.executable).parent / "calico-ipam")


def test_kill_during_add_leaves_only_what_check_finds(etcd: EtcdServer, tmp_path: Path) -> None:
    be = GatewayBackend([etcd.endpoint])
    # tiny blocks so that many ADDs claim a new block (the longest write sequence)
    seed.cluster(be, ["k1"], {"p": {"cidr": "10.61.0.0/24", "blockSize": 30}})
    conf = json.dumps({"cniVersion": "1.0.0", "name": "net", "type": "calico-ipam",
                       "etcd_endpoints": etcd.endpoint, "nodename": "k1",
                       "ipam_lock_file": str(tmp_path / "lock")})
    rng = random.Random(1234)
    killed = 0
    completed = 0
    for i in range(24):
        env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": f"kill{i:03d}",
               "CNI_NETNS": "/proc/self/ns/net", "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent"}
        p = subprocess.Popen([IPAM_BIN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=env)
        assert p.stdin is not None
        p.stdin.write(conf.encode())
        p.stdin.close()
        time.sleep(rng.uniform(0.0, 0.25))
        if p.poll() is None:
            p.kill()
            killed += 1
        else:
            completed += 1
        p.wait()
        if p.stdout:
            p.stdout.close()
        if p.stderr:
            p.stderr.close()
    assert killed > 0, "no ADD was interrupted: widen the kill window"
    print(f"killed {killed}, completed {completed}")

    report = check(be)
    print("\n".join(report.lines()))
    # Every allocation is found (no workload endpoints exist, so every address is leaked).
    allocated = set()
    for kv in be.list(keys.block_prefix()).kvs:
        b = blk.decode(kv.value, kv.key)
        assert b.problems() == []
        allocated |= {ip for ip, _ in b.in_use()}
    assert {ip for ip, _ in report.leaked} == allocated
    # Every handle either matches its block counts or is reported.
    for kv in be.list(keys.HANDLE_PREFIX).kvs:
        hid = kv.key[len(keys.HANDLE_PREFIX):]
        held = [ip for ip, (h, _) in report.allocations.items() if h == hid]
        total = sum(json.loads(kv.value)["block"].values())
        if total != len(held):
            assert any(p.startswith(hid) for p in report.handle_problems), (hid, report.lines())
    # Every affinity that is not a finished claim is reported.
    for kv in be.list(keys.IPAM_ROOT + "host/").kvs:
        parsed = keys.parse_affinity_key(kv.key)
        assert parsed is not None
        if not Affinity.decode(kv.value).confirmed:
            assert any(str(parsed[2]) in p for p in report.affinity_problems)

    # Releasing what the check found (as an operator would) leaves a clean datastore.
    client = IPAMClient(be)
    client.release_ips([ip for ip, _ in report.leaked])
    for kv in be.list(keys.HANDLE_PREFIX).kvs:
        with contextlib.suppress(NotFound):
            client.release_by_handle(kv.key[len(keys.HANDLE_PREFIX):])
    client.release_host_affinities("k1")
    final = check(be)
    assert final.clean, final.lines()
    assert be.list(keys.HANDLE_PREFIX).kvs == ()
    be.close()
