"""Felix's policy calculation (felix/calc/policy_*.py): the reference's worked example byte for
byte (chains, rule hashes, IP set names), rule rendering cases, selector composition, the
incremental index (which policies apply, tiers, staged, IP set members) and its order
independence."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from felix.calc import policy_chains as pc
from felix.calc import policy_rules as pr
from felix.calc import policy_selectors as ps
from felix.calc.parsed_rule import parse_rule
from felix.calc.policy_entries import key_of
from felix.calc.policy_index import PolicyIndex
from felix.calc.policy_state import PolicyState, render
from felix.drivers.iptables.rules import Rule, rule_hashes
from libcalico.model import resources as r
from tests.fixtures.resources import resource as _res

V3 = "projectcalico.org/v3"


def _wep(pod: str, ip: str, labels: dict[str, str], node: str = "node1", ns: str = "prod",
         iface: str | None = None, profiles: tuple[str, ...] | None = None,
         ports: list[dict[str, Any]] | None = None, sa: str = "default") -> r.WorkloadEndpoint:
    spec: dict[str, Any] = {
        "orchestrator": "k8s", "node": node, "pod": pod, "endpoint": "eth0",
        "ipNetworks": [ip], "interfaceName": iface or f"cali{abs(hash(pod)) % 10**11:011d}",
        "profiles": list(profiles if profiles is not None else (f"kns.{ns}", f"ksa.{ns}.{sa}")),
        "serviceAccountName": sa}
    if ports:
        spec["ports"] = ports
    name = f"{node}-k8s-{pod.replace('-', '--')}-eth0"
    wep: r.WorkloadEndpoint = _res(
        "WorkloadEndpoint", name, spec, ns,
        {"projectcalico.org/namespace": ns, "projectcalico.org/orchestrator": "k8s", **labels})
    return wep


def _lines(chain: str, rules: tuple[Rule, ...] | list[Rule]) -> list[str]:
    return [f"-A {chain} -m comment --comment \"cali:{h}\"" + (f" {x.body()}" if x.body() else "")
            for h, x in zip(rule_hashes(chain, rules), rules, strict=True)]


# ---------------------------------------------------------------------------------------------
# The worked example of ../shared/reference/policy.md §3.7

DB_ALLOW_RULES = [
    {"action": "Allow", "protocol": "TCP",
     "source": {"selector": "projectcalico.org/orchestrator == 'k8s' && app == 'api'"},
     "destination": {"ports": [5432]}},
    {"action": "Allow", "protocol": "TCP",
     "source": {"nets": ["10.0.0.0/8"], "notNets": ["10.9.0.0/16"]},
     "destination": {"ports": ["metrics"]}},
]
POLICY_CHAIN = """\
-A cali-pi-knp/prod/db-allow -m comment --comment "cali:0l6YiPH1mGLigIRc" -m comment --comment "KubernetesNetworkPolicy prod/db-allow ingress" -p tcp -m set --match-set cali40s:n1E6BUPvbEuLBFQeUQoiO8_ src -m multiport --destination-ports 5432 --jump MARK --set-mark 0x10000/0x10000
-A cali-pi-knp/prod/db-allow -m comment --comment "cali:Hpf_qufVTtZZFoIJ" -m mark --mark 0x10000/0x10000 --jump RETURN
-A cali-pi-knp/prod/db-allow -m comment --comment "cali:qHQ7GWyL7Gq9wkbg" --jump MARK --set-mark 0x80000/0x180000
-A cali-pi-knp/prod/db-allow -m comment --comment "cali:JNQWOv4y0iUHCtZr" --source 10.9.0.0/16 --jump MARK --set-mark 0/0x80000
-A cali-pi-knp/prod/db-allow -m comment --comment "cali:MKQ0TTmbI0yVjmXr" -p tcp --source 10.0.0.0/8 -m set --match-set cali40n:Ng9a6LX2Rpo1BadzfeJlUKu dst,dst -m mark --mark 0x80000/0x80000 --jump MARK --set-mark 0x10000/0x10000"""  # noqa: E501
ENDPOINT_CHAIN = """\
-A cali-tw-cali20aafc107a9 -m comment --comment "cali:R02Z8HQxEc96CltZ" -m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT
-A cali-tw-cali20aafc107a9 -m comment --comment "cali:im8qd8BapLDk5fKu" -m conntrack --ctstate INVALID --jump DROP
-A cali-tw-cali20aafc107a9 -m comment --comment "cali:Q0whWxB43il4LuZG" --jump MARK --set-mark 0/0x30000
-A cali-tw-cali20aafc107a9 -m comment --comment "cali:JHcUWd9mjVmibIdC" -m comment --comment "Start of tier default" --jump MARK --set-mark 0/0x20000
-A cali-tw-cali20aafc107a9 -m comment --comment "cali:fBoBJcdnoFNrxP02" -m mark --mark 0/0x20000 --jump cali-pi-knp/prod/db-allow
-A cali-tw-cali20aafc107a9 -m comment --comment "cali:YjjmAQNcbr_W7bQF" -m comment --comment "Return if policy accepted" -m mark --mark 0x10000/0x10000 --jump RETURN
-A cali-tw-cali20aafc107a9 -m comment --comment "cali:sntl73HjHOlxuM2U" -m comment --comment "End of tier default. Drop if no policies passed packet" -m mark --mark 0/0x20000 --jump DROP
-A cali-tw-cali20aafc107a9 -m comment --comment "cali:4DBZeauZIG1FlYJ8" --jump cali-pri-kns.prod
-A cali-tw-cali20aafc107a9 -m comment --comment "cali:EaoAYKyRDUAQ3Usn" -m comment --comment "Return if profile accepted" -m mark --mark 0x10000/0x10000 --jump RETURN
-A cali-tw-cali20aafc107a9 -m comment --comment "cali:rh7K05FQxERoY2Q7" --jump cali-pri-ksa.prod.default
-A cali-tw-cali20aafc107a9 -m comment --comment "cali:YeVP1SKNy4_jaYc1" -m comment --comment "Return if profile accepted" -m mark --mark 0x10000/0x10000 --jump RETURN
-A cali-tw-cali20aafc107a9 -m comment --comment "cali:DzG7kwZfcgIBUQJe" -m comment --comment "Drop if no profiles matched" --jump DROP"""  # noqa: E501


def _db_allow() -> r.NetworkPolicy:
    """The converted Kubernetes policy, as kube-controllers mirrors it into etcd."""
    pol: r.NetworkPolicy = _res("NetworkPolicy", "knp.default.db-allow", {
        "order": 1000, "selector": "projectcalico.org/orchestrator == 'k8s' && app == 'db'",
        "types": ["Ingress"], "ingress": DB_ALLOW_RULES}, "prod")
    return pol


def _example_index() -> PolicyIndex:
    idx = PolicyIndex("node1")
    idx.update_tier("default", r.builtin_tier("default"))
    idx.update_profile("kns.prod", _res("Profile", "kns.prod", {
        "ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]}))
    idx.update_profile("ksa.prod.default", _res("Profile", "ksa.prod.default", {}))
    db = _wep("db-0", "10.244.1.5/32", {"app": "db"}, iface="cali20aafc107a9",
              ports=[{"name": "metrics", "protocol": "TCP", "port": 9187}])
    api = _wep("api-0", "10.244.2.7/32", {"app": "api"}, node="node2")
    other_ns = _wep("api-1", "10.244.2.8/32", {"app": "api"}, node="node2", ns="dev")
    for w in (db, api, other_ns):
        idx.update_endpoint(key_of(w), w)
    pol = _db_allow()
    idx.update_policy(key_of(pol), pol)
    return idx


def test_worked_example_policy_chain_byte_for_byte() -> None:
    ref = pc.PolicyRef("KubernetesNetworkPolicy", "db-allow", "prod")
    rules = tuple(parse_rule(x, "prod") for x in _db_allow().spec.ingress)
    chains = pc.policy_chains(ref, rules, (), 4)
    assert "\n".join(_lines("cali-pi-knp/prod/db-allow",
                            chains["cali-pi-knp/prod/db-allow"])) == POLICY_CHAIN
    # IPv6: rule 2's nets are all IPv4, so only rule 1 (with the cali60 set) remains.
    v6 = pc.policy_chains(ref, rules, (), 6)["cali-pi-knp/prod/db-allow"]
    assert [x.body() for x in v6] == [
        '-m comment --comment "KubernetesNetworkPolicy prod/db-allow ingress" -p tcp -m set'
        " --match-set cali60s:n1E6BUPvbEuLBFQeUQoiO8_ src -m multiport --destination-ports"
        " 5432 --jump MARK --set-mark 0x10000/0x10000"]


def test_worked_example_ipsets() -> None:
    rules = [parse_rule(x, "prod") for x in _db_allow().spec.ingress]
    sel_set, named = rules[0].ipsets[0], rules[1].ipsets[0]
    assert sel_set.selector == ('(projectcalico.org/namespace == "prod" && '
                                '(projectcalico.org/orchestrator == "k8s" && app == "api"))')
    assert sel_set.uid == "s:n1E6BUPvbEuLBFQeUQoiO8_fVfIz0icPsG6FYg"
    assert ps.set_name(4, sel_set.uid) == "cali40s:n1E6BUPvbEuLBFQeUQoiO8_"
    assert (sel_set.set_type, named.set_type) == ("hash:net", "hash:ip,port")
    assert ps.selector_uid("all()") == "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"
    assert named.uid == "n:Ng9a6LX2Rpo1BadzfeJlUKusThJqQS-FA9Yp3g"
    assert (named.selector, named.protocol, named.port_name) == ("all()", "tcp", "metrics")
    idx = _example_index()
    state = render(idx, 4)
    assert state.ipsets["cali40s:n1E6BUPvbEuLBFQeUQoiO8_"].members == {"10.244.2.7/32"}
    assert state.ipsets["cali40n:Ng9a6LX2Rpo1BadzfeJlUKu"].members == {"10.244.1.5,tcp:9187"}


def test_worked_example_endpoint_and_profile_chains() -> None:
    idx = _example_index()
    db_key = next(k for k in idx.local_endpoints() if "db" in k[2])
    plan = idx.plan(db_key)
    assert plan == pc.EndpointPlan("cali20aafc107a9", (pc.TierPlan(
        "default", "Deny", ingress=(pc.PolicyRef("KubernetesNetworkPolicy", "db-allow",
                                                  "prod"),)),),
        ("kns.prod", "ksa.prod.default"))
    state = render(idx, 4)
    assert "\n".join(_lines("cali-tw-cali20aafc107a9",
                            state.chains["cali-tw-cali20aafc107a9"])) == ENDPOINT_CHAIN
    assert _lines("cali-pri-kns.prod", state.chains["cali-pri-kns.prod"]) == [
        '-A cali-pri-kns.prod -m comment --comment "cali:lf-f_jNcmFQW8C9u" -m comment'
        ' --comment "Profile kns.prod ingress" --jump MARK --set-mark 0x10000/0x10000']
    fw = state.chains["cali-fw-cali20aafc107a9"]
    assert "Start of tier" not in str(fw)  # no policy applies to egress
    assert [x.action for x in fw][-5:] == [
        "--jump cali-pro-kns.prod", "--jump RETURN", "--jump cali-pro-ksa.prod.default",
        "--jump RETURN", "--jump DROP"]
    # Only referenced chains: the policy's cali-po- (no egress) is not written.
    assert "cali-pi-knp/prod/db-allow" in state.chains
    assert "cali-po-knp/prod/db-allow" not in state.chains


def test_hashed_chain_names() -> None:
    ref = pc.PolicyRef("NetworkPolicy", "allow-frontend-to-backend", "prod")
    assert pc.policy_chain_name(True, ref) == "cali-pi-_nm8NlkKXpS29JrJJ-CR"
    assert pc.PolicyRef("GlobalNetworkPolicy", "g").id == "gnp/g"
    assert pc.policy_chain_name(False, pc.PolicyRef("GlobalNetworkPolicy", "g")) == \
        "cali-po-gnp/g"


# ---------------------------------------------------------------------------------------------
# Rule rendering


def _render(rule: dict[str, Any], version: int = 4, namespace: str | None = None
            ) -> list[str]:
    model = _res("GlobalNetworkPolicy", "p", {"ingress": [rule]}).spec.ingress[0]
    return [x.body() for x in pr.render_rule(version, parse_rule(model, namespace))]


def test_actions() -> None:
    assert _render({"action": "Deny", "protocol": "UDP"}) == [
        "-p udp --jump MARK --set-mark 0x40000/0x40000",
        "-m mark --mark 0x40000/0x40000 --jump DROP"]
    assert _render({"action": "Pass"}) == [
        "--jump MARK --set-mark 0x20000/0x20000", "-m mark --mark 0x20000/0x20000 --jump RETURN"]
    assert _render({"action": "Log", "protocol": 6}) == [
        '-p 6 --jump LOG --log-prefix "calico-packet: " --log-level 5']


def test_many_ports_split_into_multiport_blocks() -> None:
    ports: list[Any] = [*range(1000, 1016), "2000:2010"]
    out = _render({"action": "Allow", "protocol": "TCP", "destination": {"ports": ports}})
    assert out[0] == "--jump MARK --set-mark 0x0/0x180000"
    assert out[1] == ("-p tcp -m multiport --destination-ports "
                      + ",".join(str(p) for p in range(1000, 1015))
                      + " --jump MARK --set-mark 0x80000/0x80000")
    assert out[2] == ("-p tcp -m multiport --destination-ports 1015,2000:2010"
                      " --jump MARK --set-mark 0x80000/0x80000")
    assert out[3] == ("-p tcp -m mark --mark 0x80000/0x80000"
                      " --jump MARK --set-mark 0x10000/0x10000")


def test_two_positive_blocks_and_named_port_with_selector() -> None:
    out = _render({"action": "Allow", "protocol": "TCP",
                   "source": {"nets": ["10.0.0.0/8", "192.168.0.0/16"]},
                   "destination": {"selector": "app == 'x'", "ports": [80, "web"]}})
    x_uid = ps.selector_uid('app == "x"')
    web = ps.set_name(4, ps.named_port_uid('app == "x"', "tcp", "web"))
    assert out == [
        "--jump MARK --set-mark 0x0/0x180000",
        "-p tcp -m multiport --destination-ports 80 --jump MARK --set-mark 0x80000/0x80000",
        f"-m set --match-set {web} dst,dst --jump MARK --set-mark 0x80000/0x80000",
        "--source 10.0.0.0/8 --jump MARK --set-mark 0x100000/0x100000",
        "--source 192.168.0.0/16 --jump MARK --set-mark 0x100000/0x100000",
        "-m mark --mark 0/0x100000 --jump MARK --set-mark 0/0x80000",
        f"-p tcp -m set --match-set {ps.set_name(4, x_uid)} dst -m mark --mark 0x80000/0x80000"
        " --jump MARK --set-mark 0x10000/0x10000",
        "-m mark --mark 0x10000/0x10000 --jump RETURN"]


def test_negations_icmp_and_families() -> None:
    assert _render({"action": "Allow", "protocol": "ICMP", "icmp": {"type": 8, "code": 0},
                    "notProtocol": "UDP", "source": {"notNets": ["10.1.0.0/16"]},
                    "destination": {"notSelector": "has(a)"}})[0] == (
        "-p icmp -m icmp --icmp-type 8/0 ! -p udp ! --source 10.1.0.0/16 -m set ! --match-set "
        f"{ps.set_name(4, ps.selector_uid('has(a)'))} dst --jump MARK --set-mark 0x10000/0x10000")
    assert _render({"action": "Allow", "protocol": "ICMP"}, version=6) == []
    assert _render({"action": "Allow", "protocol": "ICMPv6", "notICMP": {"type": 128}},
                   version=6)[0] == (
        "-p icmpv6 -m icmp6 ! --icmpv6-type 128 --jump MARK --set-mark 0x10000/0x10000")
    assert _render({"action": "Allow", "ipVersion": 6}, version=4) == []
    assert _render({"action": "Allow", "source": {"nets": ["fd00::/64"]}}, version=4) == []
    assert _render({"action": "Deny", "destination": {"notPorts": ["web"]}, "protocol": "UDP"}
                   )[0].startswith("-p udp -m set ! --match-set cali40n:")


def test_chain_assembly_strips_trailing_returns_and_comments() -> None:
    rules = tuple(parse_rule(x, None) for x in _res("GlobalNetworkPolicy", "p", {"ingress": [
        {"action": "Deny", "protocol": "TCP", "metadata": {"annotations": {"why": "a b@c"}}},
        {"action": "Allow"}]}).spec.ingress)
    out = pr.render_rules(4, rules, "GlobalNetworkPolicy p ingress")
    assert [x.body() for x in out] == [
        '-m comment --comment "why=a b_c" -m comment --comment "GlobalNetworkPolicy p ingress"'
        " -p tcp --jump MARK --set-mark 0x40000/0x40000",
        '-m comment --comment "why=a b_c" -m mark --mark 0x40000/0x40000 --jump DROP',
        "--jump MARK --set-mark 0x10000/0x10000"]
    assert [x.body() for x in pr.render_rules(4, (), "Profile x egress")] == [
        '-m comment --comment "Profile x egress"']


# ---------------------------------------------------------------------------------------------
# Selector composition (§1.5)


def test_policy_selectors() -> None:
    assert ps.policy_selector("app == 'db'", "prod") == \
        '(app == "db" && projectcalico.org/namespace == "prod")'
    assert ps.policy_selector("", "prod") == 'projectcalico.org/namespace == "prod"'
    assert ps.policy_selector("", None) == "all()"
    assert ps.policy_selector("has(x)", None, "team == 'a'") == \
        '(has(x) && pcns.team == "a")'
    assert ps.policy_selector("all()", None, "all()") == \
        "(has(projectcalico.org/namespace) && has(projectcalico.org/namespace))"
    assert ps.policy_selector("", None, "", "role == 'x'") == 'pcsa.role == "x"'


def test_entity_selectors() -> None:
    def ent(**fields: Any) -> Any:
        return _res("GlobalNetworkPolicy", "p", {"ingress": [
            {"action": "Allow", "source": fields}]}).spec.ingress[0].source

    assert ps.entity_selectors(ent(nets=["10.0.0.0/8"]), "prod") == ("", "")
    assert ps.entity_selectors(ent(notSelector="has(a)"), "prod") == (
        '(projectcalico.org/namespace == "prod" && !has(a))', "")
    assert ps.entity_selectors(ent(notSelector="has(a)"), None) == ("", "has(a)")
    assert ps.entity_selectors(ent(namespaceSelector="global()"), "prod") == (
        "!has(projectcalico.org/namespace)", "")
    assert ps.entity_selectors(ent(namespaceSelector="all()", selector="app == 'x'"), None) \
        == ('(has(projectcalico.org/namespace) && app == "x")', "")
    assert ps.entity_selectors(ent(serviceAccounts={"names": ["a", "b"]}), None) == (
        'projectcalico.org/serviceaccount in {"a", "b"}', "")
    assert ps.entity_selectors(ent(selector="has(x)", serviceAccounts={
        "selector": "role == 'r'"}), "prod") == (
        '(projectcalico.org/namespace == "prod" && (has(x) && pcsa.role == "r"))', "")


# ---------------------------------------------------------------------------------------------
# The index: tiers, order, staged, membership, incremental updates


def _gnp(name: str, spec: dict[str, Any], kind: str = "GlobalNetworkPolicy") -> Any:
    return _res(kind, name, spec)


def test_tiers_order_then_name_staged_and_pass() -> None:
    idx = PolicyIndex("node1")
    w = _wep("web", "10.244.1.9/32", {"app": "web"}, iface="caliweb")
    idx.update_endpoint(key_of(w), w)
    idx.update_tier("security", _res("Tier", "security", {"order": 100}))
    idx.update_tier("edge", _res("Tier", "edge", {"order": 5, "defaultAction": "Pass"}))
    idx.update_tier("default", r.builtin_tier("default"))
    for name, spec in (
        ("b", {"tier": "security", "order": 10, "ingress": [{"action": "Deny"}]}),
        ("a", {"tier": "security", "order": 10, "egress": [{"action": "Deny"}]}),
        ("c", {"tier": "security", "ingress": [{"action": "Allow"}]}),
        ("e", {"tier": "edge", "selector": "app == 'web'", "ingress": [{"action": "Pass"}]}),
        ("z", {"tier": "ghost", "selector": "app == 'web'"}),
        ("n", {"selector": "app == 'other'"}),
    ):
        idx.update_policy(("GlobalNetworkPolicy", "", name), _gnp(name, spec))
    staged = _gnp("s", {"tier": "edge", "egress": [{"action": "Deny"}]},
                  "StagedGlobalNetworkPolicy")
    idx.update_policy(key_of(staged), staged)
    plan = idx.plan(key_of(w))
    g = pc.PolicyRef
    assert plan.tiers == (
        pc.TierPlan("edge", "Pass", ingress=(g("GlobalNetworkPolicy", "e"),),
                    egress=(g("StagedGlobalNetworkPolicy", "s"),)),
        pc.TierPlan("security", "Deny",
                    ingress=(g("GlobalNetworkPolicy", "b"), g("GlobalNetworkPolicy", "c")),
                    egress=(g("GlobalNetworkPolicy", "a"),)),
        pc.TierPlan("ghost", "Deny", ingress=(g("GlobalNetworkPolicy", "z"),)),
    )
    chains = pc.endpoint_chains(plan)
    fw = [x.body() for x in chains["cali-fw-caliweb"]]
    tw = [x.body() for x in chains["cali-tw-caliweb"]]
    # edge: Pass default -> no end-of-tier drop; staged s is listed but never jumped to.
    assert '-m comment --comment "Start of tier edge" --jump MARK --set-mark 0/0x20000' in fw
    assert not any("cali-po-sgnp" in x for x in fw)
    assert not any("End of tier edge" in x for x in fw + tw)
    assert any("End of tier security" in x for x in tw)
    # b and c share their selector (all()): one group chain; e and z are inlined.
    group = pc.PolicyGroup(True, (g("GlobalNetworkPolicy", "b", selector="all()"),
                                  g("GlobalNetworkPolicy", "c", selector="all()")), "all()")
    jumps = [x.split("--jump ")[1] for x in tw if "--jump cali-" in x]
    assert jumps == ["cali-pi-gnp/e", group.chain_name, "cali-pi-gnp/z",
                     "cali-pri-kns.prod", "cali-pri-ksa.prod.default"]
    assert [x.body() for x in chains[group.chain_name]] == [
        "--jump cali-pi-gnp/b", "-m mark --mark 0/0x30000 --jump cali-pi-gnp/c"]
    state = render(idx, 4)
    assert "cali-pi-gnp/n" not in state.chains  # applies to no local endpoint
    assert not any("sgnp" in c for c in state.chains)
    # missing profiles drop
    assert state.chains["cali-pri-kns.prod"][0].action == "--jump DROP"


def test_policy_groups_follow_calico() -> None:
    refs = tuple(pc.PolicyRef("NetworkPolicy", f"p{i}", "prod", selector="x") for i in range(7))
    staged = pc.PolicyRef("StagedNetworkPolicy", "s", "prod", selector="x")
    other = pc.PolicyRef("NetworkPolicy", "q", "prod", selector="y")
    groups = pc.group_policies((*refs[:6], staged, refs[6], other), True)
    assert [len(g.policies) for g in groups] == [8, 1]
    assert not groups[0].inlined and groups[1].inlined
    assert groups[0].chain_name.startswith("cali-gi-") and len(groups[0].chain_name) == 28
    body = [x.body() for x in groups[0].chain()]
    assert body == [
        "--jump cali-pi-np/prod/p0",
        *[f"-m mark --mark 0/0x30000 --jump cali-pi-np/prod/p{i}" for i in range(1, 5)],
        '-m comment --comment "Return on verdict" -m mark ! --mark 0/0x30000 --jump RETURN',
        "--jump cali-pi-np/prod/p5",
        "-m mark --mark 0/0x30000 --jump cali-pi-np/prod/p6"]
    # One non-staged policy with a staged one: inlined, the staged one never jumped to.
    pair = pc.group_policies((staged, refs[0]), False)
    assert pair[0].inlined and pair[0].enforced == (refs[0],)
    assert str(refs[0]) == "{Name: p0, Namespace: prod, Kind: NetworkPolicy}"


def test_namespace_and_profile_labels_and_members() -> None:
    idx = PolicyIndex("node1")
    idx.update_profile("kns.prod", _res("Profile", "kns.prod", {
        "labelsToApply": {"pcns.team": "a", "pcns.projectcalico.org/name": "prod"}}))
    a = _wep("a", "10.244.1.1/32", {"app": "a"}, iface="calia")
    b = _wep("b", "10.244.2.2/32", {"app": "b"}, node="node2")
    c = _wep("c", "10.244.3.3/32", {"app": "b"}, node="node2", ns="dev")
    for w in (a, b, c):
        idx.update_endpoint(key_of(w), w)
    gns = _res("GlobalNetworkSet", "world", {"nets": ["0.0.0.0/0", "fd00::/8"]},
               labels={"app": "b"})
    idx.update_networkset(key_of(gns), gns)
    pol = _gnp("from-team-a", {"namespaceSelector": "team == 'a'", "ingress": [
        {"action": "Allow", "source": {"selector": "app == 'b'"}}]})
    idx.update_policy(key_of(pol), pol)
    assert [t.ingress for t in idx.plan(key_of(a)).tiers] == [
        (pc.PolicyRef("GlobalNetworkPolicy", "from-team-a"),)]
    members = render(idx, 4).ipsets[ps.set_name(4, ps.selector_uid('app == "b"'))].members
    assert members == {"10.244.2.2/32", "10.244.3.3/32", "0.0.0.0/1", "128.0.0.0/1"}
    assert render(idx, 6).ipsets[ps.set_name(6, ps.selector_uid('app == "b"'))].members == {
        "fd00::/8"}
    # A namespaced policy's rule selector is limited to its namespace.
    np = _res("NetworkPolicy", "np", {"ingress": [
        {"action": "Allow", "source": {"selector": "app == 'b'"}}]}, "prod")
    idx.update_policy(key_of(np), np)
    uid = ps.selector_uid('(projectcalico.org/namespace == "prod" && app == "b")')
    assert render(idx, 4).ipsets[ps.set_name(4, uid)].members == {"10.244.2.2/32"}
    # The profile's labels go: the namespace selector no longer matches.
    idx.update_profile("kns.prod", None)
    assert [t.ingress for t in idx.plan(key_of(a)).tiers] == [
        (pc.PolicyRef("NetworkPolicy", "np", "prod"),)]


def test_incremental_updates_touch_only_what_changed() -> None:
    idx = _example_index()
    state = PolicyState(4)
    state.update(idx, idx.take_dirty())
    ref = render(idx, 4)
    assert state.chains == ref.chains and state.ipsets == ref.ipsets
    # A new api pod elsewhere: only the selector set changes.
    api2 = _wep("api-2", "10.244.4.4/32", {"app": "api"}, node="node3")
    idx.update_endpoint(key_of(api2), api2)
    dirty = idx.take_dirty()
    assert not dirty.endpoints and not dirty.policies and not dirty.profiles
    changed = state.update(idx, dirty)
    assert changed == {"cali40s:n1E6BUPvbEuLBFQeUQoiO8_"}
    assert state.ipsets["cali40s:n1E6BUPvbEuLBFQeUQoiO8_"].members == {
        "10.244.2.7/32", "10.244.4.4/32"}
    # The policy goes: the endpoint chain loses its tier, the policy chain and its sets go.
    idx.update_policy(key_of(_db_allow()), None)
    changed = state.update(idx, idx.take_dirty())
    assert {"cali-tw-cali20aafc107a9", "cali-pi-knp/prod/db-allow",
            "cali40s:n1E6BUPvbEuLBFQeUQoiO8_", "cali40n:Ng9a6LX2Rpo1BadzfeJlUKu"} <= changed
    ref = render(idx, 4)
    assert state.chains == ref.chains and state.ipsets == ref.ipsets == {}
    assert "Start of tier" not in str(state.chains["cali-tw-cali20aafc107a9"])


# ---------------------------------------------------------------------------------------------
# Order independence: the same state whatever the order of the updates.



def _updates() -> list[tuple[str, Any, Any]]:
    pols = [
        _db_allow(),
        _gnp("deny-dev", {"tier": "security", "order": 1, "namespaceSelector": "all()",
                          "egress": [{"action": "Deny", "destination": {
                              "namespaceSelector": "projectcalico.org/name == 'dev'"}}]}),
        _res("NetworkPolicy", "web", {"selector": "app == 'web'", "ingress": [
            {"action": "Allow", "protocol": "TCP", "destination": {"ports": [80, "http"]}}]},
             "prod"),
        # Same selector as "web" in the same tier: the two make a group chain.
        _res("NetworkPolicy", "web-2", {"selector": "app == 'web'", "ingress": [
            {"action": "Deny", "source": {"selector": "app == 'api'"}}]}, "prod"),
    ]
    weps = [
        _wep("db-0", "10.244.1.5/32", {"app": "db"}, iface="cali20aafc107a9",
             ports=[{"name": "metrics", "protocol": "TCP", "port": 9187}]),
        _wep("web-0", "10.244.1.6/32", {"app": "web"}, iface="caliweb0",
             ports=[{"name": "http", "protocol": "TCP", "port": 8080}]),
        _wep("api-0", "10.244.2.7/32", {"app": "api"}, node="node2"),
        _wep("web-1", "10.244.2.8/32", {"app": "web"}, node="node2", ns="dev",
             ports=[{"name": "http", "protocol": "TCP", "port": 80}]),
    ]
    profs = [_res("Profile", "kns.prod", {"ingress": [{"action": "Allow"}], "egress": [
        {"action": "Allow"}], "labelsToApply": {"projectcalico.org/name": "prod"}}),
             _res("Profile", "kns.dev", {"labelsToApply": {"projectcalico.org/name": "dev"}})]
    out: list[tuple[str, Any, Any]] = [("policy", key_of(p), p) for p in pols]
    out += [("endpoint", key_of(w), w) for w in weps]
    out += [("profile", p.metadata.name, p) for p in profs]
    out += [("tier", "security", _res("Tier", "security", {"order": 10})),
            ("tier", "default", r.builtin_tier("default"))]
    return out


def _apply(idx: PolicyIndex, kind: str, key: Any, value: Any) -> None:
    update: Any = {"policy": idx.update_policy, "endpoint": idx.update_endpoint,
                   "profile": idx.update_profile, "tier": idx.update_tier}[kind]
    update(key, value)


@settings(max_examples=40, deadline=None)
@given(st.permutations(range(len(_updates()))), st.lists(st.integers(0, 9), max_size=6))
def test_same_state_whatever_the_update_order(order: list[int], deletes: list[int]) -> None:
    updates = _updates()
    reference = PolicyIndex("node1")
    for kind, key, value in updates:
        _apply(reference, kind, key, value)
    idx = PolicyIndex("node1")
    state = PolicyState(4)
    for i in order:
        kind, key, value = updates[i]
        _apply(idx, kind, key, value)
        if i in deletes:  # delete and re-add on the way
            _apply(idx, kind, key, None)
            state.update(idx, idx.take_dirty())
            _apply(idx, kind, key, value)
        state.update(idx, idx.take_dirty())
    want = render(reference, 4)
    assert state.chains == want.chains
    assert state.ipsets == want.ipsets
    assert render(idx, 4).chains == want.chains
    assert any(name.startswith("cali-gi-") for name in want.chains)
