"""The CNI's pod write on the Kubernetes datastore (`calico_cni.kdd.patch_ips`) against the
real API server: the annotations it sets and blanks, and its UID and resourceVersion
preconditions: a pod made again under the same name is not touched (NotFound), nor one
changed since it was read (Conflict)."""

from __future__ import annotations

import uuid

import pytest

from calico_cni import kdd
from calico_node.kubelab.apiserver import ControlPlane
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.errors import Conflict, NotFound
from libcalico.model import keys

POD_IP, POD_IPS = "cni.projectcalico.org/podIP", "cni.projectcalico.org/podIPs"
CONTAINER_ID = "cni.projectcalico.org/containerID"


def test_patch_ips_preconditions(kube_apiserver: ControlPlane,
                                 kube_backend: KubernetesBackend) -> None:
    cp, be = kube_apiserver, kube_backend
    tag = uuid.uuid4().hex[:6]
    ns, node = f"patch-{tag}", f"patch-node-{tag}"
    cp.ensure_namespace(ns)
    pod_path = f"/api/v1/namespaces/{ns}/pods/web"

    def make_pod() -> str:
        status, reply = cp.request("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x"}]}})
        assert status == 201, reply
        return str(reply["metadata"]["uid"])

    def annotations() -> dict[str, str]:
        return dict(cp.request("GET", pod_path)[1]["metadata"].get("annotations") or {})

    key = keys.resource_key("WorkloadEndpoint", f"{node.replace('-', '--')}-k8s-web-eth0", ns)
    try:
        uid = make_pod()
        kdd.patch_ips(be, key, ["10.9.0.1/32", "fd09::1/128"], container_id="c1", uid=uid)
        assert annotations() == {POD_IP: "10.9.0.1/32", POD_IPS: "10.9.0.1/32,fd09::1/128",
                                 CONTAINER_ID: "c1"}
        rv = str(cp.request("GET", pod_path)[1]["metadata"]["resourceVersion"])
        with pytest.raises(Conflict):
            kdd.patch_ips(be, key, [], container_id=None, uid=uid, resource_version="1")
        kdd.patch_ips(be, key, [], container_id=None, uid=uid, resource_version=rv)
        assert annotations() == {POD_IP: "", POD_IPS: "", CONTAINER_ID: "c1"}
        # the pod deleted and made again: the old UID does not match
        cp.request("DELETE", f"{pod_path}?gracePeriodSeconds=0")
        with pytest.raises(NotFound):
            kdd.patch_ips(be, key, ["10.9.0.2/32"], container_id="c2", uid=uid)
        make_pod()
        with pytest.raises(NotFound):  # the API server's 422 on metadata.uid
            kdd.patch_ips(be, key, ["10.9.0.2/32"], container_id="c2", uid=uid)
        assert annotations() == {}
    finally:
        cp.request("DELETE", f"{pod_path}?gracePeriodSeconds=0")
