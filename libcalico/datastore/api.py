"""The Backend protocol: the one seam between the project and a datastore.

Keys are etcd-style paths (`/calico/resources/v3/projectcalico.org/ippools/default-pool`),
values are JSON text exactly as Calico stores it. Every write is a compare-and-swap:

- `create`  succeeds only if the key does not exist (etcd: version == 0), else AlreadyExists;
- `update`  succeeds only if the key's mod revision equals `revision`, else Conflict
            (NotFound when the key is gone);
- `delete`  with a revision is conditional in the same way; without one it is not;
- `apply`   is an unconditional put (Calico uses it only for the IPAM config).

`list` returns the store revision at which the listing was taken, so that a watch can
start right after it (`watch(prefix, start_revision=listing.revision + 1)`) with no gap.
A watch stream yields events in revision order; it raises `Compacted` when its start
revision is gone and `Unavailable` when the connection is lost. It never skips silently.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class KVPair:
    key: str
    value: str
    revision: int
    """The key's mod revision: pass it back to `update`/`delete` for compare-and-swap."""


@dataclass(frozen=True, slots=True)
class Listing:
    kvs: tuple[KVPair, ...]
    revision: int
    """The store revision the listing was read at."""


class EventType(enum.Enum):
    PUT = "put"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class WatchEvent:
    type: EventType
    key: str
    value: str | None
    """New value for PUT; None for DELETE."""
    revision: int
    """The revision of this change (the key's new mod revision, or the delete's revision)."""


class WatchStream(Protocol):
    """An iterator of events from one prefix. Iteration blocks; `close()` from any thread
    ends it (iteration then stops without error)."""

    def __iter__(self) -> Iterator[WatchEvent]: ...

    def close(self) -> None: ...


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

    def update(self, key: str, value: str, revision: int) -> KVPair:
        """Raises Conflict (stale revision) or NotFound."""
        ...

    def apply(self, key: str, value: str) -> KVPair:
        """Unconditional put."""
        ...

    def delete(self, key: str, revision: int | None = None) -> KVPair:
        """Returns the deleted pair. Raises NotFound, or Conflict when `revision` is stale."""
        ...

    def watch(self, prefix: str, start_revision: int) -> WatchStream:
        """Events under `prefix` from `start_revision` on (inclusive)."""
        ...

    def close(self) -> None: ...
