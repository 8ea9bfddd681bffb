"""calico-node's ServiceAccount with the ClusterRole of manifests/rbac/calico-node.yaml (a
real TokenRequest token, RBAC on): it can follow what Felix follows, update its Node and use
IPAM, and nothing more (no policy writes, no Secrets, no Node creation)."""

from __future__ import annotations

import uuid

import pytest
import yaml

from calico_node.kubelab.apiserver import ROOT, ControlPlane
from felix.__main__ import PREFIXES
from libcalico.client import Client
from libcalico.datastore import connect
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.datastore.kubernetes_client import Unauthorized
from libcalico.ipam.assignment import AutoAssignArgs
from libcalico.ipam.client import IPAMClient
from libcalico.model import codec
from libcalico.model.resources import IPPool, Node

MANIFEST = ROOT / "manifests" / "rbac" / "calico-node.yaml"


def test_calico_node_role_allows_what_it_needs_and_no_more(
        kube_apiserver: ControlPlane, kube_backend: KubernetesBackend) -> None:
    cp = kube_apiserver
    cp.apply([d for d in yaml.safe_load_all(MANIFEST.read_text()) if d])
    token = cp.service_account_token("kube-system", "calico-node")
    backend = connect(DatastoreConfig.from_env({
        "DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(cp.kubeconfig),
        "K8S_API_TOKEN": token}))
    assert isinstance(backend, KubernetesBackend)
    tag = uuid.uuid4().hex[:6]
    node, pool = f"rbac-node-{tag}", f"rbac-pool-{tag}"
    assert cp.request("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                "metadata": {"name": node}})[0] == 201
    admin = Client(kube_backend)
    admin.create(codec.decode({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                               "metadata": {"name": pool},
                               "spec": {"cidr": f"10.{100 + int(tag[:2], 16) % 50}.0.0/24",
                                        "blockSize": 28}}))
    try:
        # Felix's lists and watches.
        for prefix in PREFIXES:
            listing = backend.list(prefix)
            backend.watch(prefix, listing.revision).close()
        # calico-node startup writes its Node (nodes/status) and uses IPAM.
        client = Client(backend)
        me = client.get(Node, node)
        doc = codec.encode(me)
        doc["spec"]["bgp"] = {"ipv4Address": "192.0.2.77/24"}
        client.update(codec.decode(doc))
        ipam = IPAMClient(backend)
        v4, _ = ipam.auto_assign(AutoAssignArgs(hostname=node, num4=1,
                                                handle_id=f"ipip-tunnel-addr-{node}"))
        assert len(v4.ips) == 1
        assert ipam.release_by_handle(f"ipip-tunnel-addr-{node}") == 1
        assert ipam.release_host_affinities(node) == 1

        # And no more.
        gnp = codec.decode({"apiVersion": "projectcalico.org/v3",
                            "kind": "GlobalNetworkPolicy", "metadata": {"name": f"x-{tag}"},
                            "spec": {"selector": "all()"}})
        for attempt in (lambda: client.create(gnp),
                        lambda: client.delete(IPPool, pool),
                        lambda: backend.list("/calico/secrets/"),
                        lambda: backend.client.request(
                            "POST", "/api/v1/nodes", body={"apiVersion": "v1", "kind": "Node",
                                                           "metadata": {"name": f"n-{tag}"}})):
            with pytest.raises(Unauthorized):
                attempt()
    finally:
        backend.close()
        admin.delete(IPPool, pool)
        cp.request("DELETE", f"/api/v1/nodes/{node}")
