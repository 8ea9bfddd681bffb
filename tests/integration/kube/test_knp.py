"""Kubernetes NetworkPolicies on KDD are read-only Calico NetworkPolicies `knp.default.<name>`
beside the NetworkPolicy custom resources: listed, got and watched with them (composite
revisions `<crd rv>/<k8s rv>`), and never written."""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from calico_node.kubelab.apiserver import ControlPlane
from libcalico.client import Client
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.datastore.syncer import Syncer, SyncStatus
from libcalico.errors import DatastoreError, NotFound, ValidationError
from libcalico.model import codec, keys
from libcalico.model import k8s_networkpolicy as converter
from libcalico.model.resources import NetworkPolicy
from tests.fixtures.syncer import Recorder

NP = "/apis/networking.k8s.io/v1"


def _k8s_policy(port: int) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "web"},
            "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                     "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "fe"}}}],
                                  "ports": [{"protocol": "TCP", "port": port}]}]}}


def _calico_policy(ns: str, order: int) -> str:
    return json.dumps({"kind": "NetworkPolicy", "apiVersion": "projectcalico.org/v3",
                       "metadata": {"name": "db", "namespace": ns},
                       "spec": {"tier": "default", "order": order, "selector": "app == 'db'",
                                "types": ["Ingress"]}})


def _spec(value: str) -> dict[str, Any]:
    spec: dict[str, Any] = json.loads(value)["spec"]
    return spec


def test_kubernetes_policies_listed_got_and_synced_with_calico_ones(
        kube_apiserver: ControlPlane, kube_backend: KubernetesBackend) -> None:
    cp = kube_apiserver
    ns = f"knp-{uuid.uuid4().hex[:8]}"
    cp.ensure_namespace(ns)
    knp_key = keys.resource_key("NetworkPolicy", "knp.default.web", ns)
    crd_key = keys.resource_key("NetworkPolicy", "db", ns)
    prefix = keys.resource_prefix("NetworkPolicy")
    rec = Recorder()
    syncer = Syncer(kube_backend, [prefix], rec)
    try:
        status, made = cp.request("POST", f"{NP}/namespaces/{ns}/networkpolicies",
                                  _k8s_policy(80))
        assert status == 201, made
        kube_backend.create(crd_key, _calico_policy(ns, 100))

        listing = kube_backend.list(f"{prefix}{ns}/")
        assert [kv.key for kv in listing.kvs] == [crd_key, knp_key]
        crd_rev, k8s_rev = listing.revision.split("/")
        assert crd_rev and k8s_rev
        expected = json.loads(codec.dumps(converter.to_calico(made)))
        knp = kube_backend.get(knp_key)
        assert json.loads(knp.value) == expected
        assert knp.revision == made["metadata"]["resourceVersion"]
        spec = _spec(knp.value)
        assert spec["selector"] == "projectcalico.org/orchestrator == 'k8s' && app == 'web'"
        assert spec["order"] == 1000 and spec["tier"] == "default"
        assert spec["ingress"] == [{
            "action": "Allow", "protocol": "TCP",
            "source": {"selector": "projectcalico.org/orchestrator == 'k8s' && role == 'fe'"},
            "destination": {"ports": [80]}}]
        assert listing.kvs[1].value == knp.value
        assert {kv.key for kv in kube_backend.list(prefix).kvs} >= {crd_key, knp_key}
        pol = Client(kube_backend).get(NetworkPolicy, "knp.default.web", ns)
        assert pol.spec.selector == spec["selector"]
        with pytest.raises(NotFound):
            kube_backend.get(keys.resource_key("NetworkPolicy", "knp.default.nope", ns))

        syncer.start()
        rec.wait_status(SyncStatus.IN_SYNC)
        assert knp_key in rec.state and crd_key in rec.state

        cp.request("PATCH", f"{NP}/namespaces/{ns}/networkpolicies/web",
                   {"spec": {"ingress": [{"ports": [{"port": 443}]}]}},
                   content_type="application/merge-patch+json")
        crd = kube_backend.get(crd_key)
        kube_backend.update(crd_key, _calico_policy(ns, 200), crd.revision)

        def updated() -> bool:
            k, c = rec.state.get(knp_key), rec.state.get(crd_key)
            return (k is not None and _spec(k[0]).get("ingress") == [{
                        "action": "Allow", "protocol": "TCP", "source": {},
                        "destination": {"ports": [443]}}]
                    and c is not None and _spec(c[0])["order"] == 200)

        rec.wait(updated, "both policies updated")
        k_rev = rec.state[knp_key][1]
        assert len(k_rev.split("/")) == 2

        cp.request("DELETE", f"{NP}/namespaces/{ns}/networkpolicies/web")
        kube_backend.delete(crd_key)
        rec.wait(lambda: knp_key not in rec.state and crd_key not in rec.state,
                 "both policies deleted")
    finally:
        syncer.stop()
        cp.request("DELETE", f"{NP}/namespaces/{ns}/networkpolicies/web")
        with contextlib.suppress(NotFound):
            kube_backend.delete(crd_key)


def test_writes_of_kubernetes_policies_refused(kube_apiserver: ControlPlane,
                                               kube_backend: KubernetesBackend) -> None:
    ns = f"knp-{uuid.uuid4().hex[:8]}"
    kube_apiserver.ensure_namespace(ns)
    key = keys.resource_key("NetworkPolicy", "knp.default.x", ns)
    value = json.dumps({"kind": "NetworkPolicy", "apiVersion": "projectcalico.org/v3",
                        "metadata": {"name": "knp.default.x", "namespace": ns},
                        "spec": {"tier": "default", "selector": "all()"}})
    calls: list[tuple[str, Callable[[], object]]] = [
        ("Create", lambda: kube_backend.create(key, value)),
        ("Update", lambda: kube_backend.update(key, value, "1")),
        ("Apply", lambda: kube_backend.apply(key, value)),
        ("Delete", lambda: kube_backend.delete(key))]
    for op, call in calls:
        with pytest.raises(DatastoreError,
                           match=rf"^operation {op} is not supported on "
                                 rf"NetworkPolicy\({ns}/knp\.default\.x\)$"):
            call()
    status, _ = kube_apiserver.request(
        "GET", f"{NP}/namespaces/{ns}/networkpolicies/x")
    assert status == 404  # nothing was written
    with pytest.raises(ValidationError):
        kube_backend.watch(keys.resource_prefix("NetworkPolicy"), "12")  # not <crd>/<k8s>
