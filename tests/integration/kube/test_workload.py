"""WorkloadEndpoints on KDD are derived from Pods: one per scheduled, non-hostNetwork pod,
named, labelled and profiled as Calico does; writes refused; watches follow pod changes."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from calico_node.kubelab.apiserver import ControlPlane
from libcalico.client import Client
from libcalico.datastore.api import EventType
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.errors import Conflict, DatastoreError, NotFound
from libcalico.model import keys
from libcalico.model.resources import WorkloadEndpoint


@pytest.fixture
def namespace(kube_apiserver: ControlPlane) -> Iterator[str]:
    """A namespace of the test's own; its pods are deleted afterwards (the namespace itself
    stays Terminating without a controller-manager, so it is left)."""
    ns = f"wep-{uuid.uuid4().hex[:8]}"
    kube_apiserver.ensure_namespace(ns)
    yield ns
    kube_apiserver.request("DELETE", f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=0")


def _pod(cp: ControlPlane, ns: str, name: str, **spec: Any) -> None:
    status, reply = cp.request("POST", f"/api/v1/namespaces/{ns}/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {"containers": [{"name": "c", "image": "busybox", "ports": [
            {"name": "http", "containerPort": 8080}, {"containerPort": 9090}]}], **spec}})
    assert status == 201, reply


def _status(cp: ControlPlane, ns: str, name: str, **status: Any) -> None:
    code, reply = cp.request("PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status",
                             {"status": status}, content_type="application/merge-patch+json")
    assert code == 200, reply


def test_endpoints_derived_from_pods(kube_apiserver: ControlPlane,
                                     kube_backend: KubernetesBackend, namespace: str) -> None:
    cp, ns = kube_apiserver, namespace
    _pod(cp, ns, "web-1", nodeName="node-a")
    _status(cp, ns, "web-1", podIP="10.244.1.5", podIPs=[{"ip": "10.244.1.5"},
                                                         {"ip": "fd00:244::5"}])
    _pod(cp, ns, "done", nodeName="node-a")
    _status(cp, ns, "done", phase="Succeeded", podIP="10.244.1.6")
    _pod(cp, ns, "host", nodeName="node-a", hostNetwork=True)
    _pod(cp, ns, "pending")

    client = Client(kube_backend)
    weps = {w.spec.pod: w for w in client.list(WorkloadEndpoint, ns)}
    assert sorted(weps) == ["done", "web-1"]
    w = weps["web-1"]
    assert w.metadata.name == "node--a-k8s-web--1-eth0"
    assert [str(n) for n in w.spec.ip_networks] == ["10.244.1.5/32", "fd00:244::5/128"]
    assert w.spec.profiles == (f"kns.{ns}", f"ksa.{ns}.default")
    assert w.spec.interface_name is not None and w.spec.interface_name.startswith("cali")
    assert w.metadata.labels == {"app": "web-1", "projectcalico.org/namespace": ns,
                                 "projectcalico.org/orchestrator": "k8s",
                                 "projectcalico.org/serviceaccount": "default"}
    assert [(p.name, p.port) for p in w.spec.ports] == [("http", 8080)]
    assert weps["done"].spec.ip_networks == ()  # a finished pod no longer owns its IP

    got = client.get(WorkloadEndpoint, w.metadata.name, ns)
    assert got.metadata.uid == w.metadata.uid
    with pytest.raises(NotFound):  # right pod, wrong node
        client.get(WorkloadEndpoint, "node--b-k8s-web--1-eth0", ns)
    key = keys.resource_key("WorkloadEndpoint", w.metadata.name, ns)
    value = kube_backend.get(key).value
    for op in (lambda: kube_backend.create(key, value),
               lambda: kube_backend.update(key, value, "1"),
               lambda: kube_backend.delete(key)):
        with pytest.raises(DatastoreError, match="not supported on WorkloadEndpoint"):
            op()


def test_watch_follows_pod_ips(kube_apiserver: ControlPlane, kube_backend: KubernetesBackend,
                               namespace: str) -> None:
    prefix = keys.resource_prefix("WorkloadEndpoint", namespace)
    listing = kube_backend.list(prefix)
    assert listing.kvs == ()
    stream = kube_backend.watch(prefix, listing.revision)
    try:
        _pod(kube_apiserver, namespace, "db", nodeName="node-a")
        _status(kube_apiserver, namespace, "db", podIP="10.244.2.9")
        seen = []
        for ev in stream:
            assert ev.key == keys.resource_key("WorkloadEndpoint", "node--a-k8s-db-eth0",
                                               namespace)
            assert ev.type is EventType.PUT and ev.value is not None
            seen.append(ev.value)
            if "10.244.2.9/32" in ev.value:
                break
        assert '"ipNetworks"' not in seen[0]  # created before the IP was known
    finally:
        stream.close()


def test_cni_patch_mode_writes_pod_annotations(kube_apiserver: ControlPlane,
                                               kube_backend: KubernetesBackend,
                                               namespace: str) -> None:
    cp, ns = kube_apiserver, namespace
    _pod(cp, ns, "cni", nodeName="node-a")
    key = keys.resource_key("WorkloadEndpoint", "node--a-k8s-cni-eth0", ns)
    cni = KubernetesBackend(kube_backend.client)
    cni.cni_patch_mode = True
    doc = json.loads(cni.get(key).value)
    doc["spec"]["ipNetworks"] = ["10.244.3.3/32", "fd00:244::3/128"]
    doc["spec"]["containerID"] = "c0ffee"
    written = cni.update(key, json.dumps(doc), "ignored")
    assert json.loads(written.value)["spec"]["ipNetworks"] == ["10.244.3.3/32",
                                                              "fd00:244::3/128"]
    _, pod = cp.request("GET", f"/api/v1/namespaces/{ns}/pods/cni")
    ann = pod["metadata"]["annotations"]
    assert ann["cni.projectcalico.org/podIP"] == "10.244.3.3/32"
    assert ann["cni.projectcalico.org/podIPs"] == "10.244.3.3/32,fd00:244::3/128"
    assert ann["cni.projectcalico.org/containerID"] == "c0ffee"

    with pytest.raises(Conflict):  # the delete is conditional on the pod's revision
        cni.delete(key, "1")
    cni.delete(key, written.revision)
    _, pod = cp.request("GET", f"/api/v1/namespaces/{ns}/pods/cni")
    ann = pod["metadata"]["annotations"]
    assert ann["cni.projectcalico.org/podIP"] == "" and ann["cni.projectcalico.org/podIPs"] == ""
    assert ann["cni.projectcalico.org/containerID"] == "c0ffee"
    assert "ipNetworks" not in json.loads(cni.get(key).value)["spec"]
