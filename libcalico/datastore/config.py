"""Which datastore to use and how to reach it, read the way Calico's tools read it.

From the environment (`DatastoreConfig.from_env`), each variable also accepted with a
`CALICO_` prefix, which wins (as Calico's envconfig does):

    DATASTORE_TYPE      etcdv3 (default) | kubernetes
    ETCD_ENDPOINTS      comma-separated URLs (default http://127.0.0.1:2379)
    ETCD_KEY_FILE, ETCD_CERT_FILE, ETCD_CA_CERT_FILE    TLS files
    ETCD_KEY, ETCD_CERT, ETCD_CA_CERT                   the same, inline PEM
    ETCD_USERNAME, ETCD_PASSWORD                        etcd user authentication
    KUBECONFIG, K8S_API_ENDPOINT, K8S_CERT_FILE, K8S_KEY_FILE, K8S_CA_FILE, K8S_API_TOKEN,
    K8S_INSECURE_SKIP_TLS_VERIFY, K8S_CURRENT_CONTEXT    (DATASTORE_TYPE=kubernetes)

From a CalicoAPIConfig file (`DatastoreConfig.from_file`), as calicoctl reads
`/etc/calico/calicoctl.cfg`:

    apiVersion: projectcalico.org/v3
    kind: CalicoAPIConfig
    metadata: {}
    spec:
      datastoreType: etcdv3
      etcdEndpoints: https://10.0.0.1:2379,https://10.0.0.2:2379
      etcdKeyFile: /etc/calico/key.pem
      etcdCertFile: /etc/calico/cert.pem
      etcdCACertFile: /etc/calico/ca.pem

Unknown fields are rejected (calicoctl unmarshals strictly). `load(path)` is calicoctl's
rule: a file that exists is used as it is and the environment is not consulted; only when
there is no file (the default path missing) does the environment apply.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from libcalico.datastore.endpoint import parse_endpoint
from libcalico.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/calico/calicoctl.cfg")
DEFAULT_ENDPOINTS = ("http://127.0.0.1:2379",)


class DatastoreType(enum.StrEnum):
    ETCDV3 = "etcdv3"
    KUBERNETES = "kubernetes"


# CalicoAPIConfig spec field -> environment variable (libcalico-go apiconfig).
_SPEC_ENV: dict[str, str] = {
    "datastoreType": "DATASTORE_TYPE",
    "etcdEndpoints": "ETCD_ENDPOINTS",
    "etcdDiscoverySrv": "ETCD_DISCOVERY_SRV",
    "etcdUsername": "ETCD_USERNAME",
    "etcdPassword": "ETCD_PASSWORD",
    "etcdKeyFile": "ETCD_KEY_FILE",
    "etcdCertFile": "ETCD_CERT_FILE",
    "etcdCACertFile": "ETCD_CA_CERT_FILE",
    "etcdKey": "ETCD_KEY",
    "etcdCert": "ETCD_CERT",
    "etcdCACert": "ETCD_CA_CERT",
    "kubeconfig": "KUBECONFIG",
    "k8sAPIEndpoint": "K8S_API_ENDPOINT",
    "k8sKeyFile": "K8S_KEY_FILE",
    "k8sCertFile": "K8S_CERT_FILE",
    "k8sCAFile": "K8S_CA_FILE",
    "k8sAPIToken": "K8S_API_TOKEN",
    "k8sInsecureSkipTLSVerify": "K8S_INSECURE_SKIP_TLS_VERIFY",
    "kubeconfigInline": "KUBECONFIG_INLINE",
    "k8sClientQPS": "K8S_CLIENT_QPS",
    "k8sCurrentContext": "K8S_CURRENT_CONTEXT",
}

# The Kubernetes fields kept as given (libcalico.datastore.kubernetes resolves them).
_K8S_FIELDS = ("kubeconfig", "k8sAPIEndpoint", "k8sKeyFile", "k8sCertFile", "k8sCAFile",
               "k8sAPIToken", "k8sInsecureSkipTLSVerify", "kubeconfigInline", "k8sCurrentContext")


@dataclass(frozen=True, slots=True)
class DatastoreConfig:
    datastore_type: DatastoreType = DatastoreType.ETCDV3
    etcd_endpoints: tuple[str, ...] = DEFAULT_ENDPOINTS
    etcd_key_file: Path | None = None
    etcd_cert_file: Path | None = None
    etcd_ca_cert_file: Path | None = None
    etcd_key: str | None = None
    """Inline PEM (CalicoAPIConfig `etcdKey`); used when no key file is given."""
    etcd_cert: str | None = None
    etcd_ca_cert: str | None = None
    etcd_username: str | None = None
    etcd_password: str | None = None
    kubeconfig: str | None = None
    k8s: tuple[tuple[str, str], ...] = ()
    """The Kubernetes settings given (CalicoAPIConfig field name, value), `kubeconfig` included;
    `libcalico.datastore.kubernetes.access` turns them into an API server and credentials."""
    timeout: float = 10.0
    """Seconds allowed for one datastore operation."""
    source: str = "environment"
    """Where this came from, for error messages."""

    def __repr__(self) -> str:
        # Never print secrets: inline keys and passwords are elided.
        return (
            f"DatastoreConfig(type={self.datastore_type.value}, "
            f"endpoints={','.join(self.etcd_endpoints)}, source={self.source})"
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DatastoreConfig:
        env = os.environ if env is None else env
        values: dict[str, str] = {}
        for field, var in _SPEC_ENV.items():
            value = env.get(f"CALICO_{var}") or env.get(var)
            if value:
                values[field] = value
        return _build(values, "environment")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> DatastoreConfig:
        p = Path(path)
        try:
            text = p.read_text()
        except OSError as exc:
            raise ConfigError(f"cannot read config file {p}: {exc.strerror or exc}") from exc
        return cls.from_yaml(text, str(p))

    @classmethod
    def from_yaml(cls, text: str, source: str = "<config>") -> DatastoreConfig:
        try:
            doc = yaml.load(text, Loader=yaml.CSafeLoader)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
        if not isinstance(doc, dict):
            raise ConfigError(f"{source}: expected a CalicoAPIConfig mapping")
        unknown = sorted(set(doc) - {"apiVersion", "kind", "metadata", "spec"})
        if unknown:
            raise ConfigError(f"{source}: unknown field {unknown[0]!r}")
        if doc.get("apiVersion") != "projectcalico.org/v3":
            raise ConfigError(
                f"{source}: invalid config file: unknown APIVersion {doc.get('apiVersion')!r}"
                " (expected 'projectcalico.org/v3')"
            )
        if doc.get("kind") != "CalicoAPIConfig":
            raise ConfigError(
                f"{source}: invalid config file: expected kind 'CalicoAPIConfig', "
                f"got {doc.get('kind')!r}"
            )
        if doc.get("metadata") is not None and not isinstance(doc["metadata"], dict):
            raise ConfigError(f"{source}: metadata must be a mapping")
        spec = doc.get("spec") or {}
        if not isinstance(spec, dict):
            raise ConfigError(f"{source}: spec must be a mapping")
        values: dict[str, str] = {}
        for k, v in spec.items():
            if k not in _SPEC_ENV:
                raise ConfigError(f"{source}: unknown field 'spec.{k}'")
            if v is None or v == "":
                continue
            if not isinstance(v, str | int | float | bool):
                raise ConfigError(f"{source}: spec.{k} must be a string")
            values[k] = v if isinstance(v, str) else str(v).lower()
        return _build(values, source)

    @classmethod
    def load(
        cls,
        path: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        default_path: Path = DEFAULT_CONFIG_PATH,
    ) -> DatastoreConfig:
        """calicoctl's rule: `path` (default /etc/calico/calicoctl.cfg) if it exists, else the
        environment. A path given explicitly that does not exist is an error."""
        if path is not None and Path(path) != default_path and not Path(path).exists():
            raise ConfigError(f"config file {path} does not exist")
        p = Path(path) if path is not None else default_path
        if p.exists():
            return cls.from_file(p)
        return cls.from_env(env)


def _build(values: Mapping[str, Any], source: str) -> DatastoreConfig:
    raw_type = values.get("datastoreType", DatastoreType.ETCDV3.value)
    try:
        dtype = DatastoreType(raw_type)
    except ValueError:
        raise ConfigError(
            f"{source}: datastoreType {raw_type!r} is not one of etcdv3, kubernetes"
        ) from None
    endpoints = tuple(
        e.strip() for e in values.get("etcdEndpoints", ",".join(DEFAULT_ENDPOINTS)).split(",")
        if e.strip()
    )
    if dtype is DatastoreType.ETCDV3:
        if not endpoints:
            raise ConfigError(f"{source}: etcdEndpoints is empty")
        for e in endpoints:
            try:
                parse_endpoint(e)
            except ConfigError as exc:
                raise ConfigError(f"{source}: {exc}") from None
    files: dict[str, Path | None] = {}
    for field in ("etcdKeyFile", "etcdCertFile", "etcdCACertFile"):
        value = values.get(field)
        files[field] = Path(value) if value else None
    for f, inline in (("etcdKeyFile", "etcdKey"), ("etcdCertFile", "etcdCert"),
                      ("etcdCACertFile", "etcdCACert")):
        if files[f] and values.get(inline):
            raise ConfigError(f"{source}: give {f} or {inline}, not both")
    if bool(files["etcdKeyFile"] or values.get("etcdKey")) != bool(
        files["etcdCertFile"] or values.get("etcdCert")
    ):
        raise ConfigError(
            f"{source}: etcdKeyFile and etcdCertFile must be given together "
            "(a client key needs its certificate)"
        )
    return DatastoreConfig(
        datastore_type=dtype,
        etcd_endpoints=endpoints,
        etcd_key_file=files["etcdKeyFile"],
        etcd_cert_file=files["etcdCertFile"],
        etcd_ca_cert_file=files["etcdCACertFile"],
        etcd_key=values.get("etcdKey"),
        etcd_cert=values.get("etcdCert"),
        etcd_ca_cert=values.get("etcdCACert"),
        etcd_username=values.get("etcdUsername"),
        etcd_password=values.get("etcdPassword"),
        kubeconfig=values.get("kubeconfig"),
        k8s=tuple((f, str(values[f])) for f in _K8S_FIELDS if values.get(f)),
        source=source,
    )
