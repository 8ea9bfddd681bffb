from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from calico_node import resources, settings
from libcalico.errors import ConfigError
from libcalico.model import codec
from libcalico.model.resources import Metadata, Node


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


def _node(doc: dict[str, Any]) -> Node:
    res = codec.decode(doc)
    assert isinstance(res, Node)
    return res


def test_update_node_keeps_foreign_fields_and_sets_addresses() -> None:
    node = _node({"kind": "Node", "apiVersion": "projectcalico.org/v3",
                  "metadata": {"name": "n", "labels": {"a": "b"}},
                  "spec": {"bgp": {"routeReflectorClusterID": "1.2.3.4",
                                   "ipv4Address": "1.1.1.1/24"},
                           "orchRefs": [{"nodeName": "n", "orchestrator": "k8s"}],
                           "addresses": [{"address": "1.1.1.1/24", "type": "CalicoNodeIP"},
                                         {"address": "192.0.2.1", "type": "InternalIP"}]}})
    out = codec.encode(resources.update_node(node, ipv4="10.0.0.5/24", ipv6=None,
                                             as_number=65001, keep_v4=False, keep_v6=False))
    assert out["metadata"]["labels"] == {"a": "b"}
    assert out["spec"]["orchRefs"] == [{"nodeName": "n", "orchestrator": "k8s"}]
    assert out["spec"]["bgp"] == {"routeReflectorClusterID": "1.2.3.4",
                                  "ipv4Address": "10.0.0.5/24", "asNumber": 65001}
    assert out["spec"]["addresses"] == [{"address": "10.0.0.5/24", "type": "CalicoNodeIP"},
                                        {"address": "192.0.2.1", "type": "InternalIP"}]
    kept = resources.update_node(node, ipv4=None, ipv6=None, as_number=None, keep_v4=True,
                                 keep_v6=True)
    assert resources.node_address(kept, 4) == "1.1.1.1/24"
    assert kept == node  # nothing managed changed: nothing to write
    bare = _node({"kind": "Node", "apiVersion": "projectcalico.org/v3",
                  "metadata": {"name": "n"}, "spec": {"bgp": {"ipv4Address": "1.1.1.1/24"}}})
    cleared = resources.update_node(bare, ipv4=None, ipv6=None, as_number=None,
                                    keep_v4=False, keep_v6=False)
    assert codec.encode(cleared)["spec"] == {}  # an empty bgp is dropped, as Calico does


def test_tunnel_fields_and_mac() -> None:
    node = Node(metadata=Metadata(name="node-1"))
    v = resources.set_tunnel(node, "vxlan", "10.244.0.1", resources.vxlan_mac("node-1"))
    assert resources.tunnel_addr(v, "vxlan") == "10.244.0.1"
    mac = codec.encode(v)["spec"]["vxlanTunnelMACAddr"]
    assert mac.startswith("66:") and len(mac.split(":")) == 6
    assert resources.vxlan_mac("node-1") == mac and resources.vxlan_mac("node-2") != mac
    cleared = codec.encode(resources.set_tunnel(v, "vxlan", None))
    assert "ipv4VXLANTunnelAddr" not in cleared["spec"]
    assert "vxlanTunnelMACAddr" not in cleared["spec"]
    i = resources.set_tunnel(node, "ipip", "10.244.0.2")
    assert codec.encode(i)["spec"]["bgp"]["ipv4IPIPTunnelAddr"] == "10.244.0.2"
    assert codec.encode(resources.set_tunnel(i, "ipip", None))["spec"] == {}


def test_default_pool_is_calicos_json() -> None:
    (pool,) = settings.parse({"CALICO_IPV4POOL_CIDR": "10.244.0.0/16",
                              "CALICO_IPV4POOL_BLOCK_SIZE": "24"}).pools
    res = codec.validate(resources.pool_resource(pool))
    assert codec.encode(res)["spec"] == {
        "cidr": "10.244.0.0/16", "vxlanMode": "Never", "ipipMode": "Never",
        "natOutgoing": True, "blockSize": 24, "nodeSelector": "all()",
        "allowedUses": ["Workload", "Tunnel"], "assignmentMode": "Automatic"}
