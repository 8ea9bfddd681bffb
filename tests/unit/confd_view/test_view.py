"""The BGP view of one node: mesh, explicit peers, route reflectors, selectors, reverse
peerings, first-writer-wins, router id, pools and the kernel filter."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from confd import bgpview, keyspace
from confd.bgpview import NodeView
from tests.unit.confd_view import snap


def view(s: Mapping[str, str], node: str = "a", **env: str) -> NodeView:
    ks = keyspace.KeySpaceBuilder().build(s, node, env)
    return bgpview.compute(ks, node, env)


def names(v: NodeView, version: int = 4) -> list[str]:
    return [p.name for p in v.family(version).peers]


def three() -> dict[str, str]:
    return snap.snapshot(snap.node("a", "10.0.0.2/16", "fd00::2/64"),
                         snap.node("b", "10.0.0.3/16", "fd00::3/64"),
                         snap.node("c", "10.0.0.10/16"))


def test_full_mesh_peers_every_other_node_and_is_passive_towards_higher_string_addresses() -> None:
    v = view(three())
    peers = {p.name: p for p in v.v4.peers}
    assert sorted(peers) == ["Mesh_10_0_0_10", "Mesh_10_0_0_3"]
    # Calico compares addresses as strings: "10.0.0.3" > "10.0.0.2", and "10.0.0.10" < "10.0.0.2".
    assert peers["Mesh_10_0_0_3"].passive
    assert not peers["Mesh_10_0_0_10"].passive
    assert all(p.source_address == "10.0.0.2" and p.internal for p in peers.values())
    assert names(v, 6) == ["Mesh_fd00__3"]
    # The other side of each session is the active one.
    vb = view(three(), "b")
    assert not {p.name: p for p in vb.v4.peers}["Mesh_10_0_0_2"].passive


def test_mesh_disabled_leaves_no_peers() -> None:
    s = three() | snap.snapshot(snap.config(nodeToNodeMeshEnabled=False))
    assert names(view(s)) == []


def test_mesh_peer_as_falls_back_to_this_nodes_as() -> None:
    s = snap.snapshot(snap.node("a", "10.0.0.2/16", asn=65001), snap.node("b", "10.0.0.3/16"),
                      snap.node("c", "10.0.0.4/16", asn=65002))
    peers = {p.name: p for p in view(s).v4.peers}
    assert peers["Mesh_10_0_0_3"].as_number == 65001
    assert peers["Mesh_10_0_0_4"].as_number == 65002
    assert not peers["Mesh_10_0_0_4"].internal


def test_route_reflector_leaves_mesh_and_gets_rr_clients() -> None:
    s = three() | snap.snapshot(
        snap.node("rr", "10.0.0.100/16", rr="1.0.0.1", labels={"role": "rr"}),
        snap.peer("to-rr", nodeSelector="!has(role)", peerSelector="role == 'rr'"),
    )
    # A mesh node does not mesh with the RR; it peers with it through the selector peer.
    va = view(s)
    assert "Mesh_10_0_0_100" not in names(va)
    assert "Node_10_0_0_100" in names(va)
    # The RR has no mesh; reverse peering gives it every client, each an rr client.
    vr = view(s, "rr")
    assert names(vr) == ["Node_10_0_0_10", "Node_10_0_0_2", "Node_10_0_0_3"]
    assert all(p.rr_client and p.rr_cluster_id == "1.0.0.1" for p in vr.v4.peers)


def test_rr_client_only_for_ibgp_peers_outside_the_cluster() -> None:
    s = snap.snapshot(
        snap.node("rr1", "10.0.0.1/16", rr="1.0.0.1", labels={"rr": "1"}),
        snap.node("rr2", "10.0.0.2/16", rr="1.0.0.1", labels={"rr": "1"}),
        snap.node("c", "10.0.0.3/16"),
        snap.peer("rrs", nodeSelector="has(rr)", peerSelector="has(rr)"),
        snap.peer("ext", node="rr1", peerIP="192.0.2.1", asNumber=65099),
    )
    peers = {p.name: p for p in view(s, "rr1").v4.peers}
    assert not peers["Node_10_0_0_2"].rr_client      # same cluster id
    assert not peers["Node_192_0_2_1"].rr_client     # eBGP
    assert "Node_10_0_0_3" not in peers


def test_selector_peers_apply_to_matching_nodes_only() -> None:
    s = snap.snapshot(
        snap.node("a", "10.0.0.2/16", labels={"g": "one"}),
        snap.node("b", "10.0.0.3/16", labels={"g": "two"}),
        snap.node("c", "10.0.0.4/16", labels={"g": "two"}),
        snap.config(nodeToNodeMeshEnabled=False),
        snap.peer("p", nodeSelector="g == 'one'", peerSelector="g == 'two'"),
    )
    assert names(view(s)) == ["Node_10_0_0_3", "Node_10_0_0_4"]
    # Reverse peering: the selected peers peer back to a.
    assert names(view(s, "b")) == ["Node_10_0_0_2"]


def test_reverse_peering_manual_is_one_way() -> None:
    s = snap.snapshot(
        snap.node("a", "10.0.0.2/16"), snap.node("b", "10.0.0.3/16"),
        snap.config(nodeToNodeMeshEnabled=False),
        snap.peer("p", node="a", peerIP="10.0.0.3", asNumber=64512, reversePeering="Manual"),
    )
    assert names(view(s)) == ["Node_10_0_0_3"]
    assert names(view(s, "b")) == []
    s |= snap.snapshot(snap.peer("p", node="a", peerIP="10.0.0.3", asNumber=64512))
    assert names(view(s, "b")) == ["Node_10_0_0_2"]


def test_global_peering_wins_over_node_peering_to_the_same_address() -> None:
    s = snap.snapshot(
        snap.node("a", "10.0.0.2/16"), snap.config(nodeToNodeMeshEnabled=False),
        snap.peer("zz-global", peerIP="192.0.2.1", asNumber=65001),
        snap.peer("aa-node", node="a", peerIP="192.0.2.1", asNumber=65002),
    )
    peers = view(s).v4.peers
    assert [(p.name, p.as_number) for p in peers] == [("Global_192_0_2_1", 65001)]


def test_first_writer_wins_between_node_scoped_peers() -> None:
    s = snap.snapshot(
        snap.node("a", "10.0.0.2/16"), snap.config(nodeToNodeMeshEnabled=False),
        snap.peer("p1", node="a", peerIP="192.0.2.1", asNumber=65001, ttlSecurity=2),
        snap.peer("p2", node="a", peerIP="192.0.2.1", asNumber=65002),
    )
    (p,) = view(s).v4.peers
    assert (p.as_number, p.ttl_security) == (65001, 2)


def test_explicit_peer_fields() -> None:
    s = snap.snapshot(
        snap.node("a", "10.0.0.2/16", asn=65000), snap.config(nodeToNodeMeshEnabled=False),
        snap.peer("p", node="a", peerIP="192.0.2.1:1790", asNumber=65001, localASNumber=65005,
                  ttlSecurity=3, sourceAddress="None", maxRestartTime="2m", keepaliveTime="10s",
                  nextHopMode="Self", numAllowedLocalASNumbers=2, reachableBy="10.0.0.1"),
    )
    v = view(s)
    (p,) = v.v4.peers
    assert p.name == "Global_192_0_2_1_port_1790" or p.name == "Node_192_0_2_1_port_1790"
    assert (p.port, p.local_as, p.ttl_security, p.source_address) == (1790, 65005, 3, "")
    assert (p.restart_time, p.keepalive_time, p.next_hop_self, p.allow_local_as) == (
        120, 10, True, 2)
    assert v.v4.reachable_routes == (("192.0.2.1/32", "10.0.0.1"),)


def test_keep_original_next_hop_only_for_ebgp() -> None:
    s = snap.snapshot(
        snap.node("a", "10.0.0.2/16"), snap.config(nodeToNodeMeshEnabled=False),
        snap.peer("e", node="a", peerIP="192.0.2.1", asNumber=65001, keepOriginalNextHop=True),
        snap.peer("i", node="a", peerIP="192.0.2.2", asNumber=64512, keepOriginalNextHop=True),
    )
    peers = {p.ip: p for p in view(s).v4.peers}
    assert peers["192.0.2.1"].next_hop_keep and not peers["192.0.2.2"].next_hop_keep


def test_router_id_sources() -> None:
    assert view(three()).v6.router_id == "10.0.0.2"
    assert view(three(), CALICO_ROUTER_ID="192.0.2.9").v4.router_id == "192.0.2.9"
    # Calico's golden value for kube-master (mesh/hash case).
    assert bgpview.hash_router_id("kube-master") == "25.79.212.8"
    assert view(three(), CALICO_ROUTER_ID="hash").v4.router_id == bgpview.hash_router_id("a")
    with pytest.raises(bgpview.ViewError, match="CALICO_ROUTER_ID"):
        view(three(), CALICO_ROUTER_ID="1.2.3.4; protocol")
    v6only = snap.snapshot(snap.node("a", None, "fd00::2/64"))
    with pytest.raises(bgpview.ViewError, match="router id"):
        view(v6only)


def test_missing_node_is_an_error_not_an_empty_config() -> None:
    with pytest.raises(bgpview.ViewError, match="no Node resource"):
        view(three(), "ghost")


def test_listen_address_and_port() -> None:
    s = three() | snap.snapshot(snap.config(listenPort=1790, bindMode="NodeIP"),
                                snap.config("node.a", listenPort=1791))
    v = view(s)
    assert (v.v4.listen_address, v.v4.listen_port) == ("10.0.0.2", 1791)
    assert v.v6.listen_address == "fd00::2"
    peers = {p.name: p for p in v.v4.peers}
    assert peers["Mesh_10_0_0_3"].port == 1790


def test_node_prefix_advertisements_replace_global_ones() -> None:
    comms = [{"name": "c1", "value": "100:200"}]
    s = three() | snap.snapshot(
        snap.config(communities=comms, prefixAdvertisements=[
            {"cidr": "10.1.0.0/16", "communities": ["c1", "300:400:500"]}]),
        # (Calico's validator wants a name defined in the same resource.)
        snap.config("node.b", communities=comms, prefixAdvertisements=[
            {"cidr": "10.2.0.0/16", "communities": ["c1"]}]),
    )
    (adv,) = view(s).v4.advertisements
    assert adv.cidr == "10.1.0.0/16"
    assert [(c.values, c.large) for c in adv.communities] == [((100, 200), False),
                                                              ((300, 400, 500), True)]
    (adv_b,) = view(s, "b").v4.advertisements
    assert adv_b.cidr == "10.2.0.0/16"
    assert [c.values for c in adv_b.communities] == [(100, 200)]


@pytest.mark.parametrize(("policy", "ipip", "noencap"), [
    (None, False, True), ("EnabledNoEncapOnly", False, True), ("Enabled", False, True),
    ("EnabledIPIPOnly", False, False), ("Disabled", False, False)])
def test_kernel_programming_by_pool_type(policy: str | None, ipip: bool, noencap: bool) -> None:
    cfg = {"programClusterRoutes": policy} if policy else {}
    s = three() | snap.snapshot(
        snap.config(**cfg),
        snap.pool("ipip", "10.10.0.0/16", ipipMode="Always"),
        snap.pool("cross", "10.11.0.0/16", ipipMode="CrossSubnet"),
        snap.pool("vx", "10.12.0.0/16", vxlanMode="Always"),
        snap.pool("plain", "10.13.0.0/16"),
    )
    kp = {k.cidr: k for k in view(s).v4.kernel_pools}
    # Stock BIRD has no krt_tunnel: IPIP routes are always Felix's, whatever the policy.
    assert kp["10.10.0.0/16"].accept is ipip and kp["10.11.0.0/16"].accept is ipip
    assert not kp["10.12.0.0/16"].accept and "VXLAN" in kp["10.12.0.0/16"].comment
    assert kp["10.13.0.0/16"].accept is noencap


def test_disable_bgp_export_and_pool_order() -> None:
    s = three() | snap.snapshot(snap.pool("p2", "10.9.0.0/16"),
                                snap.pool("p1", "10.10.0.0/16", disableBGPExport=True),
                                snap.pool("p3", "10.1.0.0/16"))
    v = view(s)
    assert v.v4.export_disabled_pools == ("10.10.0.0/16",)
    assert v.v4.export_pools == ("10.1.0.0/16", "10.9.0.0/16")


def test_blocks_pending_dropped_and_host_blocks_not_blackholed() -> None:
    s = three() | snap.snapshot(snap.affinity("a", "10.5.0.0/26"),
                                snap.affinity("a", "10.5.0.64/26", ""),
                                snap.affinity("a", "10.5.1.0/26", "pending"),
                                snap.affinity("a", "10.5.2.1/32"),
                                snap.affinity("b", "10.6.0.0/26"))
    blocks = view(s).v4.blocks
    assert [(b.cidr, b.state, b.blackhole) for b in blocks] == [
        ("10.5.0.0/26", "confirmed", True), ("10.5.0.64/26", "", True),
        ("10.5.2.1/32", "confirmed", False)]


def test_v4_kernel_pool_lines_need_the_node_network() -> None:
    s = snap.snapshot(snap.node("a", None, "fd00::2/64"), snap.pool("p", "10.13.0.0/16"))
    v = view(s, CALICO_ROUTER_ID="1.1.1.1")
    assert not v.v4.kernel_pools_known and v.v6.kernel_pools_known
    assert not v.v4.enabled and v.v6.enabled


def test_normal_route_priority() -> None:
    s = three() | snap.snapshot(snap.config(ipv4NormalRoutePriority=5000))
    v = view(s)
    assert v.v4.import_threshold == 2147483647 - 5000
    assert v.v6.normal_route_priority == 1024


def test_bgpfilter_functions_and_calls() -> None:
    s = three() | snap.snapshot(
        snap.config(nodeToNodeMeshEnabled=False),
        snap.bgpfilter("f", importV4=[{"action": "Accept", "cidr": "10.0.0.0/8",
                                       "matchOperator": "In", "peerType": "eBGP"}],
                       exportV4=[{"action": "Reject"}]),
        snap.peer("p", node="a", peerIP="192.0.2.1", asNumber=65001, filters=["f", "missing"]),
    )
    v = view(s)
    fns = {(f.filter_name, f.direction): f for f in v.v4.filter_functions}
    assert fns[("f", "import")].peer_type_aware
    assert fns[("f", "import")].statements == (
        "if (!is_same_as) then { if ((net ~ 10.0.0.0/8)) then { accept; } }",)
    (p,) = v.v4.peers
    assert p.import_calls == ("'bgp_f_importFilterV4'(false);",)
    assert p.export_calls == ("'bgp_f_exportFilterV4'();",)
    assert v.v6.filter_functions == ()
