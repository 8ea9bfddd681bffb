"""confd's secret keys on KDD: /calico/secrets/<secret>/<key> are the decoded data of Secrets
in calico-node's namespace; a watch reports changed, added and removed data keys."""

from __future__ import annotations

import base64
import uuid

import pytest

from calico_node.kubelab.apiserver import ControlPlane
from libcalico.datastore.api import EventType
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.errors import NotFound


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_secrets_read_and_followed(kube_apiserver: ControlPlane,
                                   kube_backend: KubernetesBackend) -> None:
    cp = kube_apiserver
    ns = f"sec-{uuid.uuid4().hex[:8]}"
    cp.ensure_namespace(ns)
    backend = KubernetesBackend(kube_backend.client, ns)
    base = f"/api/v1/namespaces/{ns}/secrets"
    status, _ = cp.request("POST", base, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bgp"},
        "data": {"peer-a": _b64("s3cret"), "peer-b": _b64("other")}})
    assert status == 201

    assert backend.get("/calico/secrets/bgp/peer-a").value == "s3cret"
    with pytest.raises(NotFound):
        backend.get("/calico/secrets/bgp/peer-z")
    listing = backend.list("/calico/secrets/")
    assert [(kv.key, kv.value) for kv in listing.kvs] == [
        ("/calico/secrets/bgp/peer-a", "s3cret"), ("/calico/secrets/bgp/peer-b", "other")]

    stream = backend.watch("/calico/secrets/", listing.revision)
    try:
        status, _ = cp.request("PUT", f"{base}/bgp", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bgp"},
            "data": {"peer-a": _b64("rotated"), "peer-c": _b64("new")}})
        assert status == 200
        assert cp.request("DELETE", f"{base}/bgp")[0] == 200
        seen: list[tuple[EventType, str, str | None]] = []
        for ev in stream:
            seen.append((ev.type, ev.key, ev.value))
            if len(seen) == 5:
                break
    finally:
        stream.close()
    assert seen == [
        (EventType.DELETE, "/calico/secrets/bgp/peer-b", None),
        (EventType.PUT, "/calico/secrets/bgp/peer-a", "rotated"),
        (EventType.PUT, "/calico/secrets/bgp/peer-c", "new"),
        (EventType.DELETE, "/calico/secrets/bgp/peer-a", None),
        (EventType.DELETE, "/calico/secrets/bgp/peer-c", None),
    ]
