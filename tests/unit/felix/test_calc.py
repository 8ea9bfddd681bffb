from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from felix import config
from felix.calc import desired as calc
from felix.calc import rules
from felix.calc.policy_selectors import selector_uid
from tests.unit.felix import data

ME = "node1"
CFG = config.load({"FELIX_FELIXHOSTNAME": ME, "FELIX_IPV6SUPPORT": "false"})
IFACES = {
    "eth0": calc.Iface("eth0", True, 1500, (ipaddress.ip_interface("192.168.0.1/24"),)),
    "cali0000000001": calc.Iface("cali0000000001", True),
    "cali0000000002": calc.Iface("cali0000000002", True),
    "calidown000003": calc.Iface("calidown000003", False),
}


def state(kvs: list[tuple[str, str | None]], cfg: config.FelixConfig = CFG,
          ifaces: dict[str, calc.Iface] = IFACES) -> calc.HostState:
    snap = calc.Snapshot()
    for k, v in kvs:
        snap.apply(k, None if v is None else data.resource(k, v))
    return calc.compute(snap, cfg, ifaces)


BASE = [
    data.pool("p", "10.65.0.0/16", vxlan="Always", nat=True),
    data.node(ME, "192.168.0.1/24", vtep="10.65.0.1"),
    data.node("node2", "192.168.0.2/24", vtep="10.65.1.1"),
    data.node("node3", "172.16.0.3/24", vtep="10.65.2.1", mac="aa:bb:cc:dd:ee:03"),
    data.block("10.65.0.0/26", ME),
    data.block("10.65.1.0/26", "node2"),
    data.block("10.65.2.0/26", "node3"),
    data.wep("w1", ME, "cali0000000001", ["10.65.0.10/32"], mac="02:00:00:00:00:01"),
    data.wep("w2", ME, "cali0000000002", ["10.65.0.11/32"]),
    data.wep("w3", ME, "calidown000003", ["10.65.0.12/32"]),
    data.wep("remote", "node2", "cali0000000009", ["10.65.1.5/32"]),
    data.profile("kns.default", [{"action": "Allow"}], [{"action": "Allow"}]),
]


def test_local_workloads_get_routes_neighbours_and_sysctls() -> None:
    s = state(BASE)
    net = ipaddress.ip_network("10.65.0.10/32")
    r = s.routes[(254, net)]
    assert (r.dev, r.scope, r.proto, r.gateway) == ("cali0000000001", "link", 3, None)
    assert s.neighbours[("cali0000000001", net.network_address)] == "02:00:00:00:00:01"
    for name, value in [("proxy_arp", "1"), ("forwarding", "1"), ("route_localnet", "1"),
                        ("rp_filter", "1")]:
        assert s.sysctls[f"net/ipv4/conf/cali0000000001/{name}"] == value
    assert s.sysctls["net/ipv6/conf/cali0000000001/accept_ra"] == "0"
    assert s.sysctls["net/ipv4/ip_forward"] == "1"
    # The down interface gets no route and no sysctls yet; the remote endpoint nothing.
    assert (254, ipaddress.ip_network("10.65.0.12/32")) not in s.routes
    assert not any("calidown" in k for k in s.sysctls)
    assert not any("cali0000000009" in k for k in s.sysctls)
    assert s.workload_ifaces == {"cali0000000001", "cali0000000002", "calidown000003"}


def test_blackhole_for_own_block_and_vxlan_routes_for_remote_blocks() -> None:
    s = state(BASE)
    own = s.routes[(254, ipaddress.ip_network("10.65.0.0/26"))]
    assert own.type == "blackhole" and own.proto == 80
    r2 = s.routes[(254, ipaddress.ip_network("10.65.1.0/26"))]
    assert (r2.dev, str(r2.gateway), r2.onlink) == ("vxlan.calico", "10.65.1.1", True)
    assert s.vxlan is not None
    assert (s.vxlan.vni, s.vxlan.port, str(s.vxlan.local), s.vxlan.parent) == (
        4096, 4789, "192.168.0.1", "eth0")
    assert s.vxlan.mtu == 1450 and s.vxlan.mac == calc.vtep_mac(ME)
    # Per remote VTEP: neighbour and FDB (configured MAC used when present).
    assert s.neighbours[("vxlan.calico", ipaddress.ip_address("10.65.2.1"))] == \
        "aa:bb:cc:dd:ee:03"
    assert s.fdb[("vxlan.calico", "aa:bb:cc:dd:ee:03")] == ipaddress.ip_address("172.16.0.3")
    assert s.fdb[("vxlan.calico", calc.vtep_mac("node2"))] == ipaddress.ip_address(
        "192.168.0.2")
    assert s.ipsets["cali40all-vxlan-net"].members == {"192.168.0.2", "172.16.0.3"}
    assert s.ipsets["cali40masq-ipam-pools"].members == {"10.65.0.0/16"}


def test_vtep_mac_is_locally_administered_unicast_and_stable() -> None:
    mac = calc.vtep_mac("node2")
    first = int(mac.split(":")[0], 16)
    assert mac.startswith("66:") and first & 0x2 and not first & 0x1
    assert mac == calc.vtep_mac("node2") != calc.vtep_mac("node3")


def test_cross_subnet_routes_same_subnet_directly() -> None:
    kvs = [data.pool("p", "10.65.0.0/16", vxlan="CrossSubnet"), *BASE[1:]]
    s = state(kvs)
    same = s.routes[(254, ipaddress.ip_network("10.65.1.0/26"))]
    assert (same.dev, str(same.gateway), same.onlink, same.proto) == (
        "eth0", "192.168.0.2", True, 80)
    other = s.routes[(254, ipaddress.ip_network("10.65.2.0/26"))]
    assert other.dev == "vxlan.calico"


def test_ipip_routes_via_node_address_onlink() -> None:
    kvs = [data.pool("p", "10.65.0.0/16", ipip="Always"),
           data.node(ME, "192.168.0.1/24", ipip_addr="10.65.0.1"),
           data.node("node2", "192.168.0.2/24"), data.block("10.65.1.0/26", "node2")]
    s = state(kvs)
    r = s.routes[(254, ipaddress.ip_network("10.65.1.0/26"))]
    assert (r.dev, str(r.gateway), r.onlink, r.proto) == ("tunl0", "192.168.0.2", True, 80)
    assert s.ipip is not None and s.ipip.mtu == 1480 and str(s.ipip.address) == "10.65.0.1"
    assert s.vxlan is None
    # When BIRD owns IPIP routes (ProgramClusterRoutes=Disabled) Felix programs none.
    cfg = config.load({"FELIX_FELIXHOSTNAME": ME, "FELIX_PROGRAMCLUSTERROUTES": "Disabled"})
    assert (254, ipaddress.ip_network("10.65.1.0/26")) not in state(kvs, cfg).routes


def test_invalid_datastore_values_are_rejected_with_reason() -> None:
    k, _ = data.wep("bad", ME, "x", [])
    with pytest.raises(data.Refused, match="interfaceName"):
        data.resource(k, data.wep("bad", ME, "cali;rm -rf", ["10.0.0.1/32"])[1])
    with pytest.raises(data.Refused, match="mac"):
        data.resource(k, data.wep("bad", ME, "cali1", ["10.0.0.1/32"], mac="zz")[1])
    with pytest.raises(data.Refused, match="ipNetworks"):
        data.resource(k, data.wep("bad", ME, "cali1", ["10.0.0.300/32"])[1])
    pk, _ = data.pool("p", "10.0.0.0/8")
    with pytest.raises(data.Refused, match="vxlanMode"):
        data.resource(pk, data.pool("p", "10.0.0.0/8", vxlan="Sometimes")[1])


# -- order independence -------------------------------------------------------------------

UPDATES: list[tuple[str, str | None]] = [
    *BASE,
    (data.wep("w2", ME, "cali0000000002", [])[0], None),               # delete w2
    data.wep("w1", ME, "cali0000000001", ["10.65.0.20/32"]),            # change w1
    data.block("10.65.3.0/26", "node2"),
    data.felixconfig("default", {"vxlanVNI": 7}),
]


@settings(max_examples=60, deadline=None)
@given(st.permutations(range(len(UPDATES))))
def test_desired_state_is_order_independent(order: list[int]) -> None:
    """The final value of each key decides; the order of updates to different keys does
    not. Updates to the same key keep their relative order (the syncer guarantees it)."""
    keyed: dict[str, list[tuple[str, str | None]]] = {}
    for k, v in UPDATES:
        keyed.setdefault(k, []).append((k, v))
    seq: list[tuple[str, str | None]] = []
    cursors = {k: 0 for k in keyed}
    for i in order:
        k = UPDATES[i][0]
        seq.append(keyed[k][cursors[k]])
        cursors[k] += 1
    assert state(seq) == state(UPDATES)


def test_ipv6_workload_gets_128_route_ndp_sysctls_and_ip6tables() -> None:
    cfg = config.load({"FELIX_FELIXHOSTNAME": ME})          # Ipv6Support defaults to true
    kvs = [*BASE, data.pool("p6", "fd00:65::/64"),
           data.wep("w2", ME, "cali0000000002", ["10.65.0.11/32", "fd00:65::11/128"])]
    s = state(kvs, cfg)
    r = s.routes[(254, ipaddress.ip_network("fd00:65::11/128"))]
    assert (r.dev, r.scope) == ("cali0000000002", "global")   # as the kernel reports it
    assert s.sysctls["net/ipv6/conf/cali0000000002/proxy_ndp"] == "1"
    assert s.sysctls["net/ipv6/conf/cali0000000002/forwarding"] == "1"
    assert s.sysctls["net/ipv6/conf/all/forwarding"] == "1"
    assert not any(k[0] == "cali0000000002" and k[1].version == 6 for k in s.neighbours)
    assert (6, "filter") in s.tables and (6, "raw") in s.tables
    assert "cali-tw-cali0000000002" in s.tables[(6, "filter")].chains
    assert s.ipsets["cali60network-ip-pools"].members == {"fd00:65::/64"}
    assert s.ipsets["cali60network-ip-pools"].family == "inet6"
    # Without IPv6 pools or workloads, no ip6tables at all.
    assert not any(v == 6 for v, _ in state(BASE, cfg).tables)


def test_profile_selector_rules_use_ipsets_of_matching_endpoints() -> None:
    """The CNI plugin's default (non-k8s) profile: allow ingress from endpoints carrying the
    profile's own label (applied through labelsToApply), allow all egress."""
    net1 = data.profile("net1", [{"action": "Allow", "source": {"selector": "has(net1)"}}],
                        [{"action": "Allow"}])
    k, v = net1
    import json
    doc = json.loads(v)
    doc["spec"]["labelsToApply"] = {"net1": ""}
    kvs = [*BASE, (k, json.dumps(doc)),
           data.wep("w1", ME, "cali0000000001", ["10.65.0.10/32"], profiles=("net1",)),
           data.wep("r1", "node2", "cali0000000009", ["10.65.1.5/32"], profiles=("net1",)),
           data.wep("r2", "node2", "cali0000000008", ["10.65.1.6/32"])]
    s = state(kvs)
    set_name = rules.set_name(4, selector_uid("has(net1)"))  # Calico's s:<hash> id
    assert set_name.startswith("cali40s:") and len(set_name) == 31
    assert s.ipsets[set_name].members == {"10.65.0.10/32", "10.65.1.5/32"}
    pri = s.tables[(4, "filter")].chains["cali-pri-net1"]
    assert pri[0].match == f"-m set --match-set {set_name} src"
    with pytest.raises(data.Refused, match="selector"):
        doc["spec"]["ingress"][0]["source"]["selector"] = "has(net1"
        data.resource(k, json.dumps(doc))


def test_memoised_computation_equals_a_fresh_one() -> None:
    """Per-endpoint contributions and interface scans are memoised; after each kind of
    change (an endpoint, the normal route priority, an interface going down) the state must
    equal one computed with every memo cleared."""
    import dataclasses

    snap = calc.Snapshot()
    for k, v in BASE:
        snap.apply(k, data.resource(k, v))
    ifaces = dict(IFACES)

    def fresh() -> calc.HostState:
        calc._contributions.clear()
        calc._per_ifaces[:] = [None, {}]
        return calc.compute(snap, CFG, ifaces)

    calc.compute(snap, CFG, ifaces)
    changes = [
        data.wep("w1", ME, "cali0000000001", ["10.65.0.30/32"], mac="02:00:00:00:00:09"),
        (keys_bgp := "/calico/resources/v3/projectcalico.org/bgpconfigurations/default",
         '{"apiVersion":"projectcalico.org/v3","kind":"BGPConfiguration",'
         '"metadata":{"name":"default"},"spec":{"ipv4NormalRoutePriority":7}}'),
        data.wep("w4", ME, "cali0000000002", ["10.65.0.31/32"]),
    ]
    for k, v in changes:
        snap.apply(k, data.resource(k, v))
        assert calc.compute(snap, CFG, ifaces) == fresh()
    assert keys_bgp in snap.objects
    ifaces = {**ifaces, "cali0000000001": dataclasses.replace(ifaces["cali0000000001"],
                                                              up=False)}
    st = calc.compute(snap, CFG, ifaces)
    assert st == fresh()
    assert not any(r.dev == "cali0000000001" for r in st.routes.values())
