"""The syncer against a real etcd: no gap across kill -9 and restart, compaction recovery."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from libcalico.datastore.etcd import EtcdBackend
from libcalico.datastore.syncer import (
    Syncer,
    SyncStatus,
)
from tests.fixtures.etcd import EtcdFactory, EtcdServer, free_port
from tests.fixtures.syncer import Recorder

W, R, S = SyncStatus.WAIT_FOR_DATASTORE, SyncStatus.RESYNC_IN_PROGRESS, SyncStatus.IN_SYNC
LIMIT = 60.0  # seconds before a wait counts as a failure (not a speed assertion)
PREFIXES = ("/calico/resources/v3/projectcalico.org/ippools/", "/calico/ipam/v2/")


def etcd_state(b: EtcdBackend) -> dict[str, tuple[str, int]]:
    out: dict[str, tuple[str, int]] = {}
    for p in PREFIXES:
        out.update({kv.key: (kv.value, kv.revision) for kv in b.list(p).kvs})
    return out


@pytest.fixture
def server(etcd_factory: EtcdFactory) -> EtcdServer:
    return etcd_factory.new("syncer")


@pytest.fixture
def synced(server: EtcdServer) -> Iterator[tuple[EtcdBackend, Syncer, Recorder]]:
    b = EtcdBackend([server.endpoint], timeout=2.0)
    b.apply(PREFIXES[0] + "pool-a", '{"spec":{"cidr":"10.0.0.0/16"}}')
    b.apply(PREFIXES[1] + "config", '{"strict_affinity":false}')
    b.apply("/calico/felix/v1/ignored", "x")
    rec = Recorder()
    syncer = Syncer(b, PREFIXES, rec, backoff_initial=0.05, backoff_max=0.5)
    syncer.start()
    try:
        rec.wait_status(S)
        yield b, syncer, rec
    finally:
        syncer.stop()
        b.close()


def outage_port() -> int:
    return free_port()


def test_initial_sync(synced: tuple[EtcdBackend, Syncer, Recorder]) -> None:
    b, _, rec = synced
    assert rec.statuses() == [W, R, S]
    assert rec.state == etcd_state(b)


def test_no_gap_across_kill_and_restart(
    synced: tuple[EtcdBackend, Syncer, Recorder], server: EtcdServer
) -> None:
    b, _, rec = synced
    before = [b.apply(f"{PREFIXES[1]}handle/h{i}", str(i)).revision for i in range(5)]
    rec.wait(lambda: before[-1] in {u.revision for u in rec.updates}, "pre-outage writes")
    home = server.client_port

    # kill -9; etcd comes back on another port, so the syncer is still cut off while a
    # second client writes, deletes and rewrites through the restarted server.
    server.restart(client_port=outage_port())
    rec.wait_status(W, 2)
    writer = EtcdBackend([server.endpoint])
    during = []
    for i in range(10):
        during.append(writer.apply(f"{PREFIXES[0]}pool-{i}", f'{{"n":{i}}}').revision)
    during.append(_delete_rev(writer, f"{PREFIXES[1]}handle/h0"))
    during.append(writer.apply(f"{PREFIXES[1]}config", '{"strict_affinity":true}').revision)
    writer.close()

    server.restart(client_port=home)  # kill -9 again; back where the syncer looks
    rec.wait_status(S, 2)
    after = [b.apply(f"{PREFIXES[0]}pool-late", "1").revision]
    expected = set(before + during + after)
    # Each prefix is in revision order; across prefixes there is no order: wait for all.
    rec.wait(lambda: expected <= {u.revision for u in rec.updates}, "every write")

    revisions = [u.revision for u in rec.updates]
    assert len(revisions) == len(set(revisions)), "no revision delivered twice"
    for r in before + during + after:
        assert revisions.count(r) == 1, f"revision {r} delivered {revisions.count(r)} times"
    assert R not in rec.statuses()[3:], "a resumed watch must not fall back to a relist"
    assert rec.state == etcd_state(b)


def _delete_rev(b: EtcdBackend, key: str) -> str:
    b.delete(key)
    return b.revision()


def test_compaction_recovery(
    synced: tuple[EtcdBackend, Syncer, Recorder], server: EtcdServer
) -> None:
    b, _, rec = synced
    for i in range(5):
        b.apply(f"{PREFIXES[0]}p{i}", "0")
    rec.wait(lambda: f"{PREFIXES[0]}p4" in rec.state, "setup")
    home = server.client_port
    server.restart(client_port=outage_port())
    rec.wait_status(W, 2)
    writer = EtcdBackend([server.endpoint])
    writer.delete(f"{PREFIXES[0]}p0")
    writer.delete(f"{PREFIXES[0]}pool-a")
    writer.apply(f"{PREFIXES[0]}p1", "changed")
    writer.apply(f"{PREFIXES[1]}new", "1")
    for i in range(20):  # churn, then drop the history the syncer would resume from
        writer.apply("/calico/felix/v1/churn", str(i))
    writer.compact(writer.revision())
    writer.close()
    server.restart(client_port=home)

    rec.wait_status(S, 2)
    rec.wait(lambda: f"{PREFIXES[1]}new" in rec.state, "resync of the second prefix")
    tail = rec.statuses()[3:]
    assert tail[-2:] == [R, S], f"compaction forces a resync: {tail}"
    assert rec.state == etcd_state(b)
    deletes = {u.key for u in rec.updates if u.value is None}
    assert {f"{PREFIXES[0]}p0", f"{PREFIXES[0]}pool-a"} <= deletes
    # Live updates flow again after the resync.
    b.apply(f"{PREFIXES[0]}after", "1")
    rec.wait(lambda: f"{PREFIXES[0]}after" in rec.state, "post-resync write")


def test_quiet_prefix_survives_compaction_without_relist(etcd_factory: EtcdFactory) -> None:
    """etcd's progress notifications tell an idle watch how far it is current, so after a
    restart and a compaction of everything it last saw, it resumes instead of relisting."""
    srv = etcd_factory.new("progress", extra_args=[
        "--experimental-watch-progress-notify-interval", "100ms"])
    b = EtcdBackend([srv.endpoint], timeout=2.0)
    quiet = PREFIXES[0]
    b.apply(quiet + "pool-a", "1")
    rec = Recorder()
    syncer = Syncer(b, [quiet], rec, backoff_initial=0.05, backoff_max=0.5)
    syncer.start()
    try:
        rec.wait_status(S)
        last_other = "0"
        for i in range(10):
            last_other = b.apply("/calico/felix/v1/busy", str(i)).revision
        deadline = time.monotonic() + LIMIT
        while int(syncer.revisions()[quiet] or 0) < int(last_other):  # etcd's: decimal
            assert time.monotonic() < deadline, "no progress notification arrived"
            time.sleep(0.05)
        b.compact(last_other)
        srv.restart()  # kill -9: the watch breaks and must be re-established
        rec.wait_status(W, 2)
        rec.wait_status(S, 2)
        assert R not in rec.statuses()[3:], "resumed from the progress revision, no relist"
        rev = b.apply(quiet + "pool-b", "2").revision
        rec.wait(lambda: rec.state.get(quiet + "pool-b") == ("2", rev), "write after resume")
    finally:
        syncer.stop()
        b.close()
