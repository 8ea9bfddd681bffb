"""Several watch streams merged into one (`MergedWatchStream`), with a composite revision:
the Kubernetes backend's watch of the Profiles (Namespaces + ServiceAccounts, `<ns rv>/<sa rv>`)
and of the NetworkPolicies (custom resources + Kubernetes NetworkPolicies, `<crd rv>/<k8s rv>`).
"""

from __future__ import annotations

import builtins
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Protocol

from libcalico.datastore.api import Revision, WatchEvent
from libcalico.errors import Compacted


class Stream(Protocol):
    def __iter__(self) -> Iterator[WatchEvent]: ...

    def close(self) -> None: ...


class MergedWatchStream:
    """Several watch streams merged (each drained by a thread of its own), every event
    stamped with all halves' revisions as they stand after it (`join`); a Compacted of any
    half is Compacted(after) and ends them all. `opens` start the halves, given their
    revisions."""

    _END = object()

    def __init__(self, opens: builtins.list[Callable[[str], Stream]],
                 halves: builtins.list[str], after: Revision,
                 join: Callable[..., str], name: str) -> None:
        self._after = after
        self._revs = list(halves)
        self._join = join
        self._queue: queue.Queue[tuple[int, object]] = queue.Queue()
        self._streams: builtins.list[Stream] = []
        try:
            for open_, rev in zip(opens, halves, strict=True):
                self._streams.append(open_(rev))
        except Compacted:
            self.close()
            raise Compacted(after) from None
        except BaseException:
            self.close()
            raise
        self._threads = [threading.Thread(target=self._pump, args=(i, s), daemon=True,
                                          name=f"{name}-watch-{i}")
                         for i, s in enumerate(self._streams)]
        for t in self._threads:
            t.start()

    @property
    def progress(self) -> Revision | None:
        """None: one half's bookmarks say nothing about the other's events in between."""
        return None

    def _pump(self, half: int, stream: Stream) -> None:
        try:
            for ev in stream:
                self._queue.put((half, ev))
            self._queue.put((half, self._END))
        except BaseException as exc:  # handed to the consumer's thread
            self._queue.put((half, exc))

    def __iter__(self) -> Iterator[WatchEvent]:
        ended = 0
        while ended < len(self._streams):
            half, item = self._queue.get()
            if item is self._END:
                ended += 1
                continue
            if isinstance(item, Compacted):
                self.close()
                raise Compacted(self._after) from item
            if isinstance(item, BaseException):
                self.close()
                raise item
            assert isinstance(item, WatchEvent)
            self._revs[half] = item.revision
            yield WatchEvent(item.type, item.key, item.value, self._join(*self._revs))

    def close(self) -> None:
        for s in self._streams:
            s.close()
