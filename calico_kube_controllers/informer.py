"""List + watch of one Kubernetes resource type into a cache, as client-go's informers do for
kube-controllers: list (paged), then watch from the list's resourceVersion with bookmarks;
a watch the server ends is resumed after the last event or bookmark; 410 Gone (the
resourceVersion is too old) lists again and reports the difference (deletes included);
an unreachable server is retried after a pause.

The cache is read by the owner thread (`items()`, `get()`); each change is reported to
`handler(kind, obj)` with kind ADDED, MODIFIED or DELETED, and `SYNCED` after each list.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol

from libcalico.errors import Compacted, DatastoreError, Unavailable

log = logging.getLogger(__name__)

ADDED, MODIFIED, DELETED, SYNCED = "ADDED", "MODIFIED", "DELETED", "SYNCED"
PAGE = 500
WATCH_TIMEOUT_S = 300
RETRY_S = 1.0

Handler = Callable[[str, dict[str, Any]], None]


class Stream(Protocol):
    def __iter__(self) -> Iterator[dict[str, Any]]: ...
    def close(self) -> None: ...


class Kube(Protocol):
    """What the informer needs of `libcalico.datastore.kubernetes_client.KubeClient`."""

    def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                body: Any = None, content_type: str = ..., what: str = "") -> Any: ...

    def watch(self, path: str, query: Mapping[str, str], *, what: str = "") -> Stream: ...


def object_key(obj: Mapping[str, Any]) -> str:
    md = obj.get("metadata") or {}
    ns = md.get("namespace")
    return f"{ns}/{md.get('name')}" if ns else str(md.get("name"))


class Informer:
    def __init__(self, kube: Kube, path: str, handler: Handler | None = None, *,
                 wait: Callable[[float], bool] | None = None) -> None:
        self.kube = kube
        self.path = path
        self.handler = handler
        self._cache: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wait = wait or self._stop.wait
        self._stream: Stream | None = None
        self._thread: threading.Thread | None = None
        self.synced = threading.Event()
        self.relists = 0

    # -- reads (any thread) -----------------------------------------------------------------

    def items(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._cache)

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            return self._cache.get(key)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"informer {self.path}",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        s = self._stream
        if s is not None:
            s.close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def run(self) -> None:
        rv: str | None = None
        while not self._stop.is_set():
            try:
                if rv is None:
                    rv = self._list()
                rv = self._watch(rv)
            except Compacted:
                log.info("watch %s: resourceVersion too old, listing again", self.path)
                rv = None
            except (Unavailable, DatastoreError) as exc:
                if self._stop.is_set():
                    return
                log.warning("watch %s: %s; retrying", self.path, exc)
                if self._wait(RETRY_S):
                    return
            except Exception:
                if self._stop.is_set():
                    return  # http.client can fail oddly when closed from another thread
                raise

    # -- the work ---------------------------------------------------------------------------

    def _emit(self, kind: str, obj: dict[str, Any]) -> None:
        if self.handler is not None:
            self.handler(kind, obj)

    def _list(self) -> str:
        items: list[dict[str, Any]] = []
        query: dict[str, str] = {"limit": str(PAGE)}
        while True:
            page = self.kube.request("GET", self.path, query=query, what=f"list {self.path}")
            items += page.get("items") or []
            meta = page.get("metadata") or {}
            cont = meta.get("continue")
            if not cont:
                rv = str(meta.get("resourceVersion") or "")
                break
            query = {"limit": str(PAGE), "continue": cont}
        fresh = {object_key(o): o for o in items}
        with self._lock:
            old, self._cache = self._cache, fresh
        self.relists += 1
        for k, o in old.items():
            if k not in fresh:
                self._emit(DELETED, o)
        for k, o in fresh.items():
            prev = old.get(k)
            if prev is None:
                self._emit(ADDED, o)
            elif (prev.get("metadata") or {}).get("resourceVersion") != \
                    (o.get("metadata") or {}).get("resourceVersion"):
                self._emit(MODIFIED, o)
        self.synced.set()
        self._emit(SYNCED, {})
        return rv

    def _watch(self, rv: str) -> str:
        stream = self.kube.watch(self.path, {"resourceVersion": rv, "allowWatchBookmarks":
                                             "true", "timeoutSeconds": str(WATCH_TIMEOUT_S)},
                                 what=f"watch {self.path}")
        self._stream = stream
        try:
            if self._stop.is_set():
                return rv
            for event in stream:
                kind = event.get("type")
                obj = event.get("object") or {}
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Compacted(f"{self.path}: {obj.get('message')}")
                    raise Unavailable(f"{self.path}: watch error {obj.get('message')}")
                new_rv = (obj.get("metadata") or {}).get("resourceVersion")
                if kind == "BOOKMARK":
                    rv = str(new_rv or rv)
                    continue
                key = object_key(obj)
                with self._lock:
                    if kind == DELETED:
                        self._cache.pop(key, None)
                    elif kind in (ADDED, MODIFIED):
                        self._cache[key] = obj
                    else:
                        continue
                rv = str(new_rv or rv)
                self._emit(str(kind), obj)
        finally:
            self._stream = None
            stream.close()
        return rv
