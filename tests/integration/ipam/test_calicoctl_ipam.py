"""`calicoctl ipam` against a real etcd: check finds leaks, release fixes them, show counts."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path

from libcalico.datastore.gateway import GatewayBackend
from libcalico.ipam.client import AutoAssignArgs, IPAMClient
from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer
from tests.integration.ipam import seed

ROOT = Path(__file__).resolve().parents[3]


def ctl(etcd: EtcdServer, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ETCD_ENDPOINTS": etcd.endpoint, "DATASTORE_TYPE": "etcdv3",
           "GRPC_ENABLE_FORK_SUPPORT": "false"}
    return subprocess.run([sys.executable, "-m", "calicoctl", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def test_check_release_show(etcd: EtcdServer) -> None:
    be = GatewayBackend([etcd.endpoint])
    seed.cluster(be, ["n1"], {"p": {"cidr": "10.72.0.0/24", "blockSize": 28}})
    c = IPAMClient(be)
    v4, _ = c.auto_assign(AutoAssignArgs("n1", handle_id="net.leak", num4=2))
    leaked, used = (str(i.ip) for i in v4.ips)
    # a workload uses one address; another workload claims an address IPAM never gave out
    for name, ip in (("w1", used), ("w2", "10.72.0.200")):
        be.create(keys.resource_key("WorkloadEndpoint", name, "default"), json.dumps(
            {"kind": "WorkloadEndpoint", "metadata": {"name": name, "namespace": "default"},
             "spec": {"node": "n1", "ipNetworks": [f"{ip}/32"]}}))
    r = ctl(etcd, "ipam", "check")
    assert r.returncode == 1, r.stdout + r.stderr
    assert f"leaked address (allocated, no workload): {leaked} handle net.leak" in r.stdout
    assert "address in use without an allocation: 10.72.0.200 (default/w2)" in r.stdout
    assert "handle: net.leak" not in r.stdout

    r = ctl(etcd, "ipam", "release", "--ip", leaked)
    assert r.returncode == 0 and f"Successfully released IP address {leaked}" in r.stdout
    r = ctl(etcd, "ipam", "release", "--ip", leaked)
    assert r.returncode == 1 and "is not assigned" in r.stdout
    r = ctl(etcd, "ipam", "release", "--ip", "not-an-ip")
    assert r.returncode != 0 and "not-an-ip" in r.stderr
    be.delete(keys.resource_key("WorkloadEndpoint", "w2", "default"))
    r = ctl(etcd, "ipam", "check")
    assert r.returncode == 0, r.stdout
    assert "IPAM state is consistent." in r.stdout

    r = ctl(etcd, "ipam", "show", "--show-blocks")
    assert r.returncode == 0, r.stderr
    block = ipaddress.ip_interface(f"{used}/28").network
    rows = [[c.strip() for c in line.strip("|").split("|")]
            for line in r.stdout.splitlines() if line.startswith("|")]
    assert ["IP Pool", "10.72.0.0/24", "256", "1 (0%)", "255 (100%)"] in rows
    assert ["Block (n1)", str(block), "16", "1 (6%)", "15 (94%)"] in rows

    r = ctl(etcd, "ipam", "configure", "--strictaffinity", "false",
            "--autoallocateblocks", "false")
    assert r.returncode != 0 and "same time" in r.stderr
    r = ctl(etcd, "ipam", "configure", "--strictaffinity", "true", "--maxblocksperhost", "3")
    assert r.returncode == 0, r.stderr
    assert json.loads(be.get(keys.IPAM_CONFIG_KEY).value) == {
        "strict_affinity": True, "auto_allocate_blocks": True, "maxBlocksPerHost": 3}
    be.close()
