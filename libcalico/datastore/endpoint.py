"""etcd endpoint URLs as Calico accepts them in ETCD_ENDPOINTS / etcdEndpoints."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from libcalico.errors import ConfigError

PURE = True


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    netloc: str
    """host:port as gRPC dials it (IPv6 hosts in brackets)."""
    secure: bool
    """https: TLS; http: plaintext (whatever certificates are configured, as etcd's client)."""


def parse_endpoint(url: str) -> Target:
    """`http://127.0.0.1:2379` -> Target; a missing port means 2379, as in etcd's clients."""
    text = url.strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ConfigError(f"etcd endpoint {text!r}: scheme must be http or https")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ConfigError(f"etcd endpoint {text!r}: {exc}") from exc
    if not host:
        raise ConfigError(f"etcd endpoint {text!r}: no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"etcd endpoint {text!r}: unexpected path or query")
    host_part = f"[{host}]" if ":" in host else host
    return Target(text, f"{host_part}:{port or 2379}", parts.scheme == "https")
