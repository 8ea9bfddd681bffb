"""The policy chains and IP sets felix/calc/policy_*.py compute, loaded into a real kernel
(ipset restore + iptables-restore in a namespace) and judged by real TCP traffic between two
workload namespaces routed through a host namespace. The forward path is wired by hand as
Felix's dispatch chains do it (from-workload chain, to-workload chain, accept on the mark),
so this proves the rule spellings, the mark protocol, tiers, named-port sets and egress
policy, independently of Felix's process and datastore."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from felix.calc.policy_entries import key_of
from felix.calc.policy_index import PolicyIndex
from felix.calc.policy_state import render
from felix.drivers.iptables.rules import render_rule, rule_hashes
from libcalico.model import resources as r
from tests.fixtures.netns import NetnsFactory, ns_exec
from tests.fixtures.resources import resource as _res
from tests.netns.felix import tcpprobe

pytestmark = [pytest.mark.netns]

V3 = "projectcalico.org/v3"
PORTS = (80, 81, 8081)
CLIENT = (
    "import socket, sys\n"
    "ok = []\n"
    "for port in sys.argv[2:]:\n"
    "    try:\n"
    "        c = socket.create_connection((sys.argv[1], int(port)), timeout=1)\n"
    "        ok.append(c.recv(2) == b'ok'); c.close()\n"
    "    except OSError:\n"
    "        ok.append(False)\n"
    "print(' '.join('1' if x else '0' for x in ok))\n"
)


@dataclass
class Lab:
    host: str
    a: str
    b: str
    ifa: str = "calia0000001"
    ifb: str = "calib0000002"
    ipa: str = "10.70.0.1"
    ipb: str = "10.70.0.2"


def _wep(pod: str, ip: str, iface: str, labels: dict[str, str],
         ports: list[dict[str, Any]] | None = None) -> Any:
    spec: dict[str, Any] = {"orchestrator": "k8s", "node": "h", "pod": pod, "endpoint": "eth0",
                            "ipNetworks": [f"{ip}/32"], "interfaceName": iface,
                            "profiles": ["kns.default"]}
    if ports:
        spec["ports"] = ports
    return _res("WorkloadEndpoint", f"h-k8s-{pod}-eth0", spec, "default", labels)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    nf = NetnsFactory()
    server: subprocess.Popen[bytes] | None = None
    try:
        lab = Lab(nf.new("pk-host"), nf.new("pk-a"), nf.new("pk-b"))
        for ns, iface, ip, other in ((lab.a, lab.ifa, lab.ipa, lab.ipb),
                                     (lab.b, lab.ifb, lab.ipb, lab.ipa)):
            ns_exec(lab.host, "ip", "link", "add", iface, "type", "veth", "peer", "name",
                    "eth0", "netns", ns)
            ns_exec(ns, "ip", "addr", "add", f"{ip}/32", "dev", "eth0")
            ns_exec(ns, "ip", "link", "set", "eth0", "up")
            ns_exec(ns, "ip", "route", "add", f"{other}/32", "dev", "eth0", "scope", "link")
            ns_exec(lab.host, "ip", "link", "set", iface, "up")
            ns_exec(lab.host, "ip", "route", "add", f"{ip}/32", "dev", iface, "scope", "link")
            ns_exec(lab.host, "sysctl", "-qw", f"net.ipv4.conf.{iface}.proxy_arp=1",
                    f"net.ipv4.neigh.{iface}.proxy_delay=0")
        ns_exec(lab.host, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        server = tcpprobe.serve(lab.b, PORTS)
        yield lab
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
        nf.cleanup()


def _index(lab: Lab, *policies: Any) -> PolicyIndex:
    idx = PolicyIndex("h")
    idx.update_profile("kns.default", _res("Profile", "kns.default", {
        "ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]}))
    idx.update_tier("default", r.builtin_tier("default"))
    idx.update_tier("security", _res("Tier", "security", {"order": 10}))
    a = _wep("a", lab.ipa, lab.ifa, {"app": "client"})
    b = _wep("b", lab.ipb, lab.ifb, {"app": "web"},
             ports=[{"name": "alt", "protocol": "TCP", "port": 8081}])
    for w in (a, b):
        idx.update_endpoint(key_of(w), w)
    for p in policies:
        idx.update_policy(key_of(p), p)
    return idx


def _load(lab: Lab, idx: PolicyIndex) -> None:
    """What Felix would program for these endpoints (filter table, IPv4), with a hand-made
    forward path standing in for cali-FORWARD and the dispatch chains."""
    state = render(idx, 4)
    subprocess.run(["ip", "netns", "exec", lab.host, "iptables-restore"], input="*filter\nCOMMIT\n",
                   text=True, check=True, timeout=30)
    ns_exec(lab.host, "ipset", "destroy", check=False)
    sets = [f"create {s.name} {s.set_type} family inet maxelem 1048576"
            for s in state.ipsets.values()]
    sets += [f"add {s.name} {m}" for s in state.ipsets.values() for m in sorted(s.members)]
    subprocess.run(["ip", "netns", "exec", lab.host, "ipset", "restore"],
                   input="\n".join(sets) + "\n", text=True, check=True, timeout=30)
    lines = ["*filter", ":cali-test-fwd - [0:0]"]
    lines += [f":{name} - [0:0]" for name in state.chains]
    lines += ["-A FORWARD -j cali-test-fwd"]
    for iface in (lab.ifa, lab.ifb):
        lines.append(f"-A cali-test-fwd -i {iface} -j cali-fw-{iface}")
    for iface in (lab.ifa, lab.ifb):
        lines.append(f"-A cali-test-fwd -o {iface} -j cali-tw-{iface}")
    lines += ["-A cali-test-fwd -m mark --mark 0x10000/0x10000 -j ACCEPT",
              "-A cali-test-fwd -j DROP"]
    for name, rules in state.chains.items():
        lines += [render_rule("-A", name, h, rule)
                  for h, rule in zip(rule_hashes(name, rules), rules, strict=True)]
    lines.append("COMMIT")
    r_ = subprocess.run(["ip", "netns", "exec", lab.host, "iptables-restore"],
                        input="\n".join(lines) + "\n", text=True, capture_output=True,
                        timeout=30, check=False)
    assert r_.returncode == 0, r_.stderr + "\n".join(lines)
    # The kernel keeps every rule as written (same hashes read back).
    saved = ns_exec(lab.host, "iptables-save", "-t", "filter").stdout
    for name, rules in state.chains.items():
        for h in rule_hashes(name, rules):
            assert f"cali:{h}" in saved


def _reach(lab: Lab) -> dict[int, bool]:
    out = ns_exec(lab.a, sys.executable, "-c", CLIENT, lab.ipb, *map(str, PORTS)).stdout
    return dict(zip(PORTS, (x == "1" for x in out.split()), strict=True))


ALLOW_80_AND_ALT = _res("NetworkPolicy", "allow-web", {
    "selector": "app == 'web'", "order": 100, "types": ["Ingress"],
    "ingress": [{"action": "Allow", "protocol": "TCP", "source": {"selector": "app == 'client'"},
                 "destination": {"ports": [80, "alt"]}}]}, "default")
DENY_80_EARLIER = _res("GlobalNetworkPolicy", "deny-80", {
    "tier": "security", "selector": "app == 'web'", "types": ["Ingress"],
    "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [80]}},
                {"action": "Pass"}]})
EGRESS_81_ONLY = _res("NetworkPolicy", "client-out", {
    "selector": "app == 'client'", "types": ["Egress"],
    "egress": [{"action": "Allow", "protocol": "TCP", "destination": {
        "nets": ["10.70.0.0/24", "10.71.0.0/24"], "notNets": ["10.70.0.9/32"],
        "ports": ["81"]}}]}, "default")


def test_profiles_only_allow_everything(lab: Lab) -> None:
    _load(lab, _index(lab))
    assert _reach(lab) == {80: True, 81: True, 8081: True}


def test_policy_allows_a_port_and_a_named_port(lab: Lab) -> None:
    _load(lab, _index(lab, ALLOW_80_AND_ALT))
    assert _reach(lab) == {80: True, 81: False, 8081: True}


def test_a_deny_in_an_earlier_tier_wins_and_pass_goes_on(lab: Lab) -> None:
    _load(lab, _index(lab, ALLOW_80_AND_ALT, DENY_80_EARLIER))
    assert _reach(lab) == {80: False, 81: False, 8081: True}


def test_egress_policy_with_cidr_blocks(lab: Lab) -> None:
    _load(lab, _index(lab, EGRESS_81_ONLY))
    assert _reach(lab) == {80: False, 81: True, 8081: False}


KITCHEN_SINK = [
    {"action": "Log", "protocol": "ICMP", "icmp": {"type": 8, "code": 0}},
    {"action": "Deny", "notProtocol": "UDP", "source": {"notSelector": "has(x)"}},
    {"action": "Pass", "protocol": "SCTP", "destination": {"notPorts": ["1:1024", "alt"]}},
    {"action": "Allow", "protocol": 17, "source": {"ports": list(range(1, 20)), "nets": [
        "10.0.0.0/8", "192.168.0.0/16"]}, "destination": {"notNets": ["10.1.0.0/16",
                                                                      "10.2.0.0/16"]}},
    {"action": "Allow", "protocol": "ICMPv6", "icmp": {"type": 128}},
    {"action": "Deny", "protocol": "TCP", "source": {"nets": ["fd00::/8"]},
     "destination": {"ports": ["alt", 443]}},
    {"action": "Allow", "source": {"serviceAccounts": {"names": ["sa"]},
                                   "namespaceSelector": "all()"}},
]


@pytest.mark.parametrize("version", [4, 6])
def test_every_rule_shape_loads_and_reads_back(lab: Lab, version: int) -> None:
    """What iptables / ip6tables and ipset accept is the final word on the spelling."""
    pol = _res("GlobalNetworkPolicy", "sink", {"selector": "all()", "ingress": KITCHEN_SINK,
                                               "egress": KITCHEN_SINK})
    state = render(_index(lab, pol), version)
    family = "inet" if version == 4 else "inet6"
    sets = [f"create {s.name} {s.set_type} family {family} maxelem 1048576 -exist"
            for s in state.ipsets.values()]
    subprocess.run(["ip", "netns", "exec", lab.host, "ipset", "restore"],
                   input="\n".join(sets) + "\n", text=True, check=True, timeout=30)
    lines = ["*filter", *(f":{name} - [0:0]" for name in state.chains)]
    for name, rules in state.chains.items():
        lines += [render_rule("-A", name, h, rule)
                  for h, rule in zip(rule_hashes(name, rules), rules, strict=True)]
    lines.append("COMMIT")
    restore = "iptables-restore" if version == 4 else "ip6tables-restore"
    r_ = subprocess.run(["ip", "netns", "exec", lab.host, restore], input="\n".join(lines) + "\n",
                        text=True, capture_output=True, timeout=30, check=False)
    assert r_.returncode == 0, r_.stderr
    save = "iptables-save" if version == 4 else "ip6tables-save"
    saved = ns_exec(lab.host, save, "-t", "filter").stdout
    count = 0
    for name, rules in state.chains.items():
        for h in rule_hashes(name, rules):
            assert f"cali:{h}" in saved
            count += 1
    assert count > 30
    body = " ".join(x.body() for x in state.chains["cali-pi-gnp/sink"])
    if version == 4:   # ICMP rules exist only in the IPv4 table, ICMPv6 ones only in IPv6
        assert "--log-prefix" in body and "-m icmp --icmp-type 8/0" in body
    else:
        assert "-m icmp6 --icmpv6-type 128" in body and "--log-prefix" not in body
    # Leave the host's tables as the other tests expect them.
    subprocess.run(["ip", "netns", "exec", lab.host, restore], input="*filter\nCOMMIT\n",
                   text=True, check=True, timeout=30)
