"""The etcd v3 backend: Calico's etcdv3 compare-and-swap protocol over pyetcd's gRPC stubs.

Every write is one etcd transaction, as in libcalico-go's etcdv3 backend:

- create: `If(Version(key) == 0) Then(Put) Else(Get)`  -> AlreadyExists when it fails;
- update: `If(ModRevision(key) == rev) Then(Put) Else(Get)` -> NotFound (Get empty) or Conflict;
- delete: `[If(ModRevision(key) == rev)] Then(Delete(key, prevKV)) Else(Get)`;
- apply:  an unconditional Put.

Reads are linearizable range requests; a listing carries the header revision so that a watch
can start right after it. Revisions leave here as decimal text (the Backend's opaque
`Revision`) and are parsed back only here (`etcdrevision`).

gRPC and pyetcd errors are translated here, and only here, into `libcalico.errors`. Every
call has a deadline. Several endpoints (a cluster) are tried in turn: reads are retried on the
next endpoint until the deadline; writes are retried only when the request provably never
reached etcd (connection refused, member without a leader), because a write whose answer was
lost may have been applied, and repeating a compare-and-swap would then report a false
conflict. The caller gets `Unavailable` and decides.

pyetcd's own watch helper reports one UNAVAILABLE to a callback and then dies silently, so the
watch stream here drives the gRPC Watch call directly: one stream per watch, events yielded in
revision order, `Compacted` or `Unavailable` raised instead of a hang or a gap.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import grpc
from pyetcd import etcdrpc

from libcalico.datastore import etcdrevision
from libcalico.datastore.api import EventType, KVPair, Listing, Revision, WatchEvent
from libcalico.datastore.endpoint import Target, parse_endpoint
from libcalico.errors import (
    AlreadyExists,
    Compacted,
    ConfigError,
    Conflict,
    DatastoreError,
    NotFound,
    Unavailable,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0
"""Seconds allowed for one operation, retries included."""

# Reconnect quickly after an etcd restart (gRPC's default backoff grows to 120 s), accept large
# listings (gRPC's default receive limit is 4 MiB), and notice a silent peer (a frozen or
# partitioned etcd) within about 15 s by keepalive pings (etcd accepts one every 5 s or more).
_GRPC_OPTIONS: list[tuple[str, Any]] = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.http2.ping_timeout_ms", 5_000),  # else an unanswered ping waits a minute
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]

# etcd's "require leader" metadata: a member that has lost its leader refuses the call (and
# cancels watches) with "etcdserver: no leader" instead of serving stale data or going quiet.
Metadata = tuple[tuple[str, str], ...]
_METADATA: Metadata = (("hasleader", "true"),)

# Failures that prove the request never reached etcd's state machine: safe to send elsewhere.
_NOT_SENT_MARKERS = (
    "failed to connect",
    "connection refused",
    "no leader",
    "dns resolution failed",
    "connect failed",
)


@dataclass(frozen=True, slots=True)
class TLSMaterial:
    """PEM bytes for a TLS connection. `ca` None means the system's trust roots."""

    ca: bytes | None = None
    key: bytes | None = None
    cert: bytes | None = None


class _Endpoint:
    """One member: its channel and the stubs over it."""

    def __init__(self, target: Target, tls: TLSMaterial | None) -> None:
        self.url = target.url
        if target.secure:
            creds = grpc.ssl_channel_credentials(
                root_certificates=tls.ca if tls else None,
                private_key=tls.key if tls else None,
                certificate_chain=tls.cert if tls else None,
            )
            self.channel = grpc.secure_channel(target.netloc, creds, options=_GRPC_OPTIONS)
        else:
            self.channel = grpc.insecure_channel(target.netloc, options=_GRPC_OPTIONS)
        self.kv = etcdrpc.KVStub(self.channel)
        self.watch = etcdrpc.WatchStub(self.channel)
        self.maintenance = etcdrpc.MaintenanceStub(self.channel)
        self.auth = etcdrpc.AuthStub(self.channel)
        self.token: str | None = None
        """etcd auth token for this member (when a username is configured)."""

    def close(self) -> None:
        self.channel.close()


def _prefix_end(prefix: bytes) -> bytes:
    """The range end covering every key that starts with `prefix` (etcd's clientv3 rule)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # every key


def _put_op(key: bytes, value: str) -> Any:
    return etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=key, value=value.encode()))


def _text(raw: bytes, key: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        log.warning("etcd key %r holds bytes that are not UTF-8; replacing them", key[:200])
        return raw.decode(errors="replace")


def _kvpair(kv: Any) -> KVPair:
    return KVPair(kv.key.decode(errors="replace"), _text(kv.value, kv.key), str(kv.mod_revision))


# Listing 10,000 keys builds 10,000 KVPairs; a frozen dataclass's __init__ goes through
# object.__setattr__ per field, which is most of the backend's own cost in a list. Filling
# the slots through their descriptors builds the same immutable object at about half that.
_new = object.__new__
_set_key = getattr(KVPair, "key").__set__  # noqa: B009 - the slot descriptor itself
_set_value = getattr(KVPair, "value").__set__  # noqa: B009
_set_revision = getattr(KVPair, "revision").__set__  # noqa: B009


def _kvpairs(kvs: Any) -> tuple[KVPair, ...]:
    out = []
    try:
        for kv in kvs:
            p = _new(KVPair)
            _set_key(p, kv.key.decode())
            _set_value(p, kv.value.decode())
            _set_revision(p, str(kv.mod_revision))
            out.append(p)
    except UnicodeDecodeError:
        return tuple(_kvpair(kv) for kv in kvs)
    return tuple(out)


def _mod_is(k: bytes, revision: int) -> Any:
    return etcdrpc.Compare(key=k, target=etcdrpc.Compare.MOD, result=etcdrpc.Compare.EQUAL,
                           mod_revision=revision)


def _lost(resp: Any, key: str, revision: Revision | None) -> DatastoreError:
    """Why a conditional transaction failed: its failure branch read the key."""
    if not resp.responses or not resp.responses[0].response_range.kvs:
        return NotFound(key)
    return Conflict(key, revision)


def _details(exc: grpc.RpcError) -> str:
    details = exc.details() if isinstance(exc, grpc.Call) else None
    return str(details or exc)


def _code(exc: grpc.RpcError) -> grpc.StatusCode | None:
    return exc.code() if isinstance(exc, grpc.Call) else None


def translate(exc: grpc.RpcError, endpoint: str) -> DatastoreError:
    """The one boundary from gRPC status to libcalico.errors."""
    code, details = _code(exc), _details(exc)
    if "compacted" in details:
        return Compacted("?")
    if code in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        None,
    ):
        return Unavailable(f"etcd {endpoint} unavailable: {details}")
    name = code.name if code is not None else "?"
    return DatastoreError(f"etcd {endpoint} refused the request ({name}): {details}")


def _not_sent(exc: grpc.RpcError) -> bool:
    details = _details(exc).lower()
    return _code(exc) == grpc.StatusCode.UNAVAILABLE and any(
        m in details for m in _NOT_SENT_MARKERS
    )


class EtcdBackend:
    """`Backend` over etcd v3. Thread-safe: share one per process."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        tls: TLSMaterial | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        if not endpoints:
            raise ConfigError("no etcd endpoints configured")
        if timeout <= 0:
            raise ConfigError(f"etcd timeout must be positive, not {timeout}")
        self._endpoints = [_Endpoint(parse_endpoint(u), tls) for u in endpoints]
        self._timeout = timeout
        if bool(username) != bool(password):
            raise ConfigError("etcd username and password must be given together")
        self._credentials = (username, password) if username and password else None
        self._lock = threading.Lock()
        self._current = 0
        self._streams: set[EtcdWatchStream] = set()
        self._closed = False

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(e.url for e in self._endpoints)

    # -- endpoint choice and retries ---------------------------------------------------------

    def _pick(self) -> _Endpoint:
        if self._closed:
            raise Unavailable("etcd backend is closed")
        with self._lock:
            return self._endpoints[self._current]

    def _failed(self, ep: _Endpoint) -> None:
        with self._lock:
            if self._endpoints[self._current] is ep and len(self._endpoints) > 1:
                self._current = (self._current + 1) % len(self._endpoints)
                log.info("etcd %s failed; switching to %s", ep.url,
                         self._endpoints[self._current].url)

    def _call(self, fn: Callable[[_Endpoint, float, Metadata], T], *, retry_any: bool) -> T:
        """Run `fn(endpoint, seconds_left, metadata)` until it answers or the deadline passes.

        `retry_any`: the call has no effect (a read), so any unavailability may be retried;
        otherwise only failures that prove the request was never sent are.
        """
        deadline = time.monotonic() + self._timeout
        delay = 0.05
        attempts = 0
        reauthenticated = False
        while True:
            ep = self._pick()
            left = max(deadline - time.monotonic(), 0.001)
            try:
                return fn(ep, left, self._metadata(ep, left))
            except grpc.RpcError as exc:
                if (self._credentials and not reauthenticated
                        and _code(exc) == grpc.StatusCode.UNAUTHENTICATED):
                    # The token expired (or the member restarted): log in again and resend;
                    # etcd refused the request before applying it.
                    ep.token = None
                    reauthenticated = True
                    continue
                err = translate(exc, ep.url)
                if not isinstance(err, Unavailable):
                    raise err from exc
                self._failed(ep)
                attempts += 1
                left = deadline - time.monotonic()
                if left <= 0 or not (retry_any or _not_sent(exc)):
                    raise err from exc
                if attempts % len(self._endpoints) == 0:
                    time.sleep(min(delay, left))
                    delay = min(delay * 2, 1.0)

    def _metadata(self, ep: _Endpoint, timeout: float) -> Metadata:
        if self._credentials is None:
            return _METADATA
        if ep.token is None:
            user, password = self._credentials
            try:
                resp = ep.auth.Authenticate(
                    etcdrpc.AuthenticateRequest(name=user, password=password), timeout=timeout
                )
            except grpc.RpcError as exc:
                if _code(exc) in (grpc.StatusCode.INVALID_ARGUMENT,
                                  grpc.StatusCode.FAILED_PRECONDITION):
                    raise DatastoreError(
                        f"etcd {ep.url}: authentication as user {user!r} failed: {_details(exc)}"
                    ) from None
                raise
            ep.token = resp.token
        return (*_METADATA, ("token", ep.token))

    # -- Backend ---------------------------------------------------------------------------

    def get(self, key: str) -> KVPair:
        req = etcdrpc.RangeRequest(key=key.encode())
        resp = self._call(
            lambda ep, t, md: ep.kv.Range(req, timeout=t, metadata=md), retry_any=True
        )
        if not resp.kvs:
            raise NotFound(key)
        return _kvpair(resp.kvs[0])

    def list(self, prefix: str) -> Listing:
        raw = prefix.encode()
        req = etcdrpc.RangeRequest(key=raw or b"\0", range_end=_prefix_end(raw))
        resp = self._call(
            lambda ep, t, md: ep.kv.Range(req, timeout=t, metadata=md), retry_any=True
        )
        return Listing(_kvpairs(resp.kvs), str(resp.header.revision))

    def _txn(self, req: Any) -> Any:
        return self._call(
            lambda ep, t, md: ep.kv.Txn(req, timeout=t, metadata=md), retry_any=False
        )

    def _cas(self, k: bytes, compare: Sequence[Any], success: Any) -> Any:
        """One compare-and-swap transaction on key `k`; on failure it reads `k` instead, so
        that `_lost` can tell a missing key from a stale revision."""
        return self._txn(etcdrpc.TxnRequest(
            compare=compare, success=[success],
            failure=[etcdrpc.RequestOp(request_range=etcdrpc.RangeRequest(key=k))],
        ))

    def create(self, key: str, value: str) -> KVPair:
        k = key.encode()
        resp = self._cas(k, [etcdrpc.Compare(
            key=k, target=etcdrpc.Compare.VERSION, result=etcdrpc.Compare.EQUAL, version=0
        )], _put_op(k, value))
        if not resp.succeeded:
            raise AlreadyExists(key)
        return KVPair(key, value, str(resp.header.revision))

    def update(self, key: str, value: str, revision: Revision) -> KVPair:
        k = key.encode()
        resp = self._cas(k, [_mod_is(k, etcdrevision.parse(revision, key))], _put_op(k, value))
        if not resp.succeeded:
            raise _lost(resp, key, revision)
        return KVPair(key, value, str(resp.header.revision))

    def apply(self, key: str, value: str) -> KVPair:
        req = etcdrpc.PutRequest(key=key.encode(), value=value.encode())
        resp = self._call(
            lambda ep, t, md: ep.kv.Put(req, timeout=t, metadata=md), retry_any=False
        )
        return KVPair(key, value, str(resp.header.revision))

    def delete(self, key: str, revision: Revision | None = None) -> KVPair:
        k = key.encode()
        compare = [] if revision is None else [_mod_is(k, etcdrevision.parse(revision, key))]
        resp = self._cas(k, compare,
                         etcdrpc.RequestOp(request_delete_range=etcdrpc.DeleteRangeRequest(
                             key=k, prev_kv=True)))
        if not resp.succeeded:
            raise _lost(resp, key, revision)
        deleted = resp.responses[0].response_delete_range
        if not deleted.prev_kvs:
            raise NotFound(key)
        return _kvpair(deleted.prev_kvs[0])

    def watch(self, prefix: str, after: Revision) -> EtcdWatchStream:
        """Open a watch of the changes after revision `after` (etcd's start revision is
        `after + 1`); returns once etcd has confirmed it.

        Raises Compacted when those changes are already compacted away (checked before
        the watch is created, so that a caller that gets a stream knows it starts without a
        gap; a compaction racing with the creation is raised from the iteration instead),
        Unavailable when no endpoint answers.
        """
        start_revision = etcdrevision.following(after, prefix)
        if start_revision > 1:
            self._check_not_compacted(prefix, start_revision)
        ep = self._pick()
        stream = EtcdWatchStream(ep, prefix, start_revision)
        try:
            try:
                md = self._metadata(ep, self._timeout)
            except grpc.RpcError as exc:
                raise translate(exc, ep.url) from exc
            stream.open(self._timeout, md)
        except Unavailable:
            self._failed(ep)
            raise
        with self._lock:
            self._streams = {s for s in self._streams if not s.finished} | {stream}
        return stream

    def _check_not_compacted(self, prefix: str, start_revision: int) -> None:
        # etcd refuses a read at a compacted revision; the watch itself would report it only
        # after confirming its creation. A read at start - 1 is allowed iff start is.
        req = etcdrpc.RangeRequest(key=prefix.encode() or b"\0", revision=start_revision - 1,
                                   count_only=True)
        try:
            self._call(lambda ep, t, md: ep.kv.Range(req, timeout=t, metadata=md),
                       retry_any=True)
        except Compacted:
            raise Compacted(str(start_revision - 1)) from None
        except DatastoreError as exc:
            if "future revision" not in str(exc):
                raise

    def close(self) -> None:
        self._closed = True
        with self._lock:
            streams, self._streams = list(self._streams), set()
        for s in streams:
            s.close()
        for ep in self._endpoints:
            ep.close()

    # -- operations beyond the protocol (tests, tools) -------------------------------------

    def revision(self) -> Revision:
        """The store's current revision."""
        req = etcdrpc.RangeRequest(key=b"\0", limit=1, count_only=True)
        resp = self._call(
            lambda ep, t, md: ep.kv.Range(req, timeout=t, metadata=md), retry_any=True
        )
        return str(resp.header.revision)

    def compact(self, revision: Revision) -> None:
        """Drop history before `revision` (what etcd's auto-compaction does)."""
        req = etcdrpc.CompactionRequest(revision=etcdrevision.parse(revision, "compact"),
                                        physical=True)
        self._call(lambda ep, t, md: ep.kv.Compact(req, timeout=t, metadata=md),
                   retry_any=False)

    def __enter__(self) -> EtcdBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EtcdWatchStream:
    """One gRPC Watch call on one prefix. Iterate from one thread; `close()` from any."""

    def __init__(self, ep: _Endpoint, prefix: str, start_revision: int) -> None:
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
            key=raw or b"\0", range_end=_prefix_end(raw), start_revision=self.start_revision,
            progress_notify=True,
        ))
        # Keep the request side open until the stream ends; gRPC reads this in its own thread.
        self._done.wait()

    def open(self, timeout: float, metadata: Metadata = _METADATA) -> None:
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
                                         _text(kv.value, kv.key), str(rev))
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
