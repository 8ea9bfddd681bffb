"""Several etcd members used as one: which member to call, deadlines and retries, failover,
and etcd auth tokens (`Cluster.call`).

Every call has a deadline, retries included. Reads are retried on the next member until the
deadline; writes only when the request provably never reached etcd (connection refused,
member without a leader), because a write whose answer was lost may have been applied, and
repeating a compare-and-swap would then report a false conflict. The caller gets
`Unavailable` and decides.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import grpc
from pyetcd import etcdrpc

from libcalico.datastore.endpoint import parse_endpoint
from libcalico.datastore.etcdmember import (
    REQUIRE_LEADER,
    Member,
    Metadata,
    TLSMaterial,
    not_sent,
    status_code,
    status_details,
    translate,
)
from libcalico.errors import ConfigError, DatastoreError, Unavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


class Cluster:
    """The members of one etcd cluster, one in use at a time. Thread-safe."""

    def __init__(
        self,
        endpoints: Sequence[str],
        *,
        tls: TLSMaterial | None,
        timeout: float,
        username: str | None,
        password: str | None,
    ) -> None:
        if not endpoints:
            raise ConfigError("no etcd endpoints configured")
        if timeout <= 0:
            raise ConfigError(f"etcd timeout must be positive, not {timeout}")
        self._endpoints = [Member(parse_endpoint(u), tls) for u in endpoints]
        self.timeout = timeout
        if bool(username) != bool(password):
            raise ConfigError("etcd username and password must be given together")
        self._credentials = (username, password) if username and password else None
        self._lock = threading.Lock()
        self._current = 0
        self.closed = False

    @property
    def endpoints(self) -> tuple[str, ...]:
        return tuple(e.url for e in self._endpoints)

    def pick(self) -> Member:
        if self.closed:
            raise Unavailable("etcd backend is closed")
        with self._lock:
            return self._endpoints[self._current]

    def failed(self, ep: Member) -> None:
        with self._lock:
            if self._endpoints[self._current] is ep and len(self._endpoints) > 1:
                self._current = (self._current + 1) % len(self._endpoints)
                log.info("etcd %s failed; switching to %s", ep.url,
                         self._endpoints[self._current].url)

    def call(self, fn: Callable[[Member, float, Metadata], T], *, retry_any: bool) -> T:
        """Run `fn(endpoint, seconds_left, metadata)` until it answers or the deadline passes.

        `retry_any`: the call has no effect (a read), so any unavailability may be retried;
        otherwise only failures that prove the request was never sent are.
        """
        deadline = time.monotonic() + self.timeout
        delay = 0.05
        attempts = 0
        reauthenticated = False
        while True:
            ep = self.pick()
            left = max(deadline - time.monotonic(), 0.001)
            try:
                return fn(ep, left, self.metadata(ep, left))
            except grpc.RpcError as exc:
                if (self._credentials and not reauthenticated
                        and status_code(exc) == grpc.StatusCode.UNAUTHENTICATED):
                    # The token expired (or the member restarted): log in again and resend;
                    # etcd refused the request before applying it.
                    ep.token = None
                    reauthenticated = True
                    continue
                err = translate(exc, ep.url)
                if not isinstance(err, Unavailable):
                    raise err from exc
                self.failed(ep)
                attempts += 1
                left = deadline - time.monotonic()
                if left <= 0 or not (retry_any or not_sent(exc)):
                    raise err from exc
                if attempts % len(self._endpoints) == 0:
                    time.sleep(min(delay, left))
                    delay = min(delay * 2, 1.0)

    def metadata(self, ep: Member, timeout: float) -> Metadata:
        if self._credentials is None:
            return REQUIRE_LEADER
        if ep.token is None:
            user, password = self._credentials
            try:
                resp = ep.auth.Authenticate(
                    etcdrpc.AuthenticateRequest(name=user, password=password), timeout=timeout
                )
            except grpc.RpcError as exc:
                if status_code(exc) in (grpc.StatusCode.INVALID_ARGUMENT,
                                  grpc.StatusCode.FAILED_PRECONDITION):
                    raise DatastoreError(f"etcd {ep.url}: authentication as user {user!r} "
                                         f"failed: {status_details(exc)}") from None
                raise
            ep.token = resp.token
        return (*REQUIRE_LEADER, ("token", ep.token))

    def close(self) -> None:
        self.closed = True
        for ep in self._endpoints:
            ep.close()
