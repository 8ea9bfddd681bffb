"""The Syncer treats revisions as opaque: over a backend whose revisions are random tokens
(no order, no arithmetic possible), it still resumes without gap or repeat, relists on
Compacted, and resumes after a stream's `progress` instead of relisting.

`OpaqueBackend` wraps MemoryBackend and hands out a fresh uuid token for every revision, as a
Kubernetes backend hands out resourceVersions the client must not interpret.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest

from libcalico.datastore.api import KVPair, Listing, Revision, WatchEvent
from libcalico.datastore.memory import MemoryBackend, MemoryWatchStream
from libcalico.datastore.syncer import Syncer, SyncStatus
from libcalico.errors import ValidationError
from tests.fixtures.syncer import Recorder

W, R, S = SyncStatus.WAIT_FOR_DATASTORE, SyncStatus.RESYNC_IN_PROGRESS, SyncStatus.IN_SYNC


class OpaqueBackend:
    def __init__(self) -> None:
        self.inner = MemoryBackend()
        self._lock = threading.Lock()
        self._token: dict[str, str] = {}  # inner revision -> token
        self._inner: dict[str, str] = {}  # token -> inner revision
        self.streams: list[OpaqueStream] = []

    def out(self, rev: str) -> Revision:
        with self._lock:
            tok = self._token.get(rev)
            if tok is None:
                tok = self._token[rev] = uuid.uuid4().hex
                self._inner[tok] = rev
            return tok

    def back(self, tok: Revision) -> str:
        with self._lock:
            rev = self._inner.get(tok)
        if rev is None:
            raise ValidationError(f"not a revision of this backend: {tok!r}")
        return rev

    def _kv(self, kv: KVPair) -> KVPair:
        return KVPair(kv.key, kv.value, self.out(kv.revision))

    def get(self, key: str) -> KVPair:
        return self._kv(self.inner.get(key))

    def list(self, prefix: str) -> Listing:
        listing = self.inner.list(prefix)
        return Listing(tuple(self._kv(kv) for kv in listing.kvs), self.out(listing.revision))

    def create(self, key: str, value: str) -> KVPair:
        return self._kv(self.inner.create(key, value))

    def update(self, key: str, value: str, revision: Revision) -> KVPair:
        return self._kv(self.inner.update(key, value, self.back(revision)))

    def apply(self, key: str, value: str) -> KVPair:
        return self._kv(self.inner.apply(key, value))

    def delete(self, key: str, revision: Revision | None = None) -> KVPair:
        inner_rev = None if revision is None else self.back(revision)
        return self._kv(self.inner.delete(key, inner_rev))

    def watch(self, prefix: str, after: Revision) -> OpaqueStream:
        stream = OpaqueStream(self, self.inner.watch(prefix, self.back(after)))
        self.streams.append(stream)
        return stream

    def close(self) -> None:
        pass

    def vouch(self) -> None:
        """Every open stream reports progress up to the store's current revision (as an etcd
        progress notification or a Kubernetes bookmark would on a quiet watch)."""
        now = self.inner.revision
        for s in self.streams:
            s.vouched = now


class OpaqueStream:
    def __init__(self, backend: OpaqueBackend, inner: MemoryWatchStream) -> None:
        self._backend = backend
        self._inner = inner
        self.vouched: str | None = None

    @property
    def progress(self) -> Revision | None:
        return None if self.vouched is None else self._backend.out(self.vouched)

    def __iter__(self) -> Iterator[WatchEvent]:
        for ev in self._inner:
            self.vouched = None  # the backend knows its own order; the syncer does not
            yield WatchEvent(ev.type, ev.key, ev.value, self._backend.out(ev.revision))

    def close(self) -> None:
        self._inner.close()


@pytest.fixture
def backend() -> OpaqueBackend:
    return OpaqueBackend()


@pytest.fixture
def syncer_rec(backend: OpaqueBackend) -> Iterator[tuple[Syncer, Recorder]]:
    rec = Recorder(10.0)
    s = Syncer(backend, ["/k/", "/j/"], rec, backoff_initial=0.005, backoff_max=0.02)
    s.start()
    yield s, rec
    s.stop()


def state(b: OpaqueBackend, *prefixes: str) -> dict[str, tuple[str, str]]:
    return {kv.key: (kv.value, kv.revision) for p in prefixes for kv in b.list(p).kvs}


def test_opaque_revisions_flow_through_and_cas_works(backend: OpaqueBackend) -> None:
    kv = backend.create("/k/a", "1")
    assert not kv.revision.isdigit()
    backend.update("/k/a", "2", kv.revision)
    with pytest.raises(ValidationError):
        backend.update("/k/a", "3", "17")


def test_outage_resumes_each_prefix_after_its_own_revision(
    backend: OpaqueBackend, syncer_rec: tuple[Syncer, Recorder]
) -> None:
    _, rec = syncer_rec
    backend.apply("/k/a", "0")
    backend.apply("/j/a", "0")
    rec.wait_status(S)
    rec.wait(lambda: len(rec.state) == 2, "first writes")
    backend.inner.set_available(False, allow_writes=True)
    rec.wait_status(W, 2)
    written = [backend.apply(f"/{p}/{i % 3}", str(i)).revision for i in range(12)
               for p in ("k", "j")]
    backend.inner.set_available(True)
    rec.wait_status(S, 2)
    rec.wait(lambda: set(written) <= {u.revision for u in rec.updates}, "catch-up")
    revisions = [u.revision for u in rec.updates]
    assert len(revisions) == len(set(revisions)), "no update delivered twice"
    assert R not in rec.statuses()[2:], "a resumed watch must not relist"
    assert rec.state == state(backend, "/k/", "/j/")


def test_compacted_relists_and_emits_the_diff(
    backend: OpaqueBackend, syncer_rec: tuple[Syncer, Recorder]
) -> None:
    _, rec = syncer_rec
    for k in ("a", "b", "c"):
        backend.apply(f"/k/{k}", "0")
    rec.wait_status(S)
    rec.wait(lambda: len(rec.state) == 3, "setup")
    backend.inner.set_available(False, allow_writes=True)
    rec.wait_status(W, 2)
    backend.delete("/k/a")
    backend.apply("/k/b", "changed")
    backend.inner.compact(backend.inner.revision)
    backend.inner.set_available(True)
    rec.wait_status(S, 2)
    assert R in rec.statuses()[2:]
    assert rec.state == state(backend, "/k/", "/j/")


def test_a_quiet_prefix_resumes_after_its_progress_instead_of_relisting(
    backend: OpaqueBackend, syncer_rec: tuple[Syncer, Recorder]
) -> None:
    syncer, rec = syncer_rec
    backend.apply("/k/a", "0")
    backend.apply("/j/a", "0")
    rec.wait_status(S)
    rec.wait(lambda: len(rec.state) == 2, "setup")
    for i in range(5):  # history outside both prefixes
        backend.apply("/other/x", str(i))
    backend.vouch()
    assert syncer.revisions()["/k/"] == backend.out(backend.inner.revision)
    backend.inner.set_available(False)
    rec.wait_status(W, 2)
    backend.inner.compact(backend.inner.revision)  # gone: everything the last events knew
    backend.inner.set_available(True)
    rec.wait_status(S, 2)
    assert R not in rec.statuses()[2:], "resumed after the progress revision, no relist"
    backend.apply("/k/b", "1")
    rec.wait(lambda: "/k/b" in rec.state, "write after resume")
