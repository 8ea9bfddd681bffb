"""DatastoreConfig from the environment and from CalicoAPIConfig files; connect()'s refusals."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from libcalico.datastore import connect
from libcalico.datastore.config import DatastoreConfig, DatastoreType
from libcalico.datastore.endpoint import parse_endpoint
from libcalico.errors import ConfigError


@pytest.fixture
def own_tmp() -> Iterator[Path]:
    """A private temporary directory, removed afterwards. (pytest's tmp_path lives under
    /tmp/pytest-of-<user>/, which a concurrent pytest run on the same machine may prune.)"""
    d = Path(tempfile.mkdtemp(prefix="calico-test-datastore-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


GOOD = """\
apiVersion: projectcalico.org/v3
kind: CalicoAPIConfig
metadata: {}
spec:
  datastoreType: etcdv3
  etcdEndpoints: https://10.0.0.1:2379, https://10.0.0.2:2379
  etcdKeyFile: /etc/calico/key.pem
  etcdCertFile: /etc/calico/cert.pem
  etcdCACertFile: /etc/calico/ca.pem
"""


def test_defaults_from_empty_environment() -> None:
    cfg = DatastoreConfig.from_env({})
    assert cfg.datastore_type is DatastoreType.ETCDV3
    assert cfg.etcd_endpoints == ("http://127.0.0.1:2379",)
    assert cfg.etcd_key_file is None and cfg.etcd_ca_cert_file is None


def test_environment_values_and_calico_prefix_wins() -> None:
    cfg = DatastoreConfig.from_env({
        "ETCD_ENDPOINTS": "http://127.0.0.1:1,http://127.0.0.2:2",
        "ETCD_KEY_FILE": "/k", "ETCD_CERT_FILE": "/c", "ETCD_CA_CERT_FILE": "/ca",
        "DATASTORE_TYPE": "kubernetes", "CALICO_DATASTORE_TYPE": "etcdv3",
    })
    assert cfg.datastore_type is DatastoreType.ETCDV3
    assert cfg.etcd_endpoints == ("http://127.0.0.1:1", "http://127.0.0.2:2")
    assert (cfg.etcd_key_file, cfg.etcd_cert_file, cfg.etcd_ca_cert_file) == (
        Path("/k"), Path("/c"), Path("/ca"))


@pytest.mark.parametrize(("env", "message"), [
    ({"DATASTORE_TYPE": "consul"}, "datastoreType 'consul' is not one of"),
    ({"ETCD_ENDPOINTS": "127.0.0.1:2379"}, "scheme must be http or https"),
    ({"ETCD_ENDPOINTS": "http://127.0.0.1:notaport"}, "127.0.0.1:notaport"),
    ({"ETCD_ENDPOINTS": " , "}, "etcdEndpoints is empty"),
    ({"ETCD_KEY_FILE": "/k"}, "must be given together"),
])
def test_bad_environment(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DatastoreConfig.from_env(env)


def test_file() -> None:
    cfg = DatastoreConfig.from_yaml(GOOD, "calicoctl.cfg")
    assert cfg.etcd_endpoints == ("https://10.0.0.1:2379", "https://10.0.0.2:2379")
    assert cfg.etcd_ca_cert_file == Path("/etc/calico/ca.pem")
    assert cfg.source == "calicoctl.cfg"


def test_inline_certificates_are_not_printed() -> None:
    cfg = DatastoreConfig.from_yaml(
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec:\n"
        "  etcdEndpoints: https://127.0.0.1:2379\n"
        "  etcdKey: SECRET-KEY-PEM\n  etcdCert: CERT-PEM\n  etcdCACert: CA-PEM\n"
    )
    assert cfg.etcd_key == "SECRET-KEY-PEM"
    assert "SECRET" not in repr(cfg)


@pytest.mark.parametrize(("text", "message"), [
    ("a: [", "not valid YAML"),
    ("- 1\n", "expected a CalicoAPIConfig mapping"),
    (GOOD.replace("projectcalico.org/v3", "v1"), "unknown APIVersion 'v1'"),
    (GOOD.replace("CalicoAPIConfig", "IPPool"), "expected kind 'CalicoAPIConfig', got 'IPPool'"),
    (GOOD + "  etcdEndpoint: http://x:1\n", "unknown field 'spec.etcdEndpoint'"),
    (GOOD + "status: {}\n", "unknown field 'status'"),
    (GOOD.replace("etcdv3", "etcd"), "datastoreType 'etcd'"),
    (GOOD + "  etcdKey: PEM\n", "give etcdKeyFile or etcdKey, not both"),
    ("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nspec: [1]\n",
     "spec must be a mapping"),
])
def test_bad_files_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        DatastoreConfig.from_yaml(text, "my.cfg")
    assert str(info.value).startswith("my.cfg")


def test_load_follows_calicoctl(own_tmp: Path) -> None:
    env = {"ETCD_ENDPOINTS": "http://127.0.0.9:2379"}
    default = own_tmp / "calicoctl.cfg"
    # No file at the default path: the environment.
    assert DatastoreConfig.load(None, env, default_path=default).etcd_endpoints == (
        "http://127.0.0.9:2379",)
    # A file: the file as it is, the environment not consulted.
    default.write_text(GOOD)
    assert DatastoreConfig.load(None, env, default_path=default).etcd_endpoints[0] == (
        "https://10.0.0.1:2379")
    # An explicit path that does not exist: an error.
    with pytest.raises(ConfigError, match="does not exist"):
        DatastoreConfig.load(own_tmp / "nope.cfg", env, default_path=default)


def test_unreadable_file(own_tmp: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        DatastoreConfig.from_file(own_tmp)


def test_connect_kubernetes_needs_an_api_server(own_tmp: Path) -> None:
    cfg = DatastoreConfig.from_env({"DATASTORE_TYPE": "kubernetes",
                                    "KUBECONFIG": str(own_tmp / "missing")})
    with pytest.raises(ConfigError, match=r"kubeconfig .*missing: no such file"):
        connect(cfg)


def test_connect_names_a_missing_certificate(own_tmp: Path) -> None:
    cfg = DatastoreConfig.from_env({
        "ETCD_ENDPOINTS": "https://127.0.0.1:2379",
        "ETCD_CA_CERT_FILE": str(own_tmp / "missing-ca.pem"),
    })
    with pytest.raises(ConfigError, match=r"missing-ca\.pem"):
        connect(cfg)


def test_endpoint_parsing() -> None:
    assert parse_endpoint("http://127.0.0.1:2379").netloc == "127.0.0.1:2379"
    assert parse_endpoint("https://[::1]:2380").netloc == "[::1]:2380"
    assert parse_endpoint("https://[::1]:2380").secure
    assert parse_endpoint("http://etcd").netloc == "etcd:2379"
    with pytest.raises(ConfigError, match="unexpected path"):
        parse_endpoint("http://etcd:2379/v3")
