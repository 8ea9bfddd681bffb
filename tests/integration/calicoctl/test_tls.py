"""calicoctl to a mutual-TLS etcd (certificates made by the test), from the environment and
from a CalicoAPIConfig file; a client with a certificate from another CA writes nothing."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer
from tests.integration.calicoctl.conftest import CALICOCTL

POOL = ("apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: tls-pool}\n"
        "spec: {cidr: 10.77.0.0/16}\n")


def _run(*args: str, env: dict[str, str], input: str | None = None
         ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("ETCD_", "CALICO_", "DATASTORE_"))}
    return subprocess.run([str(CALICOCTL), *args], input=input, capture_output=True, text=True,
                          timeout=60, check=False,
                          env={**base, "GRPC_ENABLE_FORK_SUPPORT": "false", **env})


def _tls_env(srv: EtcdServer, d: Path, client: str, ca: str = "ca") -> dict[str, str]:
    return {"ETCD_ENDPOINTS": srv.endpoint, "ETCD_CA_CERT_FILE": str(d / f"{ca}.pem"),
            "ETCD_KEY_FILE": str(d / f"{client}-key.pem"),
            "ETCD_CERT_FILE": str(d / f"{client}.pem")}


def test_calicoctl_over_mutual_tls(tls_etcd: EtcdServer, pki: Path, tmp_path: Path) -> None:
    r = _run("apply", "-f", "-", input=POOL, env=_tls_env(tls_etcd, pki, "client"))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Successfully applied 1 'IPPool' resource(s)\n"
    assert "tls-pool" in tls_etcd.ctl("get", keys.resource_key("IPPool", "tls-pool"))

    cfg = tmp_path / "calicoctl.cfg"
    cfg.write_text(
        "apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\nspec:\n"
        f"  datastoreType: etcdv3\n  etcdEndpoints: {tls_etcd.endpoint}\n"
        f"  etcdKeyFile: {pki / 'client-key.pem'}\n  etcdCertFile: {pki / 'client.pem'}\n"
        f"  etcdCACertFile: {pki / 'ca.pem'}\n")
    r = _run("get", "ippool", "--config", str(cfg), env={})
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1].split() == ["tls-pool", "10.77.0.0/16", "all()"]

    stranger = _tls_env(tls_etcd, pki, "stranger", ca="ca")
    r = _run("create", "-f", "-", input=POOL.replace("tls-pool", "intruder")
             .replace("10.77", "10.78"), env=stranger)
    assert r.returncode == 1
    assert r.stderr.startswith("Failed to create 'IPPool' resource: ["), r.stderr
    assert tls_etcd.ctl("get", keys.resource_key("IPPool", "intruder")).strip() == ""
