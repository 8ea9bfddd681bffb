"""The Kubernetes backend against the real API server: resources stored as Calico's KDD stores
them, typed CRUD through the Client, compare-and-swap conflicts, errors, and a syncer that
loses nothing across an API-server restart and the 410 that follows it."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest

from calico_node.kubelab.apiserver import ControlPlane
from libcalico.client import Client
from libcalico.datastore import connect
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.datastore.kubernetes_client import Unauthorized
from libcalico.datastore.kubernetes_convert import convert_uid
from libcalico.datastore.syncer import Syncer, SyncStatus
from libcalico.errors import AlreadyExists, Compacted, Conflict, DatastoreError, NotFound
from libcalico.model import codec, keys
from libcalico.model.resources import GlobalNetworkSet, NetworkPolicy
from tests.fixtures.syncer import Recorder

CRD = "/apis/crd.projectcalico.org/v1"


def _name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _netset(name: str, net: str = "198.51.100.0/24", **labels: str) -> GlobalNetworkSet:
    r = codec.decode({"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
                      "metadata": {"name": name, "labels": labels}, "spec": {"nets": [net]}})
    assert isinstance(r, GlobalNetworkSet)
    return r


@pytest.fixture
def made(kube_backend: KubernetesBackend) -> Iterator[list[str]]:
    """Keys a test made; deleted afterwards, whatever happened."""
    keys_made: list[str] = []
    yield keys_made
    for k in keys_made:
        with contextlib.suppress(NotFound):
            kube_backend.delete(k)


def test_client_crud_stores_calicos_kdd_form(kube_apiserver: ControlPlane,
                                             kube_backend: KubernetesBackend,
                                             made: list[str]) -> None:
    client = Client(kube_backend)
    name = _name("gns")
    made.append(keys.resource_key("GlobalNetworkSet", name))
    client.create(_netset(name, team="blue", **{"projectcalico.org/tier": "x"}))

    # As libcalico-go writes it: user labels only in the metadata annotation, ours on the CR
    # too, the CR's UID the bit-reversed v3 UID.
    status, cr = kube_apiserver.request("GET", f"{CRD}/globalnetworksets/{name}")
    assert status == 200
    assert cr["spec"] == {"nets": ["198.51.100.0/24"]}
    assert cr["metadata"]["labels"] == {"projectcalico.org/tier": "x"}
    stored = json.loads(cr["metadata"]["annotations"]["projectcalico.org/metadata"])
    assert stored["labels"] == {"projectcalico.org/tier": "x", "team": "blue"}
    assert "name" not in stored and "uid" not in stored and stored["creationTimestamp"]

    got = client.get(GlobalNetworkSet, name)
    assert got.metadata.labels == {"team": "blue", "projectcalico.org/tier": "x"}
    assert got.metadata.uid == convert_uid(cr["metadata"]["uid"])
    assert got.metadata.resource_version == cr["metadata"]["resourceVersion"]
    assert name in [r.metadata.name for r in client.list(GlobalNetworkSet)]

    changed = client.update(codec.decode({**codec.encode(got),
                                          "spec": {"nets": ["203.0.113.0/24"]}}))
    assert changed.metadata.resource_version != got.metadata.resource_version
    assert client.get(GlobalNetworkSet, name).spec.nets == changed.spec.nets

    client.delete(GlobalNetworkSet, name)
    with pytest.raises(NotFound):
        client.get(GlobalNetworkSet, name)


def test_what_create_returns_can_be_updated(kube_apiserver: ControlPlane,
                                            kube_backend: KubernetesBackend,
                                            made: list[str]) -> None:
    """On KDD the API server assigns the UID: create returns the stored object (its UID, not
    the one the client generated), so updating what create returned succeeds."""
    client = Client(kube_backend)
    name = _name("gns")
    made.append(keys.resource_key("GlobalNetworkSet", name))
    created = client.create(_netset(name))
    _, cr = kube_apiserver.request("GET", f"{CRD}/globalnetworksets/{name}")
    assert created.metadata.uid == convert_uid(cr["metadata"]["uid"])
    changed = client.update(replace(created, spec=replace(
        created.spec, nets=(ipaddress.ip_network("203.0.113.0/24"),))))
    assert client.get(GlobalNetworkSet, name).spec.nets == changed.spec.nets
    again = client.apply(replace(changed, metadata=replace(changed.metadata,
                                                           resource_version=None)))
    assert again.metadata.uid == created.metadata.uid


def test_namespaced_policy_keeps_its_name_in_the_annotation(
        kube_apiserver: ControlPlane, kube_backend: KubernetesBackend, made: list[str]) -> None:
    name = _name("np")
    res = codec.decode({"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                        "metadata": {"name": name, "namespace": "default"},
                        "spec": {"selector": "app == 'web'", "types": ["Ingress"],
                                 "ingress": [{"action": "Allow"}]}})
    assert isinstance(res, NetworkPolicy)
    made.append(keys.resource_key("NetworkPolicy", name, "default"))
    Client(kube_backend).create(res)
    status, cr = kube_apiserver.request(
        "GET", f"{CRD}/namespaces/default/networkpolicies/{name}")
    assert status == 200
    assert json.loads(cr["metadata"]["annotations"]["projectcalico.org/metadata"])["name"] == name
    listing = kube_backend.list(keys.resource_prefix("NetworkPolicy", "default"))
    assert made[0] in [kv.key for kv in listing.kvs]
    assert kube_backend.list(keys.resource_prefix("NetworkPolicy", "kube-system")).kvs == ()


def test_compare_and_swap_and_errors(kube_backend: KubernetesBackend, made: list[str]) -> None:
    name = _name("cas")
    key = keys.resource_key("GlobalNetworkSet", name)
    made.append(key)
    first = kube_backend.create(key, codec.dumps(_netset(name)))
    with pytest.raises(AlreadyExists):
        kube_backend.create(key, codec.dumps(_netset(name)))
    second = kube_backend.update(key, first.value.replace("198.51.100.0", "203.0.113.0"),
                                 first.revision)
    with pytest.raises(Conflict):
        kube_backend.update(key, first.value, first.revision)
    with pytest.raises(Conflict):
        kube_backend.delete(key, first.revision)
    assert kube_backend.get(key).revision == second.revision
    gone = kube_backend.delete(key, second.revision)
    assert gone.key == key
    with pytest.raises(NotFound):
        kube_backend.get(key)
    with pytest.raises(NotFound):
        kube_backend.update(key, second.value, second.revision)
    with pytest.raises(NotFound):
        kube_backend.delete(key)

    # A resource made again under the same name is another object: the old one's
    # value (its UID) cannot update it.
    again = kube_backend.create(key, codec.dumps(_netset(name)))
    with pytest.raises(NotFound):
        kube_backend.update(key, second.value, again.revision)
    with pytest.raises(DatastoreError, match="not supported"):
        kube_backend.get("/calico/bgp/v1/host/node-1/ip_addr_v4")


def test_wrong_token_is_unauthorized(kube_apiserver: ControlPlane) -> None:
    b = connect(DatastoreConfig.from_env({
        "DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(kube_apiserver.kubeconfig),
        "K8S_API_TOKEN": "not-a-token"}))
    try:
        with pytest.raises(Unauthorized):
            b.list(keys.resource_prefix("IPPool"))
    finally:
        b.close()


def test_a_watch_from_a_revision_the_server_no_longer_has_is_compacted(
        kube_backend: KubernetesBackend) -> None:
    with pytest.raises(Compacted):
        w = kube_backend.watch(keys.resource_prefix("GlobalNetworkSet"), "1")
        try:
            for _ in w:
                pass
        finally:
            w.close()


def test_syncer_loses_nothing_across_a_restart_and_a_410(
        kube_apiserver: ControlPlane, kube_backend: KubernetesBackend, made: list[str]) -> None:
    """The syncer follows a second API server; while that one is down, the first one deletes,
    changes and creates objects. After the restart the second server's watch cache starts
    after those writes, so the syncer's watch answers 410: it relists and emits the diff."""
    prefix = keys.resource_prefix("GlobalNetworkSet")
    tag = uuid.uuid4().hex[:8]
    names = [f"sync-{tag}-{i}" for i in range(4)]
    made.extend(keys.resource_key("GlobalNetworkSet", n) for n in names)
    for n in names[:3]:
        kube_backend.create(keys.resource_key("GlobalNetworkSet", n), codec.dumps(_netset(n)))

    extra = kube_apiserver.extra_apiserver()
    follower = connect(DatastoreConfig.from_env({"DATASTORE_TYPE": "kubernetes",
                                                 "KUBECONFIG": str(extra.kubeconfig)}))
    rec = Recorder()
    syncer = Syncer(follower, [prefix], rec)
    try:
        syncer.start()
        rec.wait_status(SyncStatus.IN_SYNC)
        ours = [keys.resource_key("GlobalNetworkSet", n) for n in names]
        rec.wait(lambda: all(k in rec.state for k in ours[:3]), "the first three objects")

        extra.stop()
        kube_backend.delete(ours[0])
        old = kube_backend.get(ours[1])
        kube_backend.update(ours[1], old.value.replace("198.51.100.0", "203.0.113.0"),
                            old.revision)
        kube_backend.create(ours[3], codec.dumps(_netset(names[3])))
        truth = {kv.key: kv.value for kv in kube_backend.list(prefix).kvs}
        extra.start()

        def caught_up() -> bool:
            return {k: v for k, (v, _) in rec.state.items()} == truth

        rec.wait(caught_up, "the follower's view to equal the first server's listing")
        assert rec.statuses().count(SyncStatus.RESYNC_IN_PROGRESS) >= 2, rec.statuses()
        deletes = [u.key for u in rec.updates if u.value is None]
        assert ours[0] in deletes
    finally:
        syncer.stop()
        follower.close()
        extra.stop()


def test_paged_list_and_a_watch_resumed_across_server_timeouts(
        kube_backend: KubernetesBackend, made: list[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Lists page (3 a page here) and a watch whose requests the server ends every second
    goes on after its last event, without a relist and without losing an event."""
    from libcalico.datastore import kubernetes_backend_base, kubernetes_watch

    monkeypatch.setattr(kubernetes_backend_base, "PAGE", 3)
    monkeypatch.setattr(kubernetes_watch, "WATCH_TIMEOUT", 1)
    tag = uuid.uuid4().hex[:6]
    prefix = keys.resource_prefix("GlobalNetworkSet")
    for i in range(7):
        key = keys.resource_key("GlobalNetworkSet", f"page-{tag}-{i}")
        made.append(key)
        kube_backend.create(key, codec.dumps(_netset(f"page-{tag}-{i}")))
    listing = kube_backend.list(prefix)
    assert all(k in [kv.key for kv in listing.kvs] for k in made)

    stream = kube_backend.watch(prefix, listing.revision)
    try:
        seen: list[str] = []
        for i, key in enumerate(made[:3]):
            kube_backend.delete(key)
            for ev in stream:
                if ev.key in made:
                    seen.append(ev.key)
                    break
            if i < 2:
                time.sleep(1.5)  # let the server end the watch request in between
    finally:
        stream.close()
    assert seen == made[:3]
