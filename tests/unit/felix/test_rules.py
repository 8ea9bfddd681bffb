from __future__ import annotations

import hashlib

import pytest

from felix.calc import chains
from felix.calc.policy_chains import EndpointPlan, endpoint_chains, profile_chain_name
from felix.calc.policy_entries import key_of
from felix.calc.policy_index import PolicyIndex
from felix.calc.policy_state import render
from felix.drivers.iptables.rules import Rule, length_limited, render_rule, rule_hashes
from tests.unit.felix import data


def test_hash_is_16_urlsafe_chars_chained_and_position_dependent() -> None:
    a, b = Rule("-i cali+", "-j DROP"), Rule(action="-j ACCEPT")
    h1 = rule_hashes("cali-X", [a, b])
    assert all(len(h) == 16 and set(h) <= set(
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") for h in h1)
    assert rule_hashes("cali-X", [a, b]) == h1                  # deterministic
    assert rule_hashes("cali-Y", [a, b]) != h1                  # chain seeds the hash
    assert rule_hashes("cali-X", [b, a])[1] != h1[1]            # position matters
    assert rule_hashes("cali-X", [a, Rule(action="-j RETURN")])[0] == h1[0]


def test_hash_is_sha224_of_previous_digest_and_rendered_rule() -> None:
    import base64
    r = Rule("-i cali+", "-j DROP", "x y")
    seed = hashlib.sha224(b"cali-X").digest()
    expect = hashlib.sha224(seed + b'-A cali-X HASH -m comment --comment "x y" -i cali+ -j DROP')
    assert rule_hashes("cali-X", [r])[0] == \
        base64.urlsafe_b64encode(expect.digest()).decode()[:16]


def test_render_puts_hash_comment_first() -> None:
    line = render_rule("-A", "cali-X", "abcdefghijklmnop", Rule("-i cali+", "-j DROP", "why"))
    assert line == ('-A cali-X -m comment --comment "cali:abcdefghijklmnop" '
                    '-m comment --comment "why" -i cali+ -j DROP')


def test_unsafe_comment_rejected() -> None:
    with pytest.raises(ValueError):
        Rule(comment='bad" -j ACCEPT')


def test_chain_names_are_length_limited_like_calico() -> None:
    assert chains.tw_chain("cali12345678901") == "cali-tw-cali12345678901"
    long = profile_chain_name(True, "kns.a-very-long-namespace-name")
    assert len(long) == 28 and long.startswith("cali-pri-_")
    assert length_limited("cali-pri-", "x" * 19) == "cali-pri-" + "x" * 19   # exactly 28
    assert length_limited("cali-pri-", "_" + "x" * 18) != "cali-pri-_" + "x" * 18


def _opts(**kw: object) -> chains.RuleOptions:
    base = dict(ip_version=4, prefixes=("cali",), vxlan=True, ipip=False, vxlan_port=4789,
                insert_mode="insert", endpoint_to_host_action="DROP",
                allow_vxlan_from_workloads=False, allow_ipip_from_workloads=False,
                nat_outgoing=True, tunnel_devices=("vxlan.calico",), failsafe_in=(("tcp", 22),),
                failsafe_out=())
    base.update(kw)
    return chains.RuleOptions(**base)  # type: ignore[arg-type]


def test_dispatch_chains_group_and_drop_unknown_interfaces() -> None:
    eps = tuple(chains.EndpointPolicy(i, ("p",)) for i in
                ("cali1aaaaaaaaaa", "cali1bbbbbbbbbb", "cali2cccccccccc"))
    filt = chains.build(_opts(), eps)["filter"]
    root = filt.chains["cali-from-wl-dispatch"]
    assert root[-1] == Rule(action="-j DROP", comment="Unknown interface")
    assert Rule("-i cali1+", "-g cali-from-wl-dispatch-1") in root
    assert Rule("-i cali2cccccccccc", "-g cali-fw-cali2cccccccccc") in root
    child = filt.chains["cali-from-wl-dispatch-1"]
    assert child[-1].comment == "Unknown interface"
    assert Rule("-o cali1bbbbbbbbbb", "-g cali-tw-cali1bbbbbbbbbb") in \
        filt.chains["cali-to-wl-dispatch-1"]


def test_endpoint_chains_profiles_and_default_drop() -> None:
    """Workload and profile chains come from the policy calculation (one Calico renderer)."""
    k, v = data.profile("kns.default", [{"action": "Allow", "protocol": "TCP",
                                         "destination": {"ports": [80, "1000:2000"]}}],
                        [{"action": "Deny", "destination": {"nets": ["10.0.0.0/8"]}}])
    idx = PolicyIndex("node1")
    idx.update_profile("kns.default", data.resource(k, v))  # type: ignore[arg-type]
    wk, wv = data.wep("w", "node1", "cali1aaaaaaaaaa", ["10.65.0.10/32"],
                      profiles=("kns.default", "missing"))
    wep = data.resource(wk, wv)
    idx.update_endpoint(key_of(wep), wep)  # type: ignore[arg-type]
    filt = render(idx, 4).chains
    fw = filt["cali-fw-cali1aaaaaaaaaa"]
    assert fw[-1] == Rule(action="--jump DROP", comment="Drop if no profiles matched")
    assert Rule(action="--jump cali-pro-kns.default") in fw
    assert any("4789" in r.match and r.action == "--jump DROP" for r in fw)  # no VXLAN out
    tw = filt["cali-tw-cali1aaaaaaaaaa"]
    assert Rule(action="--jump cali-pri-missing") in tw
    assert [r.action for r in filt["cali-pri-missing"]] == ["--jump DROP"]  # missing: drops
    pri = filt["cali-pri-kns.default"]
    assert pri[0].match == "-p tcp -m multiport --destination-ports 80,1000:2000"
    assert filt["cali-pro-kns.default"][0].match == "--destination 10.0.0.0/8"
    assert endpoint_chains(EndpointPlan("cali1aaaaaaaaaa"))["cali-tw-cali1aaaaaaaaaa"][-1] \
        .comment == "Drop if no profiles matched"


def test_kernel_hooks_insert_or_append_and_nat_outgoing() -> None:
    t = chains.build(_opts(), ())
    assert t["filter"].inserts["INPUT"] == (Rule(action="-j cali-INPUT"),)
    assert t["nat"].appends["POSTROUTING"] == (Rule(action="-j cali-POSTROUTING"),)
    assert "POSTROUTING" not in t["nat"].inserts
    masq = t["nat"].chains["cali-nat-outgoing"][0]
    assert "cali40masq-ipam-pools src" in masq.match and "MASQUERADE" in masq.action
    a = chains.build(_opts(insert_mode="append"), ())
    assert a["filter"].appends["INPUT"] == (Rule(action="-j cali-INPUT"),)
    assert "INPUT" not in a["filter"].inserts
    assert chains.build(_opts(nat_outgoing=False), ())["nat"].chains[
        "cali-nat-outgoing"] == ()


def test_anti_spoofing_and_vxlan_from_known_hosts_only() -> None:
    t = chains.build(_opts(), ())
    pre = t["raw"].chains["cali-PREROUTING"]
    assert any("rpfilter --validmark --invert" in r.match and r.action == "-j DROP"
               for r in pre)
    inp = t["filter"].chains["cali-INPUT"]
    allow = [r for r in inp if "cali40all-vxlan-net src" in r.match]
    assert allow and allow[0].action == "-j ACCEPT"
    assert inp[inp.index(allow[0]) + 1].action == "-j DROP"
    assert t["filter"].chains["cali-failsafe-in"] == (
        Rule("-p tcp -m multiport --destination-ports 22", "--jump ACCEPT"),)


def test_large_dispatch_groups_split_again_and_every_iface_is_reachable() -> None:
    import hashlib
    ifaces = sorted("cali" + hashlib.sha1(str(i).encode()).hexdigest()[:11] for i in range(600))
    eps = tuple(chains.EndpointPolicy(i, ()) for i in ifaces)
    filt = chains.build(_opts(), eps)["filter"]
    dispatch = {k: v for k, v in filt.chains.items() if k.startswith("cali-from-wl-dispatch")}
    assert all(v[-1].comment == "Unknown interface" for v in dispatch.values())
    assert max(len(v) for v in dispatch.values()) <= 18
    assert all(len(k) <= 28 for k in dispatch)

    def walk(chain: str, iface: str) -> str:
        for r in dispatch[chain]:
            m = r.match.split()[-1] if r.match else ""
            if m == iface:
                return r.action.split()[-1]
            if m.endswith("+") and iface.startswith(m[:-1]):
                return walk(r.action.split()[-1], iface)
        return "DROP"

    for i in ifaces:
        assert walk("cali-from-wl-dispatch", i) == chains.fw_chain(i)
    assert walk("cali-from-wl-dispatch", "cali0000000zzzz") == "DROP"
