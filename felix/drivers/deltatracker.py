"""Desired versus dataplane state for one kind of kernel object (after Calico's DeltaTracker).

    desired ──┐            ┌── dataplane (what we last read or wrote)
              │  pending   │
              │  updates   │  pending deletions = in dataplane, not desired
              └────────────┘

Values must be immutable (frozen dataclasses, strings, tuples): the tracker stores references.
Drivers record each write that succeeded (`applied_update` / `applied_delete`); anything that
failed stays pending and is retried on the next apply. `replace_dataplane` is a resync.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Generic, TypeVar

PURE = True

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class DeltaTracker(Generic[K, V]):
    def __init__(self) -> None:
        self._desired: Mapping[K, V] = {}
        self._dataplane: dict[K, V] = {}
        self.dataplane_known = False
        self._updates: dict[K, V] | None = None     # cached until the next mutation
        self._deletions: dict[K, None] | None = None

    def _changed(self) -> None:
        self._updates = None
        self._deletions = None

    def set_desired(self, desired: Mapping[K, V]) -> None:
        """`desired` is kept by reference: the caller must not mutate it afterwards."""
        if desired is not self._desired:
            self._desired = desired
            self._changed()

    def replace_dataplane(self, items: Iterable[tuple[K, V]]) -> None:
        self._dataplane = dict(items)
        self.dataplane_known = True
        self._changed()

    def desired(self) -> Mapping[K, V]:
        return self._desired

    def dataplane(self) -> Mapping[K, V]:
        return self._dataplane

    def pending_updates(self) -> dict[K, V]:
        if self._updates is None:
            dp = self._dataplane
            missing = object()
            self._updates = {k: v for k, v in self._desired.items()
                             if dp.get(k, missing) != v}
        return dict(self._updates)

    def pending_deletions(self) -> list[K]:
        if self._deletions is None:
            self._deletions = {k: None for k in self._dataplane if k not in self._desired}
        return list(self._deletions)

    def applied_update(self, key: K, value: V) -> None:
        self._dataplane[key] = value
        if self._updates is not None and self._updates.get(key) == value:
            del self._updates[key]
        else:
            self._changed()

    def applied_delete(self, key: K) -> None:
        self._dataplane.pop(key, None)
        if self._deletions is not None and key in self._deletions:
            del self._deletions[key]
        else:
            self._changed()

    def in_sync(self) -> bool:
        return not self.pending_updates() and not self.pending_deletions()
