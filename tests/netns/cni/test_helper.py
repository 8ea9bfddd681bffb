"""The resident helper: the plugins hand calls to it over a unix socket and get the same
answers; concurrent calls stay isolated; without a listener the plugin runs the call itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from libcalico.datastore.gateway import GatewayBackend
from libcalico.ipam.check import check
from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer
from tests.fixtures.netns import NetnsFactory
from tests.integration.ipam import seed
from tests.netns.cni import cnirun

pytestmark = pytest.mark.netns
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def helper(etcd: EtcdServer, tmp_path: Path) -> Iterator[dict[str, Any]]:
    sock = tmp_path / "helper.sock"
    log = open(tmp_path / "helper.log", "w")  # noqa: SIM115 - closed in teardown
    proc = subprocess.Popen([sys.executable, "-m", "calico_cni.helper", "--socket", str(sock)],
                            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        if sock.exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert sock.exists(), (tmp_path / "helper.log").read_text()
    be = GatewayBackend([etcd.endpoint])
    seed.cluster(be, ["h-node"], {"p": {"cidr": "10.193.0.0/24", "blockSize": 28}})
    conf = {"cniVersion": "1.0.0", "name": "helpnet", "type": "calico",
            "etcd_endpoints": etcd.endpoint, "nodename": "h-node",
            "ipam_lock_file": str(tmp_path / "lock"), "ipam": {"type": "calico-ipam"}}
    veths: list[str] = []
    try:
        yield {"sock": str(sock), "conf": conf, "be": be, "log": tmp_path / "helper.log",
               "veths": veths}
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()
        for v in veths:
            subprocess.run(["ip", "link", "del", v], capture_output=True, check=False)
        be.close()
    assert not sock.exists(), "the helper removes its socket when stopped"


def test_calls_go_through_the_helper(helper: dict[str, Any],
                                     netns_factory: NetnsFactory) -> None:
    env = {"CALICO_CNI_HELPER_SOCKET": helper["sock"]}
    ns = netns_factory.new("helper-a")
    path = f"/var/run/netns/{ns}"
    cid = "helper0000001"
    helper["veths"].append("cali" + cid[:11])
    rc, res = cnirun.run("ADD", helper["conf"], cid=cid, netns=path, extra_env=env)
    assert rc == 0, res
    assert res["interfaces"][0]["name"] == "cali" + cid[:11]
    r = subprocess.run(["ip", "netns", "exec", ns, "ip", "-4", "-o", "addr", "show", "eth0"],
                       capture_output=True, text=True, check=True)
    assert res["ips"][0]["address"] in r.stdout
    rc, out = cnirun.run("CHECK", {**helper["conf"], "prevResult": res}, cid=cid, netns=path,
                         extra_env=env)
    assert (rc, out) == (0, None)
    rc, out = cnirun.run("ADD", {**helper["conf"], "cniVersion": "7.0.0"}, cid=cid, netns=path,
                         extra_env=env)
    assert rc == 1 and out["code"] == 1
    rc, out = cnirun.run("DEL", helper["conf"], cid=cid, netns=path, extra_env=env)
    assert (rc, out) == (0, None)
    rc, out = cnirun.run("ADD", {**helper["conf"], "type": "calico-ipam"}, cid="ipamonly",
                         netns=path, binary=cnirun.CALICO_IPAM, extra_env=env)
    assert rc == 0 and out["ips"][0]["address"].endswith("/28")
    rc, _ = cnirun.run("DEL", {**helper["conf"], "type": "calico-ipam"}, cid="ipamonly",
                       netns=path, binary=cnirun.CALICO_IPAM, extra_env=env)
    assert rc == 0
    served = helper["log"].read_text()
    for what in ("served calico ADD rc=0", "served calico CHECK rc=0",
                 "served calico ADD rc=1", "served calico DEL rc=0",
                 "served calico-ipam ADD rc=0", "served calico-ipam DEL rc=0"):
        assert what in served, served
    assert check(helper["be"]).clean


def test_failures_inside_the_helper_are_reported(helper: dict[str, Any],
                                                netns_factory: NetnsFactory) -> None:
    """A failing `ip` inside a helper child fails the ADD (and releases its address)."""
    env = {"CALICO_CNI_HELPER_SOCKET": helper["sock"]}
    ns = netns_factory.new("helper-f")
    subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "add", "eth0", "type", "veth",
                    "peer", "name", "x0"], check=True, capture_output=True)
    cid = "helperfail001"
    helper["veths"].append("cali" + cid[:11])
    rc, out = cnirun.run("ADD", helper["conf"], cid=cid, netns=f"/var/run/netns/{ns}",
                         extra_env=env)
    assert rc == 1 and "already exists in the container" in out["msg"], out
    assert helper["be"].list(keys.HANDLE_PREFIX).kvs == ()
    assert "served calico ADD rc=1" in helper["log"].read_text()


def test_concurrent_calls_are_isolated(helper: dict[str, Any],
                                       netns_factory: NetnsFactory) -> None:
    env = {"CALICO_CNI_HELPER_SOCKET": helper["sock"]}
    paths = []
    for i in range(6):
        paths.append(f"/var/run/netns/{netns_factory.new(f'helper-c{i}')}")
        helper["veths"].append(f"caliconc{i:07d}"[:15])

    def add(i: int) -> tuple[int, Any]:
        return cnirun.run("ADD", helper["conf"], cid=f"conc{i:07d}xyz", netns=paths[i],
                          extra_env=env)

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(add, range(6)))
    assert all(rc == 0 for rc, _ in results), results
    addrs = [res["ips"][0]["address"] for _, res in results]
    assert len(set(addrs)) == 6
    for i, path in enumerate(paths):
        ns = path.rsplit("/", 1)[1]
        r = subprocess.run(["ip", "netns", "exec", ns, "ip", "-4", "-o", "addr", "show",
                            "eth0"], capture_output=True, text=True, check=True)
        assert addrs[i] in r.stdout, "each container got its own address in its own netns"
    for i in range(6):
        rc, _ = cnirun.run("DEL", helper["conf"], cid=f"conc{i:07d}xyz", netns=paths[i],
                           extra_env=env)
        assert rc == 0
    assert helper["be"].list(keys.HANDLE_PREFIX).kvs == ()


def test_no_listener_runs_in_process(etcd: EtcdServer, tmp_path: Path,
                                     netns_factory: NetnsFactory) -> None:
    stale = tmp_path / "stale.sock"
    import socket

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(stale))
    s.close()  # a socket file nobody listens on
    be = GatewayBackend([etcd.endpoint])
    seed.cluster(be, ["h-node"], {"p": {"cidr": "10.193.0.0/24", "blockSize": 28}})
    conf = {"cniVersion": "1.0.0", "name": "helpnet", "type": "calico-ipam",
            "etcd_endpoints": etcd.endpoint, "nodename": "h-node",
            "ipam_lock_file": str(tmp_path / "lock")}
    rc, out = cnirun.run("ADD", conf, cid="nohelper", netns="/var/run/netns/none",
                         binary=cnirun.CALICO_IPAM,
                         extra_env={"CALICO_CNI_HELPER_SOCKET": str(stale)})
    assert rc == 0, out
    rc, _ = cnirun.run("DEL", conf, cid="nohelper", netns="", binary=cnirun.CALICO_IPAM,
                       extra_env={"CALICO_CNI_HELPER_SOCKET": str(stale)})
    assert rc == 0
    assert json.loads(json.dumps(be.list(keys.HANDLE_PREFIX).kvs)) == []
    be.close()
    assert os.path.exists(stale)
