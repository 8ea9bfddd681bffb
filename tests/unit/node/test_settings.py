from __future__ import annotations

import ipaddress

import pytest

from calico_node import resources, settings
from libcalico.errors import ConfigError


def test_defaults() -> None:
    s = settings.parse({})
    assert s.backend == "bird" and s.ip == "" and s.as_number is None
    (pool,) = s.pools
    assert pool.cidr == ipaddress.ip_network("192.168.0.0/16")
    assert (pool.block_size, pool.ipip_mode, pool.vxlan_mode, pool.nat_outgoing) == \
        (26, "Never", "Never", True)
    assert pool.name == "default-ipv4-ippool"


def test_pool_variables_and_ipv6_twin() -> None:
    s = settings.parse({"CALICO_IPV4POOL_CIDR": "10.244.0.0/16", "CALICO_IPV4POOL_VXLAN":
                        "crosssubnet", "CALICO_IPV4POOL_NODE_SELECTOR": "rack == 'a'",
                        "IP6": "autodetect", "CALICO_IPV6POOL_CIDR": "fd00:10::/48",
                        "AS": "1.10"})
    v4, v6 = s.pools
    assert v4.vxlan_mode == "CrossSubnet" and v4.node_selector == "rack == 'a'"
    assert v6.block_size == 122 and v6.nat_outgoing is False and v6.name == "default-ipv6-ippool"
    assert s.as_number == 65536 + 10


@pytest.mark.parametrize("env,needle", [
    ({"CALICO_NETWORKING_BACKEND": "gobgp"}, "CALICO_NETWORKING_BACKEND='gobgp'"),
    ({"CALICO_IPV4POOL_CIDR": "10.0.0.1/16"}, "CALICO_IPV4POOL_CIDR='10.0.0.1/16'"),
    ({"CALICO_IPV4POOL_CIDR": "fd00::/64"}, "not an IPv4 network"),
    ({"CALICO_IPV4POOL_BLOCK_SIZE": "19"}, "between 20 and 32"),
    ({"CALICO_IPV4POOL_IPIP": "Sometimes"}, "expected Never, Always or CrossSubnet"),
    ({"CALICO_IPV4POOL_IPIP": "Always", "CALICO_IPV4POOL_VXLAN": "Always"}, "choose one"),
    ({"CALICO_IPV4POOL_NAT_OUTGOING": "maybe"}, "expected true or false"),
    ({"AS": "x"}, "AS='x'"),
    ({"AS": "0"}, "out of range"),
    ({"IP": "300.1.1.1"}, "IP='300.1.1.1'"),
    ({"IP_AUTODETECTION_METHOD": "magic"}, "unknown method"),
    ({"NO_DEFAULT_POOLS": "true", "CALICO_IPV4POOL_CIDR": "10.0.0.0/8"}, "NO_DEFAULT_POOLS"),
])
def test_bad_values_name_the_variable(env: dict[str, str], needle: str) -> None:
    with pytest.raises(ConfigError) as e:
        settings.parse(env)
    assert needle in str(e.value)


def test_update_node_keeps_foreign_fields_and_sets_addresses() -> None:
    doc = {"kind": "Node", "metadata": {"name": "n", "labels": {"a": "b"}},
           "spec": {"bgp": {"routeReflectorClusterID": "1.2.3.4", "ipv4Address": "1.1.1.1/24"},
                    "orchRefs": [{"nodeName": "n", "orchestrator": "k8s"}]}}
    out = resources.update_node(doc, ipv4="10.0.0.5/24", ipv6=None, as_number=65001,
                                keep_v4=False, keep_v6=False)
    assert out["metadata"]["labels"] == {"a": "b"}
    assert out["spec"]["orchRefs"] == doc["spec"]["orchRefs"]
    assert out["spec"]["bgp"] == {"routeReflectorClusterID": "1.2.3.4",
                                  "ipv4Address": "10.0.0.5/24", "asNumber": 65001}
    assert out["spec"]["addresses"] == [{"address": "10.0.0.5/24", "type": "CalicoNodeIP"}]
    assert doc["spec"]["bgp"]["ipv4Address"] == "1.1.1.1/24"  # input untouched
    kept = resources.update_node(doc, ipv4=None, ipv6=None, as_number=None, keep_v4=True,
                                 keep_v6=True)
    assert kept["spec"]["bgp"]["ipv4Address"] == "1.1.1.1/24"


def test_tunnel_fields_and_mac() -> None:
    doc: resources.Doc = {"spec": {}}
    v = resources.set_tunnel(doc, "vxlan", "10.244.0.1", resources.vxlan_mac("node-1"))
    assert resources.tunnel_addr(v, "vxlan") == "10.244.0.1"
    mac = v["spec"]["vxlanTunnelMACAddr"]
    assert mac.startswith("66:") and len(mac.split(":")) == 6
    assert resources.vxlan_mac("node-1") == mac and resources.vxlan_mac("node-2") != mac
    cleared = resources.set_tunnel(v, "vxlan", None)
    assert "ipv4VXLANTunnelAddr" not in cleared["spec"]
    assert "vxlanTunnelMACAddr" not in cleared["spec"]
    i = resources.set_tunnel(doc, "ipip", "10.244.0.2")
    assert i["spec"]["bgp"]["ipv4IPIPTunnelAddr"] == "10.244.0.2"
