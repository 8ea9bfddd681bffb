"""The JSON-gateway backend (libcalico.datastore.gateway) against a real etcd: the same
compare-and-swap protocol as the gRPC backend, key for key, and a clear refusal to watch."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from libcalico.datastore import connect
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.etcd import EtcdBackend
from libcalico.datastore.gateway import GatewayBackend
from libcalico.errors import AlreadyExists, Conflict, DatastoreError, NotFound, Unavailable
from tests.fixtures.etcd import EtcdServer, free_port

POOL_KEY = "/calico/resources/v3/projectcalico.org/ippools/p1"
POOL = '{"kind":"IPPool","metadata":{"name":"p1"},"spec":{"cidr":"10.9.0.0/16"}}'


@pytest.fixture
def gw(etcd: EtcdServer) -> Iterator[GatewayBackend]:
    b = GatewayBackend([etcd.endpoint], timeout=5.0)
    try:
        yield b
    finally:
        b.close()


def test_connect_still_returns_the_grpc_backend(etcd: EtcdServer) -> None:
    b = connect(DatastoreConfig.from_env({"ETCD_ENDPOINTS": etcd.endpoint}))
    try:
        assert isinstance(b, EtcdBackend)
    finally:
        b.close()


def test_crud_matches_what_the_grpc_backend_reads(gw: GatewayBackend, etcd: EtcdServer) -> None:
    grpc_be = EtcdBackend([etcd.endpoint])
    try:
        created = gw.create(POOL_KEY, POOL)
        assert grpc_be.get(POOL_KEY) == created
        listing = gw.list("/calico/resources/v3/projectcalico.org/ippools/")
        assert listing.kvs == (created,)
        assert listing.revision == grpc_be.list("/calico/").revision
        updated = gw.update(POOL_KEY, POOL.replace("10.9", "10.8"), created.revision)
        assert grpc_be.get(POOL_KEY) == updated
        assert gw.delete(POOL_KEY, updated.revision) == updated
        with pytest.raises(NotFound):
            grpc_be.get(POOL_KEY)
    finally:
        grpc_be.close()


def test_cas_failures(gw: GatewayBackend) -> None:
    first = gw.create("/calico/x", "1")
    with pytest.raises(AlreadyExists):
        gw.create("/calico/x", "2")
    gw.update("/calico/x", "2", first.revision)
    with pytest.raises(Conflict):
        gw.update("/calico/x", "3", first.revision)
    with pytest.raises(Conflict):
        gw.delete("/calico/x", first.revision)
    assert gw.get("/calico/x").value == "2"
    with pytest.raises(NotFound):
        gw.update("/calico/none", "1", "1")
    with pytest.raises(NotFound):
        gw.delete("/calico/none")


def test_list_is_a_prefix_not_a_sibling(gw: GatewayBackend) -> None:
    for k in ("/calico/a/1", "/calico/a/2", "/calico/ab", "/calico/b/1"):
        gw.apply(k, "v")
    assert [kv.key for kv in gw.list("/calico/a/").kvs] == ["/calico/a/1", "/calico/a/2"]
    assert gw.list("/calico/zzz/").kvs == ()


def test_reads_go_to_the_next_endpoint(etcd: EtcdServer) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    b = GatewayBackend([dead, etcd.endpoint], timeout=2.0)
    try:
        b.apply("/calico/y", "1")  # refused: provably not sent, so tried on the next one
        assert b.get("/calico/y").value == "1"
    finally:
        b.close()


def test_nothing_listening_is_unavailable() -> None:
    b = GatewayBackend([f"http://127.0.0.1:{free_port()}"], timeout=0.5)
    try:
        with pytest.raises(Unavailable):
            b.list("/calico/")
    finally:
        b.close()


def test_watch_is_refused_with_a_clear_datastore_error(gw: GatewayBackend) -> None:
    with pytest.raises(DatastoreError, match="does not offer watches"):
        gw.watch("/calico/", "0")
