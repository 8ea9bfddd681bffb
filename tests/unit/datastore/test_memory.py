"""MemoryBackend keeps etcd's semantics: revisions, CAS, ordered watches, compaction."""

from __future__ import annotations

import threading

import pytest

from libcalico.datastore.api import EventType, WatchEvent
from libcalico.datastore.memory import MemoryBackend
from libcalico.errors import AlreadyExists, Compacted, Conflict, NotFound, Unavailable


def test_revisions_grow_by_one_per_write() -> None:
    b = MemoryBackend()
    assert b.revision == "1"
    a = b.create("/k/a", "1")
    assert a.revision == "2"
    u = b.update("/k/a", "2", a.revision)
    assert u.revision == "3"
    assert b.get("/k/a").revision == "3"
    d = b.delete("/k/a")
    assert (d.value, d.revision) == ("2", "3")
    assert b.revision == "4"


def test_create_twice_is_already_exists() -> None:
    b = MemoryBackend()
    b.create("/k/a", "1")
    with pytest.raises(AlreadyExists):
        b.create("/k/a", "2")
    assert b.get("/k/a").value == "1"


def test_update_with_stale_revision_conflicts_and_keeps_value() -> None:
    b = MemoryBackend()
    first = b.create("/k/a", "1")
    b.update("/k/a", "2", first.revision)
    with pytest.raises(Conflict):
        b.update("/k/a", "3", first.revision)
    assert b.get("/k/a").value == "2"


def test_update_or_delete_missing_is_not_found() -> None:
    b = MemoryBackend()
    with pytest.raises(NotFound):
        b.update("/k/a", "1", "5")
    with pytest.raises(NotFound):
        b.delete("/k/a")
    with pytest.raises(NotFound):
        b.get("/k/a")


def test_conditional_delete() -> None:
    b = MemoryBackend()
    kv = b.create("/k/a", "1")
    b.apply("/k/a", "2")
    with pytest.raises(Conflict):
        b.delete("/k/a", kv.revision)
    cur = b.get("/k/a")
    assert b.delete("/k/a", cur.revision).value == "2"


def test_list_is_sorted_by_key_and_filtered_by_prefix() -> None:
    b = MemoryBackend()
    for k in ("/k/b", "/k/a", "/other/x", "/kz"):
        b.apply(k, k)
    listing = b.list("/k/")
    assert [kv.key for kv in listing.kvs] == ["/k/a", "/k/b"]
    assert listing.revision == b.revision


def test_watch_replays_history_then_follows() -> None:
    b = MemoryBackend()
    b.apply("/k/a", "1")
    b.apply("/x/ignored", "1")
    stream = b.watch("/k/", "0")
    got: list[WatchEvent] = []
    ready = threading.Event()

    def consume() -> None:
        for ev in stream:
            got.append(ev)
            if len(got) == 3:
                ready.set()
                return

    t = threading.Thread(target=consume)
    t.start()
    b.apply("/k/b", "2")
    b.delete("/k/a")
    assert ready.wait(5)
    t.join(5)
    assert [(e.type, e.key, e.value) for e in got] == [
        (EventType.PUT, "/k/a", "1"),
        (EventType.PUT, "/k/b", "2"),
        (EventType.DELETE, "/k/a", None),
    ]
    assert [int(e.revision) for e in got] == sorted(int(e.revision) for e in got)


def test_watch_from_compacted_revision_raises() -> None:
    b = MemoryBackend()
    for i in range(5):
        b.apply("/k/a", str(i))
    b.compact(b.revision)
    with pytest.raises(Compacted):
        next(iter(b.watch("/k/", "1")))
    # From the compact revision on is still fine.
    b.apply("/k/a", "x")
    ev = next(iter(b.watch("/k/", str(int(b.revision) - 1))))
    assert ev.value == "x"


def test_outage_breaks_watches_and_calls() -> None:
    b = MemoryBackend()
    stream = b.watch("/k/", "0")
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            for _ in stream:
                pass
        except Unavailable as exc:
            errors.append(exc)

    t = threading.Thread(target=consume)
    t.start()
    b.set_available(False)
    t.join(5)
    assert not t.is_alive()
    assert len(errors) == 1
    with pytest.raises(Unavailable):
        b.get("/k/a")
    b.set_available(True)
    b.apply("/k/a", "1")


def test_close_ends_iteration_quietly() -> None:
    b = MemoryBackend()
    stream = b.watch("/k/", b.revision)
    done = threading.Event()

    def consume() -> None:
        for _ in stream:
            pass
        done.set()

    t = threading.Thread(target=consume)
    t.start()
    stream.close()
    assert done.wait(5)
    t.join(5)
