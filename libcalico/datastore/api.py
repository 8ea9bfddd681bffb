"""The Backend protocol: the one seam between the project and a datastore.

Keys are etcd-style paths (`/calico/resources/v3/projectcalico.org/ippools/default-pool`,
spelled only by `libcalico.model.keys`); values are JSON text exactly as Calico stores it.

A revision (`Revision`) is opaque text: a backend hands it out and takes it back, nobody else
parses, orders or does arithmetic on it. A key's revision (`KVPair.revision`) is what a
compare-and-swap is conditioned on; a listing's revision (`Listing.revision`) belongs to that
prefix and is where a watch of the same prefix starts after; an event's revision is where a
watch resumes after. (etcd: decimal mod/store revisions; Kubernetes: resourceVersions, per
object and per resource type.)

Every write but `apply` is a compare-and-swap:

- `create`  succeeds only if the key does not exist, else AlreadyExists;
- `update`  succeeds only if the key's current revision is `revision`, else Conflict
            (NotFound when the key is gone);
- `delete`  with a revision is conditional in the same way; without one it is not;
- `apply`   is an unconditional put (Calico uses it only for the IPAM config).

`watch(prefix, after)` yields the changes under `prefix` strictly after revision `after` (a
listing's or the last event's), in order, with no gap. It raises `Compacted` when the
backend no longer has the changes right after `after` (etcd compaction, Kubernetes 410 Gone):
the caller lists again. It raises `Unavailable` when the connection is lost (the caller
watches again after the last event it got). It never skips silently.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

Revision = str
"""Opaque: compare only for equality, and only with revisions of the same backend."""


@dataclass(frozen=True, slots=True)
class KVPair:
    key: str
    value: str
    revision: Revision
    """The key's revision: pass it back to `update`/`delete` for compare-and-swap."""


@dataclass(frozen=True, slots=True)
class Listing:
    kvs: tuple[KVPair, ...]
    revision: Revision
    """The revision the listing of this prefix was read at: watch the prefix after it."""


class EventType(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    key: str
    value: str | None
    """New value for PUT; None for DELETE."""
    revision: Revision
    """The revision of this change (the key's new revision, or the delete's): a watch
    resumed after it misses nothing and repeats nothing."""


class WatchStream(Protocol):
    """An iterator of events from one prefix. Iteration blocks; `close()` from any thread
    ends it (iteration then stops without error)."""

    def __iter__(self) -> Iterator[WatchEvent]: ...

    def close(self) -> None: ...

    @property
    def progress(self) -> Revision | None:
        """A revision later than the last event yielded up to which the backend vouches that
        nothing else changed under the prefix (etcd progress notifications, Kubernetes
        bookmarks), or None. A watch resumed after it needs no relist after a compaction."""
        ...


class Backend(Protocol):
    def get(self, key: str) -> KVPair:
        """Raises NotFound."""
        ...

    def list(self, prefix: str) -> Listing:
        """All keys under `prefix` (a plain string prefix), sorted by key."""
        ...

    def create(self, key: str, value: str) -> KVPair:
        """Raises AlreadyExists."""
        ...

    def update(self, key: str, value: str, revision: Revision) -> KVPair:
        """Raises Conflict (stale revision) or NotFound."""
        ...

    def apply(self, key: str, value: str) -> KVPair:
        """Unconditional put."""
        ...

    def delete(self, key: str, revision: Revision | None = None) -> KVPair:
        """Returns the deleted pair. Raises NotFound, or Conflict when `revision` is stale."""
        ...

    def watch(self, prefix: str, after: Revision) -> WatchStream:
        """Events under `prefix` strictly after revision `after`. Raises Compacted when they
        are no longer available (list again), Unavailable when the backend cannot be reached."""
        ...

    def close(self) -> None: ...


Op = tuple[str, str, str | None, Revision | None]
"""One write of a `BatchBackend.commit`: (kind, key, value, revision), kind `create` (the key
must not exist), `update` or `delete` (its revision must be `revision`)."""


@runtime_checkable
class BatchBackend(Protocol):
    """Optional capabilities of a Backend that save round trips (the CNI's gateway backend
    has them): several reads in one transaction, and several compare-and-swap writes that
    succeed or fail together. Users check `isinstance(backend, BatchBackend)` and fall back
    to single operations without them."""

    def read_many(self, keys: Sequence[str], prefixes: Sequence[str] = ()
                  ) -> tuple[dict[str, KVPair], dict[str, tuple[KVPair, ...]]]:
        """Gets (absent keys left out) and prefix lists, read at one point in time."""
        ...

    def commit(self, ops: Sequence[Op]) -> Revision:
        """All or nothing; Conflict naming the first key when any condition fails. Returns
        the revision every key the commit created or updated now has (its KVPair revision for
        a later CAS; etcd: the transaction's revision)."""
        ...
