"""Client semantics over the in-memory backend (pure logic; the etcd proof is in
tests/integration/model)."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from libcalico.client import Client
from libcalico.datastore.memory import MemoryBackend
from libcalico.errors import AlreadyExists, Conflict, NotFound, ValidationError
from libcalico.model import resources as r

T0 = datetime(2026, 8, 22, 10, 0, 0, tzinfo=UTC)
POOL_KEY = "/calico/resources/v3/projectcalico.org/ippools/pool1"


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def client(backend: MemoryBackend) -> Client:
    uids = iter(f"uid-{i}" for i in range(100))
    return Client(backend, clock=lambda: T0, new_uid=lambda: next(uids))


def pool(name: str = "pool1", cidr: str = "10.0.0.0/16", **kw: object) -> r.IPPool:
    return r.IPPool(r.Metadata(name), r.IPPoolSpec(cidr=ipaddress.ip_network(cidr), **kw))  # type: ignore[arg-type]


def test_create_fills_uid_timestamp_defaults_and_revision(client: Client,
                                                           backend: MemoryBackend) -> None:
    created = client.create(pool(ipip_mode=r.EncapMode.ALWAYS))
    kv = backend.get(POOL_KEY)
    assert created.metadata.uid == "uid-0"
    assert created.metadata.creation_timestamp == T0
    assert created.metadata.resource_version == str(kv.revision)
    assert created.spec.block_size == 26
    stored = json.loads(kv.value)
    assert stored["metadata"] == {"name": "pool1", "uid": "uid-0",
                                  "creationTimestamp": "2026-08-22T10:00:00Z"}
    assert client.get(r.IPPool, "pool1") == created
    assert client.get("IPPool", "pool1") == created


def test_create_existing_is_already_exists_and_keeps_the_original(client: Client) -> None:
    first = client.create(pool())
    with pytest.raises(AlreadyExists):
        client.create(pool(cidr="10.1.0.0/16"))
    assert client.get(r.IPPool, "pool1") == first


def test_create_refuses_resource_version(client: Client) -> None:
    p = pool()
    with pytest.raises(ValidationError) as info:
        client.create(r.IPPool(r.Metadata("pool1", resource_version="5"), p.spec))
    assert info.value.errors[0].path == "metadata.resourceVersion"


def test_invalid_resource_is_not_written(client: Client, backend: MemoryBackend) -> None:
    with pytest.raises(ValidationError) as info:
        client.create(pool(block_size=12))
    assert info.value.document == "IPPool(pool1)"
    assert info.value.errors[0].path == "spec.blockSize"
    assert backend.list("/calico/").kvs == ()


def test_update_is_compare_and_swap(client: Client) -> None:
    created = client.create(pool())
    changed = replace(created, spec=replace(created.spec, nat_outgoing=True))
    updated = client.update(changed)
    assert int(updated.metadata.resource_version or 0) > int(created.metadata.resource_version
                                                             or 0)
    assert updated.metadata.uid == created.metadata.uid
    with pytest.raises(Conflict):
        client.update(replace(created, spec=replace(created.spec, disabled=True)))
    assert client.get(r.IPPool, "pool1").spec.nat_outgoing is True


def test_update_without_uid_keeps_stored_identity(client: Client) -> None:
    created = client.create(pool())
    bare = r.IPPool(r.Metadata("pool1", resource_version=created.metadata.resource_version),
                    created.spec)
    updated = client.update(bare)
    assert updated.metadata.uid == created.metadata.uid
    assert updated.metadata.creation_timestamp == T0


def test_update_requires_resource_version_and_existing(client: Client) -> None:
    with pytest.raises(ValidationError):
        client.update(pool())
    with pytest.raises(NotFound):
        client.update(r.IPPool(r.Metadata("nope", resource_version="3", uid="u",
                                          creation_timestamp=T0), pool().spec))


def test_apply_creates_then_replaces_keeping_identity(client: Client) -> None:
    a = client.apply(pool())
    b = client.apply(pool(nat_outgoing=True))
    assert a.metadata.uid == b.metadata.uid == "uid-0"
    assert b.spec.nat_outgoing is True
    assert client.get(r.IPPool, "pool1") == b


def test_list_sorted_by_name_and_namespace(client: Client) -> None:
    for name in ("c", "a", "b"):
        client.create(pool(name=name, cidr=f"10.{ord(name)}.0.0/16"))
    assert [p.metadata.name for p in client.list(r.IPPool)] == ["a", "b", "c"]
    for ns, pod in (("zz", "p1"), ("aa", "p2"), ("aa", "p1")):
        client.create(r.WorkloadEndpoint(
            r.Metadata("", namespace=ns),
            r.WorkloadEndpointSpec(orchestrator="k8s", node="n1", pod=pod, endpoint="eth0")))
    weps = client.list(r.WorkloadEndpoint)
    assert [(w.metadata.namespace, w.metadata.name) for w in weps] == [
        ("aa", "n1-k8s-p1-eth0"), ("aa", "n1-k8s-p2-eth0"), ("zz", "n1-k8s-p1-eth0")]
    assert [w.metadata.namespace for w in client.list(r.WorkloadEndpoint, "zz")] == ["zz"]


def test_list_skips_invalid_stored_values(client: Client, backend: MemoryBackend) -> None:
    client.create(pool())
    backend.create("/calico/resources/v3/projectcalico.org/ippools/bad",
                   '{"kind":"IPPool","apiVersion":"projectcalico.org/v3",'
                   '"metadata":{"name":"bad"},"spec":{"cidr":"10.0.0.1/8"}}')
    assert [p.metadata.name for p in client.list(r.IPPool)] == ["pool1"]
    with pytest.raises(ValidationError):
        client.get(r.IPPool, "bad")


def test_wep_name_derived_and_labels_set(client: Client, backend: MemoryBackend) -> None:
    wep = client.create(r.WorkloadEndpoint(
        r.Metadata("", namespace="default", labels={"app": "nginx"}),
        r.WorkloadEndpointSpec(orchestrator="k8s", node="node1", pod="nginx-7d8b-x2k4j",
                               endpoint="eth0")))
    assert wep.metadata.name == "node1-k8s-nginx--7d8b--x2k4j-eth0"
    assert wep.metadata.labels == {"app": "nginx", "projectcalico.org/namespace": "default",
                                   "projectcalico.org/orchestrator": "k8s"}
    key = ("/calico/resources/v3/projectcalico.org/workloadendpoints/default/"
           "node1-k8s-nginx--7d8b--x2k4j-eth0")
    assert json.loads(backend.get(key).value)["metadata"]["labels"] == wep.metadata.labels


def test_wep_requires_namespace_and_matching_name(client: Client) -> None:
    spec = r.WorkloadEndpointSpec(orchestrator="k8s", node="n1", pod="p", endpoint="eth0")
    with pytest.raises(ValidationError) as info:
        client.create(r.WorkloadEndpoint(r.Metadata("n1-k8s-p-eth0"), spec))
    assert info.value.errors[0].path == "metadata.namespace"
    with pytest.raises(ValidationError) as info:
        client.create(r.WorkloadEndpoint(r.Metadata("other", namespace="ns"), spec))
    assert info.value.errors[0].path == "metadata.name"


def test_default_allow_profile_is_synthetic(client: Client, backend: MemoryBackend) -> None:
    prof = client.get(r.Profile, "projectcalico-default-allow")
    assert prof.spec.ingress[0].action is r.Action.ALLOW
    assert prof.spec.egress[0].action is r.Action.ALLOW
    client.create(r.Profile(r.Metadata("kns.default")))
    client.create(r.Profile(r.Metadata("zzz")))
    assert [p.metadata.name for p in client.list(r.Profile)] == [
        "kns.default", "projectcalico-default-allow", "zzz"]
    with pytest.raises(ValidationError):
        client.delete(r.Profile, "projectcalico-default-allow")
    with pytest.raises(ValidationError):
        client.create(r.Profile(r.Metadata("projectcalico-default-allow")))
    assert all("default-allow" not in kv.key for kv in backend.list("/calico/").kvs)


def test_delete_returns_the_deleted_resource_and_honours_revision(client: Client) -> None:
    created = client.create(pool())
    assert created.metadata.resource_version
    client.backend.apply("/calico/other", "x")  # a revision that is no pool's
    with pytest.raises(Conflict):
        client.delete(r.IPPool, "pool1", revision=client.backend.get("/calico/other").revision)
    deleted = client.delete(r.IPPool, "pool1", revision=created.metadata.resource_version)
    assert deleted is not None and deleted.spec == created.spec
    with pytest.raises(NotFound):
        client.get(r.IPPool, "pool1")
    with pytest.raises(NotFound):
        client.delete("IPPool", "pool1")


def test_bad_kind_and_names(client: Client) -> None:
    with pytest.raises(ValidationError, match="unknown kind"):
        client.get("IPPoool", "x")
    with pytest.raises(ValidationError):
        client.get(r.IPPool, "../nodes/x")
    with pytest.raises(ValidationError):
        client.get(r.WorkloadEndpoint, "x")  # namespaced: namespace required


def test_overlapping_pool_is_refused(client: Client) -> None:
    client.create(pool("a", "10.0.0.0/16"))
    client.create(pool("v6", "fd00::/64"))
    with pytest.raises(ValidationError) as info:
        client.create(pool("b", "10.0.128.0/24"))
    assert info.value.errors[0].path == "spec.cidr"
    assert "overlaps IPPool a" in info.value.errors[0].reason
    client.create(pool("c", "10.1.0.0/16"))


def test_pool_cidr_and_block_size_are_immutable(client: Client) -> None:
    created = client.create(pool())
    with pytest.raises(ValidationError) as info:
        client.update(replace(created, spec=replace(
            created.spec, cidr=ipaddress.IPv4Network("10.0.0.0/15"))))
    assert info.value.errors[0].path == "spec.cidr"
    with pytest.raises(ValidationError) as info:
        client.apply(pool(block_size=28))
    assert info.value.errors[0].path == "spec.blockSize"
    assert client.get(r.IPPool, "pool1").spec.block_size == 26


def test_metadata_fields_known_to_kubernetes_are_kept_or_dropped() -> None:
    from libcalico.model import codec

    res = codec.decode({"apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {
        "name": "n", "selfLink": "/x", "managedFields": [{}], "generation": 3,
        "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n", "uid": "u"}],
        "finalizers": ["a/b"]}})
    md = codec.encode(res)["metadata"]
    assert md == {"name": "n", "generation": 3, "creationTimestamp": None,
                  "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": "n",
                                       "uid": "u"}], "finalizers": ["a/b"]}


def test_pool_over_blocks_of_another_size_is_refused(client: Client,
                                                     backend: MemoryBackend) -> None:
    backend.create("/calico/ipam/v2/assignment/ipv4/block/10.0.0.0-28", "{}")
    with pytest.raises(ValidationError) as info:
        client.create(pool("a", "10.0.0.0/16"))  # default blockSize 26
    assert info.value.errors[0].path == "spec.blockSize"
    assert "10.0.0.0/28" in info.value.errors[0].reason
    assert client.create(pool("a", "10.0.0.0/16", block_size=28)).spec.block_size == 28
    client.create(pool("b", "10.1.0.0/16"))  # blocks elsewhere do not matter
