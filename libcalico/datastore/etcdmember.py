"""One etcd member as gRPC sees it: the channel options, TLS material, the channel and its
stubs (`Member`), and the one boundary from gRPC status to `libcalico.errors` (`translate`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from pyetcd import etcdrpc

from libcalico.datastore.endpoint import Target
from libcalico.errors import Compacted, DatastoreError, Unavailable

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
REQUIRE_LEADER: Metadata = (("hasleader", "true"),)

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


class Member:
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


def prefix_end(prefix: bytes) -> bytes:
    """The range end covering every key that starts with `prefix` (etcd's clientv3 rule)."""
    end = bytearray(prefix)
    for i in range(len(end) - 1, -1, -1):
        if end[i] < 0xFF:
            end[i] += 1
            return bytes(end[: i + 1])
    return b"\0"  # every key


def status_details(exc: grpc.RpcError) -> str:
    details = exc.details() if isinstance(exc, grpc.Call) else None
    return str(details or exc)


def status_code(exc: grpc.RpcError) -> grpc.StatusCode | None:
    return exc.code() if isinstance(exc, grpc.Call) else None


def translate(exc: grpc.RpcError, endpoint: str) -> DatastoreError:
    """The one boundary from gRPC status to libcalico.errors."""
    code, details = status_code(exc), status_details(exc)
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


def not_sent(exc: grpc.RpcError) -> bool:
    details = status_details(exc).lower()
    return status_code(exc) == grpc.StatusCode.UNAVAILABLE and any(
        m in details for m in _NOT_SENT_MARKERS
    )
