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
        self._desired: dict[K, V] = {}
        self._dataplane: dict[K, V] = {}
        self.dataplane_known = False

    def set_desired(self, desired: Mapping[K, V]) -> None:
        self._desired = dict(desired)

    def replace_dataplane(self, items: Iterable[tuple[K, V]]) -> None:
        self._dataplane = dict(items)
        self.dataplane_known = True

    def desired(self) -> Mapping[K, V]:
        return self._desired

    def dataplane(self) -> Mapping[K, V]:
        return self._dataplane

    def pending_updates(self) -> dict[K, V]:
        dp = self._dataplane
        return {k: v for k, v in self._desired.items() if k not in dp or dp[k] != v}

    def pending_deletions(self) -> list[K]:
        return [k for k in self._dataplane if k not in self._desired]

    def applied_update(self, key: K, value: V) -> None:
        self._dataplane[key] = value

    def applied_delete(self, key: K) -> None:
        self._dataplane.pop(key, None)

    def in_sync(self) -> bool:
        return not self.pending_updates() and not self.pending_deletions()
