"""Parallel IPAM against a real etcd: 8 processes, 4 nodes, 400 workloads, a pool too small
for every node to get the blocks it wants (so blocks run out and hosts borrow)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from collections import Counter

import pytest

from libcalico.datastore.gateway import GatewayBackend
from libcalico.ipam import block as blk
from libcalico.ipam.check import check
from libcalico.ipam.records import Affinity
from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer
from tests.integration.ipam import seed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
NODES = ["n0", "n1", "n2", "n3"]
# stream -> (node, number of ADDs): 150 + 130 + 70 + 50 = 400 workloads. The pool has 8
# blocks of 64; by block count the nodes want 3 + 3 + 2 + 1 = 9, so someone must borrow.
STREAMS = [("n0", 75), ("n0", 75), ("n1", 65), ("n1", 65), ("n2", 35), ("n2", 35),
           ("n3", 25), ("n3", 25)]


def _run_streams(etcd: EtcdServer, op: str) -> list[dict[str, list[str]]]:
    env = {**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "false"}
    procs = []
    for i, (node, count) in enumerate(STREAMS):
        kind = "grpc" if i % 2 else "gateway"
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.integration.ipam.workers", op, etcd.endpoint, kind,
             node, f"s{i}c", str(count)],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=240)
            assert p.returncode == 0, err[-3000:]
            results.append(json.loads(out))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return results


def _calicoctl(etcd: EtcdServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ETCD_ENDPOINTS": etcd.endpoint, "DATASTORE_TYPE": "etcdv3",
           "GRPC_ENABLE_FORK_SUPPORT": "false"}
    return subprocess.run([sys.executable, "-m", "calicoctl", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_parallel_adds_then_dels(etcd: EtcdServer) -> None:
    be = GatewayBackend([etcd.endpoint])
    seed.cluster(be, NODES, {"small": {"cidr": "10.60.0.0/23", "blockSize": 26}})

    results = _run_streams(etcd, "add")
    assert all(not r["failures"] for r in results), [r["failures"] for r in results]
    ips = [ip for r in results for ip in r["ips"]]
    assert len(ips) == 400
    dup = [ip for ip, n in Counter(i.split("/")[0] for i in ips).items() if n > 1]
    assert dup == [], f"addresses handed out twice: {dup}"

    blocks = {}
    for kv in be.list(keys.block_prefix(4)).kvs:
        b = blk.decode(kv.value, kv.key)
        assert keys.block_key(b.cidr) == kv.key
        assert b.problems() == []
        blocks[b.cidr] = b
    cidrs = sorted(blocks, key=lambda c: int(c.network_address))
    for a, b2 in itertools.pairwise(cidrs):
        assert not a.overlaps(b2)
    assert len(blocks) == 8, "the pool's 8 blocks should all be in use"
    # every block is affine to exactly one host, with exactly one confirmed affinity
    confirmed: Counter[str] = Counter()
    for kv in be.list(keys.IPAM_ROOT + "host/").kvs:
        parsed = keys.parse_affinity_key(kv.key)
        assert parsed is not None
        assert Affinity.decode(kv.value).state == "confirmed", kv.key
        _, host, cidr = parsed
        assert blocks[cidr].affinity == f"host:{host}"
        confirmed[str(cidr)] += 1
    assert confirmed == Counter({str(c): 1 for c in blocks})
    # borrowing happened: some address belongs to a block affine to another node
    borrowed = 0
    for b in blocks.values():
        for _ip, attr in b.in_use():
            if (attr.secondary or {}).get("node") != b.host():
                borrowed += 1
    assert borrowed > 0, "expected some node to borrow from another node's block"

    report = check(be)
    assert report.clean, report.lines()
    r = _calicoctl(etcd, "ipam", "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "400 allocated addresses" in r.stdout
    shown = _calicoctl(etcd, "ipam", "show", "--show-blocks")
    assert "10.60.0.0/23" in shown.stdout and "400 (78%)" in shown.stdout, shown.stdout

    results = _run_streams(etcd, "del")
    assert all(not r["failures"] for r in results), [r["failures"] for r in results]
    for kv in be.list(keys.block_prefix(4)).kvs:
        b = blk.decode(kv.value, kv.key)
        assert b.in_use() == [] and b.problems() == []
        assert len(b.unallocated) == 64
    assert be.list(keys.HANDLE_PREFIX).kvs == ()
    assert check(be).clean
    be.close()


@pytest.mark.parametrize("kind", ["grpc", "gateway"])
def test_stale_revision_never_overwrites(etcd: EtcdServer, kind: str) -> None:
    from tests.integration.ipam.workers import connect

    be = connect(etcd.endpoint, kind)
    from libcalico.errors import Conflict

    a = be.create("/calico/ipam/v2/handle/x", '{"block":{},"deleted":false}')
    be.update(a.key, '{"block":{"10.0.0.0/26":1},"deleted":false}', a.revision)
    with pytest.raises(Conflict):
        be.update(a.key, '{"block":{"10.0.0.0/26":2},"deleted":false}', a.revision)
    assert be.get(a.key).value == '{"block":{"10.0.0.0/26":1},"deleted":false}'
    be.close()
