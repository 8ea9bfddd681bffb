"""The node controller against a real kube-apiserver, on etcd (Kubernetes only the source of
Nodes and Pods) and on KDD (everything in the API server): a pod's address is garbage
collected only after the leak grace period (an injected clock), a deleted Kubernetes Node's
addresses, affinities and empty blocks are released (and on etcd its Calico Node deleted)."""

from __future__ import annotations

import contextlib
import ipaddress
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from calico_kube_controllers.loop import Loop
from calico_kube_controllers.node import NodeController
from calico_kube_controllers.status import Status
from calico_node.kubelab.apiserver import ControlPlane
from libcalico.client import Client
from libcalico.datastore import connect
from libcalico.datastore.api import Backend
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.kubernetes_client import KubeClient
from libcalico.errors import NotFound
from libcalico.ipam.assignment import AutoAssignArgs
from libcalico.ipam.client import IPAMClient
from libcalico.model import codec, keys
from libcalico.model.resources import FelixConfiguration, IPPool, Node, WorkloadEndpoint
from tests.fixtures.controllers import wait_for_pass
from tests.fixtures.etcd import EtcdServer

GRACE = 900.0


@pytest.fixture(params=["etcdv3", "kubernetes"])
def datastore(request: pytest.FixtureRequest, kube_apiserver: ControlPlane
              ) -> Iterator[tuple[Backend, bool]]:
    if request.param == "etcdv3":
        etcd: EtcdServer = request.getfixturevalue("etcd")
        env = {"ETCD_ENDPOINTS": etcd.endpoint}
    else:
        env = {"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(kube_apiserver.kubeconfig)}
    b = connect(DatastoreConfig.from_env(env))
    try:
        yield b, request.param == "kubernetes"
    finally:
        b.close()


def _pod(cp: ControlPlane, ns: str, name: str, node: str) -> None:
    status, reply = cp.request("POST", f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "none"}]}})
    assert status == 201, reply


def _delete_pod(cp: ControlPlane, ns: str, name: str) -> None:
    assert cp.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}?gracePeriodSeconds=0"
                      )[0] == 200


def _allocated(backend: Backend) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    from libcalico.ipam import block as blk
    out = set()
    for kv in backend.list(keys.block_prefix(4)).kvs:
        out |= {ip for ip, _ in blk.decode(kv.value, kv.key).in_use()}
    return out


def test_leaks_and_deleted_nodes_are_released(kube_apiserver: ControlPlane,
                                              kube_client: KubeClient,
                                              datastore: tuple[Backend, bool],
                                              tmp_path: Path) -> None:
    backend, kdd = datastore
    cp = kube_apiserver
    tag = uuid.uuid4().hex[:6]
    ns, node_a, node_b = f"gc-{tag}", f"gc-a-{tag}", f"gc-b-{tag}"
    octet = int(tag[:2], 16)
    cidr = f"10.{150 + octet % 50}.{octet}.0/24"
    client, ipam = Client(backend), IPAMClient(backend)
    clock = [1000.0]
    ctl = NodeController(backend, kube_client, kdd=kdd, leak_grace_s=GRACE,
                         clock=lambda: clock[0])
    loop = Loop("node", ctl.reconcile, Status(tmp_path / "status.json"), interval_s=None,
                ready=ctl.synced)
    pool = codec.decode({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                         "metadata": {"name": f"gc-{tag}"},
                         "spec": {"cidr": cidr, "blockSize": 29}})
    try:
        cp.ensure_namespace(ns)
        for n in (node_a, node_b):
            assert cp.request("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                        "metadata": {"name": n}})[0] == 201
            if not kdd:
                client.create(codec.decode({
                    "apiVersion": "projectcalico.org/v3", "kind": "Node",
                    "metadata": {"name": n},
                    "spec": {"orchRefs": [{"orchestrator": "k8s", "nodeName": n}]}}))
        client.create(pool)
        ips = {}
        for pod, node in (("a1", node_a), ("a2", node_a), ("b1", node_b)):
            _pod(cp, ns, pod, node)
            v4, _ = ipam.auto_assign(AutoAssignArgs(
                hostname=node, num4=1, handle_id=f"k8s-pod-network.{tag}{pod}",
                attrs={"node": node, "namespace": ns, "pod": pod}))
            ips[pod] = v4.ips[0].ip
        # a tunnel address on node b, as calico-node allocates it
        tunnel, _ = ipam.auto_assign(AutoAssignArgs(
            hostname=node_b, num4=1, handle_id=f"ipip-tunnel-addr-{node_b}",
            attrs={"node": node_b, "type": "ipipTunnelAddress"}))
        ips["tunnel"] = tunnel.ips[0].ip
        if not kdd:  # what calico-node and the CNI would have written for node b
            b = client.get(Node, node_b)
            client.update(codec.decode({**codec.encode(b), "spec": {
                **codec.encode(b)["spec"], "bgp": {"ipv4IPIPTunnelAddr": str(ips["tunnel"])}}}))
            client.create(codec.decode({
                "apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
                "metadata": {"name": f"{node_b.replace('-', '--')}-k8s-b1-eth0",
                             "namespace": ns},
                "spec": {"orchestrator": "k8s", "node": node_b, "pod": "b1",
                         "endpoint": "eth0", "ipNetworks": [f"{ips['b1']}/32"],
                         "interfaceName": "cali0123456789a"}}))
            client.create(codec.decode({"apiVersion": "projectcalico.org/v3",
                                        "kind": "FelixConfiguration",
                                        "metadata": {"name": f"node.{node_b}"}, "spec": {}}))
        loop.start()
        ctl.start(loop.kick)
        wait_for_pass(loop, lambda: ctl.last.allocations >= 4)
        assert set(ips.values()) <= _allocated(backend)

        # a2 is deleted: a candidate, kept through the grace period, released after it
        _delete_pod(cp, ns, "a2")
        wait_for_pass(loop, lambda: ctl.last.candidates >= 1)
        assert ips["a2"] in _allocated(backend)
        clock[0] += GRACE / 2
        loop.kick("test")
        wait_for_pass(loop, lambda: clock[0] > 0)
        assert ips["a2"] in _allocated(backend)
        clock[0] += GRACE / 2 + 1
        loop.kick("test")
        wait_for_pass(loop, lambda: ips["a2"] not in _allocated(backend))
        with pytest.raises(NotFound):
            backend.get(keys.handle_key(f"k8s-pod-network.{tag}a2"))
        assert ips["a1"] in _allocated(backend)

        # node b and its pod go: its addresses, affinity and block are released at once
        b_blocks = [p[2] for kv in backend.list(keys.affinity_prefix(node_b, 4)).kvs
                    if (p := keys.parse_affinity_key(kv.key)) is not None]
        assert b_blocks
        _delete_pod(cp, ns, "b1")
        assert cp.request("DELETE", f"/api/v1/nodes/{node_b}")[0] == 200
        wait_for_pass(loop, lambda: not backend.list(keys.affinity_prefix(node_b, 4)).kvs)
        left = _allocated(backend)
        assert ips["b1"] not in left and ips["tunnel"] not in left and ips["a1"] in left
        for c in b_blocks:
            with pytest.raises(NotFound):
                backend.get(keys.block_key(c))
        if not kdd:  # deleted as libcalico-go deletes a Node
            assert [n.metadata.name for n in client.list(Node)] == [node_a]
            assert client.list(WorkloadEndpoint) == []
            with pytest.raises(NotFound):
                client.get(FelixConfiguration, f"node.{node_b}")
        assert backend.list(keys.affinity_prefix(node_a, 4)).kvs  # node a keeps its block
    finally:
        ctl.stop()
        loop.stop()
        cp.request("DELETE", f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=0")
        cp.request("DELETE", f"/api/v1/namespaces/{ns}")
        for n in (node_a, node_b):
            cp.request("DELETE", f"/api/v1/nodes/{n}")
            with contextlib.suppress(Exception):
                for h in list(ips):
                    ipam.release_by_handle(f"k8s-pod-network.{tag}{h}")
            with contextlib.suppress(Exception):
                ipam.release_by_handle(f"ipip-tunnel-addr-{n}")
            with contextlib.suppress(Exception):
                ipam.release_host_affinities(n)
        with contextlib.suppress(NotFound):
            client.delete(IPPool, f"gc-{tag}")
