"""The watch streams of the Kubernetes backend (`kubernetes`): one resource's watch after a
resourceVersion with bookmarks, resumed when the server ends it (`KubernetesWatchStream`), and
the Secrets' watch as per-data-key events (`SecretWatchStream`); see `kubernetes`'s
docstring."""

from __future__ import annotations

import builtins
import logging
import threading
from collections.abc import Iterator
from typing import Any

from libcalico.datastore import kubernetes_ipam as kipam
from libcalico.datastore import kubernetes_secret as secrets
from libcalico.datastore.api import EventType, Revision, WatchEvent
from libcalico.datastore.kubernetes_client import KubeClient, WatchConnection
from libcalico.datastore.kubernetes_kinds import SECRETS, Kind, pair_or_none
from libcalico.errors import Compacted, Unavailable

log = logging.getLogger("libcalico.datastore.kubernetes")

WATCH_TIMEOUT = 300
"""Seconds the server keeps one watch request open (then it is resumed, not relisted)."""


class KubernetesWatchStream:
    """Events under one prefix after a resourceVersion; see the module docstring."""

    def __init__(self, client: KubeClient, info: Kind, namespace: str | None, prefix: str,
                 after: Revision) -> None:
        self._client = client
        self._info = info
        self._path = info.collection(namespace)
        self._prefix = prefix
        self._after = after
        self._progress: Revision | None = None
        self._lock = threading.Lock()
        self._conn: WatchConnection | None = None
        self._closed = False
        self._open()  # a watch that cannot start fails here, as etcd's does

    @property
    def progress(self) -> Revision | None:
        return self._progress

    def _open(self) -> None:
        query = {"resourceVersion": self._after, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(WATCH_TIMEOUT)}
        try:
            conn = self._client.watch(self._path, query, what=self._prefix)
        except Compacted:
            raise Compacted(self._after) from None
        with self._lock:
            if self._closed:
                conn.close()
                return
            self._conn = conn

    def __iter__(self) -> Iterator[WatchEvent]:
        while not self._closed:
            conn = self._conn
            if conn is None:
                self._open()
                continue
            for event in conn:
                yield from self._events(event)
            with self._lock:
                self._conn = None
            # The server ended the request (its timeout): resume after the last event.

    def _events(self, event: dict[str, Any]) -> builtins.list[WatchEvent]:
        out = self._event(event)
        return [] if out is None else [out]

    def _event(self, event: dict[str, Any]) -> WatchEvent | None:
        kind = event.get("type")
        obj = event.get("object") or {}
        md = obj.get("metadata") or {}
        rv = str(md.get("resourceVersion") or "")
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410 or obj.get("reason") in ("Expired", "Gone"):
                raise Compacted(self._after)
            raise Unavailable(f"watch {self._prefix}: {obj.get('message') or obj}")
        if kind == "BOOKMARK":
            if rv:
                self._after = rv
                self._progress = rv
            return None
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            log.warning("watch %s: unknown event type %r", self._prefix, kind)
            return None
        if rv:
            self._after = rv
        if self._info.ipam and kind != "DELETED" and kipam.deleted(self._info.plural, obj):
            kind = "DELETED"  # marked by a two-phase delete: gone for readers
        pair = pair_or_none(self._info, obj)
        if pair is None or not pair.key.startswith(self._prefix):
            return None
        if kind == "DELETED":
            return WatchEvent(EventType.DELETE, pair.key, None, rv)
        return WatchEvent(EventType.PUT, pair.key, pair.value, rv)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class SecretWatchStream(KubernetesWatchStream):
    """Secret changes as per-data-key events: the Secrets as they were at `after` (an exact
    list, 410 -> Compacted) give each Secret's keys, so that a MODIFIED Secret yields PUTs for
    its keys and DELETEs for those it no longer has, a DELETED one DELETEs for all."""

    def __init__(self, client: KubeClient, namespace: str, prefix: str, after: Revision
                 ) -> None:
        path = SECRETS.collection(namespace)
        self._known: dict[str, set[str]] = {}
        if after not in ("", "0"):
            try:
                reply = client.request("GET", path, query={
                    "resourceVersion": after, "resourceVersionMatch": "Exact"}, what=prefix)
            except Compacted:
                raise Compacted(after) from None
            for o in reply.get("items") or []:
                self._known[str(o["metadata"]["name"])] = {
                    k for k in secrets.values(o) if k.startswith(prefix)}
        super().__init__(client, SECRETS, namespace, prefix, after)

    def _events(self, event: dict[str, Any]) -> builtins.list[WatchEvent]:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            super()._event(event)  # ERROR raises; BOOKMARK moves the revision
            return []
        md = obj.get("metadata") or {}
        rv = str(md.get("resourceVersion") or "")
        if rv:
            self._after = rv
        name = str(md.get("name") or "")
        now = {} if kind == "DELETED" else {
            k: v for k, v in secrets.values(obj).items() if k.startswith(self._prefix)}
        before = self._known.pop(name, set())
        if now:
            self._known[name] = set(now)
        out = [WatchEvent(EventType.DELETE, k, None, rv) for k in sorted(before - set(now))]
        out += [WatchEvent(EventType.PUT, k, v, rv) for k, v in sorted(now.items())]
        return out
