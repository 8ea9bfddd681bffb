"""TLS to etcd with certificates this test makes (openssl CLI): mutual TLS works from the
environment and from a CalicoAPIConfig file; clients without the right certificates are
refused and write nothing."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from libcalico.datastore import connect
from libcalico.datastore.api import Backend, EventType
from libcalico.datastore.config import DatastoreConfig
from libcalico.errors import NotFound, Unavailable
from tests.fixtures.etcd import EtcdFactory, EtcdServer


@pytest.fixture
def own_tmp() -> Iterator[Path]:
    """A private temporary directory, removed afterwards. (pytest's tmp_path lives under
    /tmp/pytest-of-<user>/, which a concurrent pytest run on the same machine may prune.)"""
    d = Path(tempfile.mkdtemp(prefix="calico-test-datastore-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-nodes", "-keyout", f"{name}-key.pem", "-out", f"{name}.pem", "-days", "2",
             "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=d)


def _leaf(d: Path, name: str, ca: str, usage: str) -> None:
    (d / f"{name}.ext").write_text(
        f"subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage={usage}\n"
    )
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", f"{name}-key.pem", "-out", f"{name}.csr", "-subj", f"/CN={name}",
             cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey",
             f"{ca}-key.pem", "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
             "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture
def pki(own_tmp: Path) -> Path:
    _ca(own_tmp, "ca")
    _ca(own_tmp, "other-ca")
    _leaf(own_tmp, "server", "ca", "serverAuth,clientAuth")
    _leaf(own_tmp, "client", "ca", "clientAuth")
    _leaf(own_tmp, "stranger", "other-ca", "clientAuth")
    return own_tmp


@pytest.fixture
def tls_etcd(etcd_factory: EtcdFactory, pki: Path) -> EtcdServer:
    return etcd_factory.new("tls", tls={
        "cert": str(pki / "server.pem"), "key": str(pki / "server-key.pem"),
        "ca": str(pki / "ca.pem"),
    })


def _env(srv: EtcdServer, pki: Path, client: str | None = "client",
         ca: str = "ca") -> dict[str, str]:
    env = {"ETCD_ENDPOINTS": srv.endpoint, "ETCD_CA_CERT_FILE": str(pki / f"{ca}.pem")}
    if client:
        env["ETCD_KEY_FILE"] = str(pki / f"{client}-key.pem")
        env["ETCD_CERT_FILE"] = str(pki / f"{client}.pem")
    return env


@pytest.fixture
def good(tls_etcd: EtcdServer, pki: Path) -> Iterator[Backend]:
    b = connect(DatastoreConfig.from_env(_env(tls_etcd, pki)))
    try:
        yield b
    finally:
        b.close()


def test_mutual_tls_from_environment(good: Backend) -> None:
    kv = good.create("/calico/resources/v3/projectcalico.org/ippools/p", '{"a":1}')
    assert good.get(kv.key).value == '{"a":1}'
    with good.watch("/calico/", kv.revision) as stream:  # type: ignore[attr-defined]
        ev = next(iter(stream))
    assert (ev.type, ev.key) == (EventType.PUT, kv.key)


def test_mutual_tls_from_calicoctl_config_with_inline_pem(
    tls_etcd: EtcdServer, pki: Path, good: Backend
) -> None:
    def block(name: str) -> str:
        body = (pki / name).read_text().strip().replace("\n", "\n    ")
        return f"|\n    {body}\n"

    text = (
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\nspec:\n"
        f"  etcdEndpoints: {tls_etcd.endpoint}\n"
        f"  etcdKey: {block('client-key.pem')}"
        f"  etcdCert: {block('client.pem')}"
        f"  etcdCACert: {block('ca.pem')}"
    )
    cfg_file = pki / "calicoctl.cfg"
    cfg_file.write_text(text)
    b = connect(DatastoreConfig.from_file(cfg_file))
    try:
        b.apply("/calico/from-file", "1")
    finally:
        b.close()
    assert good.get("/calico/from-file").value == "1"


@pytest.mark.parametrize(("client", "ca", "why"), [
    (None, "ca", "no client certificate"),
    ("stranger", "ca", "client certificate from another CA"),
    ("client", "other-ca", "server certificate not trusted"),
])
def test_refused_clients_write_nothing(
    tls_etcd: EtcdServer, pki: Path, good: Backend, client: str | None, ca: str, why: str
) -> None:
    cfg = dataclasses.replace(
        DatastoreConfig.from_env(_env(tls_etcd, pki, client=client, ca=ca)), timeout=1.0
    )
    b = connect(cfg)
    try:
        with pytest.raises(Unavailable):
            b.create("/calico/intruder", why)
        with pytest.raises(Unavailable):
            b.list("/calico/")
    finally:
        b.close()
    with pytest.raises(NotFound):
        good.get("/calico/intruder")


def test_plaintext_client_refused(tls_etcd: EtcdServer, good: Backend) -> None:
    endpoint = tls_etcd.endpoint.replace("https://", "http://")
    cfg = DatastoreConfig.from_env({"ETCD_ENDPOINTS": endpoint})
    b = connect(dataclasses.replace(cfg, timeout=1.0))
    try:
        with pytest.raises(Unavailable):
            b.apply("/calico/intruder", "plain")
    finally:
        b.close()
    with pytest.raises(NotFound):
        good.get("/calico/intruder")
