"""etcd user/password authentication (ETCD_USERNAME / ETCD_PASSWORD, CalicoAPIConfig
etcdUsername / etcdPassword) against an etcd with auth enabled and a role limited to /calico/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from libcalico.datastore import connect
from libcalico.datastore.api import EventType
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.etcd import EtcdBackend
from libcalico.errors import DatastoreError, Unavailable
from tests.fixtures.etcd import EtcdFactory, EtcdServer

PASSWORD = "s3cret-pw"


@pytest.fixture
def auth_etcd(etcd_factory: EtcdFactory) -> EtcdServer:
    srv = etcd_factory.new("auth")
    srv.ctl("user", "add", "root:rootpw")
    srv.ctl("user", "add", f"calico:{PASSWORD}")
    srv.ctl("role", "add", "calico")
    srv.ctl("role", "grant-permission", "calico", "--prefix=true", "readwrite", "/calico/")
    srv.ctl("user", "grant-role", "calico", "calico")
    srv.ctl("auth", "enable")
    return srv


def _connect(srv: EtcdServer, user: str | None, password: str | None) -> EtcdBackend:
    env = {"ETCD_ENDPOINTS": srv.endpoint}
    if user:
        env["ETCD_USERNAME"] = user
    if password:
        env["ETCD_PASSWORD"] = password
    b = connect(DatastoreConfig.from_env(env))
    assert isinstance(b, EtcdBackend)
    return b


@pytest.fixture
def calico(auth_etcd: EtcdServer) -> Iterator[EtcdBackend]:
    b = _connect(auth_etcd, "calico", PASSWORD)
    try:
        yield b
    finally:
        b.close()


def test_authorised_user_reads_writes_and_watches(calico: EtcdBackend) -> None:
    kv = calico.create("/calico/resources/v3/projectcalico.org/ippools/p", "{}")
    assert calico.get(kv.key) == kv
    assert calico.list("/calico/").kvs == (kv,)
    with calico.watch("/calico/", str(int(kv.revision) - 1)) as stream:
        ev = next(iter(stream))
    assert (ev.type, ev.key) == (EventType.PUT, kv.key)


def test_outside_the_role_is_refused_not_unavailable(calico: EtcdBackend) -> None:
    with pytest.raises(DatastoreError, match="permission denied") as info:
        calico.apply("/elsewhere", "x")
    assert not isinstance(info.value, Unavailable)


def test_expired_token_is_renewed(calico: EtcdBackend) -> None:
    calico.apply("/calico/a", "1")
    calico._cluster.pick().token = "not-a-token"  # as after a token expiry
    assert calico.get("/calico/a").value == "1"


def test_wrong_password_and_no_credentials(auth_etcd: EtcdServer) -> None:
    b = _connect(auth_etcd, "calico", "wrong-password")
    try:
        with pytest.raises(DatastoreError, match="authentication as user 'calico' failed") as e:
            b.get("/calico/a")
        assert "wrong-password" not in str(e.value)
    finally:
        b.close()
    anon = _connect(auth_etcd, None, None)
    try:
        with pytest.raises(DatastoreError) as info:
            anon.apply("/calico/a", "x")
        assert not isinstance(info.value, Unavailable)
    finally:
        anon.close()


def test_username_without_password_is_a_config_error(auth_etcd: EtcdServer) -> None:
    from libcalico.errors import ConfigError

    with pytest.raises(ConfigError, match="username and password"):
        _connect(auth_etcd, "calico", None)
