"""One etcd watch as a `WatchStream`, driving the gRPC Watch call directly.

pyetcd's own watch helper reports one UNAVAILABLE to a callback and then dies silently, so
this stream drives the call itself: one stream per watch, events yielded in revision order,
`Compacted` or `Unavailable` raised instead of a hang or a gap, etcd's progress notifications
kept as `progress`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import grpc
from pyetcd import etcdrpc

from libcalico.datastore.api import EventType, Revision, WatchEvent
from libcalico.datastore.etcdmember import REQUIRE_LEADER, Member, Metadata, prefix_end, translate
from libcalico.datastore.kvtext import text
from libcalico.errors import Compacted, Unavailable

# gRPC's Python iterator waits for each message in slices of MAXIMUM_WAIT_TIMEOUT (0.1 s) so
# that a *main* thread blocked in it still runs signal handlers. Watch streams are iterated
# by worker threads and woken by the call's own completion (a message, an error, close()),
# so the slices only cost wake-ups: ten per second per idle stream (Felix follows ~15
# prefixes: 0.35% of a core at idle). One second keeps a main thread's signal latency short.
_WAIT_SLICE = 1.0
_grpc_common: Any = getattr(grpc, "_common", None)
if _grpc_common is not None and getattr(_grpc_common, "MAXIMUM_WAIT_TIMEOUT", 0) < _WAIT_SLICE:
    _grpc_common.MAXIMUM_WAIT_TIMEOUT = _WAIT_SLICE


class EtcdWatchStream:
    """One gRPC Watch call on one prefix. Iterate from one thread; `close()` from any."""

    def __init__(self, ep: Member, prefix: str, start_revision: int) -> None:
        self._ep = ep
        self.prefix = prefix
        self.start_revision = start_revision
        self._done = threading.Event()
        self._call: Any = None
        self.finished = False
        self._last = start_revision - 1
        """The revision of the last event yielded (or the one the watch started after)."""
        self._progress = 0
        """Every change under the prefix up to this revision has been yielded (from etcd's
        progress notifications, sent to an idle watch every few minutes)."""

    @property
    def progress(self) -> Revision | None:
        """The progress revision when it is later than the last event yielded."""
        return str(self._progress) if self._progress > self._last else None

    def _requests(self) -> Iterator[Any]:
        raw = self.prefix.encode()
        yield etcdrpc.WatchRequest(create_request=etcdrpc.WatchCreateRequest(
            key=raw or b"\0", range_end=prefix_end(raw), start_revision=self.start_revision,
            progress_notify=True,
        ))
        # Keep the request side open until the stream ends; gRPC reads this in its own thread.
        self._done.wait()

    def open(self, timeout: float, metadata: Metadata = REQUIRE_LEADER) -> None:
        self._call = self._ep.watch.Watch(self._requests(), metadata=metadata)
        timed_out = threading.Event()

        def expire() -> None:
            timed_out.set()
            self._call.cancel()

        timer = threading.Timer(timeout, expire)
        timer.daemon = True
        timer.start()
        try:
            first = next(self._call)
        except StopIteration:
            self._finish()
            raise Unavailable(f"etcd {self._ep.url} closed the watch stream") from None
        except grpc.RpcError as exc:
            self._finish()
            if timed_out.is_set():
                raise Unavailable(
                    f"etcd {self._ep.url}: watch not created within {timeout}s"
                ) from exc
            raise translate(exc, self._ep.url) from exc
        finally:
            timer.cancel()
        self._check(first)

    def _check(self, resp: Any) -> None:
        if resp.compact_revision:
            self._finish()
            raise Compacted(str(self.start_revision - 1), str(resp.compact_revision))
        if resp.canceled:
            self._finish()
            raise Unavailable(
                f"etcd {self._ep.url} cancelled the watch: {resp.cancel_reason or 'no reason'}"
            )

    def __iter__(self) -> Iterator[WatchEvent]:
        if self._call is None:
            raise RuntimeError("watch stream not opened")
        put = 0  # mvccpb.Event.PUT
        try:
            while True:
                try:
                    resp = next(self._call)
                except StopIteration:
                    if self._done.is_set():
                        return
                    raise Unavailable(f"etcd {self._ep.url} ended the watch stream") from None
                except grpc.RpcError as exc:
                    if self._done.is_set():
                        return
                    raise translate(exc, self._ep.url) from exc
                self._check(resp)
                if not resp.events and not resp.created:
                    self._progress = max(self._progress, resp.header.revision)
                for ev in resp.events:
                    kv = ev.kv
                    self._last = rev = kv.mod_revision
                    if ev.type == put:
                        yield WatchEvent(EventType.PUT, kv.key.decode(errors="replace"),
                                         text(kv.value, kv.key), str(rev))
                    else:
                        yield WatchEvent(EventType.DELETE, kv.key.decode(errors="replace"),
                                         None, str(rev))
        finally:
            self.close()

    def _finish(self) -> None:
        self.finished = True
        self._done.set()

    def close(self) -> None:
        self._finish()
        if self._call is not None:
            self._call.cancel()

    def __enter__(self) -> EtcdWatchStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
