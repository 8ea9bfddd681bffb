"""Datastore access: the Backend protocol, the etcd v3 backend, the syncer.

`connect(cfg)` turns a `DatastoreConfig` into a `Backend`. The etcd backend (and gRPC) is
imported only when it is used.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from libcalico.errors import ConfigError

if TYPE_CHECKING:
    from libcalico.datastore.api import Backend
    from libcalico.datastore.config import DatastoreConfig


def _pem(path: Path | None, inline: str | None, what: str) -> bytes | None:
    if path is not None:
        try:
            return path.read_bytes()
        except OSError as exc:
            reason = exc.strerror or exc
            raise ConfigError(f"cannot read etcd {what} file {path}: {reason}") from exc
    return inline.encode() if inline else None


def connect(cfg: DatastoreConfig) -> Backend:
    """A Backend for `cfg`. Raises ConfigError when the configuration cannot be used."""
    from libcalico.datastore.config import DatastoreType

    if cfg.datastore_type is DatastoreType.KUBERNETES:
        from libcalico.datastore import kubernetes

        return kubernetes.connect(cfg)
    from libcalico.datastore.etcd import EtcdBackend, TLSMaterial

    ca = _pem(cfg.etcd_ca_cert_file, cfg.etcd_ca_cert, "CA certificate")
    key = _pem(cfg.etcd_key_file, cfg.etcd_key, "key")
    cert = _pem(cfg.etcd_cert_file, cfg.etcd_cert, "certificate")
    tls = TLSMaterial(ca=ca, key=key, cert=cert) if (ca or key or cert) else None
    return EtcdBackend(cfg.etcd_endpoints, tls=tls, timeout=cfg.timeout,
                       username=cfg.etcd_username, password=cfg.etcd_password)
