"""TLS to etcd with certificates this test makes (openssl CLI): mutual TLS works from the
environment and from a CalicoAPIConfig file; clients without the right certificates are
refused and write nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from libcalico.datastore import connect
from libcalico.datastore.api import Backend, EventType
from libcalico.datastore.config import DatastoreConfig
from libcalico.errors import NotFound, Unavailable
from tests.fixtures.etcd import EtcdServer


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
    with good.watch("/calico/", str(int(kv.revision) - 1)) as stream:  # type: ignore[attr-defined]
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
