"""The calico-ipam binary against a real etcd: result shape, DEL idempotence, GC, STATUS,
errors with the spec's codes."""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from libcalico.datastore.gateway import GatewayBackend
from libcalico.errors import NotFound
from libcalico.ipam import block as blk
from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer
from tests.integration.ipam import seed

IPAM = str(Path(sys.executable).parent / "calico-ipam")


def run(command: str, conf: dict[str, Any] | str, cid: str = "c1", args: str = "",
        env_extra: dict[str, str] | None = None) -> tuple[int, Any]:
    env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": "/var/run/netns/none", "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni",
           "CNI_ARGS": args, **(env_extra or {})}
    text = conf if isinstance(conf, str) else json.dumps(conf)
    r = subprocess.run([IPAM], input=text, env=env, capture_output=True, text=True,
                       timeout=60, check=False)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None)


@pytest.fixture
def setup(etcd: EtcdServer, tmp_path: Path) -> Any:
    be = GatewayBackend([etcd.endpoint])
    seed.cluster(be, ["n1", "n2"], {"p4": {"cidr": "10.70.0.0/24", "blockSize": 26},
                                    "p6": {"cidr": "fd70::/120"}})
    conf = {"cniVersion": "1.1.0", "name": "net", "type": "calico-ipam",
            "etcd_endpoints": etcd.endpoint, "nodename": "n1",
            "ipam_lock_file": str(tmp_path / "lock")}
    yield be, conf
    be.close()


def test_add_result_attributes_and_del(setup: Any) -> None:
    be, conf = setup
    rc, res = run("ADD", conf, cid="c1", args="K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1")
    assert rc == 0, res
    first = ipaddress.ip_interface(res["ips"][0]["address"])
    assert first.network.prefixlen == 26, "calico-ipam returns the block's mask"
    assert first.ip == first.network.network_address, "a fresh block hands out ordinal 0"
    assert "interface" not in res["ips"][0] and "interfaces" not in res
    assert res["routes"] == [{"dst": str(ipaddress.ip_interface(res["ips"][0]["address"])
                                         .network)}]
    cidr = ipaddress.ip_interface(res["ips"][0]["address"]).network
    b = blk.decode(be.get(keys.block_key(cidr)).value)
    (_, attr), = b.in_use()
    assert attr.handle_id == "net.c1"
    sec = dict(attr.secondary or {})
    assert sec.pop("timestamp").endswith(" +0000 UTC")
    assert sec == {"node": "n1", "namespace": "ns1", "pod": "pod1"}
    for _ in range(2):
        assert run("DEL", conf, cid="c1") == (0, None)
    with pytest.raises(NotFound):
        be.get(keys.handle_key("net.c1"))


def test_dual_stack(setup: Any) -> None:
    _, conf = setup
    rc, res = run("ADD", {**conf, "ipam": {}, "assign_ipv6": "true"}, cid="d1")
    # top-level assign_ipv6 is not a netconf field: only ipv4 is assigned
    assert rc == 0 and len(res["ips"]) == 1
    rc, res = run("ADD", {**conf, "ipam": {"assign_ipv6": "true"}}, cid="d2")
    assert rc == 0, res
    assert [ipaddress.ip_interface(i["address"]).version for i in res["ips"]] == [4, 6]
    assert ipaddress.ip_interface(res["ips"][1]["address"]).network.prefixlen == 122
    rc, res = run("ADD", {**conf, "ipam": {"assign_ipv4": "false", "assign_ipv6": "false"}},
                  cid="d3")
    assert rc == 1 and res["code"] == 7


def test_pool_exhaustion_message_and_no_leak(setup: Any) -> None:
    be, conf = setup
    seed.put(be, "IPPool", "tiny", {"cidr": "10.71.0.0/30", "blockSize": 30})
    c = {**conf, "ipam": {"ipv4_pools": ["tiny"]}}
    for i in range(4):
        assert run("ADD", c, cid=f"t{i}")[0] == 0
    rc, res = run("ADD", c, cid="t4")
    assert rc == 1 and res["code"] == 999
    assert res["msg"] == ("failed to request IPv4 addresses: Assigned 0 out of 1 requested "
                          "IPv4 addresses; No IPs available in pools: ['10.71.0.0/30']")
    with pytest.raises(NotFound):
        be.get(keys.handle_key("net.t4"))
    rc, res = run("ADD", {**conf, "ipam": {"ipv4_pools": ["nope"]}}, cid="t5")
    assert rc == 1 and res["code"] == 7 and "nope" in res["msg"]
    rc, res = run("ADD", {**conf, "ipam": {"ipv4_pools": ["fd70::/120"]}}, cid="t6")
    assert rc == 1 and res["code"] == 7 and "IPv4" in res["msg"]


def test_gc_releases_only_this_nodes_stale_attachments(setup: Any) -> None:
    be, conf = setup
    for cid in ("keep", "stale1", "stale2"):
        assert run("ADD", conf, cid=cid)[0] == 0
    other = {**conf, "nodename": "n2"}
    assert run("ADD", other, cid="othernode")[0] == 0
    gc = {**conf, "cni.dev/valid-attachments": [{"containerID": "keep", "ifname": "eth0"}]}
    assert run("GC", gc) == (0, None)
    handles = sorted(kv.key.rsplit("/", 1)[1] for kv in be.list(keys.HANDLE_PREFIX).kvs)
    assert handles == ["net.keep", "net.othernode"]
    rc, res = run("GC", {**gc, "cniVersion": "1.0.0"})
    assert rc == 1 and res["code"] == 1


def test_status_and_readiness(setup: Any, etcd_factory: Any) -> None:
    be, conf = setup
    assert run("STATUS", conf) == (0, None)
    seed.put(be, "ClusterInformation", "default", {"datastoreReady": False})
    rc, res = run("STATUS", conf)
    assert rc == 1 and res["code"] == 50 and "not ready" in res["msg"]
    dead = etcd_factory.new("gone")
    endpoint = dead.endpoint
    dead.kill()
    rc, res = run("DEL", {**conf, "etcd_endpoints": endpoint})
    assert rc == 1 and res["code"] == 11


def test_spec_errors(setup: Any) -> None:
    _, conf = setup
    rc, res = run("ADD", "{oops")
    assert rc == 1 and res["code"] == 6
    rc, res = run("ADD", {**conf, "cniVersion": "9.9.9"})
    assert rc == 1 and res["code"] == 1 and res["details"].startswith('config is "9.9.9"')
    rc, res = run("ADD", conf, cid="x", args="IP=10.70.0.300")
    assert rc == 1 and res["code"] == 4 and "IP=" in res["details"]
    rc, res = run("ADD", {**conf, "nodename": "", "nodename_file": "/nonexistent/nodename"})
    assert rc == 1 and res["code"] == 7 and "/nonexistent/nodename" in res["msg"]
    rc, res = run("ADD", {**conf, "etcd_endpoints": ""}, env_extra={"ETCD_ENDPOINTS": ""})
    assert rc == 1 and res["code"] == 7 and "etcd_endpoints" in res["details"]
    rc, res = run("VERSION", conf)
    assert rc == 0 and "1.1.0" in res["supportedVersions"]


def test_installed_launchers(setup: Any, tmp_path: Path) -> None:
    """`python -m calico_cni.install DIR` writes launchers that behave as the console scripts."""
    be, conf = setup
    r = subprocess.run([sys.executable, "-m", "calico_cni.install", str(tmp_path / "bin")],
                       capture_output=True, text=True, timeout=60, check=True)
    assert "calico-ipam" in r.stdout
    launcher = str(tmp_path / "bin" / "calico-ipam")
    env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "inst1",
           "CNI_NETNS": "/var/run/netns/none", "CNI_IFNAME": "eth0", "CNI_PATH": "/x"}
    r = subprocess.run([launcher], input=json.dumps(conf), env=env, capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["ips"][0]["address"].startswith("10.70.0.")
    r = subprocess.run([launcher], input=json.dumps(conf), env={**env, "CNI_COMMAND": "DEL"},
                       capture_output=True, text=True, timeout=60, check=False)
    assert (r.returncode, r.stdout) == (0, "")
    assert be.list(keys.HANDLE_PREFIX).kvs == ()


def test_dual_stack_half_failure_releases_ipv4(setup: Any) -> None:
    be, conf = setup
    c = {**conf, "ipam": {"assign_ipv6": "true", "ipv6_pools": ["fd99::/120"]}}
    rc, res = run("ADD", c, cid="half1")
    assert rc == 1 and "fd99::/120" in res["msg"], res
    with pytest.raises(NotFound):
        be.get(keys.handle_key("net.half1"))
    for kv in be.list(keys.block_prefix()).kvs:
        assert blk.decode(kv.value).in_use() == []
    seed.put(be, "IPPool", "p6", {"cidr": "fd70::/120", "disabled": True})
    rc, res = run("ADD", {**conf, "ipam": {"assign_ipv6": "true"}}, cid="half2")
    assert rc == 1 and "no configured Calico pools" in res["msg"], res
    with pytest.raises(NotFound):
        be.get(keys.handle_key("net.half2"))


CALICO = str(Path(sys.executable).parent / "calico")


def run_calico(command: str, conf: dict[str, Any], cid: str = "c1") -> tuple[int, Any]:
    env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_IFNAME": "eth0",
           "CNI_PATH": "/usr/lib/cni", "CALICO_CNI_HELPER_SOCKET": "none"}
    r = subprocess.run([CALICO], input=json.dumps(conf), env=env, capture_output=True,
                       text=True, timeout=60, check=False)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None)


def test_check_gc_status_through_calico(setup: Any) -> None:
    be, conf = setup
    rc, res = run("ADD", conf, cid="chk1")
    assert rc == 0
    assert run("CHECK", {**conf, "prevResult": res}, cid="chk1") == (0, None)
    rc, out = run("CHECK", {**conf, "prevResult": {"cniVersion": "1.1.0", "ips": [
        {"address": "10.70.0.250/26"}]}}, cid="chk1")
    assert rc == 1 and "10.70.0.250 is not allocated to net.chk1" in out["msg"]
    rc, out = run("CHECK", conf, cid="nosuch")
    assert rc == 1 and "no IPAM allocation for handle net.nosuch" in out["msg"]

    calico = {**conf, "type": "calico", "ipam": {"type": "calico-ipam"}}
    assert run_calico("STATUS", calico) == (0, None)
    gc = {**calico, "cni.dev/valid-attachments": []}
    assert run_calico("GC", gc) == (0, None)
    with pytest.raises(NotFound):
        be.get(keys.handle_key("net.chk1"))


def test_kubeconfig_is_read(setup: Any, tmp_path: Path) -> None:
    """kubernetes.kubeconfig gives the API server and token (no API server answers here:
    the plugin reports that it cannot reach the one the kubeconfig names)."""
    _, conf = setup
    kc = tmp_path / "kubeconfig"
    kc.write_text("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n"
                  "    server: http://127.0.0.1:9\nusers:\n- name: u\n  user:\n"
                  "    token: abc\ncontexts: []\n")
    calico = {**conf, "type": "calico", "ipam": {"type": "calico-ipam"},
              "policy": {"type": "k8s"}, "kubernetes": {"kubeconfig": str(kc)}}
    env_args = "K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p"
    r = subprocess.run([CALICO], input=json.dumps(calico), capture_output=True, text=True,
                       timeout=60, check=False,
                       env={**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "kc1",
                            "CNI_NETNS": "/var/run/netns/none", "CNI_IFNAME": "eth0",
                            "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": env_args,
                            "CALICO_CNI_HELPER_SOCKET": "none"})
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["code"] == 11
    assert "http://127.0.0.1:9" in out["msg"]
    kc.write_text("not: [valid")
    r = subprocess.run([CALICO], input=json.dumps(calico), capture_output=True, text=True,
                       timeout=60, check=False,
                       env={**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "kc1",
                            "CNI_NETNS": "/var/run/netns/none", "CNI_IFNAME": "eth0",
                            "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": env_args,
                            "CALICO_CNI_HELPER_SOCKET": "none"})
    out = json.loads(r.stdout)
    assert r.returncode == 1 and out["code"] == 7 and "kubeconfig" in out["msg"]


def test_nodename_file_used_verbatim(setup: Any, tmp_path: Path) -> None:
    be, conf = setup
    (tmp_path / "nodename").write_text("n2")
    c = {k: v for k, v in conf.items() if k != "nodename"}
    c["nodename_file"] = str(tmp_path / "nodename")
    rc, res = run("ADD", c, cid="nf1")
    assert rc == 0, res
    cidr = ipaddress.ip_interface(res["ips"][0]["address"]).network
    b = blk.decode(be.get(keys.block_key(cidr)).value)
    assert b.affinity == "host:n2"
    assert (b.in_use()[0][1].secondary or {})["node"] == "n2"
