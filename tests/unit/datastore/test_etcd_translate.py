"""The etcd backend's pure helpers: gRPC status -> libcalico.errors, prefix ranges, and which
failures are safe to send to another member."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from libcalico.datastore.etcdmember import not_sent, prefix_end, translate
from libcalico.errors import Compacted, DatastoreError, Unavailable


class RpcError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        self._code, self._details = code, details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> Any: return None
    def trailing_metadata(self) -> Any: return None
    def is_active(self) -> bool: return False
    def time_remaining(self) -> float | None: return None
    def cancel(self) -> bool: return False
    def add_callback(self, callback: Any) -> bool: return False


REFUSED = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: "
           "Failed to connect to remote host: Connection refused")


@pytest.mark.parametrize(("code", "details", "error"), [
    (grpc.StatusCode.UNAVAILABLE, REFUSED, Unavailable),
    (grpc.StatusCode.UNAVAILABLE, "Stream removed (Socket closed)", Unavailable),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded", Unavailable),
    (grpc.StatusCode.OUT_OF_RANGE, "etcdserver: mvcc: required revision has been compacted",
     Compacted),
    (grpc.StatusCode.INVALID_ARGUMENT, "etcdserver: request is too large", DatastoreError),
    (grpc.StatusCode.PERMISSION_DENIED, "etcdserver: permission denied", DatastoreError),
])
def test_translate(code: grpc.StatusCode, details: str, error: type[Exception]) -> None:
    err = translate(RpcError(code, details), "http://127.0.0.1:2379")
    assert type(err) is error
    if error is not Compacted:
        assert "http://127.0.0.1:2379" in str(err) and details in str(err)


def test_only_unsent_failures_are_safe_to_resend() -> None:
    assert not_sent(RpcError(grpc.StatusCode.UNAVAILABLE, REFUSED))
    assert not_sent(RpcError(grpc.StatusCode.UNAVAILABLE, "etcdserver: no leader"))
    # The connection dropped with the request in flight: it may have been applied.
    assert not not_sent(RpcError(grpc.StatusCode.UNAVAILABLE, "Stream removed (Socket closed)"))
    assert not not_sent(RpcError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
    assert not not_sent(RpcError(grpc.StatusCode.UNAVAILABLE,
                                  "etcdserver: request timed out"))


def testprefix_end() -> None:
    assert prefix_end(b"/calico/") == b"/calico0"
    assert prefix_end(b"a\xff") == b"b"
    assert prefix_end(b"\xff\xff") == b"\0"
    assert prefix_end(b"") == b"\0"
