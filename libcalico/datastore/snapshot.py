"""What a syncer tells its consumer, and the pure diff it computes after a (re)list.

`Update(key, value, revision)`: the key now holds `value` (None: it was deleted) as of
`revision`. `Updates` carries a batch of them in the order they happened. `StatusChanged`
reports WAIT_FOR_DATASTORE (no contact yet, or contact lost), RESYNC_IN_PROGRESS (listing),
IN_SYNC (every prefix listed and watched).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from libcalico.datastore.api import KVPair, Revision

PURE = True


class SyncStatus(enum.Enum):
    WAIT_FOR_DATASTORE = "wait-for-datastore"
    RESYNC_IN_PROGRESS = "resync-in-progress"
    IN_SYNC = "in-sync"


@dataclass(frozen=True, slots=True)
class Update:
    key: str
    value: str | None
    """The new value; None when the key was deleted."""
    revision: Revision
    """Opaque (see libcalico.datastore.api)."""


@dataclass(frozen=True, slots=True)
class Updates:
    updates: tuple[Update, ...]


@dataclass(frozen=True, slots=True)
class StatusChanged:
    status: SyncStatus


SyncEvent = Updates | StatusChanged

Cache = dict[str, tuple[str, Revision]]
"""key -> (value, key revision): what the consumer has been told."""


def diff(
    known: Mapping[str, tuple[str, Revision]], kvs: Iterable[KVPair], revision: Revision
) -> tuple[tuple[Update, ...], Cache]:
    """Updates that turn `known` into the listing `kvs` (taken at the listing's `revision`).

    Keys that are new or whose value or revision changed become puts (in key order);
    keys that vanished become deletes at `revision`. Returns the updates and the new cache.
    """
    fresh: Cache = {kv.key: (kv.value, kv.revision) for kv in kvs}
    if not known:  # the first listing: everything is new
        return tuple([Update(k, v, r) for k, (v, r) in fresh.items()]), fresh
    get = known.get
    updates = [Update(k, vr[0], vr[1]) for k, vr in fresh.items() if get(k) != vr]
    updates.extend(Update(k, None, revision) for k in sorted(known) if k not in fresh)
    return tuple(updates), fresh


def overall_status(states: Iterable[SyncStatus], contacted: bool) -> SyncStatus:
    """The syncer's status from each prefix's own.

    Each prefix is WAIT_FOR_DATASTORE (not reached yet, or lost), RESYNC_IN_PROGRESS (to be
    listed or listing) or IN_SYNC (watching). The whole is IN_SYNC only when every prefix is;
    any prefix that cannot reach the datastore makes it WAIT_FOR_DATASTORE; otherwise it is
    resyncing, once the datastore has answered at least once (`contacted`).
    """
    seen = list(states)
    if all(s is SyncStatus.IN_SYNC for s in seen):
        return SyncStatus.IN_SYNC
    if any(s is SyncStatus.WAIT_FOR_DATASTORE for s in seen) or not contacted:
        return SyncStatus.WAIT_FOR_DATASTORE
    return SyncStatus.RESYNC_IN_PROGRESS
