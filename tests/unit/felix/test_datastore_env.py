"""Felix's datastore connection is read as Calico's Felix reads it: libcalico-go's variables
(DATASTORE_TYPE, KUBECONFIG, ETCD_*), overridden by Felix's own DatastoreType and
EtcdEndpoints from the environment or the config file."""

from __future__ import annotations

from felix.config import datastore_env
from libcalico.datastore.config import DatastoreConfig, DatastoreType


def ds(env: dict[str, str], file_values: dict[str, str] | None = None) -> DatastoreConfig:
    return DatastoreConfig.from_env(datastore_env(env, file_values or {}))


def test_libcalico_variables_choose_kubernetes() -> None:
    cfg = ds({"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": "/etc/cni/net.d/calico-kubeconfig"})
    assert cfg.datastore_type is DatastoreType.KUBERNETES
    assert cfg.kubeconfig == "/etc/cni/net.d/calico-kubeconfig"


def test_felix_datastoretype_overrides_the_libcalico_variable() -> None:
    cfg = ds({"DATASTORE_TYPE": "etcdv3", "CALICO_DATASTORE_TYPE": "etcdv3",
              "FELIX_DATASTORETYPE": "Kubernetes", "KUBECONFIG": "/k"})
    assert cfg.datastore_type is DatastoreType.KUBERNETES


def test_config_file_datastoretype_and_environment_precedence() -> None:
    assert ds({}, {"DatastoreType": "kubernetes"}).datastore_type is DatastoreType.KUBERNETES
    assert ds({"FELIX_DATASTORETYPE": "etcdv3"}, {"DatastoreType": "kubernetes"}
              ).datastore_type is DatastoreType.ETCDV3


def test_felix_etcdendpoints_selects_etcd() -> None:
    cfg = ds({"DATASTORE_TYPE": "kubernetes", "ETCD_ENDPOINTS": "http://10.0.0.1:2379",
              "FELIX_ETCDENDPOINTS": "http://10.0.0.2:2379,http://10.0.0.3:2379"})
    assert cfg.datastore_type is DatastoreType.ETCDV3
    assert cfg.etcd_endpoints == ("http://10.0.0.2:2379", "http://10.0.0.3:2379")


def test_nothing_set_by_felix_leaves_the_environment_alone() -> None:
    env = {"CALICO_DATASTORE_TYPE": "kubernetes", "PATH": "/bin"}
    assert datastore_env(env, {}) == env
    assert ds(env).datastore_type is DatastoreType.KUBERNETES


def test_felix_etcdaddr_and_scheme_and_tls_files() -> None:
    cfg = ds({"DATASTORE_TYPE": "kubernetes", "FELIX_ETCDADDR": "10.0.0.9:2379",
              "FELIX_ETCDSCHEME": "https", "FELIX_ETCDKEYFILE": "/k.pem",
              "FELIX_ETCDCERTFILE": "/c.pem", "CALICO_ETCD_CA_CERT_FILE": "/old.pem"},
             {"EtcdCaFile": "/ca.pem"})
    assert cfg.datastore_type is DatastoreType.ETCDV3
    assert cfg.etcd_endpoints == ("https://10.0.0.9:2379",)
    assert (str(cfg.etcd_key_file), str(cfg.etcd_cert_file), str(cfg.etcd_ca_cert_file)) == (
        "/k.pem", "/c.pem", "/ca.pem")
    # EtcdEndpoints wins over EtcdAddr; the default scheme is http.
    assert ds({"FELIX_ETCDADDR": "a:1", "FELIX_ETCDENDPOINTS": "http://b:2"}
              ).etcd_endpoints == ("http://b:2",)
    assert ds({"FELIX_ETCDADDR": "a:1"}).etcd_endpoints == ("http://a:1",)
