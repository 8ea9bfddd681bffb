"""The synthesised key space: Calico's confd cache layout (confd.md c.2) from raw etcd keys."""

from __future__ import annotations

import json

from confd import keyspace
from tests.unit.confd_view import snap


def build(s: dict[str, str], node: str = "a", **env: str) -> dict[str, str]:
    return dict(keyspace.KeySpaceBuilder().build(s, node, env).values)


def test_global_defaults() -> None:
    v = build(snap.snapshot(snap.node("a", "10.0.0.2/16")))
    assert v["/calico/bgp/v1/global/as_num"] == "64512"
    assert json.loads(v["/calico/bgp/v1/global/node_mesh"]) == {"enabled": True}
    assert v["/calico/bgp/v1/global/loglevel"] == "info"
    assert "/calico/bgp/v1/global/listen_port" not in v


def test_global_and_node_configuration() -> None:
    v = build(snap.snapshot(
        snap.node("a", "10.0.0.2/16"),
        snap.config(asNumber=65000, nodeToNodeMeshEnabled=False, logSeverityScreen="Warning",
                    listenPort=177),
        snap.config("node.a", logSeverityScreen="Debug", listenPort=178)))
    assert v["/calico/bgp/v1/global/as_num"] == "65000"
    assert json.loads(v["/calico/bgp/v1/global/node_mesh"]) == {"enabled": False}
    assert v["/calico/bgp/v1/global/loglevel"] == "none"
    assert v["/calico/bgp/v1/global/listen_port"] == "177"
    assert v["/calico/bgp/v1/host/a/loglevel"] == "debug"
    assert v["/calico/bgp/v1/host/a/listen_port"] == "178"


def test_host_keys() -> None:
    v = build(snap.snapshot(snap.node("a", "10.0.0.2/16", asn=65001, rr="1.0.0.1"),
                            snap.node("b", None, "fd00::3/64")))
    h = "/calico/bgp/v1/host/"
    assert (v[h + "a/ip_addr_v4"], v[h + "a/network_v4"], v[h + "a/as_num"],
            v[h + "a/rr_cluster_id"], v[h + "a/ip_addr_v6"]) == (
        "10.0.0.2", "10.0.0.0/16", "65001", "1.0.0.1", "")
    assert v[h + "b/ip_addr_v4"] == "" and h + "b/network_v4" not in v
    assert v[h + "b/network_v6"] == "fd00::/64" and h + "b/as_num" not in v


def test_peer_keys_and_values() -> None:
    v = build(snap.snapshot(
        snap.node("a", "10.0.0.2/16"),
        snap.peer("g", peerIP="192.0.2.1:1790", asNumber=65001),
        snap.peer("n", node="a", peerIP="2001:db8::1", asNumber=65002, keepaliveTime="1m")))
    g = json.loads(v["/calico/bgp/v1/global/peer_v4/192.0.2.1-1790"])
    assert (g["ip"], g["as_num"], g["port"], g["source_addr"]) == (
        "192.0.2.1", "65001", 1790, "UseNodeIP")
    n = json.loads(v["/calico/bgp/v1/host/a/peer_v6/2001:db8::1"])
    assert (n["as_num"], n["keepalive_time"], n["password"]) == ("65002", "60", None)


def test_pools_affinities_and_service_ranges() -> None:
    v = build(snap.snapshot(
        snap.node("a", "10.0.0.2/16"),
        snap.pool("p", "10.10.0.0/16", ipipMode="CrossSubnet", natOutgoing=True),
        snap.affinity("a", "10.10.0.0/26"), snap.affinity("a", "10.10.1.0/26", "pending"),
        snap.affinity("b", "10.10.2.0/26"),
        snap.config(serviceClusterIPs=[{"cidr": "10.96.0.0/12"}, {"cidr": "10.1.2.3/32"}],
                    serviceLoadBalancerIPs=[{"cidr": "fd99::/120"}])))
    pool = json.loads(v["/calico/v1/ipam/v4/pool/10.10.0.0-16"])
    assert (pool["ipip"], pool["ipip_mode"], pool["vxlan_mode"], pool["masquerade"]) == (
        "tunl0", "cross-subnet", "", True)
    assert "/calico/ipam/v2/host/a/ipv4/block/10.10.0.0-26" in v
    assert "/calico/ipam/v2/host/a/ipv4/block/10.10.1.0-26" not in v   # pending
    assert "/calico/ipam/v2/host/b/ipv4/block/10.10.2.0-26" not in v   # another node's
    assert v["/calico/staticroutes/10.96.0.0-12"] == "10.96.0.0/12"
    assert v["/calico/rejectcidrs/10.96.0.0-12"] == "10.96.0.0/12"
    assert "/calico/staticroutes/10.1.2.3-32" not in v                 # single addresses
    assert v["/calico/staticroutesv6/fd99::-120"] == "fd99::/120"


def test_cluster_ips_from_the_environment_replace_the_configured_ones() -> None:
    v = build(snap.snapshot(snap.node("a", "10.0.0.2/16"),
                            snap.config(serviceClusterIPs=[{"cidr": "10.96.0.0/12"}])),
              CALICO_ADVERTISE_CLUSTER_IPS="10.100.0.0/16")
    assert "/calico/staticroutes/10.100.0.0-16" in v
    assert "/calico/staticroutes/10.96.0.0-12" not in v


def test_raw_resources_are_copied_and_bad_ones_warned_about() -> None:
    s = snap.snapshot(snap.node("a", "10.0.0.2/16"))
    s["/calico/resources/v3/projectcalico.org/nodes/bad"] = "{not json"
    ks = keyspace.KeySpaceBuilder().build(s, "a", {})
    assert "/calico/resources/v3/projectcalico.org/nodes/a" in ks.values
    assert "/calico/resources/v3/projectcalico.org/nodes/bad" not in ks.values
    assert any(w.startswith("Node 'bad' ignored: invalid JSON") for w in ks.warnings), ks.warnings
