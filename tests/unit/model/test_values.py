"""Value types (AS numbers, Go durations, ports) and Calico's defaults."""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from libcalico.model import codec
from libcalico.model import resources as r
from libcalico.model import types as vt

V3 = "projectcalico.org/v3"


@pytest.mark.parametrize(("given_value", "expected"), [
    (64512, 64512), ("64512", 64512), ("1.10", 65546), ("0.65535", 65535),
    ("65535.65535", 4294967295), (4294967295, 4294967295), ("0", 0),
])
def test_as_number_plain_and_dotted(given_value: object, expected: int) -> None:
    assert vt.parse_as_number(given_value) == expected


@pytest.mark.parametrize("bad", ["1.65536", "65536.0", "4294967296", -1, "1.2.3", "", True,
                                 "AS1", 1.5])
def test_as_number_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        vt.parse_as_number(bad)


def test_dotted_as_number_in_documents_is_stored_as_number() -> None:
    res = codec.decode({"apiVersion": V3, "kind": "Node", "metadata": {"name": "n"},
                        "spec": {"bgp": {"ipv4Address": "10.0.0.1/24", "asNumber": "1.10"}}})
    assert isinstance(res, r.Node) and res.spec.bgp is not None
    assert res.spec.bgp.as_number == 65546
    assert '"asNumber":65546' in codec.dumps(res)
    assert vt.format_as_dotted(65546) == "1.10"
    assert vt.format_as_dotted(64512) == "64512"


@pytest.mark.parametrize(("text", "seconds", "go"), [
    ("10s", 10, "10s"), ("120s", 120, "2m0s"), ("1m30s", 90, "1m30s"), ("1h", 3600, "1h0m0s"),
    ("1.5h", 5400, "1h30m0s"), ("250ms", 0.25, "250ms"), ("0", 0, "0s"), ("0s", 0, "0s"),
    ("1500ms", 1.5, "1.5s"), ("2us", 0.000002, "2µs"), ("-5s", -5, "-5s"),
    ("1h2m3.5s", 3723.5, "1h2m3.5s"),
])
def test_go_durations(text: str, seconds: float, go: str) -> None:
    d = vt.parse_duration(text)
    assert d == timedelta(seconds=seconds)
    assert vt.format_duration(d) == go


@pytest.mark.parametrize("bad", ["10", "s", "10 s", "1d", "", "1.s.2", "ten seconds"])
def test_go_duration_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        vt.parse_duration(bad)


@given(st.integers(min_value=-(10**15), max_value=10**15))
def test_duration_format_parse_round_trip(micros: int) -> None:
    d = timedelta(microseconds=micros)
    assert vt.parse_duration(vt.format_duration(d)) == d


@pytest.mark.parametrize(("value", "expected", "json_value"), [
    (80, vt.Port(80, 80), 80), ("80", vt.Port(80, 80), 80),
    ("8000:8080", vt.Port(8000, 8080), "8000:8080"), ("http", vt.Port(name="http"), "http"),
])
def test_ports(value: object, expected: vt.Port, json_value: object) -> None:
    p = vt.parse_port(value)
    assert p == expected and p.to_json() == json_value


@pytest.mark.parametrize("bad", [65536, "70000", "9:8", "HTTP", "a_b", "-http", True])
def test_ports_reject(bad: object) -> None:
    with pytest.raises(ValueError):
        vt.parse_port(bad)


# ---------------------------------------------------------------------------------------------
# Defaults


def _pool(**spec: Any) -> r.IPPool:
    res = codec.decode({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p"},
                        "spec": spec})
    assert isinstance(res, r.IPPool)
    return res


def test_ippool_defaults_v4() -> None:
    s = _pool(cidr="10.0.0.0/16").spec
    assert s.block_size == 26
    assert s.node_selector == "all()"
    assert s.allowed_uses == (r.AllowedUse.WORKLOAD, r.AllowedUse.TUNNEL)
    assert s.ipip_mode is r.EncapMode.NEVER and s.vxlan_mode is r.EncapMode.NEVER
    assert s.assignment_mode is r.AssignmentMode.AUTOMATIC
    assert s.nat_outgoing is False and s.disabled is False


def test_ippool_defaults_v6() -> None:
    s = _pool(cidr="fd00:10::/64").spec
    assert s.block_size == 122
    assert s.cidr == ipaddress.IPv6Network("fd00:10::/64")


def test_ippool_defaults_do_not_override_given_values() -> None:
    s = _pool(cidr="10.0.0.0/16", blockSize=28, nodeSelector="zone == 'a'",
              allowedUses=["Tunnel"], vxlanMode="CrossSubnet", assignmentMode="Manual").spec
    assert s.block_size == 28 and s.node_selector == "zone == 'a'"
    assert s.allowed_uses == (r.AllowedUse.TUNNEL,)
    assert s.vxlan_mode is r.EncapMode.CROSS_SUBNET and s.ipip_mode is r.EncapMode.NEVER
    assert s.assignment_mode is r.AssignmentMode.MANUAL


def test_ippool_empty_strings_count_as_unset_as_in_go() -> None:
    s = _pool(cidr="10.0.0.0/16", ipipMode="", nodeSelector="", blockSize=0).spec
    assert s.ipip_mode is r.EncapMode.NEVER and s.node_selector == "all()"
    assert s.block_size == 26


def test_disabled_pool_may_be_smaller_than_its_block() -> None:
    assert _pool(cidr="10.0.0.0/30", disabled=True).spec.block_size == 26


def test_other_kinds_get_no_invented_defaults() -> None:
    peer = codec.decode({"apiVersion": V3, "kind": "BGPPeer", "metadata": {"name": "p"},
                         "spec": {"peerIP": "10.0.0.1", "asNumber": 64512}})
    assert isinstance(peer, r.BGPPeer)
    assert peer.spec.source_address is None and peer.spec.port is None
    felix = codec.decode({"apiVersion": V3, "kind": "FelixConfiguration",
                          "metadata": {"name": "default"}})
    assert felix == r.FelixConfiguration(r.Metadata("default"))
