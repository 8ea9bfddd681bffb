"""Syncer logic over MemoryBackend: status sequence, resume without gap, compaction diff.

(The same properties against a real etcd, with kill -9, are in tests/integration/datastore.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import pytest

from libcalico.datastore.memory import MemoryBackend
from libcalico.datastore.syncer import (
    Syncer,
    SyncEvent,
    SyncStatus,
    Updates,
)
from tests.fixtures.syncer import Recorder

W, R, S = SyncStatus.WAIT_FOR_DATASTORE, SyncStatus.RESYNC_IN_PROGRESS, SyncStatus.IN_SYNC
LIMIT = 10.0  # seconds before a wait is a failure (never an assertion on speed)


Run = Callable[..., tuple[Syncer, Recorder]]


def snapshot(b: MemoryBackend, prefix: str) -> dict[str, tuple[str, int]]:
    return {kv.key: (kv.value, kv.revision) for kv in b.list(prefix).kvs}


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def run(backend: MemoryBackend) -> Iterator[Run]:
    started: list[Syncer] = []

    def make(*prefixes: str) -> tuple[Syncer, Recorder]:
        rec = Recorder(LIMIT)
        s = Syncer(backend, list(prefixes) or ["/k/"], rec,
                   backoff_initial=0.005, backoff_max=0.02)
        started.append(s)
        s.start()
        return s, rec

    yield make
    for s in started:
        s.stop()


def test_status_sequence_and_initial_snapshot(backend: MemoryBackend, run: Run) -> None:
    for i in range(5):
        backend.apply(f"/k/{i}", str(i))
    backend.apply("/other/x", "no")
    _, rec = run("/k/")
    rec.wait_status(S)
    assert rec.statuses() == [W, R, S]
    # The snapshot arrives between RESYNC_IN_PROGRESS and IN_SYNC.
    kinds = [type(e).__name__ if isinstance(e, Updates) else e.status for e in rec.events]
    assert kinds == [W, R, "Updates", S]
    assert rec.state == snapshot(backend, "/k/")


def test_live_updates_in_order(backend: MemoryBackend, run: Run) -> None:
    _, rec = run("/k/")
    rec.wait_status(S)
    a = backend.create("/k/a", "1")
    backend.update("/k/a", "2", a.revision)
    backend.apply("/k/b", "3")
    backend.delete("/k/a")
    last = backend.revision
    rec.wait(lambda: bool(rec.updates) and rec.updates[-1].revision == last, "delete")
    assert [(u.key, u.value) for u in rec.updates] == [
        ("/k/a", "1"), ("/k/a", "2"), ("/k/b", "3"), ("/k/a", None)]
    assert rec.state == snapshot(backend, "/k/")


def test_outage_resumes_from_last_revision_without_gap_or_repeat(
    backend: MemoryBackend, run: Run
) -> None:
    backend.apply("/k/a", "0")
    _, rec = run("/k/")
    rec.wait_status(S)
    backend.set_available(False, allow_writes=True)
    rec.wait_status(W, 2)  # the initial one, then the outage
    written = [backend.apply(f"/k/{i % 3}", str(i)).revision for i in range(20)]
    backend.set_available(True)
    rec.wait_status(S, 2)
    rec.wait(lambda: bool(rec.updates) and rec.updates[-1].revision == written[-1], "catch-up")
    revisions = [u.revision for u in rec.updates]
    # MemoryBackend's revisions are etcd's (decimal): this test may order them.
    assert [int(r) for r in revisions] == sorted({int(r) for r in revisions}), \
        "every revision exactly once, in order"
    assert revisions[-20:] == written
    assert R not in rec.statuses()[2:], "a resumed watch must not relist"
    assert rec.state == snapshot(backend, "/k/")


def test_compaction_relists_and_emits_deletes(
    backend: MemoryBackend, run: Run
) -> None:
    for k in ("a", "b", "c"):
        backend.apply(f"/k/{k}", "0")
    _, rec = run("/k/")
    rec.wait_status(S)
    backend.set_available(False, allow_writes=True)
    rec.wait_status(W, 2)
    backend.delete("/k/a")
    backend.apply("/k/b", "changed")
    backend.apply("/k/d", "new")
    backend.compact(backend.revision)
    backend.set_available(True)
    rec.wait_status(S, 2)
    assert rec.statuses()[-2:] == [R, S]
    assert rec.state == snapshot(backend, "/k/")
    tail = rec.updates[3:]
    assert {(u.key, u.value) for u in tail} == {("/k/a", None), ("/k/b", "changed"),
                                                ("/k/d", "new")}
    assert ("/k/c", "0") not in {(u.key, u.value) for u in tail}, "unchanged keys not resent"


def test_multiple_prefixes_in_sync_only_when_all_are(
    backend: MemoryBackend, run: Run
) -> None:
    backend.apply("/a/1", "x")
    backend.apply("/b/1", "y")
    backend.apply("/c/1", "ignored")
    _, rec = run("/a/", "/b/")
    rec.wait_status(S)
    assert rec.statuses() == [W, R, S]
    assert set(rec.state) == {"/a/1", "/b/1"}
    backend.apply("/b/2", "z")
    rec.wait(lambda: "/b/2" in rec.state, "/b/2")


def test_overlapping_prefixes_rejected(backend: MemoryBackend) -> None:
    with pytest.raises(ValueError, match="overlap"):
        Syncer(backend, ["/calico/", "/calico/ipam/"], lambda e: None)


def test_waits_for_datastore_then_syncs(
    backend: MemoryBackend, run: Run
) -> None:
    backend.set_available(False, allow_writes=True)
    backend.apply("/k/a", "1")
    _, rec = run("/k/")
    rec.wait_status(W)
    backend.set_available(True)
    rec.wait_status(S)
    assert rec.statuses() == [W, R, S]
    assert rec.state == snapshot(backend, "/k/")


def test_failing_sink_does_not_stop_the_syncer(backend: MemoryBackend) -> None:
    rec = Recorder(LIMIT)
    calls = []

    def sink(ev: SyncEvent) -> None:
        calls.append(ev)
        if len(calls) == 2:
            raise RuntimeError("consumer bug")
        rec(ev)

    s = Syncer(backend, ["/k/"], sink, backoff_initial=0.005)
    s.start()
    try:
        rec.wait_status(S)
        backend.apply("/k/z", "1")
        rec.wait(lambda: "/k/z" in rec.state, "update after sink failure")
    finally:
        s.stop()


def test_stop_ends_threads_and_delivery(backend: MemoryBackend) -> None:
    rec = Recorder(LIMIT)
    s = Syncer(backend, ["/k/", "/j/"], rec)
    s.start()
    rec.wait_status(S)
    s.stop()
    before = len(rec.events)
    backend.apply("/k/after", "1")
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("syncer"))
    assert len(rec.events) == before
