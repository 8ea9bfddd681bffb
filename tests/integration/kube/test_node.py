"""Calico's Node on KDD is the Kubernetes Node: fields read from its projectcalico.org/*
annotations (invalid ones dropped), labels merged, updates written back into annotations
through nodes/<name>/status, create and delete refused, and watches follow Node changes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from calico_node.kubelab.apiserver import ControlPlane
from libcalico.client import Client
from libcalico.datastore.api import EventType
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.errors import DatastoreError
from libcalico.model import codec, keys
from libcalico.model.resources import Node


@pytest.fixture
def k8s_node(kube_apiserver: ControlPlane) -> Iterator[str]:
    name = f"node-{uuid.uuid4().hex[:8]}"
    status, reply = kube_apiserver.request("POST", "/api/v1/nodes", {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name, "rack": "r1"},
                     "annotations": {"projectcalico.org/IPv4Address": "192.0.2.10/24",
                                     "projectcalico.org/ASNumber": "64512",
                                     "projectcalico.org/IPv4IPIPTunnelAddr": "not-an-ip",
                                     "projectcalico.org/labels": '{"calico":"only"}'}},
        "spec": {"podCIDR": "10.244.1.0/24", "podCIDRs": ["10.244.1.0/24"]}})
    assert status == 201, reply
    yield name
    kube_apiserver.request("DELETE", f"/api/v1/nodes/{name}")


def test_node_reads_and_writes_annotations(kube_apiserver: ControlPlane,
                                           kube_backend: KubernetesBackend,
                                           k8s_node: str) -> None:
    client = Client(kube_backend)
    node = client.get(Node, k8s_node)
    assert node.spec.bgp is not None
    assert str(node.spec.bgp.ipv4_address) == "192.0.2.10/24"
    assert node.spec.bgp.as_number == 64512
    assert node.spec.bgp.ipv4_ipip_tunnel_addr is None  # invalid annotation dropped
    assert node.metadata.labels == {"calico": "only", "kubernetes.io/hostname": k8s_node,
                                    "rack": "r1"}
    assert node.status.pod_cidrs == ("10.244.1.0/24",)
    assert [(r.node_name, r.orchestrator) for r in node.spec.orch_refs] == [(k8s_node, "k8s")]
    assert k8s_node in [n.metadata.name for n in client.list(Node)]

    doc = codec.encode(node)
    doc["spec"]["bgp"] = {"ipv4Address": "192.0.2.10/24", "ipv4IPIPTunnelAddr": "10.244.1.1"}
    doc["spec"]["ipv4VXLANTunnelAddr"] = "10.244.1.2"
    doc["metadata"]["labels"]["zone"] = "z1"
    client.update(codec.decode(doc))

    _, kn = kube_apiserver.request("GET", f"/api/v1/nodes/{k8s_node}")
    ann = kn["metadata"]["annotations"]
    assert ann["projectcalico.org/IPv4IPIPTunnelAddr"] == "10.244.1.1"
    assert ann["projectcalico.org/IPv4VXLANTunnelAddr"] == "10.244.1.2"
    assert "projectcalico.org/ASNumber" not in ann  # no asNumber in the new bgp spec
    assert ann["projectcalico.org/labels"] == '{"calico":"only","zone":"z1"}'
    assert kn["metadata"]["labels"] == {"kubernetes.io/hostname": k8s_node, "rack": "r1"}
    assert "projectcalico.org/kube-labels" not in ann


def test_node_create_and_delete_are_refused(kube_backend: KubernetesBackend,
                                            k8s_node: str) -> None:
    key = keys.resource_key("Node", k8s_node)
    kv = kube_backend.get(key)
    with pytest.raises(DatastoreError, match=r"operation Create is not supported on Node\(other\)"):
        kube_backend.create(keys.resource_key("Node", "other"), kv.value)
    with pytest.raises(DatastoreError, match="operation Delete is not supported on Node"):
        kube_backend.delete(key)
    assert kube_backend.get(key).revision == kv.revision


def test_node_watch_sees_an_annotation_change(kube_apiserver: ControlPlane,
                                              kube_backend: KubernetesBackend,
                                              k8s_node: str) -> None:
    prefix = keys.resource_prefix("Node")
    listing = kube_backend.list(prefix)
    assert keys.resource_key("Node", k8s_node) in [kv.key for kv in listing.kvs]
    stream = kube_backend.watch(prefix, listing.revision)
    try:
        status, _ = kube_apiserver.request(
            "PATCH", f"/api/v1/nodes/{k8s_node}",
            {"metadata": {"annotations": {"projectcalico.org/RouteReflectorClusterID":
                                          "224.0.0.1"}}},
            content_type="application/merge-patch+json")
        assert status == 200
        for ev in stream:
            if ev.key == keys.resource_key("Node", k8s_node):
                assert ev.type is EventType.PUT and ev.value is not None
                assert '"routeReflectorClusterID":"224.0.0.1"' in ev.value
                break
    finally:
        stream.close()
