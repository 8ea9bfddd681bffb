"""calico-ipam against an etcd that requires client certificates: the netconf's
etcd_ca_cert_file / etcd_cert_file / etcd_key_file are used; a missing client certificate
fails with a datastore error and nothing is written."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from libcalico.datastore.gateway import GatewayBackend
from libcalico.model import keys
from tests.fixtures.etcd import EtcdFactory
from tests.fixtures.tls import make_pki
from tests.integration.ipam import seed

IPAM = str(Path(sys.executable).parent / "calico-ipam")


def test_mutual_tls(etcd_factory: EtcdFactory, tmp_path: Path) -> None:
    make_pki(tmp_path)
    srv = etcd_factory.new("ipamtls", tls={"cert": str(tmp_path / "server.pem"),
                                           "key": str(tmp_path / "server-key.pem"),
                                           "ca": str(tmp_path / "ca.pem")})
    assert srv.endpoint.startswith("https://")
    tls = {"cert_file": str(tmp_path / "client.pem"),
           "key_file": str(tmp_path / "client-key.pem"), "ca_file": str(tmp_path / "ca.pem")}
    be = GatewayBackend([srv.endpoint], **tls)
    seed.cluster(be, ["t1"], {"p": {"cidr": "10.73.0.0/24"}})
    conf = {"cniVersion": "1.0.0", "name": "net", "type": "calico-ipam",
            "etcd_endpoints": srv.endpoint, "nodename": "t1",
            "etcd_ca_cert_file": tls["ca_file"], "etcd_cert_file": tls["cert_file"],
            "etcd_key_file": tls["key_file"], "ipam_lock_file": str(tmp_path / "lock")}
    env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "tls1", "CNI_NETNS": "/x",
           "CNI_IFNAME": "eth0", "CNI_PATH": "/x", "CALICO_CNI_HELPER_SOCKET": "none"}
    r = subprocess.run([IPAM], input=json.dumps(conf), env=env, capture_output=True, text=True,
                       timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["ips"][0]["address"].startswith("10.73.0.")
    be.get(keys.handle_key("net.tls1"))

    anon = {k: v for k, v in conf.items() if k not in ("etcd_cert_file", "etcd_key_file")}
    r = subprocess.run([IPAM], input=json.dumps(anon), env={**env, "CNI_CONTAINERID": "tls2"},
                       capture_output=True, text=True, timeout=60, check=False)
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["code"] == 11 and "etcd" in out["msg"], out
    assert [kv.key for kv in be.list(keys.HANDLE_PREFIX).kvs] == [keys.handle_key("net.tls1")]
    be.close()
