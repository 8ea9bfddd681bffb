"""The edges both plugins share: node name, datastore connection, host lock, the run wrapper
that turns every failure into CNI error JSON."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from calico_cni import spec
from calico_cni.netconf import NetConf
from calico_cni.spec import CNIError
from libcalico import logger
from libcalico.datastore.api import Backend, KVPair
from libcalico.errors import (
    CalicoError,
    ConfigError,
    DatastoreError,
    NotFound,
    Unavailable,
    ValidationError,
)
from libcalico.model import keys

log = logger.get("calico_cni")


def nodename(conf: NetConf, environ: Mapping[str, str]) -> str:
    """`nodename` > contents of `nodename_file` (verbatim) > deprecated `hostname` > OS
    hostname. Unless `nodename_file_optional`, the file must exist (calico-node writes it)."""
    if conf.nodename:
        return conf.nodename
    try:
        with open(conf.nodename_file) as f:
            name = f.read()
        if name:
            return name
    except FileNotFoundError:
        if not conf.nodename_file_optional:
            raise CNIError(
                spec.INVALID_NETWORK_CONFIG,
                f"stat {conf.nodename_file}: no such file or directory: check that the "
                "calico/node container is running and has mounted /var/lib/calico/",
                "or set \"nodename\" (or \"nodename_file_optional\": true) in the network "
                "configuration") from None
    if conf.hostname:
        return conf.hostname
    return os.uname().nodename


def mtu(conf: NetConf) -> int:
    if conf.mtu:
        return conf.mtu
    try:
        with open("/var/lib/calico/mtu") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1500


def datastore_type(conf: NetConf, environ: Mapping[str, str]) -> str:
    """netconf `datastore_type`, else $CALICO_DATASTORE_TYPE / $DATASTORE_TYPE, else etcdv3."""
    return (conf.datastore_type or environ.get("CALICO_DATASTORE_TYPE")
            or environ.get("DATASTORE_TYPE") or "etcdv3")


def connect(conf: NetConf, environ: Mapping[str, str]) -> Backend:
    if datastore_type(conf, environ) == "kubernetes":
        from calico_cni import kdd  # only KDD pays for the Kubernetes client

        return kdd.connect(conf, environ)
    endpoints = conf.etcd_endpoints or environ.get("ETCD_ENDPOINTS", "")
    if not endpoints:
        raise CNIError(spec.INVALID_NETWORK_CONFIG, "no datastore configured",
                       "set \"etcd_endpoints\" (e.g. \"http://127.0.0.1:2379\") in the network "
                       "configuration or ETCD_ENDPOINTS in the environment")
    from libcalico.datastore.gateway import GatewayBackend

    try:
        return GatewayBackend(
            [e for e in endpoints.split(",") if e.strip()],
            cert_file=conf.etcd_cert_file or environ.get("ETCD_CERT_FILE", ""),
            key_file=conf.etcd_key_file or environ.get("ETCD_KEY_FILE", ""),
            ca_file=conf.etcd_ca_cert_file or environ.get("ETCD_CA_CERT_FILE", ""),
        )
    except ConfigError as exc:
        raise CNIError(spec.INVALID_NETWORK_CONFIG, str(exc)) from None


@contextlib.contextmanager
def datastore(conf: NetConf, environ: Mapping[str, str]) -> Iterator[Backend]:
    """`connect`, closed again when the command is done (however it ends)."""
    backend = connect(conf, environ)
    try:
        yield backend
    finally:
        backend.close()


CLUSTER_INFO_KEY = keys.resource_key("ClusterInformation", "default")


def read(backend: Backend, keys_: list[str]) -> dict[str, KVPair]:
    """Several keys in one round trip when the backend can (absent keys are left out)."""
    many = getattr(backend, "read_many", None)
    if many is not None:
        got, _ = many(keys_)
        return dict(got)
    out = {}
    for k in keys_:
        with contextlib.suppress(NotFound):
            out[k] = backend.get(k)
    return out


def require_ready(backend: Backend, value: KVPair | bool | None = False) -> None:
    """ClusterInformation `default` must say the datastore is ready (as Calico checks).
    `value`: the key as already read (None when absent); False to read it here."""
    key = CLUSTER_INFO_KEY
    try:
        if value is False:
            value = backend.get(key)
        if not isinstance(value, KVPair):
            raise NotFound(key)
        doc = json.loads(value.value)
    except NotFound:
        raise CNIError(spec.TRY_AGAIN_LATER,
                       "error getting ClusterInformation: resource does not exist: "
                       "ClusterInformation(default)",
                       "start calico-node (or `calicoctl datastore migrate unlock`) so that "
                       "the cluster is initialised") from None
    except json.JSONDecodeError as exc:
        raise CNIError(spec.INTERNAL, f"ClusterInformation default is not JSON: {exc}") from None
    if not (doc.get("spec") or {}).get("datastoreReady"):
        raise CNIError(spec.TRY_AGAIN_LATER,
                       "Calico is currently not ready to process requests",
                       "ClusterInformation default has spec.datastoreReady false")


@contextlib.contextmanager
def host_lock(path: str) -> Iterator[None]:
    """Host-wide flock around IPAM (best effort: no lock file, no lock)."""
    fd = -1
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
    except OSError as exc:
        log.warning("cannot take IPAM lock %s (%s): continuing without it", path, exc)
        if fd >= 0:
            os.close(fd)
            fd = -1
    try:
        yield
    finally:
        if fd >= 0:
            os.close(fd)


def translate(exc: BaseException) -> CNIError:
    if isinstance(exc, CNIError):
        return exc
    if isinstance(exc, Unavailable):
        return CNIError(spec.TRY_AGAIN_LATER, f"datastore unavailable: {exc}",
                        "check that the datastore (etcd_endpoints, or the Kubernetes API "
                        "server of kubernetes.kubeconfig) is reachable")
    if isinstance(exc, ValidationError):
        return CNIError(spec.INVALID_NETWORK_CONFIG, str(exc))
    if isinstance(exc, ConfigError):
        return CNIError(spec.INVALID_NETWORK_CONFIG, str(exc))
    if isinstance(exc, DatastoreError | CalicoError):
        return CNIError(spec.INTERNAL, str(exc))
    return CNIError(spec.INTERNAL, f"{type(exc).__name__}: {exc}")


def setup_logging(level: str = "") -> None:
    """Records at `log_level` (default warning) and above go to stderr. `logging` itself is
    imported only when such a record comes (see libcalico.logger)."""
    lvl = {"debug": logger.DEBUG, "info": logger.INFO, "warning": logger.WARNING,
           "error": logger.ERROR}.get(level.lower(), logger.WARNING)
    logger.threshold = lvl

    def configure() -> None:
        import logging

        logging.basicConfig(stream=sys.stderr, level=lvl,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    logger.on_import(configure)


def run(handler: Callable[[spec.Env, dict[str, Any], str, Mapping[str, str]], str | None],
        environ: Mapping[str, str] | None = None, stdin: bytes | None = None,
        out: TextIO | None = None) -> int:
    """Parse env and stdin, call `handler(env, config, cni_version, environ)`, print its
    output or the error JSON on `out` (stdout). Returns the exit status."""
    environ = os.environ if environ is None else environ
    out = sys.stdout if out is None else out
    try:
        env = spec.parse_env(environ)
        if env.command == "VERSION":
            out.write(spec.version_output())
            return 0
        if stdin is None:
            try:
                stdin = sys.stdin.buffer.read()
            except OSError as exc:
                raise CNIError(spec.IO_FAILURE, f"error reading stdin: {exc}") from None
        doc = spec.decode_config(stdin)
        version = spec.check_config(doc, env.command)
        setup_logging(str(doc.get("log_level") or ""))
        result = handler(env, doc, version, environ)
        if result:
            out.write(result)
        return 0
    except BaseException as exc:  # the one boundary that reports everything
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        err = translate(exc)
        if not isinstance(exc, CNIError):
            log.debug("failure", exc_info=exc)
        out.write(err.to_json())
        return 1
