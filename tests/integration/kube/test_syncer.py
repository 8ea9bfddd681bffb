"""The syncer over every prefix Felix follows (workload endpoints, pools, nodes, Felix and BGP
configuration, profiles, IPAM blocks) reaches in-sync on KDD and then follows pods, namespaces
and nodes as they change."""

from __future__ import annotations

import json
import uuid

from calico_node.kubelab.apiserver import ControlPlane
from felix.__main__ import PREFIXES
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.datastore.syncer import Syncer, SyncStatus
from libcalico.model import keys
from tests.fixtures.syncer import Recorder


def test_felix_prefixes_in_sync_and_following(kube_apiserver: ControlPlane,
                                              kube_backend: KubernetesBackend) -> None:
    cp = kube_apiserver
    tag = uuid.uuid4().hex[:6]
    ns, node = f"felix-{tag}", f"felix-node-{tag}"
    cp.ensure_namespace(ns)
    assert cp.request("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                "metadata": {"name": node}})[0] == 201
    rec = Recorder()
    syncer = Syncer(kube_backend, list(PREFIXES), rec)
    try:
        syncer.start()
        rec.wait_status(SyncStatus.IN_SYNC)
        assert keys.resource_key("Profile", f"kns.{ns}") in rec.state
        assert keys.resource_key("Node", node) in rec.state

        status, _ = cp.request("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "app"},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
        assert status == 201
        cp.request("PATCH", f"/api/v1/namespaces/{ns}/pods/app/status",
                   {"status": {"podIP": "10.244.7.7"}},
                   content_type="application/merge-patch+json")
        cp.request("PATCH", f"/api/v1/namespaces/{ns}", {"metadata": {"labels": {"x": "y"}}},
                   content_type="application/merge-patch+json")
        wep = keys.resource_key("WorkloadEndpoint", f"{node.replace('-', '--')}-k8s-app-eth0",
                                ns)
        prof = keys.resource_key("Profile", f"kns.{ns}")

        def followed() -> bool:
            w, p = rec.state.get(wep), rec.state.get(prof)
            return (w is not None and "10.244.7.7/32" in w[0] and p is not None
                    and json.loads(p[0])["spec"]["labelsToApply"].get("pcns.x") == "y")

        rec.wait(followed, "the pod's IP and the namespace label")
        cp.request("DELETE", f"/api/v1/namespaces/{ns}/pods/app?gracePeriodSeconds=0")
        rec.wait(lambda: wep not in rec.state, "the endpoint to go with its pod")
    finally:
        syncer.stop()
        cp.request("DELETE", f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=0")
        cp.request("DELETE", f"/api/v1/nodes/{node}")


def test_confd_prefixes_in_sync(kube_apiserver: ControlPlane,
                                kube_backend: KubernetesBackend) -> None:
    from confd.processor import prefixes

    rec = Recorder()
    syncer = Syncer(kube_backend, list(prefixes("confd-node")), rec)
    try:
        syncer.start()
        rec.wait_status(SyncStatus.IN_SYNC)
    finally:
        syncer.stop()
