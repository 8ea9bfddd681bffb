"""Policy in Felix's desired state: the calculation's chains replace the profile-only
workload chains in the filter table, named-port sets carry their type, an update re-renders
only what changed, and the result is the same whatever order the datastore gave."""

from __future__ import annotations

import ipaddress
import json

from felix import config
from felix.calc import desired as calc
from felix.calc.policy_selectors import named_port_uid, selector_uid, set_name
from felix.drivers.ipsets import parse_save
from libcalico.model import keys
from tests.unit.felix import data

ME = "node1"
CFG = config.load({"FELIX_FELIXHOSTNAME": ME, "FELIX_IPV6SUPPORT": "false"})
IFACES = {
    "eth0": calc.Iface("eth0", True, 1500, (ipaddress.ip_interface("192.168.0.1/24"),)),
    "cali0000000001": calc.Iface("cali0000000001", True),
}


def _kv(kind: str, name: str, spec: dict[str, object], namespace: str | None = None
        ) -> tuple[str, str]:
    md: dict[str, object] = {"name": name}
    if namespace:
        md["namespace"] = namespace
    return keys.resource_key(kind, name, namespace), json.dumps(
        {"kind": kind, "apiVersion": "projectcalico.org/v3", "metadata": md, "spec": spec})


BASE = [
    data.pool("p", "10.65.0.0/16", vxlan="Always"),
    data.node(ME, "192.168.0.1/24", vtep="10.65.0.1"),
    data.block("10.65.0.0/26", ME),
    data.wep("w1", ME, "cali0000000001", ["10.65.0.10/32"]),
    data.wep("remote", "node2", "cali0000000009", ["10.65.1.5/32"]),
    data.profile("kns.default", [{"action": "Allow"}], [{"action": "Allow"}]),
]
POLICY = _kv("GlobalNetworkPolicy", "web", {
    "selector": "all()", "types": ["Ingress"], "ingress": [
        {"action": "Allow", "protocol": "TCP",
         "source": {"selector": "projectcalico.org/namespace == 'default'"},
         "destination": {"ports": [80, "http"]}}]})


def _snap(kvs: list[tuple[str, str]]) -> calc.Snapshot:
    snap = calc.Snapshot()
    for k, v in kvs:
        snap.apply(k, data.resource(k, v))
    return snap


def test_policy_chains_and_sets_in_the_filter_table() -> None:
    st = calc.compute(_snap([*BASE, POLICY]), CFG, IFACES)
    filt = st.tables[(4, "filter")].chains
    tw = [r.body() for r in filt["cali-tw-cali0000000001"]]
    assert '-m comment --comment "Start of tier default" --jump MARK --set-mark 0/0x20000' in tw
    assert "-m mark --mark 0/0x20000 --jump cali-pi-gnp/web" in tw
    assert "cali-pi-gnp/web" in filt and "cali-po-gnp/web" not in filt
    assert [r.body() for r in filt["cali-pri-kns.default"]] == [
        '-m comment --comment "Profile kns.default ingress" --jump MARK --set-mark'
        " 0x10000/0x10000"]
    sel = set_name(4, selector_uid('projectcalico.org/namespace == "default"'))
    assert st.ipsets[sel] == calc.IPSet("inet", frozenset({"10.65.0.10/32", "10.65.1.5/32"}))
    named = set_name(4, named_port_uid("all()", "tcp", "http"))
    assert st.ipsets[named].set_type == "hash:ip,port"
    # The dispatch chains still lead there.
    assert any("cali-fw-cali0000000001" in r.action for rules in filt.values() for r in rules)


def test_updates_are_incremental_and_order_independent() -> None:
    snap = _snap(BASE)
    before = calc.compute(snap, CFG, IFACES)
    assert "Start of tier" not in str(before.tables[(4, "filter")].chains)
    k, v = POLICY
    snap.apply(k, data.resource(k, v))
    after = calc.compute(snap, CFG, IFACES)
    fresh = calc.compute(_snap([POLICY, *reversed(BASE)]), CFG, IFACES)
    assert after.tables == fresh.tables and after.ipsets == fresh.ipsets
    snap.apply(k, None)
    again = calc.compute(snap, CFG, IFACES)
    assert again.tables == before.tables and again.ipsets == before.ipsets


def test_ipset_types_read_back() -> None:
    saved = ("create cali40n:abc hash:ip,port family inet hashsize 1024 maxelem 1048576\n"
             "add cali40n:abc 10.0.0.1,tcp:80\n"
             "create cali40s:def hash:net family inet hashsize 1024 maxelem 1048576\n")
    sets = parse_save(saved)
    assert sets["cali40n:abc"] == calc.IPSet("inet", frozenset({"10.0.0.1,tcp:80"}),
                                              "hash:ip,port")
    assert sets["cali40s:def"].set_type == "hash:net"
