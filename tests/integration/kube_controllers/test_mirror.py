"""The etcd-mode mirror controllers against a real kube-apiserver and a real etcd:
Namespaces and ServiceAccounts become Calico's `kns.`/`ksa.` Profiles (and a profile whose
object is gone is deleted), a pod's label change reaches its existing WorkloadEndpoint."""

from __future__ import annotations

import uuid
from pathlib import Path

from calico_kube_controllers import mirror
from calico_kube_controllers.loop import Loop
from calico_kube_controllers.status import Status, check
from calico_node.kubelab.apiserver import ControlPlane
from libcalico.client import Client
from libcalico.datastore.etcd import EtcdBackend
from libcalico.datastore.kubernetes_client import KubeClient
from libcalico.errors import NotFound
from libcalico.model import codec
from libcalico.model.resources import Profile, WorkloadEndpoint
from tests.fixtures.controllers import wait_for_pass

MERGE = "application/merge-patch+json"


def _profile(client: Client, name: str) -> Profile | None:
    try:
        return client.get(Profile, name)
    except NotFound:
        return None


def test_profiles_and_endpoint_labels_follow_kubernetes(
        kube_apiserver: ControlPlane, kube_client: KubeClient, etcd_backend: EtcdBackend,
        tmp_path: Path) -> None:
    cp, client = kube_apiserver, Client(etcd_backend)
    tag = uuid.uuid4().hex[:6]
    ns, node = f"mirror-{tag}", f"mirror-node-{tag}"
    status = Status(tmp_path / "status.json")
    ctls = [mirror.namespace_mirror(etcd_backend, kube_client),
            mirror.serviceaccount_mirror(etcd_backend, kube_client),
            mirror.WorkloadEndpointMirror(etcd_backend, kube_client)]
    loops = [Loop(c.name, c.reconcile, status, ready=c.synced) for c in ctls]
    ns_loop, sa_loop, wep_loop = loops
    client.create(codec.decode({"apiVersion": "projectcalico.org/v3", "kind": "Profile",
                                "metadata": {"name": "kns.ghost-" + tag}, "spec": {}}))
    try:
        cp.ensure_namespace(ns)
        assert cp.request("PATCH", f"/api/v1/namespaces/{ns}",
                          {"metadata": {"labels": {"team": "red"}}}, MERGE)[0] == 200
        assert cp.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {
            "apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "robot", "labels": {"role": "bot"}}})[0] == 201
        assert cp.request("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "labels": {"app": "web"}},
            "spec": {"nodeName": node, "serviceAccountName": "robot",
                     "containers": [{"name": "c", "image": "none"}]}})[0] == 201
        assert cp.request("PATCH", f"/api/v1/namespaces/{ns}/pods/web/status",
                          {"status": {"podIP": "10.77.0.5", "podIPs": [{"ip": "10.77.0.5"}]}},
                          MERGE)[0] == 200
        wep_name = f"{node.replace('-', '--')}-k8s-web-eth0"
        client.create(codec.decode({
            "apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
            "metadata": {"name": wep_name, "namespace": ns,
                         "labels": {"app": "web", "projectcalico.org/namespace": ns,
                                    "projectcalico.org/orchestrator": "k8s",
                                    "projectcalico.org/serviceaccount": "robot"}},
            "spec": {"orchestrator": "k8s", "node": node, "pod": "web", "endpoint": "eth0",
                     "containerID": "abc", "serviceAccountName": "robot",
                     "ipNetworks": ["10.77.0.5/32"],
                     "profiles": [f"kns.{ns}", f"ksa.{ns}.robot"],
                     "interfaceName": "cali0123456789a"}}))
        for c, loop in zip(ctls, loops, strict=True):
            loop.start()
            c.start(loop.kick)

        wait_for_pass(ns_loop, lambda: _profile(client, f"kns.{ns}") is not None
              and _profile(client, "kns.ghost-" + tag) is None)
        p = _profile(client, f"kns.{ns}")
        assert p is not None
        assert p.spec.labels_to_apply == {"pcns.team": "red",
                                          "pcns.projectcalico.org/name": ns,
                                          "pcns.kubernetes.io/metadata.name": ns}
        assert [r["action"] for r in codec.encode(p)["spec"]["ingress"]] == ["Allow"]
        assert [r["action"] for r in codec.encode(p)["spec"]["egress"]] == ["Allow"]
        wait_for_pass(sa_loop, lambda: _profile(client, f"ksa.{ns}.robot") is not None)
        sa = _profile(client, f"ksa.{ns}.robot")
        assert sa is not None and sa.spec.labels_to_apply == {
            "pcsa.role": "bot", "pcsa.projectcalico.org/name": "robot"}
        assert _profile(client, f"ksa.{ns}.default") is not None

        assert cp.request("PATCH", f"/api/v1/namespaces/{ns}",
                          {"metadata": {"labels": {"team": "blue"}}}, MERGE)[0] == 200
        wait_for_pass(ns_loop, lambda: (_profile(client, f"kns.{ns}") or p).spec.labels_to_apply
              .get("pcns.team") == "blue")

        assert cp.request("PATCH", f"/api/v1/namespaces/{ns}/pods/web",
                          {"metadata": {"labels": {"app": "web", "tier": "front"}}},
                          MERGE)[0] == 200
        wait_for_pass(wep_loop, lambda: client.get(WorkloadEndpoint, wep_name, ns).metadata.labels
              .get("tier") == "front")
        wep = client.get(WorkloadEndpoint, wep_name, ns)
        assert wep.metadata.labels["projectcalico.org/orchestrator"] == "k8s"
        assert [str(n) for n in wep.spec.ip_networks] == ["10.77.0.5/32"]
        assert check(tmp_path / "status.json") == (True, "Ready")
    finally:
        for c in ctls:
            c.stop()
        for loop in loops:
            loop.stop()
        cp.request("DELETE", f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=0")
        cp.request("DELETE", f"/api/v1/namespaces/{ns}")
