"""kernelsafe: values the codec lets through (built here as typed resources directly, as a
looser validator or a future datastore could hand them over) that Felix still refuses, each
refusal naming the resource, the field and the reason."""

from __future__ import annotations

import dataclasses
import ipaddress

import pytest

from felix.calc import desired as calc
from felix.calc import kernelsafe
from libcalico.ipam.block import Block
from libcalico.model import keys
from libcalico.model.resources import (
    EntityRule,
    Metadata,
    Node,
    NodeSpec,
    Profile,
    ProfileSpec,
    Rule,
    WorkloadEndpoint,
)
from libcalico.model.resources_endpoint import Action, WorkloadEndpointSpec
from libcalico.model.types import Port
from tests.unit.felix import data

WEP_KEY = keys.resource_key("WorkloadEndpoint", "w1", "default")


def wep(**spec: object) -> WorkloadEndpoint:
    base = {"node": "node1", "interface_name": "cali1", "mac": "02:00:00:00:00:01",
            "ip_networks": (ipaddress.ip_network("10.65.0.1/32"),)}
    base.update(spec)
    return WorkloadEndpoint(Metadata("w1", namespace="default"),
                            WorkloadEndpointSpec(**base))  # type: ignore[arg-type]


def test_a_good_endpoint_passes_and_its_mac_is_written_as_the_kernel_takes_it() -> None:
    assert kernelsafe.check(WEP_KEY, wep()) is None
    assert kernelsafe.check(WEP_KEY, wep(mac="02-00-00-00-00-AB")) is None
    view = calc.endpoint_view(WEP_KEY, wep(mac="02-00-00-00-00-AB"))
    assert view.mac == "02:00:00:00:00:ab"


@pytest.mark.parametrize(("spec", "field", "why"), [
    ({"interface_name": None}, "spec.interfaceName", "bad interface name None"),
    ({"interface_name": "cali$(reboot)"}, "spec.interfaceName", "bad interface name"),
    ({"interface_name": "x" * 16}, "spec.interfaceName", "bad interface name"),
    ({"mac": "02:00:00:00:00:01:02:03"}, "spec.mac", "not a 48-bit MAC"),
    ({"mac": "0200.0000.0001"}, "spec.mac", "not a 48-bit MAC"),
    ({"profiles": ("ok", "bad name")}, "spec.profiles[1]", "cannot name an iptables chain"),
])
def test_endpoint_refusals_name_resource_field_and_reason(spec: dict[str, object], field: str,
                                                          why: str) -> None:
    r = kernelsafe.check(WEP_KEY, wep(**spec))
    assert r is not None and (r.resource, r.field) == (WEP_KEY, field)
    assert why in r.reason and str(r).startswith(f"{WEP_KEY}: {field}: ")


def test_node_vtep_mac_must_be_48_bit() -> None:
    key = keys.resource_key("Node", "n")
    bad = Node(Metadata("n"), NodeSpec(vxlan_tunnel_mac_addr="02:00:00:00:00:01:02:03"))
    r = kernelsafe.check(key, bad)
    assert r is not None and r.field == "spec.vxlanTunnelMACAddr"
    assert kernelsafe.check(key, dataclasses.replace(
        bad, spec=NodeSpec(vxlan_tunnel_mac_addr="02:00:00:00:00:01"))) is None


def test_profile_rule_values_that_reach_iptables_arguments() -> None:
    key = keys.resource_key("Profile", "p")

    def prof(rule: Rule, name: str = "p") -> Profile:
        return Profile(Metadata(name), ProfileSpec(egress=(Rule(action=Action.ALLOW), rule)))

    r = kernelsafe.check(key, prof(Rule(action=Action.ALLOW, protocol="tcp -j ACCEPT")))
    assert r is not None and r.field == "spec.egress[1].protocol"
    r = kernelsafe.check(key, prof(Rule(action=Action.ALLOW, protocol="TCP", destination=EntityRule(
        ports=(Port(2000, 1000),)))))
    assert r is not None and r.field == "spec.egress[1].destination.ports[0]"
    r = kernelsafe.check(key, prof(Rule(action=Action.ALLOW), name="a b"))
    assert r is not None and r.field == "metadata.name"
    assert kernelsafe.check(key, prof(Rule(action=Action.DENY, protocol=6))) is None


def test_block_must_match_its_key() -> None:
    k, v = data.block("10.65.0.0/26", "node1")
    blk = data.resource(k, v)
    assert isinstance(blk, Block) and kernelsafe.check(k, blk) is None
    other = dataclasses.replace(blk, cidr=ipaddress.ip_network("10.66.0.0/26"))
    r = kernelsafe.check(k, other)
    assert r is not None and r.field == "cidr" and "does not match the key" in r.reason


def test_a_refused_value_reaches_the_snapshot_as_absent() -> None:
    from libcalico.datastore.snapshot import Update, Updates
    from tests.unit.felix.test_dataplane import kernel, make
    nl, ipt, fs = kernel()
    dp = make(nl, ipt, fs)
    k, good = data.wep("w1", "node1", "cali0000000001", ["10.65.0.10/32"])
    dp.on_event(Updates((Update(k, good, 1),)))
    assert k in dp.snapshot.objects and not dp.bad_keys
    bad = good.replace('"ee:ee:ee:ee:ee:ee"', '"zz"')
    dp.on_event(Updates((Update(k, bad, 2),)))
    assert k not in dp.snapshot.objects and "spec.mac" in dp.bad_keys[k]
    dp.on_event(Updates((Update(k, good, 3),)))
    assert k in dp.snapshot.objects and k not in dp.bad_keys
