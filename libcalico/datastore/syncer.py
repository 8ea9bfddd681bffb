"""The syncer: list + watch of some prefixes, delivered in order to one sink, with no gap.

    syncer = Syncer(backend, [resource_prefix("IPPool"), "/calico/ipam/v2/"], queue.put)
    syncer.start()   ...   syncer.stop()

Each prefix has a worker thread that

1. lists the prefix (emits the difference between what the consumer was told and the
   listing: puts for new or changed keys, deletes for keys that vanished);
2. watches after the listing's revision, emitting each event;
3. when the watch breaks (etcd restarted, member lost), watches again after this prefix's
   own last revision (its last event's, or a later progress revision its stream vouched
   for), so that nothing is missed or repeated; while it cannot, it waits with capped
   exponential backoff and reports WAIT_FOR_DATASTORE;
4. when the backend no longer has the changes after that revision (`Compacted`: etcd
   compaction, Kubernetes 410 Gone), goes back to 1 (RESYNC_IN_PROGRESS).

Revisions are opaque here: each prefix keeps the last one its backend gave it, and hands it
back; nothing is compared or computed.

One dispatcher thread calls `sink` for every event, serially: `StatusChanged` when the
overall status changes (see `snapshot.overall_status`) and `Updates` batches in between.
The first event is always `StatusChanged(WAIT_FOR_DATASTORE)`. Prefixes must not overlap.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from libcalico.datastore.api import Backend, EventType, Revision, WatchStream
from libcalico.datastore.snapshot import (
    Cache,
    StatusChanged,
    SyncEvent,
    SyncStatus,
    Update,
    Updates,
    diff,
    overall_status,
)
from libcalico.errors import Compacted, DatastoreError

__all__ = [
    "StatusChanged",
    "SyncEvent",
    "SyncStatus",
    "Syncer",
    "Update",
    "Updates",
]

log = logging.getLogger(__name__)

_MAX_BATCH = 1000


@dataclass(frozen=True, slots=True)
class _State:
    index: int
    status: SyncStatus


@dataclass(frozen=True, slots=True)
class _Emit:
    updates: tuple[Update, ...]


_STOP = object()


class _Cursor:
    """One prefix's position: what the consumer has been told, up to which revision."""

    def __init__(self) -> None:
        self.cache: Cache = {}
        self.last: Revision | None = None  # None: a full list is needed


class Backoff:
    """Capped exponential backoff whose waits end early when `stop` is set."""

    def __init__(self, stop: threading.Event, initial: float, cap: float) -> None:
        self._stop = stop
        self._initial = initial
        self._cap = cap
        self.delay = initial

    def wait(self) -> None:
        self._stop.wait(self.delay)
        self.delay = min(self.delay * 2, self._cap)

    def reset(self) -> None:
        self.delay = self._initial


class Syncer:
    def __init__(
        self,
        backend: Backend,
        prefixes: Sequence[str],
        sink: Callable[[SyncEvent], object],
        *,
        backoff_initial: float = 0.25,
        backoff_max: float = 5.0,
        name: str = "syncer",
    ) -> None:
        if not prefixes:
            raise ValueError("a syncer needs at least one prefix")
        for i, a in enumerate(prefixes):
            for j, b in enumerate(prefixes):
                if i != j and b.startswith(a):
                    raise ValueError(f"syncer prefixes overlap: {a!r} contains {b!r}")
        self._backend = backend
        self.prefixes = tuple(prefixes)
        self._sink = sink
        self._backoff = (backoff_initial, backoff_max)
        self._name = name
        self._stop = threading.Event()
        self._queue: queue.Queue[object] = queue.Queue()
        self._lock = threading.Lock()
        self._streams: dict[int, WatchStream] = {}
        self._threads: list[threading.Thread] = []
        self._cursors = [_Cursor() for _ in self.prefixes]
        self._states = [SyncStatus.RESYNC_IN_PROGRESS] * len(self.prefixes)
        self._contacted = False
        self.status = SyncStatus.WAIT_FOR_DATASTORE

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("syncer already started")
        self._threads.append(threading.Thread(
            target=self._dispatch, name=f"{self._name}-dispatch", daemon=True))
        for i, prefix in enumerate(self.prefixes):
            self._threads.append(threading.Thread(
                target=self._work, args=(i, prefix), name=f"{self._name}-{i}", daemon=True))
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop watching and wait for the threads; the sink gets nothing after this returns."""
        self._stop.set()
        with self._lock:
            streams = list(self._streams.values())
        for s in streams:
            s.close()
        for t in self._threads[1:]:
            t.join(timeout)
        self._queue.put(_STOP)
        if self._threads:
            self._threads[0].join(timeout)
        alive = [t.name for t in self._threads if t.is_alive()]
        if alive:
            log.warning("syncer threads still running after stop: %s", ", ".join(alive))

    def revisions(self) -> dict[str, Revision | None]:
        """For each prefix, the revision up to which the consumer has everything (None
        before the first listing), counting the progress an idle watch vouched for."""
        with self._lock:
            streams = dict(self._streams)
        out: dict[str, Revision | None] = {}
        for i, prefix in enumerate(self.prefixes):
            last = self._cursors[i].last
            stream = streams.get(i)
            progress = stream.progress if stream is not None and last is not None else None
            out[prefix] = progress if progress is not None else last
        return out

    # -- one prefix -----------------------------------------------------------------------

    def _work(self, index: int, prefix: str) -> None:
        backoff = Backoff(self._stop, *self._backoff)
        cur = self._cursors[index]
        while not self._stop.is_set():
            try:
                if cur.last is None:
                    self._resync(index, prefix, cur)
                self._watch(index, prefix, cur, backoff)
            except Compacted as exc:
                log.info("%s: %s; listing again", prefix, exc)
                self._queue.put(_State(index, SyncStatus.RESYNC_IN_PROGRESS))
                cur.last = None
            except DatastoreError as exc:
                if self._stop.is_set():
                    break
                log.warning("%s: %s; retrying after revision %s in %.2fs",
                            prefix, exc, cur.last, backoff.delay)
                self._queue.put(_State(index, SyncStatus.WAIT_FOR_DATASTORE))
                backoff.wait()
            except Exception:
                log.exception("%s: unexpected error; listing again", prefix)
                self._queue.put(_State(index, SyncStatus.WAIT_FOR_DATASTORE))
                cur.last = None
                backoff.wait()

    def _resync(self, index: int, prefix: str, cur: _Cursor) -> None:
        listing = self._backend.list(prefix)
        self._queue.put(_State(index, SyncStatus.RESYNC_IN_PROGRESS))
        updates, cur.cache = diff(cur.cache, listing.kvs, listing.revision)
        cur.last = listing.revision
        log.info("%s: listed %d keys at revision %s (%d changes)",
                 prefix, len(listing.kvs), listing.revision, len(updates))
        if updates:
            self._queue.put(_Emit(updates))

    def _watch(self, index: int, prefix: str, cur: _Cursor, backoff: Backoff) -> None:
        """Watch after the cursor until the stream breaks (raises) or the syncer stops."""
        assert cur.last is not None
        stream = self._backend.watch(prefix, cur.last)
        with self._lock:
            self._streams[index] = stream
        if self._stop.is_set():
            stream.close()
        self._queue.put(_State(index, SyncStatus.IN_SYNC))
        backoff.reset()
        try:
            for ev in stream:
                if ev.type is EventType.PUT and ev.value is not None:
                    cur.cache[ev.key] = (ev.value, ev.revision)
                    update = Update(ev.key, ev.value, ev.revision)
                else:
                    cur.cache.pop(ev.key, None)
                    update = Update(ev.key, None, ev.revision)
                cur.last = ev.revision
                self._queue.put(_Emit((update,)))
            if not self._stop.is_set():
                raise DatastoreError(f"watch on {prefix} ended")
        except DatastoreError:
            # The stream's progress (etcd progress notifications, Kubernetes bookmarks) vouches
            # that nothing under the prefix changed after the last event up to it: resume
            # after it, so that a quiet prefix does not need a full relist after a compaction.
            progress = stream.progress
            if progress is not None:
                cur.last = progress
            raise
        finally:
            stream.close()
            with self._lock:
                self._streams.pop(index, None)

    # -- the sink -------------------------------------------------------------------------

    def _dispatch(self) -> None:
        self._deliver(StatusChanged(self.status))
        while True:
            items = [self._queue.get()]
            while len(items) < _MAX_BATCH:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            pending: list[Update] = []
            for item in items:
                if item is _STOP:
                    self._flush(pending)
                    return
                if isinstance(item, _Emit):
                    pending.extend(item.updates)
                elif isinstance(item, _State):
                    self._states[item.index] = item.status
                    if item.status is not SyncStatus.WAIT_FOR_DATASTORE:
                        self._contacted = True
                    status = overall_status(self._states, self._contacted)
                    if status is not self.status:
                        self._flush(pending)
                        pending = []
                        self.status = status
                        log.info("%s: %s", self._name, status.value)
                        self._deliver(StatusChanged(status))
            self._flush(pending)

    def _flush(self, pending: list[Update]) -> None:
        if pending:
            self._deliver(Updates(tuple(pending)))

    def _deliver(self, event: SyncEvent) -> None:
        if self._stop.is_set():
            return
        try:
            self._sink(event)
        except Exception:
            log.exception("%s: sink failed on %s", self._name, type(event).__name__)
