"""calico-node startup against a real etcd: Node, pools, defaults, tunnel addresses."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path

import pytest

from calico_node import autodetect, startup
from libcalico.datastore.api import Backend
from libcalico.datastore.etcd import EtcdBackend
from libcalico.model import keys

pytestmark = pytest.mark.etcd


@pytest.fixture
def backend(etcd_backend: EtcdBackend) -> EtcdBackend:
    return etcd_backend


IFACES = [autodetect.Interface("lo", (ipaddress.ip_interface("127.0.0.1/8"),)),
          autodetect.Interface("eth0", (ipaddress.ip_interface("172.30.0.11/24"),))]


def run(backend: Backend, tmp_path: Path, **env: str) -> startup.Result:
    full = {"CALICO_NODENAME_FILE": str(tmp_path / "nodename"), **env}
    return startup.Startup(backend=backend, env=full, interfaces=lambda: IFACES,
                           route_lookup=lambda d: None, hostname="host-a",
                           wait_timeout=5).run()


def doc(backend: Backend, kind: str, name: str) -> dict[str, object]:
    value = json.loads(backend.get(keys.resource_key(kind, name)).value)
    assert isinstance(value, dict)
    return value


def test_first_start_writes_node_pool_clusterinfo_and_nodename(
        backend: Backend, tmp_path: Path) -> None:
    r = run(backend, tmp_path, NODENAME="node-1", AS="65001",
            CALICO_IPV4POOL_CIDR="10.244.0.0/16", CALICO_IPV4POOL_BLOCK_SIZE="24")
    assert r.ipv4 == "172.30.0.11/24"
    node = doc(backend, "Node", "node-1")
    assert node["spec"] == {"bgp": {"ipv4Address": "172.30.0.11/24", "asNumber": 65001},
                            "addresses": [{"address": "172.30.0.11/24",
                                           "type": "CalicoNodeIP"}]}
    pool = doc(backend, "IPPool", "default-ipv4-ippool")
    assert pool["spec"] == {"cidr": "10.244.0.0/16", "vxlanMode": "Never", "ipipMode": "Never",
                            "natOutgoing": True, "blockSize": 24, "nodeSelector": "all()",
                            "allowedUses": ["Workload", "Tunnel"],
                            "assignmentMode": "Automatic"}
    ci = doc(backend, "ClusterInformation", "default")
    spec = ci["spec"]
    assert isinstance(spec, dict) and spec["datastoreReady"] is True
    assert len(spec["clusterGUID"]) == 32
    assert (tmp_path / "nodename").read_text() == "node-1"
    assert doc(backend, "FelixConfiguration", "node.node-1")["spec"] == {
        "defaultEndpointToHostAction": "Return"}


def test_second_node_with_same_address_is_refused_and_writes_nothing(
        backend: Backend, tmp_path: Path) -> None:
    run(backend, tmp_path, NODENAME="node-1")
    before = backend.list("/calico/").kvs
    with pytest.raises(startup.StartupError, match="already in use by node 'node-1'"):
        run(backend, tmp_path / "b", NODENAME="node-2")
    assert backend.list("/calico/").kvs == before


def test_restart_keeps_existing_pool_and_labels(backend: Backend, tmp_path: Path) -> None:
    run(backend, tmp_path, NODENAME="node-1", CALICO_IPV4POOL_CIDR="10.244.0.0/16")
    key = keys.resource_key("Node", "node-1")
    kv = backend.get(key)
    node = json.loads(kv.value)
    node["metadata"]["labels"] = {"rack": "a"}
    backend.update(key, json.dumps(node), kv.revision)
    run(backend, tmp_path, NODENAME="node-1", CALICO_IPV4POOL_CIDR="10.99.0.0/16")
    assert doc(backend, "Node", "node-1")["metadata"]["labels"] == {"rack": "a"}  # type: ignore[index]
    assert [p.key.rsplit("/", 1)[1] for p in
            backend.list(keys.resource_prefix("IPPool")).kvs] == ["default-ipv4-ippool"]


def test_vxlan_pool_gets_tunnel_address_with_handle_and_mac(
        backend: Backend, tmp_path: Path) -> None:
    r = run(backend, tmp_path, NODENAME="node-1", CALICO_IPV4POOL_CIDR="10.244.0.0/16",
            CALICO_IPV4POOL_VXLAN="Always")
    assert r.vxlan_tunnel is not None and r.ipip_tunnel is None
    assert ipaddress.ip_address(r.vxlan_tunnel) in ipaddress.ip_network("10.244.0.0/16")
    spec = doc(backend, "Node", "node-1")["spec"]
    assert isinstance(spec, dict)
    assert spec["ipv4VXLANTunnelAddr"] == r.vxlan_tunnel
    assert spec["vxlanTunnelMACAddr"].startswith("66:")
    handle = json.loads(backend.get(keys.handle_key("vxlan-tunnel-addr-node-1")).value)
    assert sum(handle["block"].values()) == 1
    # a restart keeps the same address
    assert run(backend, tmp_path, NODENAME="node-1").vxlan_tunnel == r.vxlan_tunnel


def test_ipip_pool_gets_tunnel_address_and_switching_releases_it(
        backend: Backend, tmp_path: Path) -> None:
    r = run(backend, tmp_path, NODENAME="node-1", CALICO_IPV4POOL_CIDR="10.244.0.0/16",
            CALICO_IPV4POOL_IPIP="CrossSubnet")
    assert r.ipip_tunnel is not None
    spec = doc(backend, "Node", "node-1")["spec"]
    assert spec["bgp"]["ipv4IPIPTunnelAddr"] == r.ipip_tunnel  # type: ignore[index]
    key = keys.resource_key("IPPool", "default-ipv4-ippool")
    kv = backend.get(key)
    pool = json.loads(kv.value)
    pool["spec"]["ipipMode"] = "Never"
    backend.update(key, json.dumps(pool), kv.revision)
    r2 = run(backend, tmp_path, NODENAME="node-1")
    assert r2.ipip_tunnel is None
    assert "ipv4IPIPTunnelAddr" not in doc(backend, "Node", "node-1")["spec"]["bgp"]  # type: ignore[index]
    with pytest.raises(Exception, match="does not exist"):
        backend.get(keys.handle_key("ipip-tunnel-addr-node-1"))


def test_bad_environment_is_named(backend: Backend, tmp_path: Path) -> None:
    with pytest.raises(Exception, match="CALICO_IPV4POOL_BLOCK_SIZE=40"):
        run(backend, tmp_path, NODENAME="node-1", CALICO_IPV4POOL_BLOCK_SIZE="40")
    with pytest.raises(Exception, match="NO_DEFAULT_POOLS=true but CALICO_IPV4POOL_CIDR"):
        run(backend, tmp_path, NODENAME="node-1", NO_DEFAULT_POOLS="true",
            CALICO_IPV4POOL_CIDR="10.0.0.0/16")
    assert backend.list("/calico/").kvs == ()


def test_no_default_pools(backend: Backend, tmp_path: Path) -> None:
    run(backend, tmp_path, NODENAME="node-1", NO_DEFAULT_POOLS="true")
    assert backend.list(keys.resource_prefix("IPPool")).kvs == ()


def test_second_start_writes_nothing(backend: Backend, tmp_path: Path) -> None:
    env = {"NODENAME": "node-1", "AS": "65001", "CALICO_IPV4POOL_CIDR": "10.244.0.0/16",
           "CALICO_IPV4POOL_IPIP": "Always"}
    first = run(backend, tmp_path, **env)
    before = backend.list("/calico/").kvs
    assert run(backend, tmp_path, **env) == first
    assert backend.list("/calico/").kvs == before  # same keys, values and revisions


def test_node_is_written_as_calicos_json(backend: Backend, tmp_path: Path) -> None:
    run(backend, tmp_path, NODENAME="node-1", AS="65001")
    text = backend.get(keys.resource_key("Node", "node-1")).value
    node = json.loads(text)
    assert text.startswith('{"kind":"Node","apiVersion":"projectcalico.org/v3","metadata":')
    assert text.endswith(',"spec":{"bgp":{"asNumber":65001,"ipv4Address":"172.30.0.11/24"},'
                         '"addresses":[{"address":"172.30.0.11/24","type":"CalicoNodeIP"}]},'
                         '"status":{}}')
    assert set(node["metadata"]) == {"name", "uid", "creationTimestamp"}
