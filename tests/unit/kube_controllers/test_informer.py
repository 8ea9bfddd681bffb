"""The informer over a scripted API: pages, resume after the server ends a watch, a bookmark,
410 Gone in the stream -> relist that reports the objects deleted in the gap."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any

from calico_kube_controllers.informer import Informer
from libcalico.errors import Unavailable


def obj(name: str, rv: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "resourceVersion": rv}}


class Stream:
    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events

    def __iter__(self) -> Iterator[dict[str, Any]]:
        yield from self.events

    def close(self) -> None:
        pass


class FakeKube:
    """Lists answer from `lists` (each a list of pages), watches from `watches`; when the
    script is used up the informer is stopped."""

    def __init__(self, lists: list[list[dict[str, Any]]],
                 watches: list[list[dict[str, Any]] | Exception], done: threading.Event,
                 stop: list[Informer]) -> None:
        self.lists, self.watches, self.done, self.stop = lists, watches, done, stop
        self.requests: list[Mapping[str, str]] = []
        self.watched: list[str] = []

    def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                body: Any = None, content_type: str = "", what: str = "") -> Any:
        self.requests.append(dict(query or {}))
        pages = self.lists[0]
        page = pages.pop(0)
        if not pages:
            self.lists.pop(0)
        return page

    def watch(self, path: str, query: Mapping[str, str], *, what: str = "") -> Stream:
        self.watched.append(query["resourceVersion"])
        if not self.watches:
            self.done.set()
            self.stop[0]._stop.set()
            return Stream([])
        w = self.watches.pop(0)
        if isinstance(w, Exception):
            raise w
        return Stream(w)


def test_list_watch_resume_bookmark_and_relist_after_410() -> None:
    done = threading.Event()
    stop: list[Informer] = []
    kube = FakeKube(
        lists=[[{"items": [obj("a", "1")], "metadata": {"continue": "c1"}},
                {"items": [obj("b", "2")], "metadata": {"resourceVersion": "5"}}],
               [{"items": [obj("b", "9"), obj("c", "8")], "metadata": {"resourceVersion": "10"}}]],
        watches=[[{"type": "MODIFIED", "object": obj("a", "6")}],   # server ends the watch
                 [{"type": "BOOKMARK", "object": {"metadata": {"resourceVersion": "7"}}}],
                 Unavailable("connection refused"),
                 [{"type": "ERROR", "object": {"code": 410, "message": "too old"}}]],
        done=done, stop=stop)
    seen: list[tuple[str, str]] = []
    inf = Informer(kube, "/api/v1/pods",
                   lambda kind, o: seen.append((kind, (o.get("metadata") or {}).get("name", ""))),
                   wait=lambda s: False)
    stop.append(inf)
    inf.run()
    assert done.is_set()
    assert kube.requests[1] == {"limit": "500", "continue": "c1"}
    assert kube.watched == ["5", "6", "7", "7", "10"]
    assert seen == [("ADDED", "a"), ("ADDED", "b"), ("SYNCED", ""), ("MODIFIED", "a"),
                    ("DELETED", "a"), ("MODIFIED", "b"), ("ADDED", "c"), ("SYNCED", "")]
    assert sorted(inf.items()) == ["ns/b", "ns/c"] and inf.relists == 2
