"""An in-memory `Backend` with etcd's semantics, for unit tests of pure logic elsewhere.

Revisions, compare-and-swap, ordered watches and compaction behave as in etcd v3:
the store revision starts at 1 and grows by one per write; a key's mod revision is the
revision of its last write; a delete is an event at a new revision. Revisions are handed out
as decimal text (the Backend's opaque `Revision`). Tests can also compact history
(`compact`) and simulate an outage (`set_available(False)`, which fails every call and breaks
every open watch with `Unavailable`).

Not a proof that anything works against etcd: integration tests use the real one.
"""

from __future__ import annotations

import bisect
import builtins
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from libcalico.datastore.api import EventType, KVPair, Listing, Revision, WatchEvent
from libcalico.errors import AlreadyExists, Compacted, Conflict, NotFound, Unavailable


@dataclass(frozen=True, slots=True)
class _Entry:
    value: str
    mod_revision: int
    create_revision: int
    version: int


class MemoryBackend:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._data: dict[str, _Entry] = {}
        self._revision = 1
        self._history: builtins.list[WatchEvent] = []
        self._history_revs: builtins.list[int] = []
        self._compacted = 0
        self._available = True
        self._allow_writes = False
        self._epoch = 0  # bumped when an outage breaks the open watches

    # -- test controls --------------------------------------------------------------------

    @property
    def revision(self) -> Revision:
        """The store's current revision."""
        with self._cond:
            return str(self._revision)

    def compact(self, revision: Revision) -> None:
        """Forget the history before `revision`; watches from earlier revisions get Compacted."""
        with self._cond:
            rev = int(revision)
            if rev > self._revision:
                raise ValueError(f"cannot compact beyond the current revision {self._revision}")
            self._compacted = max(self._compacted, rev)
            cut = bisect.bisect_left(self._history_revs, rev)
            del self._history[:cut]
            del self._history_revs[:cut]
            self._cond.notify_all()

    def set_available(self, available: bool, *, allow_writes: bool = False) -> None:
        """Simulate an outage: every call and open watch fails with Unavailable. With
        `allow_writes`, writes still succeed (a partition between a reader and etcd while
        other clients go on writing)."""
        with self._cond:
            self._available = available
            self._allow_writes = allow_writes
            if not available:
                self._epoch += 1
            self._cond.notify_all()

    # -- Backend --------------------------------------------------------------------------

    def _check(self, write: bool = False) -> None:
        if not self._available and not (write and self._allow_writes):
            raise Unavailable("memory backend is unavailable (test outage)")

    def _write(self, key: str, value: str | None) -> Revision:
        self._revision += 1
        rev = self._revision
        old = self._data.get(key)
        if value is None:
            del self._data[key]
            ev = WatchEvent(EventType.DELETE, key, None, str(rev))
        else:
            self._data[key] = _Entry(
                value, rev, old.create_revision if old else rev, old.version + 1 if old else 1
            )
            ev = WatchEvent(EventType.PUT, key, value, str(rev))
        self._history.append(ev)
        self._history_revs.append(rev)
        self._cond.notify_all()
        return ev.revision

    def get(self, key: str) -> KVPair:
        with self._cond:
            self._check()
            e = self._data.get(key)
            if e is None:
                raise NotFound(key)
            return KVPair(key, e.value, str(e.mod_revision))

    def list(self, prefix: str) -> Listing:
        with self._cond:
            self._check()
            kvs = tuple(
                KVPair(k, e.value, str(e.mod_revision))
                for k, e in sorted(self._data.items())
                if k.startswith(prefix)
            )
            return Listing(kvs, str(self._revision))

    def create(self, key: str, value: str) -> KVPair:
        with self._cond:
            self._check(write=True)
            if key in self._data:
                raise AlreadyExists(key)
            return KVPair(key, value, self._write(key, value))

    def update(self, key: str, value: str, revision: Revision) -> KVPair:
        with self._cond:
            self._check(write=True)
            e = self._data.get(key)
            if e is None:
                raise NotFound(key)
            if str(e.mod_revision) != revision:
                raise Conflict(key, revision)
            return KVPair(key, value, self._write(key, value))

    def apply(self, key: str, value: str) -> KVPair:
        with self._cond:
            self._check(write=True)
            return KVPair(key, value, self._write(key, value))

    def delete(self, key: str, revision: Revision | None = None) -> KVPair:
        with self._cond:
            self._check(write=True)
            e = self._data.get(key)
            if e is None:
                raise NotFound(key)
            if revision is not None and str(e.mod_revision) != revision:
                raise Conflict(key, revision)
            self._write(key, None)
            return KVPair(key, e.value, str(e.mod_revision))

    def watch(self, prefix: str, after: Revision) -> MemoryWatchStream:
        with self._cond:
            self._check()
            start = int(after) + 1
            if start < self._compacted:
                raise Compacted(after, str(self._compacted))
            return MemoryWatchStream(self, prefix, start, self._epoch)

    def close(self) -> None:
        pass

    # -- for MemoryWatchStream ------------------------------------------------------------

    def _next_events(
        self, stream: MemoryWatchStream, after: int, epoch: int
    ) -> builtins.list[WatchEvent] | None:
        """Events under the stream's prefix with revision > `after`; blocks until there are
        some. None when the stream was closed."""
        with self._cond:
            while True:
                if stream.closed:
                    return None
                if not self._available or self._epoch != epoch:
                    raise Unavailable("memory backend watch broken (test outage)")
                if after + 1 < self._compacted:
                    raise Compacted(str(after), str(self._compacted))
                i = bisect.bisect_right(self._history_revs, after)
                found = [e for e in self._history[i:] if e.key.startswith(stream.prefix)]
                if found:
                    return found
                if i < len(self._history):
                    after = self._history_revs[-1]
                self._cond.wait()

    def _wake(self) -> None:
        with self._cond:
            self._cond.notify_all()


class MemoryWatchStream:
    def __init__(
        self, backend: MemoryBackend, prefix: str, start_revision: int, epoch: int
    ) -> None:
        self._backend = backend
        self.prefix = prefix
        self._after = start_revision - 1
        self._epoch = epoch
        self.closed = False
        self.progress: Revision | None = None
        """Never set: the memory backend sends no progress notifications."""

    def __iter__(self) -> Iterator[WatchEvent]:
        while True:
            events = self._backend._next_events(self, self._after, self._epoch)
            if events is None:
                return
            for ev in events:
                self._after = int(ev.revision)
                yield ev

    def close(self) -> None:
        self.closed = True
        self._backend._wake()
