"""EtcdBackend against a real etcd: Calico's CAS semantics, raw layout, races, errors."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from libcalico.datastore.api import EventType, WatchEvent
from libcalico.datastore.etcd import EtcdBackend
from libcalico.errors import AlreadyExists, Compacted, Conflict, NotFound, Unavailable
from tests.fixtures.etcd import EtcdFactory, EtcdServer, free_port

POOL_KEY = "/calico/resources/v3/projectcalico.org/ippools/default-ipv4-ippool"
POOL = ('{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":'
        '"default-ipv4-ippool"},"spec":{"cidr":"10.244.0.0/16","blockSize":26}}')


@pytest.fixture
def backend(etcd_backend: EtcdBackend) -> EtcdBackend:
    return etcd_backend


def test_create_get_list_update_delete(backend: EtcdBackend, etcd: EtcdServer) -> None:
    created = backend.create(POOL_KEY, POOL)
    # What etcd holds is exactly the key and bytes we wrote (Calico's layout).
    assert etcd.ctl("get", POOL_KEY, "--print-value-only").rstrip("\n") == POOL
    got = backend.get(POOL_KEY)
    assert got == created
    listing = backend.list("/calico/resources/v3/projectcalico.org/ippools/")
    assert listing.kvs == (created,)
    assert int(listing.revision) >= int(created.revision)  # etcd: decimal revisions
    updated = backend.update(POOL_KEY, POOL.replace("26", "27"), created.revision)
    assert int(updated.revision) > int(created.revision)
    assert backend.get(POOL_KEY).value.endswith('"blockSize":27}}')
    deleted = backend.delete(POOL_KEY, updated.revision)
    assert deleted.value == updated.value
    with pytest.raises(NotFound):
        backend.get(POOL_KEY)


def test_create_existing_is_already_exists_and_keeps_value(backend: EtcdBackend) -> None:
    backend.create("/calico/x", "1")
    with pytest.raises(AlreadyExists):
        backend.create("/calico/x", "2")
    assert backend.get("/calico/x").value == "1"


def test_stale_update_and_delete_conflict(backend: EtcdBackend) -> None:
    first = backend.create("/calico/x", "1")
    backend.update("/calico/x", "2", first.revision)
    with pytest.raises(Conflict):
        backend.update("/calico/x", "3", first.revision)
    with pytest.raises(Conflict):
        backend.delete("/calico/x", first.revision)
    assert backend.get("/calico/x").value == "2"


def test_missing_keys_are_not_found(backend: EtcdBackend) -> None:
    with pytest.raises(NotFound):
        backend.update("/calico/none", "1", "1")
    with pytest.raises(NotFound):
        backend.delete("/calico/none")
    with pytest.raises(NotFound):
        backend.delete("/calico/none", "1")


def test_apply_is_unconditional(backend: EtcdBackend) -> None:
    a = backend.apply("/calico/ipam/v2/config", '{"strict_affinity":false}')
    b = backend.apply("/calico/ipam/v2/config", '{"strict_affinity":true}')
    assert int(b.revision) > int(a.revision)
    assert backend.get("/calico/ipam/v2/config").value == '{"strict_affinity":true}'


def test_list_is_a_prefix_not_a_sibling(backend: EtcdBackend) -> None:
    for k in ("/calico/a/1", "/calico/a/2", "/calico/ab", "/calico/b/1"):
        backend.apply(k, "v")
    assert [kv.key for kv in backend.list("/calico/a/").kvs] == ["/calico/a/1", "/calico/a/2"]
    assert backend.list("/calico/zzz/").kvs == ()


def test_two_clients_racing_on_one_key_lose_nothing(etcd: EtcdServer) -> None:
    """Each client adds its increments with read-modify-CAS; the stale writer gets Conflict,
    re-reads and retries. The final count has every increment of both."""
    setup = EtcdBackend([etcd.endpoint])
    setup.create("/calico/counter", "0")
    per_client = 60
    conflicts = [0, 0]
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def client(i: int) -> None:
        b = EtcdBackend([etcd.endpoint])
        try:
            barrier.wait()
            done = 0
            while done < per_client:
                kv = b.get("/calico/counter")
                try:
                    b.update("/calico/counter", str(int(kv.value) + 1), kv.revision)
                    done += 1
                except Conflict:
                    conflicts[i] += 1
        except BaseException as exc:
            errors.append(exc)
        finally:
            b.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert setup.get("/calico/counter").value == str(2 * per_client)
    setup.close()


def test_one_stale_write_of_two(backend: EtcdBackend, etcd: EtcdServer) -> None:
    """The deterministic form of the race: two clients read the same revision."""
    other = EtcdBackend([etcd.endpoint])
    try:
        kv = backend.create("/calico/k", "base")
        seen_a, seen_b = backend.get("/calico/k"), other.get("/calico/k")
        assert seen_a.revision == seen_b.revision == kv.revision
        backend.update("/calico/k", "from-a", seen_a.revision)
        with pytest.raises(Conflict):
            other.update("/calico/k", "from-b", seen_b.revision)
        assert other.get("/calico/k").value == "from-a"
    finally:
        other.close()


def collect(stream: object, n: int) -> list[WatchEvent]:
    out: list[WatchEvent] = []
    for ev in stream:  # type: ignore[attr-defined]
        out.append(ev)
        if len(out) == n:
            break
    return out


def test_watch_from_listing_revision_sees_every_later_change(backend: EtcdBackend) -> None:
    backend.apply("/calico/w/a", "0")
    listing = backend.list("/calico/w/")
    backend.apply("/calico/w/a", "1")
    backend.apply("/calico/other", "x")
    backend.create("/calico/w/b", "2")
    backend.delete("/calico/w/a")
    with backend.watch("/calico/w/", listing.revision) as stream:
        events = collect(stream, 3)
    assert [(e.type, e.key, e.value) for e in events] == [
        (EventType.PUT, "/calico/w/a", "1"),
        (EventType.PUT, "/calico/w/b", "2"),
        (EventType.DELETE, "/calico/w/a", None),
    ]
    revs = [int(e.revision) for e in events]
    assert revs == sorted(revs) and revs[0] == int(listing.revision) + 1


def test_watch_from_compacted_revision_raises(backend: EtcdBackend) -> None:
    start = backend.apply("/calico/c", "0").revision
    for i in range(3):
        backend.apply("/calico/c", str(i))
    backend.compact(backend.revision())
    with pytest.raises(Compacted), backend.watch("/calico/", start) as stream:
        collect(stream, 1)


def test_close_ends_a_blocked_watch(backend: EtcdBackend) -> None:
    stream = backend.watch("/calico/quiet/", backend.revision())
    finished = threading.Event()

    def consume() -> None:
        for _ in stream:
            pass
        finished.set()

    t = threading.Thread(target=consume)
    t.start()
    stream.close()
    t.join(10)
    assert finished.is_set()


def test_unavailable_then_recovers_on_same_client(etcd_factory: EtcdFactory) -> None:
    srv = etcd_factory.new("outage")
    b = EtcdBackend([srv.endpoint], timeout=3.0)
    try:
        b.create("/calico/a", "1")
        srv.kill()
        with pytest.raises(Unavailable, match=srv.endpoint):
            b.get("/calico/a")
        with pytest.raises(Unavailable):
            b.create("/calico/b", "1")
        srv.start()
        assert b.get("/calico/a").value == "1"
        b.create("/calico/b", "2")
    finally:
        b.close()


def test_nothing_listening_is_unavailable() -> None:
    b = EtcdBackend([f"http://127.0.0.1:{free_port()}"], timeout=0.5)
    try:
        with pytest.raises(Unavailable):
            b.list("/calico/")
        with pytest.raises(Unavailable):
            b.watch("/calico/", "0")
    finally:
        b.close()


def test_watch_raises_unavailable_on_kill_and_resume_loses_nothing(
    etcd_factory: EtcdFactory,
) -> None:
    srv = etcd_factory.new("watchkill")
    b = EtcdBackend([srv.endpoint], timeout=5.0)
    try:
        first = b.apply("/calico/r/0", "0")
        stream = b.watch("/calico/r/", str(int(first.revision) - 1))
        seen: list[WatchEvent] = []
        failure: list[BaseException] = []
        got_first = threading.Event()

        def consume() -> None:
            try:
                for ev in stream:
                    seen.append(ev)
                    got_first.set()
            except Unavailable as exc:
                failure.append(exc)

        t = threading.Thread(target=consume)
        t.start()
        assert got_first.wait(10)
        srv.restart(client_port=free_port())  # kill -9; back on another port
        t.join(30)
        assert not t.is_alive(), "a watch on a killed etcd must end, not hang"
        assert failure, "the broken watch raises Unavailable"
        # Writes while this client's endpoint is down.
        writer = EtcdBackend([srv.endpoint])
        missed = [writer.apply(f"/calico/r/{i}", str(i)).revision for i in range(1, 6)]
        writer.close()
        old_port = int(b.endpoints[0].rsplit(":", 1)[1])
        srv.restart(client_port=old_port)
        last = seen[-1].revision
        with b.watch("/calico/r/", last) as again:
            resumed = collect(again, 5)
        assert [e.revision for e in resumed] == missed
    finally:
        b.close()


def test_watch_on_a_frozen_etcd_raises_instead_of_hanging(etcd_factory: EtcdFactory) -> None:
    """SIGSTOP: the TCP connection stays up but nothing answers. Keepalive pings notice."""
    srv = etcd_factory.new("frozen")
    assert srv.proc is not None
    b = EtcdBackend([srv.endpoint], timeout=3.0)
    stream = b.watch("/calico/", b.revision())
    outcome: list[BaseException | None] = []

    def consume() -> None:
        try:
            for _ in stream:
                pass
            outcome.append(None)
        except Unavailable as exc:
            outcome.append(exc)

    t = threading.Thread(target=consume)
    t.start()
    os.kill(srv.proc.pid, signal.SIGSTOP)
    try:
        t.join(90)
        assert not t.is_alive(), "the watch hung on a frozen etcd"
        assert outcome and isinstance(outcome[0], Unavailable)
    finally:
        os.kill(srv.proc.pid, signal.SIGCONT)
        stream.close()
        b.close()
