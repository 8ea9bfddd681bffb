"""End to end on both datastores: the demo's cluster (three calico-nodes in namespaces, BGP
full mesh, an edge router) on etcd and on the Kubernetes datastore, where each node is a
Kubernetes Node, each pod a Pod bound to its node and wired by the CNI as a kubelet runs it.

The Kubernetes run starts its own API server (the demo's `kube.start`, as `calico-node demo
--datastore kubernetes` does): the demo's cluster-scoped objects (Nodes node-1…, the default
pool, BGPConfiguration default) would collide with other tests on the session's one.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from calico_node.demo import cluster as clustermod
from calico_node.demo import kube as kubemod
from calico_node.demo import lab as labmod
from libcalico.client import Client
from libcalico.datastore import connect
from libcalico.datastore.api import Backend
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.etcd import EtcdBackend
from libcalico.ipam.check import check
from libcalico.model import keys
from libcalico.model.resources import WorkloadEndpoint

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.bird]

ANNOTATION = "cni.projectcalico.org/"


@pytest.fixture(params=["etcdv3", "kubernetes"])
def cluster(request: pytest.FixtureRequest) -> Iterator[clustermod.Cluster]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    datastore = str(request.param)
    lab = labmod.Lab(f"ck{os.getpid()}", Path(tempfile.mkdtemp(prefix="calico-e2e-kdd-")))
    opts = clustermod.Options(nodes=3, pods=0, encap="none", topology="mesh",
                              datastore=datastore)
    backend: Backend | None = None
    cl: clustermod.Cluster | None = None
    try:
        if datastore == "kubernetes":
            lab.cleanups.append(lambda: kubemod.stop(lab.workdir))
            kube = kubemod.start(lab.workdir)
            backend = connect(DatastoreConfig.from_env(
                {"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(kube.cp.kubeconfig)}))
            cl = clustermod.Cluster(opts, lab, "", backend, say=print, kube=kube)
        else:
            etcd = request.getfixturevalue("etcd")
            backend = EtcdBackend([etcd.endpoint])
            cl = clustermod.Cluster(opts, lab, etcd.endpoint, backend, say=print)
        cl.bring_up()
        yield cl
    finally:
        if cl is not None:
            cl.close()
        if backend is not None:
            backend.close()
        lab.close()
        assert not list(labmod.NETNS_DIR.glob(f"{lab.prefix}-*")), "namespaces left"
        assert not lab.workdir.exists(), "working directory (and API server files) left"


def test_mesh_every_pod_reaches_every_pod(cluster: clustermod.Cluster) -> None:
    cl = cluster
    nodes = list(cl.nodes.values())
    keep = [cl.add_pod(n, 1) for n in nodes]
    result = cl.matrix(deadline=45)
    bad = [f"{a}->{b}" for (a, b), ok in result.items() if not ok]
    assert len(result) == 6 and not bad, f"unreachable: {bad}"

    # The endpoints the datastore shows (on KDD derived from the Pods).
    weps = Client(cl.backend).list(WorkloadEndpoint)
    assert sorted((w.spec.node, [str(n) for n in w.spec.ip_networks]) for w in weps) == \
        sorted((p.node, [f"{p.ip}/32"]) for p in keep)

    if cl.kube is not None:
        for p in keep:  # the CNI's result as Calico's plugin writes it on the Pod
            ann = cl.kube.pod_annotations(p.kube_name)
            assert ann[ANNOTATION + "podIP"] == f"{p.ip}/32"
            assert ann[ANNOTATION + "podIPs"] == f"{p.ip}/32"
            assert ann[ANNOTATION + "containerID"] == p.container_id
        for n in nodes:  # startup's annotations on the Kubernetes Node
            status, node = cl.kube.cp.request("GET", f"/api/v1/nodes/{n.name}")
            assert status == 200
            assert node["metadata"]["annotations"]["projectcalico.org/IPv4Address"] == \
                str(n.plan.ip)

    # A pod added and deleted again: its address released, nothing else touched.
    extra = cl.add_pod(nodes[0], 2)
    assert all(cl.matrix([extra, keep[1]], deadline=45).values())
    cl.del_pod(extra)
    report = check(cl.backend)
    assert report.clean, report
    handles = [kv.key.rsplit("/", 1)[1] for kv in cl.backend.list(keys.HANDLE_PREFIX).kvs]
    assert len([h for h in handles if not h.startswith(("ipip-", "vxlan-", "wireguard-"))]) \
        == len(keep), handles
    assert len(Client(cl.backend).list(WorkloadEndpoint)) == len(keep)
    if cl.kube is not None:
        status, _ = cl.kube.cp.request(
            "GET", f"/api/v1/namespaces/{kubemod.NAMESPACE}/pods/{extra.kube_name}")
        assert status == 404
    assert all(cl.matrix(keep, deadline=30).values())
