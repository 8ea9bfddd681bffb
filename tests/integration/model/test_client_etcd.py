"""Client against a real etcd: stored bytes equal Calico's, CAS, races, listing."""

from __future__ import annotations

import ipaddress
import json
import re
import threading
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from libcalico.client import Client
from libcalico.datastore.etcd import EtcdBackend
from libcalico.errors import AlreadyExists, Conflict, NotFound, ValidationError
from libcalico.model import codec
from libcalico.model import resources as r
from tests.fixtures.etcd import EtcdServer

pytestmark = pytest.mark.etcd

REFERENCE = Path("/work/shared/reference/ipam-cni.md")
UID = "3f8b2c1e-5d4a-4b6e-9c7d-1a2b3c4d5e6f"
TS = "2026-08-22T10:00:00Z"
CONTAINER_ID = "6f1c0d9e8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e"
MAC = "9a:1b:2c:3d:4e:5f"


@pytest.fixture
def backend(etcd_backend: EtcdBackend) -> EtcdBackend:
    return etcd_backend


@pytest.fixture
def client(backend: EtcdBackend) -> Client:
    return Client(backend, clock=lambda: datetime.fromisoformat(TS), new_uid=lambda: UID)


def _reference_example(kind: str) -> str:
    """The JSON example of `kind` in ipam-cni.md §1.2, placeholders made concrete."""
    if not REFERENCE.is_file():
        pytest.fail(f"{REFERENCE} is absent: cannot compare with Calico's stored JSON")
    for line in REFERENCE.read_text().splitlines():
        if line.startswith('{"kind":"' + kind + '"'):
            text = line.replace('"uid":"…"', f'"uid":"{UID}"')
            text = text.replace('"creationTimestamp":"…"', f'"creationTimestamp":"{TS}"')
            text = text.replace('"6f1c…"', f'"{CONTAINER_ID}"').replace('"9a:…"', f'"{MAC}"')
            text = re.sub(r'"uid":"[^"]*"', f'"uid":"{UID}"', text)
            assert "…" not in text, text
            return text
    raise AssertionError(f"no {kind} example in {REFERENCE}")


def _input_from(example: str, drop_labels: tuple[str, ...] = ()) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(example)
    md = doc["metadata"]
    del md["uid"], md["creationTimestamp"]
    for label in drop_labels:
        md.get("labels", {}).pop(label, None)
    return doc


def test_ippool_stored_bytes_match_calico(client: Client, etcd: EtcdServer) -> None:
    example = _reference_example("IPPool")
    # A user's document: no uid/timestamp, and none of the fields Calico defaults.
    doc = _input_from(example)
    for defaulted in ("blockSize", "nodeSelector", "allowedUses", "assignmentMode", "vxlanMode"):
        del doc["spec"][defaulted]
    created = client.create(codec.decode(doc))
    key = "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool"
    stored = etcd.ctl("get", key, "--print-value-only").rstrip("\n")
    assert stored == example
    rev = json.loads(etcd.ctl("get", key, "-w", "json"))["kvs"][0]["mod_revision"]
    assert created.metadata.resource_version == str(rev)


def test_workload_endpoint_stored_bytes_match_calico(client: Client, etcd: EtcdServer) -> None:
    example = _reference_example("WorkloadEndpoint")
    doc = _input_from(example, drop_labels=("projectcalico.org/namespace",
                                            "projectcalico.org/orchestrator"))
    client.create(codec.decode(doc))
    key = ("/calico/resources/v3/projectcalico.org/workloadendpoints/default/"
           "node1-k8s-nginx--7d8b49557c--x2k4j-eth0")
    assert etcd.ctl("get", key, "--print-value-only").rstrip("\n") == example


def test_crud_round_trip(client: Client, etcd: EtcdServer) -> None:
    node = r.Node(r.Metadata("node1", labels={"rack": "a"}),
                  r.NodeSpec(bgp=r.NodeBGPSpec(
                      ipv4_address=ipaddress.IPv4Interface("10.192.0.2/16"),
                      as_number=65546)))
    created = client.create(node)
    with pytest.raises(AlreadyExists):
        client.create(node)
    got = client.get(r.Node, "node1")
    assert got == created
    updated = client.update(replace(got, metadata=replace(got.metadata, labels={"rack": "b"})))
    assert client.get(r.Node, "node1").metadata.labels == {"rack": "b"}
    assert updated.metadata.uid == created.metadata.uid
    # A value written by another client (etcdctl) is read back typed, at its revision.
    etcd.ctl("put", "/calico/resources/v3/projectcalico.org/nodes/node2",
             '{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":{"name":"node2"},'
             '"spec":{"bgp":{"ipv4Address":"10.192.0.3/16","asNumber":64512}},"status":{}}')
    assert [n.metadata.name for n in client.list(r.Node)] == ["node1", "node2"]
    deleted = client.delete(r.Node, "node1")
    assert deleted is not None and deleted.metadata.labels == {"rack": "b"}
    with pytest.raises(NotFound):
        client.get(r.Node, "node1")
    assert etcd.ctl("get", "/calico/resources/v3/projectcalico.org/nodes/node1") == ""


def test_two_clients_racing_on_one_resource_lose_nothing(backend: EtcdBackend) -> None:
    """Both clients read, then both update: exactly one wins; the loser gets Conflict and,
    after re-reading, its change lands on top of the winner's."""
    a, b = Client(backend), Client(backend)
    base = a.create(r.BGPConfiguration(r.Metadata("default"), r.BGPConfigurationSpec(
        as_number=64512)))
    read_a = a.get(r.BGPConfiguration, "default")
    read_b = b.get(r.BGPConfiguration, "default")
    a.update(replace(read_a, spec=replace(read_a.spec, listen_port=1179)))
    with pytest.raises(Conflict):
        b.update(replace(read_b, spec=replace(read_b.spec, node_to_node_mesh_enabled=False)))
    fresh = b.get(r.BGPConfiguration, "default")
    b.update(replace(fresh, spec=replace(fresh.spec, node_to_node_mesh_enabled=False)))
    final = a.get(r.BGPConfiguration, "default")
    assert final.spec.listen_port == 1179
    assert final.spec.node_to_node_mesh_enabled is False
    assert final.metadata.uid == base.metadata.uid


def test_concurrent_apply_keeps_every_writer_consistent(backend: EtcdBackend) -> None:
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            c = Client(backend)
            for j in range(5):
                c.apply(r.IPReservation(r.Metadata("shared"), r.IPReservationSpec(
                    reserved_cidrs=(ipaddress.ip_network(f"10.{i}.{j}.0/24"),))))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    got = Client(backend).get(r.IPReservation, "shared")
    assert len(got.spec.reserved_cidrs) == 1 and got.metadata.uid


def test_invalid_resource_writes_nothing(client: Client, etcd: EtcdServer) -> None:
    bad = r.IPPool(r.Metadata("v6ipip"), r.IPPoolSpec(
        cidr=ipaddress.IPv6Network("fd00::/64"), ipip_mode=r.EncapMode.ALWAYS))
    with pytest.raises(ValidationError) as info:
        client.create(bad)
    assert info.value.errors[0].path == "spec.ipipMode"
    assert etcd.ctl("get", "--prefix", "/calico/") == ""


def test_default_allow_profile_is_listed_but_not_stored(client: Client, etcd: EtcdServer
                                                        ) -> None:
    client.create(r.Profile(r.Metadata("kns.default"), r.ProfileSpec(
        labels_to_apply={"pcns.projectcalico.org/name": "default"})))
    names = [p.metadata.name for p in client.list(r.Profile)]
    assert names == ["kns.default", "projectcalico-default-allow"]
    keys = etcd.ctl("get", "--prefix", "--keys-only", "/calico/").split()
    assert keys == ["/calico/resources/v3/projectcalico.org/profiles/kns.default"]


def test_conformance_inputs_apply_cleanly(client: Client) -> None:
    cases = Path("/work/shared/conformance/calico-confd/cases")
    if not cases.is_dir():
        pytest.fail(f"{cases} is absent: the conformance kit is needed (../shared)")
    f = cases / "explicit_peering__route_reflector/input/input.yaml"
    applied = [client.apply(res) for res in codec.decode_all(f.read_text())]
    assert applied
    for res in applied:
        assert client.get(type(res), res.metadata.name) == res


def test_creation_time_is_utc_now_by_default(backend: EtcdBackend) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    created = Client(backend).create(r.ClusterInformation(r.Metadata("default"),
                                                          r.ClusterInformationSpec(
                                                              datastore_ready=True)))
    ts = created.metadata.creation_timestamp
    assert ts is not None and ts >= before and ts.tzinfo is not None
    assert re.fullmatch(r"[0-9a-f-]{36}", created.metadata.uid or "")
