"""The etcd-mode policy controller with the Kubernetes NetworkPolicy converter
(libcalico.model.k8s_networkpolicy.etcd_mirror, as the daemon builds it) against a real
kube-apiserver and a real etcd: a NetworkPolicy becomes `knp.default.<name>` in its
namespace, a change is mirrored, a deletion removes it."""

from __future__ import annotations

import uuid
from pathlib import Path

from calico_kube_controllers import mirror
from calico_kube_controllers.loop import Loop
from calico_kube_controllers.status import Status
from calico_node.kubelab.apiserver import ControlPlane
from libcalico.client import Client
from libcalico.datastore.etcd import EtcdBackend
from libcalico.datastore.kubernetes_client import KubeClient
from libcalico.errors import NotFound
from libcalico.model import codec, k8s_networkpolicy
from libcalico.model.resources import NetworkPolicy
from tests.fixtures.controllers import wait_for_pass

MERGE = "application/merge-patch+json"


def _policy(client: Client, ns: str, name: str) -> NetworkPolicy | None:
    try:
        return client.get(NetworkPolicy, name, ns)
    except NotFound:
        return None


def test_kubernetes_networkpolicy_mirrored_as_knp(
        kube_apiserver: ControlPlane, kube_client: KubeClient, etcd_backend: EtcdBackend,
        tmp_path: Path) -> None:
    cp, client = kube_apiserver, Client(etcd_backend)
    ns = f"knp-{uuid.uuid4().hex[:6]}"
    ctl = mirror.PolicyMirror(etcd_backend, kube_client, k8s_networkpolicy.etcd_mirror)
    loop = Loop(ctl.name, ctl.reconcile, Status(tmp_path / "status.json"), ready=ctl.synced)
    try:
        cp.ensure_namespace(ns)
        assert cp.request("POST", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies", {
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "web"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                     "ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                                        "except": ["10.1.0.0/16"]}}],
                                  "ports": [{"port": 80}, {"port": 81}]}]}})[0] == 201
        loop.start()
        ctl.start(loop.kick)
        wait_for_pass(loop, lambda: _policy(client, ns, "knp.default.web") is not None)
        pol = _policy(client, ns, "knp.default.web")
        assert pol is not None
        spec = codec.encode(pol)["spec"]
        assert isinstance(spec, dict)
        assert spec["order"] == 1000 and spec["types"] == ["Ingress"]  # the apiserver's default
        assert spec["selector"] == "projectcalico.org/orchestrator == 'k8s' && app == 'web'"
        assert spec["ingress"] == [{"action": "Allow", "protocol": "TCP",
                                    "source": {"nets": ["10.0.0.0/8"],
                                               "notNets": ["10.1.0.0/16"]},
                                    "destination": {"ports": ["80:81"]}}]

        assert cp.request("PATCH",
                          f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/web",
                          {"spec": {"ingress": []}}, MERGE)[0] == 200
        wait_for_pass(loop, lambda: (p := _policy(client, ns, "knp.default.web")) is not None
              and p.spec.ingress == ())
        assert cp.request(
            "DELETE", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/web")[0] \
            == 200
        wait_for_pass(loop, lambda: _policy(client, ns, "knp.default.web") is None)
    finally:
        ctl.stop()
        loop.stop()
        cp.request("DELETE", f"/apis/networking.k8s.io/v1/namespaces/{ns}/networkpolicies/web")
        cp.request("DELETE", f"/api/v1/namespaces/{ns}")
