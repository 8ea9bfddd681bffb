"""Host endpoints in Felix's desired state (issue 12 item 4): named and `*` HostEndpoints of
this node, their chains in filter / mangle / raw as Calico places them, failsafes first,
doNotTrack in raw with NOTRACK, preDNAT in mangle, applyOnForward in the forward chains,
profiles, selectors over host endpoint labels, expectedIPs in IP sets, Calico's failsafe
defaults, and the same state whatever the update order."""

from __future__ import annotations

import ipaddress
import json

from felix import config
from felix.calc import desired as calc
from felix.calc import hostendpoint
from felix.calc.policy_chains import profile_chain_name
from felix.calc.policy_selectors import selector_uid, set_name
from felix.drivers.iptables.rules import Rule
from libcalico.model import keys
from tests.unit.felix import data

ME = "node1"
CFG = config.load({"FELIX_FELIXHOSTNAME": ME, "FELIX_IPV6SUPPORT": "false"})
IFACES = {
    "eth0": calc.Iface("eth0", True, 1500, (ipaddress.ip_interface("192.168.0.1/24"),)),
    "eth1": calc.Iface("eth1", True, 1500, (ipaddress.ip_interface("172.16.0.1/24"),)),
    "cali0000000001": calc.Iface("cali0000000001", True),
}
BASE = [
    data.pool("p", "10.65.0.0/16", vxlan="Always"),
    data.node(ME, "192.168.0.1/24", vtep="10.65.0.1"),
    data.block("10.65.0.0/26", ME),
    data.wep("w1", ME, "cali0000000001", ["10.65.0.10/32"]),
    data.profile("kns.default", [{"action": "Allow"}], [{"action": "Allow"}]),
]
FS_IN = ("tcp", 22), ("udp", 68), ("tcp", 179), ("tcp", 2379), ("tcp", 2380), ("tcp", 5473), \
    ("tcp", 6443), ("tcp", 6666), ("tcp", 6667)
FS_OUT = ("udp", 53), ("udp", 67), ("tcp", 179), ("tcp", 2379), ("tcp", 2380), ("tcp", 5473), \
    ("tcp", 6443), ("tcp", 6666), ("tcp", 6667)


def _kv(kind: str, name: str, spec: dict[str, object], labels: dict[str, str] | None = None
        ) -> tuple[str, str]:
    md: dict[str, object] = {"name": name}
    if labels:
        md["labels"] = labels
    return keys.resource_key(kind, name), json.dumps(
        {"kind": kind, "apiVersion": "projectcalico.org/v3", "metadata": md, "spec": spec})


def hep(name: str, iface: str | None, ips: tuple[str, ...] = (), node: str = ME,
        profiles: tuple[str, ...] = (), labels: dict[str, str] | None = None
        ) -> tuple[str, str]:
    spec: dict[str, object] = {"node": node, "expectedIPs": list(ips),
                               "profiles": list(profiles)}
    if iface is not None:
        spec["interfaceName"] = iface
    return _kv("HostEndpoint", name, spec, labels if labels is not None
               else {"host-endpoint": "true"})


def gnp(name: str, **spec: object) -> tuple[str, str]:
    full: dict[str, object] = {"selector": "has(host-endpoint)", "order": 10}
    full.update(spec)
    return _kv("GlobalNetworkPolicy", name, full)


DENY_ALL = gnp("deny-all", types=["Ingress", "Egress"])
ALLOW_80 = gnp("allow-80", types=["Ingress"], ingress=[
    {"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}])


def _snap(kvs: list[tuple[str, str]]) -> calc.Snapshot:
    snap = calc.Snapshot()
    for k, v in kvs:
        snap.apply(k, data.resource(k, v))
    return snap


def tables(kvs: list[tuple[str, str]], cfg: config.FelixConfig = CFG
           ) -> dict[str, dict[str, tuple[Rule, ...]]]:
    st = calc.compute(_snap([*BASE, *kvs]), cfg, IFACES)
    return {t: st.tables[(4, t)].chains for t in ("raw", "mangle", "filter")}


def bodies(rules: tuple[Rule, ...]) -> list[str]:
    return [r.body() for r in rules]


def _failsafe(ports: tuple[tuple[str, int], ...], side: str = "destination") -> list[str]:
    return [f"-p {p} -m multiport --{side}-ports {n} --jump ACCEPT" for p, n in ports]


def test_calicos_failsafe_defaults() -> None:
    assert tuple((p.protocol, p.port) for p in CFG.failsafe_inbound_host_ports) == FS_IN
    assert tuple((p.protocol, p.port) for p in CFG.failsafe_outbound_host_ports) == FS_OUT


def test_named_host_endpoint_without_policy_or_profile() -> None:
    t = tables([hep("h-eth0", "eth0")])
    filt, mangle, raw = t["filter"], t["mangle"], t["raw"]
    conntrack = ["-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
                 "-m conntrack --ctstate INVALID --jump DROP"]
    assert bodies(filt["cali-fh-eth0"]) == [
        *conntrack, "--jump cali-failsafe-in", "--jump MARK --set-mark 0/0x30000",
        '-m comment --comment "Drop if no profiles matched" --jump DROP']
    assert bodies(filt["cali-th-eth0"])[2] == "--jump cali-failsafe-out"
    assert bodies(filt["cali-fhfw-eth0"]) == [
        *conntrack, "--jump MARK --set-mark 0/0x30000",
        '-m comment --comment "Allow forwarded traffic by default" --jump MARK --set-mark'
        " 0x10000/0x10000",
        '-m comment --comment "Return for accepted forward traffic" --jump RETURN']
    assert "cali-thfw-eth0" in filt
    # Dispatch: only eth0, no end rule (other interfaces are not host endpoints).
    assert bodies(filt["cali-from-host-endpoint"]) == ["-i eth0 --goto cali-fh-eth0"]
    assert bodies(filt["cali-to-host-endpoint"]) == ["-o eth0 --goto cali-th-eth0"]
    assert bodies(filt["cali-from-hep-forward"]) == ["-i eth0 --goto cali-fhfw-eth0"]
    assert bodies(filt["cali-to-hep-forward"]) == ["-o eth0 --goto cali-thfw-eth0"]
    # Failsafes: Calico's defaults, by destination port.
    assert bodies(filt["cali-failsafe-in"]) == _failsafe(FS_IN)
    assert bodies(filt["cali-failsafe-out"]) == _failsafe(FS_OUT)
    # Mangle: egress for DNAT'd host traffic, RETURN as the allow action.
    assert bodies(mangle["cali-th-eth0"])[:4] == [
        "-m conntrack --ctstate RELATED,ESTABLISHED --jump MARK --set-mark 0x10000/0x10000",
        "-m conntrack --ctstate RELATED,ESTABLISHED --jump RETURN",
        "-m conntrack --ctstate INVALID --jump DROP", "--jump cali-failsafe-out"]
    assert bodies(mangle["cali-to-host-endpoint"]) == ["-o eth0 --goto cali-th-eth0"]
    assert mangle["cali-from-host-endpoint"] == ()      # no preDNAT policy
    assert "cali-fh-eth0" not in mangle
    assert bodies(mangle["cali-failsafe-in"]) == _failsafe(FS_IN)
    # Raw: nothing without doNotTrack policy.
    assert not [n for n in raw if n.startswith(("cali-th-", "cali-fh-", "cali-failsafe"))]
    assert raw["cali-from-host-endpoint"] == ()
    # Workloads keep their chains.
    assert "cali-tw-cali0000000001" in filt


def test_other_nodes_and_workload_interfaces_are_not_host_endpoints() -> None:
    t = tables([hep("elsewhere", "eth0", node="node2"), hep("wl", "cali0000000001")])
    assert t["filter"]["cali-from-host-endpoint"] == ()
    assert "cali-fh-eth0" not in t["filter"]


def test_expected_ips_resolution_and_lowest_name_wins() -> None:
    t = tables([hep("b-by-ip", None, ("172.16.0.1",)), hep("c-eth1", "eth1"),
                hep("a-other", "eth9", ("172.16.0.1",))])
    # a-other names another interface: it never matches by IP; b wins eth1 over c.
    heps = {k: v for k, v in _snap([*BASE, hep("b-by-ip", None, ("172.16.0.1",)),
                                    hep("c-eth1", "eth1"),
                                    hep("a-other", "eth9", ("172.16.0.1",)),
                                    ]).policy_index(ME).local_host_endpoints().items()}
    got = hostendpoint.resolve(heps, IFACES, ("cali",))
    assert {i: k[2] for i, k in got.items()} == {"eth1": "b-by-ip"}
    assert bodies(t["filter"]["cali-from-host-endpoint"]) == ["-i eth1 --goto cali-fh-eth1"]


def test_all_interfaces_endpoint_is_the_dispatch_fallback() -> None:
    t = tables([hep("all", "*"), hep("h-eth0", "eth0")])
    filt, mangle = t["filter"], t["mangle"]
    star = "cali-th-any-interface-at-all"       # exactly 28 characters: not hashed
    assert star in filt and "cali-fh-any-interface-at-all" in filt
    assert bodies(filt["cali-from-host-endpoint"]) == [
        "-i eth0 --goto cali-fh-eth0", "--goto cali-fh-any-interface-at-all"]
    assert bodies(filt["cali-to-host-endpoint"]) == [
        "-o eth0 --goto cali-th-eth0", f"--goto {star}"]
    fwd = bodies(filt["cali-from-hep-forward"])
    assert fwd[0] == "-i eth0 --goto cali-fhfw-eth0"
    assert fwd[1].startswith("--goto cali-fhfw-_") and fwd[1].split()[1] in filt  # hashed
    # Mangle egress never applies the `*` endpoint to traffic to local workloads.
    assert bodies(mangle["cali-to-host-endpoint"]) == [
        "-o eth0 --goto cali-th-eth0",
        '-m comment --comment "Skip egress WHEP policy for traffic to local workload"'
        " -o cali+ --jump RETURN", f"--goto {star}"]


def test_policy_by_host_endpoint_label_after_the_failsafes() -> None:
    t = tables([hep("h-eth0", "eth0"), DENY_ALL, ALLOW_80])
    filt, mangle = t["filter"], t["mangle"]
    fh = bodies(filt["cali-fh-eth0"])
    assert fh.index("--jump cali-failsafe-in") < fh.index(
        '-m comment --comment "Start of tier default" --jump MARK --set-mark 0/0x20000')
    # One tier, order 10 for both, ties by name: allow-80 before deny-all (a group chain,
    # same selector).
    group = [b.split()[-1] for b in fh if "--jump cali-gi-" in b]
    assert group and bodies(filt[group[0]]) == [
        "--jump cali-pi-gnp/allow-80", "-m mark --mark 0/0x30000 --jump cali-pi-gnp/deny-all"]
    assert "cali-pi-gnp/allow-80" in filt and "cali-pi-gnp/deny-all" in filt
    assert bodies(filt["cali-pi-gnp/allow-80"])[0].endswith(
        "-p tcp -m multiport --destination-ports 80 --jump MARK --set-mark 0x10000/0x10000")
    assert ('-m comment --comment "End of tier default. Drop if no policies passed packet"'
            " -m mark --mark 0/0x20000 --jump DROP") in fh
    # Egress: deny-all only, in filter and in mangle (DNAT'd host traffic).
    assert "-m mark --mark 0/0x20000 --jump cali-po-gnp/deny-all" in bodies(filt["cali-th-eth0"])
    assert "-m mark --mark 0/0x20000 --jump cali-po-gnp/deny-all" in bodies(
        mangle["cali-th-eth0"])
    assert "cali-po-gnp/deny-all" in mangle and "cali-pi-gnp/allow-80" not in mangle
    # Not applyOnForward: forwarded traffic still allowed by default; workloads untouched.
    assert "Allow forwarded traffic by default" in str(filt["cali-fhfw-eth0"])
    assert "Start of tier" not in str(filt["cali-tw-cali0000000001"])


def test_profiles_of_host_endpoints() -> None:
    t = tables([hep("h-eth0", "eth0", profiles=("projectcalico-default-allow",))])
    fh = bodies(t["filter"]["cali-fh-eth0"])
    pri = profile_chain_name(True, "projectcalico-default-allow")   # hashed: > 28
    assert fh[-3:] == [
        f"--jump {pri}",
        '-m comment --comment "Return if profile accepted" -m mark --mark 0x10000/0x10000'
        " --jump RETURN", '-m comment --comment "Drop if no profiles matched" --jump DROP']
    assert bodies(t["filter"][pri]) == [
        '-m comment --comment "Profile projectcalico-default-allow ingress" --jump MARK'
        " --set-mark 0x10000/0x10000"]
    assert profile_chain_name(False, "projectcalico-default-allow") in t["mangle"]


def test_do_not_track_goes_to_raw_with_notrack() -> None:
    untracked = gnp("untracked", doNotTrack=True, applyOnForward=True, types=["Ingress"],
                    ingress=[{"action": "Allow", "protocol": "UDP",
                              "destination": {"ports": [53]}}])
    wl_all = gnp("untracked-all", selector="all()", doNotTrack=True, applyOnForward=True,
                 types=["Ingress"], ingress=[{"action": "Deny"}])
    t = tables([hep("h-eth0", "eth0"), untracked, wl_all])
    raw, filt = t["raw"], t["filter"]
    fh = bodies(raw["cali-fh-eth0"])
    assert fh[0] == "--jump cali-failsafe-in"                   # no conntrack in raw
    assert fh[2] == ('-m comment --comment "Start of tier default" --jump MARK --set-mark'
                     " 0/0x20000")
    assert "-m mark --mark 0x10000/0x10000 --jump NOTRACK" in fh
    assert "Drop" not in str(raw["cali-fh-eth0"])               # never drops in raw
    assert "cali-pi-gnp/untracked" in raw
    assert bodies(raw["cali-from-host-endpoint"]) == ["-i eth0 --goto cali-fh-eth0"]
    assert bodies(raw["cali-to-host-endpoint"]) == ["-o eth0 --goto cali-th-eth0"]
    # Raw failsafes also let replies through by source port.
    assert bodies(raw["cali-failsafe-in"]) == [*_failsafe(FS_IN), *_failsafe(FS_OUT, "source")]
    assert bodies(raw["cali-failsafe-out"]) == [*_failsafe(FS_OUT), *_failsafe(FS_IN, "source")]
    # Not in the filter table's normal chains, and never for workloads.
    assert "untracked" not in str(filt["cali-fh-eth0"])
    assert "Start of tier" not in str(filt["cali-tw-cali0000000001"])


def test_do_not_track_is_ignored_for_all_interfaces() -> None:
    untracked = gnp("untracked", doNotTrack=True, applyOnForward=True, types=["Ingress"],
                    ingress=[{"action": "Allow"}])
    raw = tables([hep("all", "*"), untracked])["raw"]
    assert not [n for n in raw if n.startswith(("cali-th-", "cali-fh-"))]


def test_pre_dnat_goes_to_mangle() -> None:
    pre = gnp("pre", preDNAT=True, applyOnForward=True, types=["Ingress"],
              ingress=[{"action": "Deny", "protocol": "TCP", "destination": {"ports": [30080]}}])
    t = tables([hep("h-eth0", "eth0"), pre])
    mangle, filt = t["mangle"], t["filter"]
    fh = bodies(mangle["cali-fh-eth0"])
    assert fh[:4] == ["-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
                      "-m conntrack --ctstate INVALID --jump DROP",
                      "--jump cali-failsafe-in", "--jump MARK --set-mark 0/0x30000"]
    assert "-m mark --mark 0/0x20000 --jump cali-pi-gnp/pre" in fh
    assert "End of tier" not in str(mangle["cali-fh-eth0"])   # default Pass: filter still runs
    assert "cali-pi-gnp/pre" in mangle
    assert bodies(mangle["cali-from-host-endpoint"]) == ["-i eth0 --goto cali-fh-eth0"]
    assert "gnp/pre" not in str(filt["cali-fh-eth0"]) + str(filt["cali-fhfw-eth0"])


def test_apply_on_forward_in_the_forward_chains() -> None:
    fwd = gnp("fwd", applyOnForward=True, types=["Ingress"],
              ingress=[{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}])
    filt = tables([hep("h-eth0", "eth0"), fwd])["filter"]
    fhfw = bodies(filt["cali-fhfw-eth0"])
    assert "-m mark --mark 0/0x20000 --jump cali-pi-gnp/fwd" in fhfw
    assert "Allow forwarded traffic by default" not in str(filt["cali-fhfw-eth0"])
    assert "--jump cali-failsafe" not in str(filt["cali-fhfw-eth0"])
    assert "-m mark --mark 0/0x20000 --jump cali-pi-gnp/fwd" in bodies(filt["cali-fh-eth0"])
    # The egress forward chain has no tier for this ingress-only policy, and no default
    # allow either (there is a forward tier).
    assert "cali-po-gnp/fwd" not in str(filt["cali-thfw-eth0"])
    assert "Allow forwarded traffic by default" not in str(filt["cali-thfw-eth0"])


def test_expected_ips_are_ip_set_members() -> None:
    sel = gnp("from-hosts", selector="all()", types=["Ingress"], ingress=[
        {"action": "Allow", "source": {"selector": "has(host-endpoint)"}}])
    st = calc.compute(_snap([*BASE, hep("h-eth0", "eth0", ("192.168.0.1",)),
                             hep("other", "eth0", ("192.168.0.2",), node="node2"), sel]),
                      CFG, IFACES)
    name = set_name(4, selector_uid("has(host-endpoint)"))
    assert st.ipsets[name].members == frozenset({"192.168.0.1/32", "192.168.0.2/32"})


def test_failsafe_cidrs_follow_the_ip_version() -> None:
    ports = (hostendpoint.FailsafePort("tcp", 22, "10.0.0.0/8"),
             hostendpoint.FailsafePort("tcp", 22, "fd00::/8"),
             hostendpoint.FailsafePort("udp", 68))
    v4 = hostendpoint.failsafe_chains(4, ports, ports)
    assert bodies(v4["cali-failsafe-in"]) == [
        "-p tcp -m multiport --destination-ports 22 --source 10.0.0.0/8 --jump ACCEPT",
        "-p udp -m multiport --destination-ports 68 --jump ACCEPT"]
    assert bodies(v4["cali-failsafe-out"])[0] == (
        "-p tcp -m multiport --destination-ports 22 --destination 10.0.0.0/8 --jump ACCEPT")
    v6 = hostendpoint.failsafe_chains(6, ports, (), raw=True)
    assert bodies(v6["cali-failsafe-in"]) == [
        "-p tcp -m multiport --destination-ports 22 --source fd00::/8 --jump ACCEPT",
        "-p udp -m multiport --destination-ports 68 --jump ACCEPT"]
    assert bodies(v6["cali-failsafe-out"]) == [
        "-p tcp -m multiport --source-ports 22 --destination fd00::/8 --jump ACCEPT",
        "-p udp -m multiport --source-ports 68 --jump ACCEPT"]


def test_empty_failsafe_list_disables_them() -> None:
    cfg = config.load({"FELIX_FELIXHOSTNAME": ME, "FELIX_IPV6SUPPORT": "false",
                       "FELIX_FAILSAFEINBOUNDHOSTPORTS": "none"})
    filt = tables([hep("h-eth0", "eth0")], cfg)["filter"]
    assert filt["cali-failsafe-in"] == ()
    assert filt["cali-failsafe-out"]


def test_dispatch_prefix_tree() -> None:
    chains = hostendpoint.dispatch_chain("cali-from-host-endpoint", "-i", "cali-fh-",
                                         ["eth0", "eth1", "bond0"], ())
    # No common prefix: bins by first character, `e` holds two names.
    assert bodies(chains["cali-from-host-endpoint"]) == [
        "-i bond0 --goto cali-fh-bond0", "-i e+ --goto cali-from-host-endpoint-e"]
    assert bodies(chains["cali-from-host-endpoint-e"]) == [
        "-i eth0 --goto cali-fh-eth0", "-i eth1 --goto cali-fh-eth1"]
    chains = hostendpoint.dispatch_chain("cali-from-host-endpoint", "-i", "cali-fh-",
                                         ["eth0", "eth1", "eth10"], (Rule("", "--goto x"),))
    assert bodies(chains["cali-from-host-endpoint"]) == [
        "-i eth0 --goto cali-fh-eth0", "-i eth1+ --goto cali-from-host-endpoint-1",
        "--goto x"]
    assert bodies(chains["cali-from-host-endpoint-1"]) == [
        "-i eth1 --goto cali-fh-eth1", "-i eth10 --goto cali-fh-eth10", "--goto x"]


def test_incremental_equals_fresh_whatever_the_order() -> None:
    items = [hep("h-eth0", "eth0", ("192.168.0.1",), profiles=("kns.default",)), DENY_ALL,
             ALLOW_80, gnp("pre", preDNAT=True, applyOnForward=True, types=["Ingress"],
                           ingress=[{"action": "Deny"}])]
    snap = _snap(BASE)
    calc.compute(snap, CFG, IFACES)
    for k, v in items:
        snap.apply(k, data.resource(k, v))
        calc.compute(snap, CFG, IFACES)
    inc = calc.compute(snap, CFG, IFACES)
    fresh = calc.compute(_snap([*reversed(items), *BASE]), CFG, IFACES)
    assert inc.tables == fresh.tables and inc.ipsets == fresh.ipsets
    # Removing the policy and then the endpoint brings the host back to no host endpoints.
    before = calc.compute(_snap(BASE), CFG, IFACES)
    for k, _ in items:
        snap.apply(k, None)
        calc.compute(snap, CFG, IFACES)
    after = calc.compute(snap, CFG, IFACES)
    assert after.tables == before.tables and after.ipsets == before.ipsets


def test_required_label_of_composed_selectors() -> None:
    from felix.calc.label_restriction import required_label
    from libcalico.model import selector as sel
    ns = "projectcalico.org/namespace"
    assert required_label(sel.parse(f"(app == 'a') && {ns} == 'prod'")) == (ns, "prod")
    assert required_label(sel.parse("app == 'a' && (tier == 'x' && has(b))")) == ("app", "a")
    for text in ("all()", "app == 'a' || app == 'b'", "!(app == 'a')", "has(x)",
                 "app != 'a'"):
        assert required_label(sel.parse(text)) is None, text


def test_restriction_index_matches_brute_force() -> None:
    """Many policies and endpoints: every endpoint's policies and every IP set's members are
    what evaluating every selector against every endpoint gives."""
    import random

    from felix.calc.policy_entries import key_of
    from felix.calc.policy_index import PolicyIndex
    from libcalico.model import selector as sel
    rnd = random.Random(7)
    values = ["a", "b", "c"]
    selectors = ["all()", "app == 'a'", "app == 'b' && tier == 'a'", "tier == 'c' || app == 'a'",
                 "has(tier)", "!has(app)", "app in {'a', 'c'}", "projectcalico.org/namespace "
                 "== 'ns1' && app == 'b'"]
    snap = calc.Snapshot()
    index = PolicyIndex(ME)
    kvs: list[tuple[str, str]] = []
    for j, text in enumerate(selectors):
        kvs.append(_kv("GlobalNetworkPolicy", f"p{j}", {
            "selector": text, "types": ["Ingress"],
            "ingress": [{"action": "Allow", "source": {"selector": selectors[-1 - j]}}]}))
    for i in range(40):
        labels = {k: rnd.choice(values) for k in ("app", "tier") if rnd.random() < 0.7}
        k, v = data.wep(f"w{i}", ME if i % 2 else "node2", f"cali{i:011d}", [f"10.65.0.{i}/32"])
        doc = json.loads(v)
        doc["metadata"]["labels"] = labels
        doc["metadata"]["namespace"] = f"ns{i % 2}"
        kvs.append((keys.resource_key("WorkloadEndpoint", f"w{i}", f"ns{i % 2}"),
                    json.dumps(doc)))
    rnd.shuffle(kvs)
    for k, v in kvs:
        res = data.resource(k, v)
        snap.apply(k, res)
        if "workloadendpoints" in k:
            index.update_endpoint(key_of(res), res)  # type: ignore[arg-type]
        else:
            index.update_policy(key_of(res), res)  # type: ignore[arg-type]
    for key in index.local_endpoints():
        have = index.labels(key)
        want = {f"p{j}" for j, t in enumerate(selectors)
                if sel.parse(policy_selector(t)).evaluate(have)}
        got = {r.name for tier in index.plan(key).tiers for r in tier.ingress}
        assert got == want, (key, have)
    for uid, (spec, members) in index.ipsets().items():
        parsed = sel.parse(spec.selector)
        want_m = {n for k in _all_endpoint_keys(index) if parsed.evaluate(index.labels(k))
                  for n in index._holders[k].nets}
        assert members == want_m, uid


def policy_selector(text: str) -> str:
    from felix.calc.policy_selectors import canonical, policy_selector_text
    return canonical(policy_selector_text(text, None, "", ""))


def _all_endpoint_keys(index: object) -> list[tuple[str, str, str]]:
    return list(index._holders)  # type: ignore[attr-defined]
