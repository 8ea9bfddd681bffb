"""A small Kubernetes API client on the standard library (http.client + ssl + json).

Chosen over lightkube and the official client by measurement (docs/datastore.md, "Kubernetes
datastore"): it costs a few milliseconds to import, which the CNI plugin and calicoctl pay on
every run, and the backend needs exact control of watches (resume from the last
resourceVersion, bookmarks, 410 -> relist), which the libraries do not give as Calico does.

- `KubeAccess` says how to reach one API server (server URL, CA, credentials);
  `access_from_kubeconfig` reads a kubeconfig (a `:`-separated list merged as client-go does:
  the first file to set a value wins), `access_in_cluster` the pod's service account.
- `KubeClient.request(method, path, ...)` sends one JSON request over a pooled keep-alive
  connection and returns the decoded reply; errors are libcalico's (`api_error` is Calico's
  K8sErrorToCalico: the Status `reason` decides, not only the HTTP code).
- `KubeClient.watch(path, query)` opens a watch stream on its own connection: an iterator of
  decoded events (`{"type": ..., "object": ...}`); `close()` from any thread ends it.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import yaml

from libcalico.errors import (
    AlreadyExists,
    Compacted,
    ConfigError,
    Conflict,
    DatastoreError,
    NotFound,
    Unavailable,
)

SA_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
JSON = "application/json"
MERGE_PATCH = "application/merge-patch+json"
_USER_AGENT = "calico-py"
_TOKEN_REREAD = 60.0


class Unauthorized(DatastoreError):
    """401/403 from the API server (Calico's ErrorConnectionUnauthorized)."""


@dataclass(frozen=True, slots=True)
class KubeAccess:
    server: str
    """https://host:port, no trailing slash."""
    ca_pem: bytes | None = None
    insecure: bool = False
    token: str | None = None
    token_file: Path | None = None
    """Re-read about once a minute (projected service-account tokens rotate)."""
    cert_pem: bytes | None = None
    key_pem: bytes | None = None
    source: str = ""

    def __repr__(self) -> str:
        return f"KubeAccess(server={self.server}, source={self.source})"


def _b64(value: str, what: str, source: str) -> bytes:
    try:
        return base64.b64decode(value, validate=True)
    except ValueError as exc:
        raise ConfigError(f"{source}: {what} is not valid base64") from exc


def _read(path: Path, what: str, source: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read {what} {path}: {exc.strerror or exc}") from exc


def _named(items: Any, field: str, source: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for item in items or []:
        if isinstance(item, dict) and isinstance(item.get("name"), str):
            body = item.get(field)
            out[item["name"]] = body if isinstance(body, dict) else {}
    return out


def access_from_kubeconfig(paths: str, context: str | None = None) -> KubeAccess:
    """The cluster and user of `context` (else current-context) from a kubeconfig path or a
    `:`-separated list of them (missing files skipped, as client-go does; none existing is an
    error). Relative file references resolve against the file that names them."""
    docs: list[tuple[Any, Path, str]] = []
    for f in (Path(p) for p in paths.split(":") if p):
        if not f.exists():
            continue
        try:
            docs.append((yaml.safe_load(f.read_text()) or {}, f.parent, str(f)))
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"kubeconfig {f}: cannot be read: {exc}") from exc
    if not docs:
        raise ConfigError(f"kubeconfig {paths}: no such file")
    return _from_docs(docs, context)


def access_from_kubeconfig_text(text: str, context: str | None = None,
                                source: str = "kubeconfigInline") -> KubeAccess:
    """The same from a kubeconfig's contents (CalicoAPIConfig `kubeconfigInline`)."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    return _from_docs([(doc, Path("."), source)], context)


def _from_docs(docs: list[tuple[Any, Path, str]], context: str | None) -> KubeAccess:
    clusters: dict[str, tuple[dict[str, Any], Path]] = {}
    users: dict[str, tuple[dict[str, Any], Path]] = {}
    contexts: dict[str, dict[str, Any]] = {}
    current: str | None = None
    for doc, base, origin in docs:
        if not isinstance(doc, dict):
            raise ConfigError(f"kubeconfig {origin}: not a mapping")
        for n, body in _named(doc.get("clusters"), "cluster", origin).items():
            clusters.setdefault(n, (body, base))
        for n, body in _named(doc.get("users"), "user", origin).items():
            users.setdefault(n, (body, base))
        for n, body in _named(doc.get("contexts"), "context", origin).items():
            contexts.setdefault(n, body)
        cc = doc.get("current-context")
        if current is None and isinstance(cc, str) and cc:
            current = cc
    source = "kubeconfig " + ":".join(n for _, _, n in docs)
    name = context or current
    if not name or name not in contexts:
        raise ConfigError(f"{source}: context {name!r} not found" if name
                          else f"{source}: no current-context")
    ctx = contexts[name]
    cluster, cdir = clusters.get(str(ctx.get("cluster")), ({}, Path(".")))
    user, udir = users.get(str(ctx.get("user")), ({}, Path(".")))
    server = str(cluster.get("server") or "").rstrip("/")
    if not server:
        raise ConfigError(f"{source}: context {name!r} has no cluster server")
    ca = None
    if cluster.get("certificate-authority-data"):
        ca = _b64(cluster["certificate-authority-data"], "certificate-authority-data", source)
    elif cluster.get("certificate-authority"):
        ca = _read(cdir / cluster["certificate-authority"], "certificate-authority", source)
    if "exec" in user or "auth-provider" in user:
        raise ConfigError(f"{source}: user {ctx.get('user')!r}: exec and auth-provider "
                          "credentials are not supported; use a token or a client certificate")
    cert = key = None
    if user.get("client-certificate-data"):
        cert = _b64(user["client-certificate-data"], "client-certificate-data", source)
    elif user.get("client-certificate"):
        cert = _read(udir / user["client-certificate"], "client-certificate", source)
    if user.get("client-key-data"):
        key = _b64(user["client-key-data"], "client-key-data", source)
    elif user.get("client-key"):
        key = _read(udir / user["client-key"], "client-key", source)
    token_file = udir / user["tokenFile"] if user.get("tokenFile") else None
    return KubeAccess(server=server, ca_pem=ca,
                      insecure=bool(cluster.get("insecure-skip-tls-verify")),
                      token=str(user["token"]) if user.get("token") else None,
                      token_file=token_file, cert_pem=cert, key_pem=key, source=source)


def access_in_cluster(env: Mapping[str, str] | None = None, sa_dir: Path = SA_DIR
                      ) -> KubeAccess | None:
    """The pod's own service account, when KUBERNETES_SERVICE_HOST/_PORT and the token exist."""
    env = os.environ if env is None else env
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port or not (sa_dir / "token").exists():
        return None
    if ":" in host:
        host = f"[{host}]"
    ca = sa_dir / "ca.crt"
    return KubeAccess(server=f"https://{host}:{port}",
                      ca_pem=ca.read_bytes() if ca.exists() else None,
                      token_file=sa_dir / "token", source="in-cluster service account")


# ---------------------------------------------------------------------------------------------
# Errors


def _status(raw: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(raw)
    except ValueError:
        return {"message": raw.decode(errors="replace")[:500]}
    return doc if isinstance(doc, dict) else {}


def api_error(code: int, status: Mapping[str, Any], what: str) -> DatastoreError:
    """Calico's K8sErrorToCalico for one failed request about `what` (a key or path)."""
    reason = str(status.get("reason") or "")
    message = str(status.get("message") or "")
    causes = (status.get("details") or {}).get("causes") or []
    fields = {c.get("field") for c in causes if isinstance(c, dict)}
    if code == 409 and reason == "AlreadyExists":
        return AlreadyExists(what)
    if code == 404 or reason == "NotFound":
        return NotFound(what)
    if code in (401, 403):
        return Unauthorized(f"{what}: {code} {reason}: {message}".rstrip(": "))
    if code == 409 and "UID in precondition" in message:
        return NotFound(what)  # the object was deleted and made again
    if code == 409:
        return Conflict(what)
    if code == 410 or reason in ("Expired", "Gone"):
        return Compacted("")
    if code == 422 and fields == {"metadata.uid"}:
        return NotFound(what)
    if code == 422 and fields == {"metadata.resourceVersion"}:
        return Conflict(what)
    if code == 429 or code >= 500:
        return Unavailable(f"{what}: {code} {reason}: {message}")
    return DatastoreError(f"{what}: {code} {reason}: {message}")


# ---------------------------------------------------------------------------------------------
# Transport


def _ssl_context(access: KubeAccess) -> ssl.SSLContext:
    # A given CA is the only root, as client-go has it; not loading the system's roots then
    # saves ~100 ms per process (the CNI plugin pays it on every call).
    if access.ca_pem and not access.insecure:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    else:
        ctx = ssl.create_default_context()
    try:
        if access.insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif access.ca_pem:
            ctx.load_verify_locations(cadata=access.ca_pem.decode())
        if access.cert_pem and access.key_pem:
            # ssl loads a client certificate from files only: a private temporary copy.
            with tempfile.TemporaryDirectory(prefix="calico-kube-") as d:
                cert, key = Path(d) / "cert.pem", Path(d) / "key.pem"
                for p, data in ((cert, access.cert_pem), (key, access.key_pem)):
                    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as f:
                        f.write(data)
                ctx.load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{access.source}: unusable TLS material: {exc}") from exc
    return ctx


class KubeClient:
    """JSON requests to one API server. Thread-safe: idle connections are pooled."""

    def __init__(self, access: KubeAccess, timeout: float = 10.0) -> None:
        u = urlsplit(access.server)
        if u.scheme not in ("https", "http") or not u.hostname:
            raise ConfigError(f"{access.source}: bad API server URL {access.server!r}")
        self.access = access
        self.timeout = timeout
        self._host = u.hostname
        self._port = u.port or (443 if u.scheme == "https" else 80)
        self._base = u.path.rstrip("/")
        self._ctx = _ssl_context(access) if u.scheme == "https" else None
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()
        self._token: str | None = access.token
        self._token_read = 0.0

    # -- connections ------------------------------------------------------------------------

    def _connect(self, timeout: float | None) -> http.client.HTTPConnection:
        if self._ctx is not None:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                               context=self._ctx)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def _headers(self, content_type: str | None) -> dict[str, str]:
        h = {"Accept": JSON, "User-Agent": _USER_AGENT}
        if content_type:
            h["Content-Type"] = content_type
        token = self._bearer()
        if token:
            h["Authorization"] = f"Bearer {token}"
        return h

    def _bearer(self) -> str | None:
        f = self.access.token_file
        if f is not None and not self.access.token:
            now = time.monotonic()
            if self._token is None or now - self._token_read > _TOKEN_REREAD:
                try:
                    self._token = f.read_text().strip()
                except OSError as exc:
                    raise ConfigError(f"cannot read token file {f}: {exc.strerror}") from exc
                self._token_read = now
        return self._token

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        return self._base + path + (f"?{urlencode(query)}" if query else "")

    # -- requests ---------------------------------------------------------------------------

    def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                body: Any = None, content_type: str = JSON, what: str = "") -> Any:
        """Send one request and return the decoded JSON reply; raises libcalico errors.
        A request on a pooled connection that the server had closed is sent again once on a
        new one (nothing was received, so nothing was done)."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode()
        target = self.url(path, query)
        what = what or path
        for attempt in (0, 1):
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            reused = conn is not None
            if conn is None:
                conn = self._connect(self.timeout)
            try:
                conn.request(method, target, body=data,
                             headers=self._headers(content_type if data is not None else None))
                resp = conn.getresponse()
                raw = resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError,
                    ConnectionResetError) as exc:
                conn.close()
                if reused and attempt == 0:
                    continue
                raise Unavailable(f"{self.access.server}: {what}: {exc}") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                raise Unavailable(f"{self.access.server}: {what}: {exc}") from exc
            if resp.will_close:
                conn.close()
            else:
                with self._lock:
                    self._idle.append(conn)
            if resp.status >= 400:
                raise api_error(resp.status, _status(raw), what)
            try:
                return json.loads(raw) if raw else None
            except ValueError as exc:
                raise Unavailable(f"{self.access.server}: {what}: reply is not JSON") from exc
        raise AssertionError("unreachable")

    def watch(self, path: str, query: Mapping[str, str], *, what: str = "") -> WatchConnection:
        """Open a watch (`watch=1` is added). The server ends it after `timeoutSeconds`."""
        timeout = float(query.get("timeoutSeconds", "300")) + self.timeout
        conn = self._connect(timeout)
        target = self.url(path, {**query, "watch": "1"})
        try:
            conn.request("GET", target, headers=self._headers(None))
            resp = conn.getresponse()
        except (OSError, http.client.HTTPException) as exc:
            conn.close()
            raise Unavailable(f"{self.access.server}: watch {what or path}: {exc}") from exc
        if resp.status >= 400:
            raw = resp.read()
            conn.close()
            raise api_error(resp.status, _status(raw), what or path)
        return WatchConnection(conn, resp, what or path, self.access.server)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for c in idle:
            c.close()


class WatchConnection:
    """The events of one watch request, one JSON object a line. Iteration ends when the
    server ends the stream or `close()` is called; a broken connection raises Unavailable."""

    def __init__(self, conn: http.client.HTTPConnection, resp: http.client.HTTPResponse,
                 what: str, server: str) -> None:
        self._conn = conn
        self._resp = resp
        self._what = what
        self._server = server
        self._closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        try:
            while not self._closed:
                try:
                    line = self._resp.readline()
                except (OSError, http.client.HTTPException, ValueError,
                        AttributeError) as exc:  # (http.client, on a close() from another thread)
                    if self._closed:
                        return
                    raise Unavailable(f"{self._server}: watch {self._what}: {exc}") from exc
                if not line:
                    return
                if not line.strip():
                    continue
                try:
                    event = json.loads(line)
                except ValueError as exc:
                    raise Unavailable(
                        f"{self._server}: watch {self._what}: bad event line") from exc
                if isinstance(event, dict):
                    yield event
        finally:
            self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        sock = self._conn.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._conn.close()


def name_path(name: str) -> str:
    """`name` as one path segment."""
    return quote(name, safe="")
