"""The `calico` plugin wiring real namespaces against a real etcd (root only).

The container side is a namespace from the netns fixture; the host side is this host, as
for any CNI plugin (the host veth and /32 route are removed by DEL and by the teardown).
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from libcalico.datastore.gateway import GatewayBackend
from libcalico.errors import NotFound
from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer
from tests.fixtures.netns import NetnsFactory, ns_exec
from tests.integration.ipam import seed
from tests.netns.cni import cnirun

pytestmark = pytest.mark.netns
NODE = "cni-node-1"
POOL = "10.199.0.0/24"


def sh(*argv: str) -> str:
    return subprocess.run(argv, capture_output=True, text=True, check=True, timeout=30).stdout


@pytest.fixture
def env(etcd: EtcdServer, netns_factory: NetnsFactory, tmp_path: Path) -> Iterator[
        dict[str, Any]]:
    be = GatewayBackend([etcd.endpoint])
    seed.cluster(be, [NODE], {"p": {"cidr": POOL, "blockSize": 28}})
    conf = {"cniVersion": "1.0.0", "name": "testnet", "type": "calico",
            "etcd_endpoints": etcd.endpoint, "nodename": NODE, "mtu": 1410,
            "ipam_lock_file": str(tmp_path / "ipam.lock"), "ipam": {"type": "calico-ipam"}}
    made: list[str] = []
    yield {"be": be, "conf": conf, "ns": netns_factory, "veths": made, "tmp": tmp_path}
    for v in made:  # anything a failing test left on the host
        subprocess.run(["ip", "link", "del", v], capture_output=True, check=False, timeout=30)
    be.close()


def new_ns(env: dict[str, Any], name: str) -> tuple[str, str]:
    ns = env["ns"].new(name)
    return ns, f"/var/run/netns/{ns}"


def sysctl(path: str) -> str:
    return Path(path).read_text().strip()


def test_add_check_del_wire_and_unwire(env: dict[str, Any]) -> None:
    ns, path = new_ns(env, "cni-a")
    cid = "0123456789abcdef0123"
    veth = "cali" + cid[:11]
    env["veths"].append(veth)
    rc, res = cnirun.run("ADD", env["conf"], cid=cid, netns=path)
    assert rc == 0, res
    assert res["cniVersion"] == "1.0.0"
    assert res["interfaces"][0] == {"name": veth}
    assert res["interfaces"][1]["name"] == "eth0" and res["interfaces"][1]["sandbox"] == path
    ip = res["ips"][0]["address"]
    assert res["ips"][0]["interface"] == 1 and ip.endswith("/32") and "version" not in \
        res["ips"][0]
    addr = ip.split("/")[0]

    # container side
    link = json.loads(ns_exec(ns, "ip", "-j", "addr", "show", "eth0").stdout)[0]
    assert link["mtu"] == 1410 and "UP" in link["flags"]
    assert link["address"] == res["interfaces"][1]["mac"]
    assert [(a["local"], a["prefixlen"]) for a in link["addr_info"] if a["family"] == "inet"] \
        == [(addr, 32)]
    routes = json.loads(ns_exec(ns, "ip", "-j", "route").stdout)
    assert {"dst": "169.254.1.1", "dev": "eth0", "scope": "link", "flags": []} in routes
    assert any(r["dst"] == "default" and r.get("gateway") == "169.254.1.1" for r in routes)
    assert ns_exec(ns, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "0"

    # host side
    hl = json.loads(sh("ip", "-j", "link", "show", veth))[0]
    assert hl["address"] == "ee:ee:ee:ee:ee:ee" and hl["mtu"] == 1410
    assert sysctl(f"/proc/sys/net/ipv4/conf/{veth}/proxy_arp") == "1"
    assert sysctl(f"/proc/sys/net/ipv4/conf/{veth}/forwarding") == "1"
    assert sysctl(f"/proc/sys/net/ipv4/conf/{veth}/route_localnet") == "1"
    hr = json.loads(sh("ip", "-j", "route", "show", "exact", f"{addr}/32"))
    # metric 1024, the normal route priority: BIRD keeps it off the BGP sessions and Felix
    # finds it already right.
    assert [(r["dev"], r["scope"], r.get("metric", 0)) for r in hr] == [(veth, "link", 1024)]

    # the host reaches the workload (ARP for 169.254.1.1 answered by proxy ARP)
    r = subprocess.run(["ping", "-c", "1", "-W", "2", addr], capture_output=True, text=True,
                       timeout=30, check=False)
    assert r.returncode == 0, r.stdout + r.stderr

    # datastore: WorkloadEndpoint with Calico's naming, the network's Profile, the handle
    be = env["be"]
    wep_name = f"{NODE.replace('-', '--')}-cni-{cid}-eth0"
    wep = json.loads(be.get(keys.resource_key("WorkloadEndpoint", wep_name, "default")).value)
    assert wep["spec"] == {"orchestrator": "cni", "node": NODE, "containerID": cid,
                           "endpoint": "eth0", "ipNetworks": [f"{addr}/32"],
                           "profiles": ["testnet"], "interfaceName": veth,
                           "mac": res["interfaces"][1]["mac"]}
    assert wep["metadata"]["labels"] == {"projectcalico.org/namespace": "default",
                                         "projectcalico.org/orchestrator": "cni"}
    prof = json.loads(be.get(keys.resource_key("Profile", "testnet")).value)
    assert prof["spec"]["ingress"] == [{"action": "Allow", "source": {"selector": "has(testnet)"},
                                        "destination": {}}]
    assert prof["spec"]["labelsToApply"] == {"testnet": ""}
    be.get(keys.handle_key(f"testnet.{cid}"))

    # CHECK with the ADD's result as prevResult prints nothing and succeeds
    conf = {**env["conf"], "prevResult": res}
    rc, out = cnirun.run("CHECK", conf, cid=cid, netns=path)
    assert (rc, out) == (0, None)

    # DEL unwires and releases; a second DEL succeeds too
    for _ in range(2):
        rc, out = cnirun.run("DEL", env["conf"], cid=cid, netns=path)
        assert (rc, out) == (0, None)
    assert ns_exec(ns, "ip", "link", "show", "eth0", check=False).returncode != 0
    assert subprocess.run(["ip", "link", "show", veth], capture_output=True,
                          check=False).returncode != 0
    assert sh("ip", "route", "show", "exact", f"{addr}/32").strip() == ""
    with pytest.raises(NotFound):
        be.get(keys.handle_key(f"testnet.{cid}"))
    with pytest.raises(NotFound):
        be.get(keys.resource_key("WorkloadEndpoint", wep_name, "default"))
    # CHECK after DEL fails with a message
    rc, out = cnirun.run("CHECK", conf, cid=cid, netns=path)
    assert rc == 1 and "does not exist" in out["msg"]


def test_second_add_replaces_stale_wiring(env: dict[str, Any]) -> None:
    ns, path = new_ns(env, "cni-b")
    cid = "feedface00112233"
    veth = "cali" + cid[:11]
    env["veths"].append(veth)
    rc, first = cnirun.run("ADD", env["conf"], cid=cid, netns=path)
    assert rc == 0, first
    # break the wiring: remove the container's routes and the host route
    ns_exec(ns, "ip", "route", "flush", "dev", "eth0")
    addr = first["ips"][0]["address"].split("/")[0]
    sh("ip", "route", "del", f"{addr}/32")
    rc, second = cnirun.run("ADD", env["conf"], cid=cid, netns=path)
    assert rc == 0, second
    assert second["ips"] == first["ips"], "the same container keeps its address"
    routes = json.loads(ns_exec(ns, "ip", "-j", "route").stdout)
    assert any(r["dst"] == "default" for r in routes)
    assert veth in sh("ip", "route", "show", "exact", f"{addr}/32")
    links = json.loads(ns_exec(ns, "ip", "-j", "link").stdout)
    assert [x["ifname"] for x in links] == ["lo", "eth0"]
    be = env["be"]
    handle = json.loads(be.get(keys.handle_key(f"testnet.{cid}")).value)
    assert sum(handle["block"].values()) == 1, "no second address was taken"
    rc, _ = cnirun.run("DEL", env["conf"], cid=cid, netns=path)
    assert rc == 0


def test_del_with_namespace_gone_and_datastore_down(env: dict[str, Any], etcd: EtcdServer,
                                                   etcd_factory: Any) -> None:
    ns, path = new_ns(env, "cni-c")
    cid = "abcabcabc0001"
    env["veths"].append("cali" + cid[:11])
    rc, res = cnirun.run("ADD", env["conf"], cid=cid, netns=path)
    assert rc == 0, res
    subprocess.run(["ip", "netns", "del", ns], check=True, timeout=30)
    rc, out = cnirun.run("DEL", env["conf"], cid=cid, netns=path)
    assert (rc, out) == (0, None)
    rc, out = cnirun.run("DEL", env["conf"], cid=cid, netns="")
    assert (rc, out) == (0, None)
    # a datastore that cannot be reached fails DEL (code 11) so the runtime retries
    dead = etcd_factory.new("dead")
    endpoint = dead.endpoint
    dead.kill()
    conf = {**env["conf"], "etcd_endpoints": endpoint}
    rc, out = cnirun.run("DEL", conf, cid=cid, netns="")
    assert rc == 1 and out["code"] == 11 and "etcd" in out["msg"]


def test_add_failure_after_ipam_releases_addresses(env: dict[str, Any]) -> None:
    ns, path = new_ns(env, "cni-d")
    cid = "dead0000beef"
    env["veths"].append("cali" + cid[:11])
    # the interface already exists in the container
    ns_exec(ns, "ip", "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
    rc, out = cnirun.run("ADD", env["conf"], cid=cid, netns=path)
    assert rc == 1 and out["code"] == 999 and "eth0" in (out["msg"] + out.get("details", ""))
    be = env["be"]
    with pytest.raises(NotFound):
        be.get(keys.handle_key(f"testnet.{cid}"))
    assert be.list(keys.resource_prefix("WorkloadEndpoint")).kvs == ()
    from libcalico.ipam.check import check

    assert check(be).clean
    assert subprocess.run(["ip", "link", "show", "cali" + cid[:11]], capture_output=True,
                          check=False).returncode != 0


def test_fixed_address_from_cni_args_and_versions(env: dict[str, Any]) -> None:
    _, path = new_ns(env, "cni-e")
    cid = "fixed00000001"
    env["veths"].append("cali" + cid[:11])
    conf = {**env["conf"], "cniVersion": "0.3.1"}
    rc, res = cnirun.run("ADD", conf, cid=cid, netns=path, args="IgnoreUnknown=1;IP=10.199.0.77")
    assert rc == 0, res
    assert res["ips"] == [{"version": "4", "interface": 1, "address": "10.199.0.77/32"}]
    rc, out = cnirun.run("CHECK", conf, cid=cid, netns=path)
    assert rc == 1 and out["code"] == 1 and "CHECK" in out["msg"]
    # the same address for another container is refused, with nothing left behind
    _, path2 = new_ns(env, "cni-f")
    rc, out = cnirun.run("ADD", conf, cid="fixed00000002", netns=path2,
                         args="IP=10.199.0.77")
    assert rc == 1 and "already assigned" in out["msg"]
    with pytest.raises(NotFound):
        env["be"].get(keys.handle_key("testnet.fixed00000002"))
    rc, _ = cnirun.run("DEL", conf, cid=cid, netns=path)
    assert rc == 0


def test_dual_stack(env: dict[str, Any]) -> None:
    seed.put(env["be"], "IPPool", "p6", {"cidr": "fd99:199::/120", "blockSize": 124})
    ns, path = new_ns(env, "cni-g")
    cid = "dual00000001"
    env["veths"].append("cali" + cid[:11])
    conf = {**env["conf"], "ipam": {"type": "calico-ipam", "assign_ipv6": "true"}}
    rc, res = cnirun.run("ADD", conf, cid=cid, netns=path)
    assert rc == 0, res
    addrs = [i["address"] for i in res["ips"]]
    assert addrs[0].endswith("/32") and addrs[1].startswith("fd99:199::") and \
        addrs[1].endswith("/128")
    routes6 = json.loads(ns_exec(ns, "ip", "-j", "-6", "route").stdout)
    assert any(r["dst"] == "default" and r.get("gateway") == "fe80::ecee:eeff:feee:eeee"
               for r in routes6)
    veth = "cali" + cid[:11]
    assert sysctl(f"/proc/sys/net/ipv6/conf/{veth}/proxy_ndp") == "1"
    assert sysctl(f"/proc/sys/net/ipv6/conf/{veth}/accept_dad") == "0"
    hr6 = json.loads(sh("ip", "-j", "-6", "route", "show", "exact", addrs[1]))
    assert [(r["dev"], r.get("metric")) for r in hr6] == [(veth, 1024)]
    rc, _ = cnirun.run("DEL", conf, cid=cid, netns=path)
    assert rc == 0
    with contextlib.suppress(NotFound), pytest.raises(NotFound):
        env["be"].get(keys.handle_key(f"testnet.{cid}"))


@pytest.mark.parametrize("metric", ["0", "1024"])
def test_route_on_another_interface_fails_add(env: dict[str, Any], metric: str) -> None:
    """A /32 already routed to another interface means the address is in use twice: the ADD
    fails, says so, and releases what it took. Whatever that route's metric: 1024 collides
    with ours, 0 (an older plugin's, or a hand-made route) would not."""
    _, path = new_ns(env, "cni-h")
    other = f"cdup{os.getpid() % 100000}"
    env["veths"].append(other)
    sh("ip", "link", "add", other, "type", "veth", "peer", "name", other + "p")
    sh("ip", "link", "set", other, "up")
    sh("ip", "route", "add", "10.199.0.88/32", "dev", other, "metric", metric)
    cid = "dup000000001"
    env["veths"].append("cali" + cid[:11])
    rc, out = cnirun.run("ADD", env["conf"], cid=cid, netns=path, args="IP=10.199.0.88")
    assert rc == 1 and "already exists for an interface other than" in out["msg"], out
    assert other in out["msg"]
    with pytest.raises(NotFound):
        env["be"].get(keys.handle_key(f"testnet.{cid}"))
    assert subprocess.run(["ip", "link", "show", "cali" + cid[:11]], capture_output=True,
                          check=False).returncode != 0
    assert other in sh("ip", "route", "show", "exact", "10.199.0.88/32")


def test_num_queues_and_mtu_on_both_ends(env: dict[str, Any]) -> None:
    """`num_queues` and `mtu` reach both ends of the veth (created over netlink in one
    request, the container end straight into its namespace)."""
    ns, path = new_ns(env, "cni-q")
    cid = "queues0000001"
    veth = "cali" + cid[:11]
    env["veths"].append(veth)
    conf = {**env["conf"], "num_queues": 3, "mtu": 1400}
    rc, res = cnirun.run("ADD", conf, cid=cid, netns=path)
    assert rc == 0, res
    host = json.loads(sh("ip", "-j", "-d", "link", "show", veth))[0]
    inside = json.loads(ns_exec(ns, "ip", "-j", "-d", "link", "show", "eth0").stdout)[0]
    for link in (host, inside):
        assert (link["num_tx_queues"], link["num_rx_queues"], link["mtu"]) == (3, 3, 1400)
    assert host["address"] == "ee:ee:ee:ee:ee:ee" and "UP" in host["flags"]
    assert inside["address"] == res["interfaces"][1]["mac"] and "UP" in inside["flags"]
    rc, _ = cnirun.run("DEL", conf, cid=cid, netns=path)
    assert rc == 0
    assert subprocess.run(["ip", "link", "show", veth], capture_output=True,
                          check=False).returncode != 0


def test_container_settings_and_ipam_routes(env: dict[str, Any]) -> None:
    ns, path = new_ns(env, "cni-i")
    cid = "fwd000000001"
    env["veths"].append("cali" + cid[:11])
    conf = {**env["conf"], "container_settings": {"allow_ip_forwarding": True},
            "ipam": {"type": "calico-ipam", "routes": [{"dst": "10.96.0.0/12"}]}}
    rc, res = cnirun.run("ADD", conf, cid=cid, netns=path)
    assert rc == 0, res
    assert ns_exec(ns, "cat", "/proc/sys/net/ipv4/ip_forward").stdout.strip() == "1"
    routes = {r["dst"]: r.get("gateway") for r in
              json.loads(ns_exec(ns, "ip", "-j", "route").stdout)}
    assert routes.get("10.96.0.0/12") == "169.254.1.1"
    assert "default" not in routes, "ipam.routes replace the default route"
    rc, _ = cnirun.run("DEL", conf, cid=cid, netns=path)
    assert rc == 0
