"""The etcd v3 backend: Calico's etcdv3 compare-and-swap protocol over pyetcd's gRPC stubs.

Every write is one etcd transaction, as in libcalico-go's etcdv3 backend:

- create: `If(Version(key) == 0) Then(Put) Else(Get)`  -> AlreadyExists when it fails;
- update: `If(ModRevision(key) == rev) Then(Put) Else(Get)` -> NotFound (Get empty) or Conflict;
- delete: `[If(ModRevision(key) == rev)] Then(Delete(key, prevKV)) Else(Get)`;
- apply:  an unconditional Put.

Reads are linearizable range requests; a listing carries the header revision so that a watch
can start right after it. Revisions leave here as decimal text (the Backend's opaque
`Revision`) and are parsed back only in the etcd modules (`etcdrevision`).

The rest of the etcd backend, by responsibility:

- `etcdmember`: gRPC channel options, TLS, one member's stubs, and `translate` (gRPC status ->
  `libcalico.errors`, the one boundary);
- `etcdcluster`: several members as one: deadlines, retries, failover, auth tokens;
- `etcdwatch`: `EtcdWatchStream`, the watch stream;
- `kvtext`: etcd's key-value bytes as the Backend's `KVPair` text.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import grpc
from pyetcd import etcdrpc

from libcalico.datastore import etcdrevision
from libcalico.datastore.api import KVPair, Listing, Revision
from libcalico.datastore.etcdcluster import Cluster
from libcalico.datastore.etcdmember import TLSMaterial, prefix_end, translate
from libcalico.datastore.etcdwatch import EtcdWatchStream
from libcalico.datastore.kvtext import kvpair, kvpairs
from libcalico.errors import (
    AlreadyExists,
    Compacted,
    Conflict,
    DatastoreError,
    NotFound,
    Unavailable,
)

__all__ = ["DEFAULT_TIMEOUT", "EtcdBackend", "EtcdWatchStream", "TLSMaterial", "translate"]

DEFAULT_TIMEOUT = 10.0
"""Seconds allowed for one operation, retries included."""


def _put_op(key: bytes, value: str) -> Any:
    return etcdrpc.RequestOp(request_put=etcdrpc.PutRequest(key=key, value=value.encode()))


def _mod_is(k: bytes, revision: int) -> Any:
    return etcdrpc.Compare(key=k, target=etcdrpc.Compare.MOD, result=etcdrpc.Compare.EQUAL,
                           mod_revision=revision)


def _lost(resp: Any, key: str, revision: Revision | None) -> DatastoreError:
    """Why a conditional transaction failed: its failure branch read the key."""
    if not resp.responses or not resp.responses[0].response_range.kvs:
        return NotFound(key)
    return Conflict(key, revision)


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
        self._cluster = Cluster(endpoints, tls=tls, timeout=timeout, username=username,
                                password=password)
        self._call = self._cluster.call
        self._lock = threading.Lock()
        self._streams: set[EtcdWatchStream] = set()

    @property
    def endpoints(self) -> tuple[str, ...]:
        return self._cluster.endpoints

    # -- Backend ---------------------------------------------------------------------------

    def get(self, key: str) -> KVPair:
        req = etcdrpc.RangeRequest(key=key.encode())
        resp = self._call(
            lambda ep, t, md: ep.kv.Range(req, timeout=t, metadata=md), retry_any=True
        )
        if not resp.kvs:
            raise NotFound(key)
        return kvpair(resp.kvs[0])

    def list(self, prefix: str) -> Listing:
        raw = prefix.encode()
        req = etcdrpc.RangeRequest(key=raw or b"\0", range_end=prefix_end(raw))
        resp = self._call(
            lambda ep, t, md: ep.kv.Range(req, timeout=t, metadata=md), retry_any=True
        )
        return Listing(kvpairs(resp.kvs), str(resp.header.revision))

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
        return kvpair(deleted.prev_kvs[0])

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
        ep = self._cluster.pick()
        stream = EtcdWatchStream(ep, prefix, start_revision)
        try:
            try:
                md = self._cluster.metadata(ep, self._cluster.timeout)
            except grpc.RpcError as exc:
                raise translate(exc, ep.url) from exc
            stream.open(self._cluster.timeout, md)
        except Unavailable:
            self._cluster.failed(ep)
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
        self._cluster.closed = True
        with self._lock:
            streams, self._streams = list(self._streams), set()
        for s in streams:
            s.close()
        self._cluster.close()

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
