"""Parallel IPAM against a real etcd: 8 processes, 4 nodes, 400 workloads, a pool too small
for every node to get the blocks it wants (so blocks run out and hosts borrow)."""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from libcalico.datastore.api import Backend
from libcalico.datastore.gateway import GatewayBackend
from libcalico.errors import NotFound
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
STREAMS = [(0, 75), (0, 75), (1, 65), (1, 65), (2, 35), (2, 35), (3, 25), (3, 25)]
POOL = ipaddress.ip_network("10.60.0.0/23")


@dataclass
class Store:
    """One datastore the streams race on: etcd (gRPC and gateway clients alternating) or the
    Kubernetes datastore (the API server; its Nodes and the 400 pods made here)."""

    be: Backend
    endpoint: str
    """etcd's URL, or the kubeconfig for KDD."""
    kinds: tuple[str, str]
    nodes: list[str]
    env: dict[str, str]
    """calicoctl's datastore environment."""


@contextlib.contextmanager
def _store(request: pytest.FixtureRequest, datastore: str) -> Iterator[Store]:
    if datastore == "etcd":
        etcd: EtcdServer = request.getfixturevalue("etcd")
        be: Backend = GatewayBackend([etcd.endpoint])
        seed.cluster(be, NODES, {"small": {"cidr": str(POOL), "blockSize": 26}})
        try:
            yield Store(be, etcd.endpoint, ("gateway", "grpc"), NODES,
                        {"ETCD_ENDPOINTS": etcd.endpoint, "DATASTORE_TYPE": "etcdv3"})
        finally:
            be.close()
        return
    from calico_node.kubelab.apiserver import ControlPlane
    from libcalico.datastore import connect
    from libcalico.datastore.config import DatastoreConfig
    from libcalico.ipam.client import IPAMClient
    from tests.integration.ipam.workers import KDD_NAMESPACE

    cp: ControlPlane = request.getfixturevalue("kube_apiserver")
    be = connect(DatastoreConfig.from_env({"DATASTORE_TYPE": "kubernetes",
                                          "KUBECONFIG": str(cp.kubeconfig)}))
    nodes = [f"par-{n}" for n in NODES]
    cp.ensure_namespace(KDD_NAMESPACE)
    pods: list[str] = []
    try:
        for n in nodes:
            status, reply = cp.request("POST", "/api/v1/nodes", {
                "apiVersion": "v1", "kind": "Node",
                "metadata": {"name": n, "labels": {"kubernetes.io/hostname": n}}})
            assert status == 201, reply
        seed.put(be, "IPPool", "small", {"cidr": str(POOL), "blockSize": 26})
        for i, (node, count) in enumerate(STREAMS):
            for j in range(count):
                status, reply = cp.request("POST", f"/api/v1/namespaces/{KDD_NAMESPACE}/pods", {
                    "apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"s{i}c{j:04d}"},
                    "spec": {"nodeName": nodes[node],
                             "containers": [{"name": "c", "image": "busybox"}]}})
                assert status == 201, reply
                pods.append(f"s{i}c{j:04d}")
        yield Store(be, str(cp.kubeconfig), ("kdd", "kdd"), nodes,
                    {"KUBECONFIG": str(cp.kubeconfig), "DATASTORE_TYPE": "kubernetes"})
    finally:
        for name in pods:
            cp.request("DELETE", f"/api/v1/namespaces/{KDD_NAMESPACE}/pods/{name}"
                                 "?gracePeriodSeconds=0")
        for n in nodes:
            IPAMClient(be).release_host_affinities(n)
            cp.request("DELETE", f"/api/v1/nodes/{n}")
        with contextlib.suppress(NotFound):
            be.delete(keys.resource_key("IPPool", "small"))
        be.close()


def _run_streams(store: Store, op: str) -> list[dict[str, list[str]]]:
    env = {**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "false"}
    procs = []
    for i, (node, count) in enumerate(STREAMS):
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "tests.integration.ipam.workers", op, store.endpoint,
             store.kinds[i % 2], store.nodes[node], f"s{i}c", str(count)],
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


def _calicoctl(store: Store, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **store.env, "GRPC_ENABLE_FORK_SUPPORT": "false"}
    return subprocess.run([sys.executable, "-m", "calicoctl", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def _blocks(be: Backend) -> dict[Any, blk.Block]:
    """The pool's blocks (a shared API server may hold other tests' blocks elsewhere)."""
    out = {}
    for kv in be.list(keys.block_prefix(4)).kvs:
        b = blk.decode(kv.value, kv.key)
        if b.cidr.subnet_of(POOL):  # type: ignore[arg-type]
            assert keys.block_key(b.cidr) == kv.key
            out[b.cidr] = b
    return out


@pytest.mark.parametrize("datastore", ["etcd", "kdd"])
def test_parallel_adds_then_dels(request: pytest.FixtureRequest, datastore: str) -> None:
    with _store(request, datastore) as store:
        _parallel_adds_then_dels(store)


def _parallel_adds_then_dels(store: Store) -> None:
    be = store.be
    results = _run_streams(store, "add")
    assert all(not r["failures"] for r in results), [r["failures"] for r in results]
    ips = [ip for r in results for ip in r["ips"]]
    assert len(ips) == 400
    dup = [ip for ip, n in Counter(i.split("/")[0] for i in ips).items() if n > 1]
    assert dup == [], f"addresses handed out twice: {dup}"

    blocks = _blocks(be)
    for b in blocks.values():
        assert b.problems() == []
    cidrs = sorted(blocks, key=lambda c: int(c.network_address))
    for a, b2 in itertools.pairwise(cidrs):
        assert not a.overlaps(b2)
    assert len(blocks) == 8, "the pool's 8 blocks should all be in use"
    # every block is affine to exactly one host, with exactly one confirmed affinity
    confirmed: Counter[str] = Counter()
    for kv in be.list(keys.IPAM_ROOT + "host/").kvs:
        parsed = keys.parse_affinity_key(kv.key)
        assert parsed is not None
        _, host, cidr = parsed
        if host not in store.nodes:
            continue
        assert Affinity.decode(kv.value).state == "confirmed", kv.key
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
    r = _calicoctl(store, "ipam", "check")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "400 allocated addresses" in r.stdout
    shown = _calicoctl(store, "ipam", "show", "--show-blocks")
    assert str(POOL) in shown.stdout and "400 (78%)" in shown.stdout, shown.stdout

    results = _run_streams(store, "del")
    assert all(not r["failures"] for r in results), [r["failures"] for r in results]
    for b in _blocks(be).values():
        assert b.in_use() == [] and b.problems() == []
        assert len(b.unallocated) == 64
    assert [kv.key for kv in be.list(keys.HANDLE_PREFIX).kvs
            if kv.key.startswith(keys.handle_key("net.s"))] == []
    assert check(be).clean
    r = _calicoctl(store, "ipam", "check")
    assert r.returncode == 0, r.stdout + r.stderr


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
