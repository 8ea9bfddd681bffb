"""calico-node's and the CNI plugin's ServiceAccounts with the ClusterRoles of
manifests/rbac/ (real TokenRequest tokens, RBAC on): calico-node can follow what Felix
follows, update its Node and use IPAM, and nothing more (no policy writes, no Secrets, no Node
creation); the CNI plugin can GET its endpoint, patch its pod, use IPAM, and list no pods."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

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
from libcalico.model import codec, keys
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


def test_cni_plugin_role_reads_its_pod_patches_it_and_uses_ipam(
        kube_apiserver: ControlPlane, kube_backend: KubernetesBackend) -> None:
    cp = kube_apiserver
    cp.apply([d for d in yaml.safe_load_all(
        (ROOT / "manifests" / "rbac" / "calico-cni-plugin.yaml").read_text()) if d])
    backend = connect(DatastoreConfig.from_env({
        "DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(cp.kubeconfig),
        "K8S_API_TOKEN": cp.service_account_token("kube-system", "calico-cni-plugin")}))
    assert isinstance(backend, KubernetesBackend)
    backend.cni_patch_mode = True
    tag = uuid.uuid4().hex[:6]
    ns, node, pool = f"cni-{tag}", f"cni-node-{tag}", f"cni-pool-{tag}"
    cp.ensure_namespace(ns)
    assert cp.request("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                "metadata": {"name": node}})[0] == 201
    assert cp.request("POST", f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}})[0] == 201
    admin = Client(kube_backend)
    admin.create(codec.decode({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                               "metadata": {"name": pool},
                               "spec": {"cidr": f"10.{150 + int(tag[:2], 16) % 50}.0.0/24",
                                        "blockSize": 28}}))
    try:
        # ADD: the endpoint by GET, IPAM, then the one pod-status PATCH.
        key = keys.resource_key("WorkloadEndpoint", f"{node.replace('-', '--')}-k8s-web-eth0",
                                ns)
        wep = backend.get(key)
        ipam = IPAMClient(backend)
        v4, _ = ipam.auto_assign(AutoAssignArgs(hostname=node, num4=1,
                                                handle_id=f"k8s-pod-network.{tag}"))
        doc = json.loads(wep.value)
        doc["spec"]["ipNetworks"] = [f"{v4.ips[0].ip}/32"]
        backend.update(key, json.dumps(doc), wep.revision)
        # DEL: blank the pod's IPs, release.
        backend.delete(key, backend.get(key).revision)
        assert ipam.release_by_handle(f"k8s-pod-network.{tag}") == 1
        with pytest.raises(Unauthorized):  # the role has no list on pods
            backend.list(keys.resource_prefix("WorkloadEndpoint", ns))
        with pytest.raises(Unauthorized):
            backend.get(keys.resource_key("BGPPeer", "any"))
    finally:
        backend.close()
        IPAMClient(kube_backend).release_host_affinities(node)
        admin.delete(IPPool, pool)
        cp.request("DELETE", f"/api/v1/namespaces/{ns}/pods/web?gracePeriodSeconds=0")
        cp.request("DELETE", f"/api/v1/nodes/{node}")


def test_in_cluster_service_account(kube_apiserver: ControlPlane, tmp_path: Path) -> None:
    """What a pod has: KUBERNETES_SERVICE_HOST/PORT and the projected token and CA files."""
    from libcalico.datastore.kubernetes_client import KubeClient, access_in_cluster

    cp = kube_apiserver
    cp.apply([d for d in yaml.safe_load_all(MANIFEST.read_text()) if d])
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(cp.service_account_token("kube-system", "calico-node"))
    (sa / "ca.crt").write_bytes(cp.ca_file.read_bytes())
    host, port = cp.server.removeprefix("https://").rsplit(":", 1)
    acc = access_in_cluster({"KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": port},
                            sa)
    assert acc is not None
    backend = KubernetesBackend(KubeClient(acc))
    try:
        assert backend.list(keys.resource_prefix("IPPool")).revision
        with pytest.raises(Unauthorized):
            backend.list("/calico/secrets/")
    finally:
        backend.close()
