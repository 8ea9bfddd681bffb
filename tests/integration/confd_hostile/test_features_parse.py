"""Every feature the templates can emit, at once, must parse with Debian's bird/bird6,
including the statements no Calico golden covers (keepalive time, WireGuard rejects, route
reflector service ranges, BGPFilter peerType and prefixLength, listen address, loglevels)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from libcalico.model import keys
from tests.integration.confd_hostile.test_hostile import render_and_parse
from tests.unit.confd_view import snap

pytestmark = pytest.mark.bird


def everything(loglevel: str) -> dict[str, str]:
    s = snap.snapshot(
        snap.node("a", "10.0.0.2/16", "fd00::2/64", rr="1.0.0.1",
                  labels={"rr": "yes"}),
        snap.node("b", "10.0.0.3/16", "fd00::3/64", labels={"rr": "yes"}),
        snap.node("c", "10.0.0.4/16", "fd00::4/64"),
        snap.config(
            logSeverityScreen=loglevel, listenPort=1790, bindMode="NodeIP",
            ignoredInterfaces=["eth9", "veth*"], ipv4NormalRoutePriority=512,
            communities=[{"name": "big", "value": "65000:1:2"}],
            prefixAdvertisements=[{"cidr": "10.10.0.0/16", "communities": ["big", "1:2"]},
                                  {"cidr": "fd10::/64", "communities": ["big"]}],
            serviceClusterIPs=[{"cidr": "10.96.0.0/12"}, {"cidr": "fd96::/112"}],
            serviceExternalIPs=[{"cidr": "198.51.100.0/24"}],
            serviceLoadBalancerIPs=[{"cidr": "203.0.113.0/24"}, {"cidr": "fd99::/120"}],
            nodeMeshMaxRestartTime="90s", programClusterRoutes="Enabled"),
        snap.config("node.c", listenPort=1791),
        snap.pool("ipip", "10.10.0.0/16", ipipMode="CrossSubnet"),
        snap.pool("vx", "10.11.0.0/16", vxlanMode="Always", disableBGPExport=True),
        snap.pool("plain", "10.12.0.0/16"),
        snap.pool("v6", "fd10::/64"),
        snap.affinity("a", "10.12.0.0/26"), snap.affinity("a", "10.12.1.1/32", ""),
        snap.affinity("a", "fd10::/122"),
        snap.bgpfilter("f", importV4=[
            {"action": "Accept", "cidr": "10.0.0.0/8", "matchOperator": "In",
             "prefixLength": {"min": 16, "max": 24}, "peerType": "iBGP"},
            {"action": "Reject", "peerType": "eBGP", "source": "RemotePeers",
             "interface": "eth*", "communities": {"values": ["1:2:3"]}},
            {"action": "Accept", "asPathPrefix": [65001], "priority": 10,
             "operations": [{"setPriority": {"value": 20}},
                            {"addCommunity": {"value": "9:9:9"}},
                            {"prependASPath": {"prefix": [65000, 65000]}}]}],
            exportV6=[{"action": "Accept", "cidr": "fd10::/64", "matchOperator": "NotIn",
                       "prefixLength": {"max": 128}}]),
        snap.peer("rr-mesh", nodeSelector="has(rr)", peerSelector="has(rr)"),
        snap.peer("clients", nodeSelector="has(rr)", peerSelector="!has(rr)",
                  keepaliveTime="30s", maxRestartTime="2m"),
        snap.peer("edge", peerIP="192.0.2.1:1179", asNumber=65001, ttlSecurity=2,
                  keepOriginalNextHop=True, numAllowedLocalASNumbers=1, filters=["f"],
                  reachableBy="10.0.0.1"),
        snap.peer("edge6", peerIP="[2001:db8::1]:1179", asNumber=65001, localASNumber=65100,
                  nextHopMode="Self", sourceAddress="None", filters=["f"]),
    )
    # WireGuard on a and b: routes via each other's BGP address are Felix's.
    for name, last in (("a", 2), ("b", 3)):
        doc = json.loads(s[keys.resource_key("Node", name)])
        doc["spec"]["wireguard"] = {"interfaceIPv4Address": f"172.31.0.{last}",
                                    "interfaceIPv6Address": f"fd31::{last}"}
        s[keys.resource_key("Node", name)] = json.dumps(doc)
    return s


@pytest.mark.parametrize("loglevel", ["Debug", "Info", "Warning"])
def test_every_feature_parses(loglevel: str, tmp_path: Path) -> None:
    out, r = render_and_parse(everything(loglevel), tmp_path)
    assert not r.warnings, r.warnings
    bird, bird6 = out["bird.cfg.template"], out["bird6.cfg.template"]
    for needle in ("keepalive time 30;", "graceful restart time 120;", "rr client;",
                   "rr cluster id 1.0.0.1;", "ttl security on;", "multihop 2;",
                   "allow local as 1;", "listen bgp address 10.0.0.2 port 1790;",
                   "bgp_large_community.add((65000, 1, 2));", "net ~ [ 10.0.0.0/8{16,24} ]",
                   "if (is_same_as) then", "'bgp_f_importFilterV4'(false);",
                   'interface -"eth9", -"veth*", -"cali*", -"kube-ipvs*", "*";'):
        assert needle in bird, needle
    for needle in ("local as 65100;", "next hop self;", "neighbor 2001:db8::1 port 1179",
                   "listen bgp address fd00::2 port 1790;"):
        assert needle in bird6, needle
    ipam = out["bird_ipam.cfg.template"]
    assert "bgp_next_hop = 10.0.0.3" in ipam and "203.0.113.0/24" in ipam
    assert "krt_tunnel" not in "".join(out.values())
    if loglevel == "Warning":
        assert "debug" not in bird
