"""Profiles on KDD are derived from Namespaces and ServiceAccounts (kns.<ns>, ksa.<ns>.<sa>)
with composite revisions; a watch of both resource types, merged, loses nothing."""

from __future__ import annotations

import uuid

import pytest

from calico_node.kubelab.apiserver import ControlPlane
from libcalico.client import Client
from libcalico.datastore.api import EventType
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.datastore.kubernetes_convert import convert_uid
from libcalico.errors import DatastoreError, NotFound, ValidationError
from libcalico.model import keys
from libcalico.model.resources import Profile


def test_profiles_from_namespaces_and_serviceaccounts(
        kube_apiserver: ControlPlane, kube_backend: KubernetesBackend) -> None:
    cp = kube_apiserver
    ns = f"prof-{uuid.uuid4().hex[:8]}"
    status, made = cp.request("POST", "/api/v1/namespaces", {
        "apiVersion": "v1", "kind": "Namespace",
        "metadata": {"name": ns, "labels": {"team": "blue"}}})
    assert status == 201
    status, _ = cp.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "api", "labels": {"tier": "backend"}}})
    assert status == 201

    client = Client(kube_backend)
    kns = client.get(Profile, f"kns.{ns}")
    assert kns.metadata.uid == convert_uid(made["metadata"]["uid"])
    assert kns.spec.labels_to_apply == {"pcns.team": "blue",
                                        "pcns.kubernetes.io/metadata.name": ns,
                                        "pcns.projectcalico.org/name": ns}
    assert [r.action for r in kns.spec.ingress] == ["Allow"]
    ksa = client.get(Profile, f"ksa.{ns}.api")
    assert ksa.spec.labels_to_apply == {"pcsa.tier": "backend",
                                        "pcsa.projectcalico.org/name": "api"}
    assert ksa.spec.ingress == () and ksa.spec.egress == ()
    assert kube_backend.get(keys.resource_key("Profile", f"kns.{ns}")).revision.endswith("/")
    assert kube_backend.get(keys.resource_key("Profile", f"ksa.{ns}.api")).revision \
        .startswith("/")
    with pytest.raises(NotFound):
        client.get(Profile, f"ksa.{ns}.nobody")
    names = {p.metadata.name for p in client.list(Profile)}
    assert {f"kns.{ns}", f"ksa.{ns}.api", "projectcalico-default-allow"} <= names
    key = keys.resource_key("Profile", f"kns.{ns}")
    with pytest.raises(DatastoreError, match="not supported on Profile"):
        kube_backend.delete(key)

    prefix = keys.resource_prefix("Profile")
    listing = kube_backend.list(prefix)
    ns_rev, sa_rev = listing.revision.split("/")
    assert ns_rev and sa_rev
    stream = kube_backend.watch(prefix, listing.revision)
    try:
        cp.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {
            "apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "worker"}})
        cp.request("PATCH", f"/api/v1/namespaces/{ns}",
                   {"metadata": {"labels": {"team": "red"}}},
                   content_type="application/merge-patch+json")
        ours = {key, keys.resource_key("Profile", f"ksa.{ns}.worker")}
        got: dict[str, str] = {}
        for ev in stream:
            if ev.key not in ours:
                continue  # another test's objects
            assert ev.type is EventType.PUT and ev.value is not None
            got[ev.key] = ev.value
            if len(got) == 2 and '"pcns.team":"red"' in got.get(key, ""):
                last = ev.revision
                break
        assert last.split("/")[0] != ns_rev and last.split("/")[1] != sa_rev
    finally:
        stream.close()
    with pytest.raises(ValidationError):
        kube_backend.watch(prefix, "12")  # not <ns rv>/<sa rv>
    cp.request("DELETE", f"/api/v1/namespaces/{ns}/serviceaccounts/api")
    cp.request("DELETE", f"/api/v1/namespaces/{ns}/serviceaccounts/worker")
