"""A `Backend` over etcd's JSON gateway (`/v3/kv/*`), for short-lived processes' start time.

The CNI plugins run once per container operation, so their start-up cost is paid on every
ADD: importing grpc and pyetcd (what `libcalico.datastore.etcd` uses) costs more than the
whole budget of an ADD here. etcd serves the same KV API as JSON over HTTP (the grpc-gateway, on the
client port), and a small HTTP/1.1 client over the standard library's socket speaks that in
a few milliseconds of import time. The protocol is the same one libcalico-go uses,
transaction for transaction:

- create: `If(Version(key) == 0) Then(Put) Else(Range)`   -> AlreadyExists
- update: `If(ModRevision(key) == rev) Then(Put) Else(Range)` -> Conflict, NotFound when gone
- delete: `[If(ModRevision(key) == rev)] Then(DeleteRange prevKV) Else(Range)`

A failed transaction omits `succeeded` (proto3 JSON drops false): missing means false.
Reads go to the next endpoint on a connection failure; writes only when the request was
provably never sent (connection refused), since a lost answer may hide an applied write.
Watches are not offered here (the plugins never watch): `watch` raises DatastoreError;
long-running watchers use `libcalico.datastore.etcd.EtcdBackend` (`connect()`'s default).

Errors are translated at one boundary, the transport (`_connect`, `_once`, `_call`): socket,
TLS and HTTP-framing failures, a non-200 answer or an unreadable body become `Unavailable`;
unreadable TLS files `ConfigError`. CAS failures are NotFound / AlreadyExists / Conflict as
the Backend protocol says.
"""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from libcalico.datastore import etcdrevision
from libcalico.datastore.api import KVPair, Listing, Op, Revision, WatchStream
from libcalico.errors import (
    AlreadyExists,
    ConfigError,
    Conflict,
    DatastoreError,
    NotFound,
    Unavailable,
)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _prefix_end(prefix: str) -> str:
    raw = bytearray(prefix.encode())
    while raw:
        if raw[-1] < 0xFF:
            raw[-1] += 1
            return base64.b64encode(bytes(raw)).decode()
        raw.pop()
    return base64.b64encode(b"\0").decode()


def _absent(key: str) -> dict[str, Any]:
    return {"target": "VERSION", "key": _b64(key), "result": "EQUAL", "version": "0"}


def _mod_is(key: str, revision: Revision | None) -> dict[str, Any]:
    rev = 0 if revision is None else etcdrevision.parse(revision, key)
    return {"target": "MOD", "key": _b64(key), "result": "EQUAL", "mod_revision": str(rev)}


def _put(key: str, value: str) -> dict[str, Any]:
    return {"request_put": {"key": _b64(key), "value": _b64(value)}}


def _kv(doc: dict[str, Any]) -> KVPair:
    return KVPair(_unb64(doc["key"]), _unb64(doc.get("value", "")),
                  str(int(doc.get("mod_revision", 0))))


def _revision(doc: dict[str, Any]) -> Revision:
    """The header revision of an answer (int64 as JSON text), as the opaque Revision."""
    return str(int((doc.get("header") or {}).get("revision", 0)))


def _reads(keys: Sequence[str], prefixes: Sequence[str]) -> list[dict[str, Any]]:
    ops = [{"request_range": {"key": _b64(k)}} for k in keys]
    ops += [{"request_range": {"key": _b64(p), "range_end": _prefix_end(p)}} for p in prefixes]
    return ops


def _writes(ops: Sequence[Op]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The compare and the write requests of a commit's ops."""
    compare: list[dict[str, Any]] = []
    writes: list[dict[str, Any]] = []
    for kind, key, value, rev in ops:
        compare.append(_absent(key) if kind == "create" else _mod_is(key, rev))
        writes.append({"request_delete_range": {"key": _b64(key)}} if kind == "delete"
                      else _put(key, value or ""))
    return compare, writes


class _NotSent(Exception):
    pass


class _Conn:
    """The HTTP/1.1 this needs (POST, Content-Length or chunked answers, keep-alive) in a
    few lines: http.client pulls in the email package, a third of an ADD's import time."""

    def __init__(self, sock: socket.socket, host: str) -> None:
        self.sock = sock
        self.host = host
        self.reader = sock.makefile("rb")

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        head = (f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        self.sock.sendall(head + body)
        status_line = self.reader.readline(65537)
        if not status_line:
            raise ConnectionResetError("connection closed by etcd")
        parts = status_line.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise ValueError(f"bad status line {status_line[:100]!r}")
        status = int(parts[1])
        length: int | None = None
        chunked = False
        while True:
            line = self.reader.readline(65537)
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value.strip())
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if chunked:
            data = bytearray()
            while True:
                size = int(self.reader.readline(65537).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.reader.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                data += self._exactly(size)
                self.reader.readline(65537)
            return status, bytes(data)
        if length is None:
            raise ValueError("answer without Content-Length")
        return status, self._exactly(length)

    def _exactly(self, n: int) -> bytes:
        data = self.reader.read(n)
        if len(data) != n:
            raise ConnectionResetError("connection closed mid-answer")
        return data

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class GatewayBackend:
    def __init__(self, endpoints: Sequence[str], *, timeout: float = 10.0,
                 cert_file: str = "", key_file: str = "", ca_file: str = "") -> None:
        if not endpoints:
            raise ConfigError("no etcd endpoints configured: set etcd_endpoints in the CNI "
                              "network configuration (or ETCD_ENDPOINTS)")
        self._targets = []
        for url in endpoints:
            parts = urlsplit(url.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ConfigError(f"invalid etcd endpoint {url!r}: expected "
                                  "http://host:port or https://host:port")
            self._targets.append((parts.scheme, parts.hostname, parts.port or 2379))
        self._timeout = timeout
        self._tls = (cert_file, key_file, ca_file)
        self._conn: _Conn | None = None
        self._current = 0

    # ---- transport: HTTP/1.1 POST with keep-alive over one socket -----------------------
    def _connect(self) -> _Conn:
        if self._conn is not None:
            return self._conn
        scheme, host, port = self._targets[self._current]
        # an ASCII name as bytes: a str makes getaddrinfo import the idna codec (~3 ms of a
        # CNI call's start-up); create_connection hands it to getaddrinfo, which takes bytes
        name: str | bytes = host.encode() if host.isascii() else host
        try:
            sock = socket.create_connection((name, port),  # type: ignore[arg-type]
                                            timeout=self._timeout)
        except OSError as exc:
            raise _NotSent(f"{scheme}://{host}:{port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if scheme == "https":
            import ssl

            cert, key, ca = self._tls
            try:
                ctx = ssl.create_default_context(cafile=ca or None)
                if cert:
                    ctx.load_cert_chain(cert, key or None)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise ConfigError(f"cannot load etcd TLS files (cert {cert!r}, key {key!r}, "
                                  f"CA {ca!r}): {exc}") from exc
            try:
                sock = ctx.wrap_socket(sock, server_hostname=host)
            except (OSError, ssl.SSLError) as exc:
                sock.close()
                raise _NotSent(f"TLS handshake with {host}:{port}: {exc}") from exc
        self._conn = _Conn(sock, f"{host}:{port}")
        return self._conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _once(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        conn = self._connect()
        try:
            status, text = conn.post(path, json.dumps(body).encode())
        except (OSError, ValueError) as exc:
            self._drop()
            raise Unavailable(f"etcd {self.endpoint}: {exc}") from exc
        try:
            doc = json.loads(text) if text else {}
        except json.JSONDecodeError as exc:
            raise Unavailable(f"etcd {self.endpoint}: unreadable answer: {exc}") from exc
        if status != 200:
            msg = doc.get("message") or doc.get("error") or text[:200].decode(errors="replace")
            raise Unavailable(f"etcd {self.endpoint} answered {status}: {msg}")
        return dict(doc)

    @property
    def endpoint(self) -> str:
        scheme, host, port = self._targets[self._current]
        return f"{scheme}://{host}:{port}"

    def _call(self, path: str, body: dict[str, Any], *, idempotent: bool) -> dict[str, Any]:
        last: Exception | None = None
        for _ in range(2 * len(self._targets)):
            try:
                return self._once(path, body)
            except _NotSent as exc:
                last = exc
            except Unavailable as exc:
                last = exc
                if not idempotent:
                    raise
            self._current = (self._current + 1) % len(self._targets)
        if isinstance(last, Unavailable):
            raise last
        raise Unavailable(f"cannot reach etcd at {', '.join(self._urls())}: {last}")

    def _urls(self) -> list[str]:
        return [f"{s}://{h}:{p}" for s, h, p in self._targets]

    # ---- Backend -------------------------------------------------------------------------
    def get(self, key: str) -> KVPair:
        doc = self._call("/v3/kv/range", {"key": _b64(key)}, idempotent=True)
        kvs = doc.get("kvs") or []
        if not kvs:
            raise NotFound(key)
        return _kv(kvs[0])

    def list(self, prefix: str) -> Listing:
        doc = self._call("/v3/kv/range", {"key": _b64(prefix), "range_end": _prefix_end(prefix)},
                         idempotent=True)
        return Listing(tuple(_kv(k) for k in doc.get("kvs") or []),
                       _revision(doc))

    def _txn(self, compare: Sequence[dict[str, Any]], success: dict[str, Any],
             key: str) -> tuple[bool, dict[str, Any]]:
        body = {"compare": [*compare], "success": [success],
                "failure": [{"request_range": {"key": _b64(key)}}]}
        doc = self._call("/v3/kv/txn", body, idempotent=False)
        return bool(doc.get("succeeded", False)), doc

    def create(self, key: str, value: str) -> KVPair:
        ok, doc = self._txn([_absent(key)], _put(key, value), key)
        if not ok:
            raise AlreadyExists(key)
        return KVPair(key, value, _revision(doc))

    def update(self, key: str, value: str, revision: Revision) -> KVPair:
        ok, doc = self._txn([_mod_is(key, revision)], _put(key, value), key)
        if not ok:
            self._failed(key, revision, doc)
        return KVPair(key, value, _revision(doc))

    def _failed(self, key: str, revision: Revision, doc: dict[str, Any]) -> None:
        rng = (doc.get("responses") or [{}])[0].get("response_range") or {}
        if not rng.get("kvs"):
            raise NotFound(key)
        raise Conflict(key, revision)

    def apply(self, key: str, value: str) -> KVPair:
        doc = self._call("/v3/kv/put", {"key": _b64(key), "value": _b64(value)},
                         idempotent=False)
        return KVPair(key, value, _revision(doc))

    def delete(self, key: str, revision: Revision | None = None) -> KVPair:
        req = {"request_delete_range": {"key": _b64(key), "prev_kv": True}}
        if revision is None:
            ok, doc = self._txn([], req, key)
        else:
            ok, doc = self._txn([_mod_is(key, revision)], req, key)
            if not ok:
                self._failed(key, revision, doc)
        resp = (doc.get("responses") or [{}])[0].get("response_delete_range") or {}
        prev = resp.get("prev_kvs") or []
        if not prev:
            raise NotFound(key)
        return _kv(prev[0])

    # ---- optional batch capabilities (used by IPAMClient when present) -----------------
    def read_many(self, keys: Sequence[str], prefixes: Sequence[str] = ()
                  ) -> tuple[dict[str, KVPair], dict[str, tuple[KVPair, ...]]]:
        """Several gets and prefix lists in one transaction: one round trip, one revision."""
        ops = _reads(keys, prefixes)
        doc = self._call("/v3/kv/txn", {"success": ops}, idempotent=True)
        return self._parse_reads(keys, prefixes, doc.get("responses") or [])

    def _parse_reads(self, keys: Sequence[str], prefixes: Sequence[str],
                     resps: Sequence[dict[str, Any]]
                     ) -> tuple[dict[str, KVPair], dict[str, tuple[KVPair, ...]]]:
        if len(resps) != len(keys) + len(prefixes):
            raise Unavailable(f"etcd {self.endpoint}: {len(resps)} answers to "
                              f"{len(keys) + len(prefixes)} reads")
        got: dict[str, KVPair] = {}
        for k, r in zip(keys, resps, strict=False):
            kvs = (r.get("response_range") or {}).get("kvs") or []
            if kvs:
                got[k] = _kv(kvs[0])
        lists: dict[str, tuple[KVPair, ...]] = {}
        for p, r in zip(prefixes, resps[len(keys):], strict=True):
            lists[p] = tuple(_kv(x) for x in (r.get("response_range") or {}).get("kvs") or [])
        return got, lists

    def commit_or_read(self, ops: Sequence[Op], keys: Sequence[str],
                       prefixes: Sequence[str] = (), *,
                       values: Mapping[str, str] | None = None,
                       failure_keys: Sequence[str] = ()
                       ) -> tuple[Revision | None, dict[str, KVPair],
                                  dict[str, tuple[KVPair, ...]]]:
        """`commit(ops)` and `read_many(keys, prefixes)` in one transaction: the reads see
        the store right after the writes when they succeeded, as it is when they did not
        (then `failure_keys` are read too). `values`: further conditions, each key's
        current value exactly as given. Returns (the commit's revision, or None when a
        condition failed, and the reads)."""
        compare, writes = _writes(ops)
        compare += [{"key": _b64(k), "target": "VALUE", "result": "EQUAL", "value": _b64(v)}
                    for k, v in (values or {}).items()]
        failure_all = [*keys, *failure_keys]
        doc = self._call("/v3/kv/txn", {"compare": compare,
                                        "success": writes + _reads(keys, prefixes),
                                        "failure": _reads(failure_all, prefixes)},
                         idempotent=False)
        resps = doc.get("responses") or []
        if doc.get("succeeded", False):
            got, lists = self._parse_reads(keys, prefixes, resps[len(writes):])
            return _revision(doc), got, lists
        got, lists = self._parse_reads(failure_all, prefixes, resps)
        return None, got, lists

    def commit(self, ops: Sequence[Op]) -> Revision:
        """All-or-nothing writes: each op is (kind, key, value, revision) with kind `create`
        (key must not exist), `update` (mod revision must equal `revision`) or `delete`
        (idem). Raises Conflict naming the first key when any condition fails. Returns the
        new store revision."""
        compare, success = _writes(ops)
        doc = self._call("/v3/kv/txn", {"compare": compare, "success": success},
                         idempotent=False)
        if not doc.get("succeeded", False):
            raise Conflict(ops[0][1])
        return _revision(doc)

    def watch(self, prefix: str, after: Revision) -> WatchStream:
        raise DatastoreError(
            f"cannot watch {prefix!r}: the etcd JSON-gateway backend "
            "(libcalico.datastore.gateway) does not offer watches; use the etcd backend "
            "from libcalico.datastore.connect()")

    def close(self) -> None:
        self._drop()


def probe(endpoint: str, timeout: float = 1.0) -> bool:
    """True when something listens at the endpoint (used by tests and diagnostics)."""
    parts = urlsplit(endpoint)
    try:
        with socket.create_connection((parts.hostname or "", parts.port or 2379), timeout):
            return True
    except OSError:
        return False
