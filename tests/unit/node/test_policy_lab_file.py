"""The policy lab's pure parts: the lab file (every refusal names its field), what a step
writes, the sync comparison and the --expect report."""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import Any

import pytest

from calico_node.policylab import labfile, report, sync, world
from libcalico.model import codec
from libcalico.model.resources import NetworkPolicy, WorkloadEndpoint

PORTS = [{"name": "serve-80-tcp", "containerPort": 80, "protocol": "TCP"},
         {"containerPort": 81}]


def good() -> dict[str, Any]:
    return copy.deepcopy({
        "namespaces": {"x": {"labels": {"team": "x"}}, "y": {}},
        "pods": [
            {"namespace": "x", "name": "a", "labels": {"pod": "a"}, "ip": "10.244.1.10",
             "ports": PORTS},
            {"namespace": "x", "name": "b", "labels": {"pod": "b"}, "ip": "10.244.2.10",
             "ports": PORTS, "node": "node-3"},
            {"namespace": "y", "name": "a", "ip": "10.244.1.11"},
        ],
        "steps": [
            {"name": "allow", "probes": [{"port": 80}]},
            {"name": "isolate", "policies": [
                {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
                 "metadata": {"name": "np", "namespace": "x"},
                 "spec": {"podSelector": {"matchLabels": {"pod": "b"}},
                          "policyTypes": ["Ingress"],
                          "ingress": [{"ports": [{"port": "serve-80-tcp"}]}]}},
                {"apiVersion": "projectcalico.org/v3", "kind": "Tier",
                 "metadata": {"name": "security"}, "spec": {"order": 100}},
                {"apiVersion": "projectcalico.org/v3", "kind": "NetworkPolicy",
                 "metadata": {"name": "calico-np"}, "spec": {"selector": "all()"}}],
             "namespace_labels": {"y": {"team": "y"}},
             "pod_labels": {"x/a": {"pod": "c"}},
             "probes": [{"port": 81, "protocol": "UDP",
                         "expected": {"x/a": {"x/b": False}}}]},
        ],
    })


def test_good_file() -> None:
    lab = labfile.from_document(good())
    assert [p.key for p in lab.pods] == ["x/a", "x/b", "y/a"]
    # placement: given nodes kept; others round-robin, a pod follows its block's node
    assert [p.node for p in lab.pods] == ["node-1", "node-3", "node-1"]
    assert lab.pods[0].ports[1] == labfile.PodPort("", 81, "TCP")
    assert lab.pods[0].ip == ipaddress.IPv4Address("10.244.1.10")
    allow, isolate = lab.steps
    assert allow.policies == () and allow.probes == (labfile.Probe(80, "TCP", None),)
    # objects not named in a step keep the file's labels
    assert allow.namespace_labels == {"x": {"team": "x"}, "y": {}}
    assert isolate.namespace_labels == {"x": {"team": "x"}, "y": {"team": "y"}}
    assert isolate.pod_labels == {"x/a": {"pod": "c"}, "x/b": {"pod": "b"}, "y/a": {}}
    knp, tier, cnp = isolate.policies
    assert isinstance(knp, NetworkPolicy) and knp.metadata.name == "knp.default.np"
    assert knp.spec.order == 1000.0 and knp.metadata.namespace == "x"
    assert tier.metadata.name == "security"
    assert cnp.metadata.namespace == "default"
    assert isolate.probes[0].expected == {"x/a": {"x/b": False}}


def _bad(mutate: Any) -> list[str]:
    doc = good()
    mutate(doc)
    with pytest.raises(labfile.LabFileError) as exc:
        labfile.from_document(doc)
    return [str(e) for e in exc.value.errors]


@pytest.mark.parametrize(("mutate", "needle"), [
    (lambda d: d.pop("steps"), "steps: must be a list"),
    (lambda d: d.update(extra=1), "extra: unknown field"),
    (lambda d: d["pods"][0].update(namespace="z"), "pods[0].namespace: 'z' is not one"),
    (lambda d: d["pods"][0].update(ip="10.0.0.1"), "pods[0].ip: 10.0.0.1 must be an IPv4"),
    (lambda d: d["pods"][0].update(ip="fd00::1"), "must be an IPv4 address"),
    (lambda d: d["pods"][0].update(ip="nope"), "pods[0].ip: 'nope' is not an IP address"),
    (lambda d: d["pods"][1].update(ip="10.244.1.10"), "is used by another pod"),
    (lambda d: d["pods"][1].update(ip="10.244.1.20"), "need addresses in different /26"),
    (lambda d: d["pods"][1].update(node="node-9"), "pods[1].node: 'node-9' is not a lab node"),
    (lambda d: d["pods"][1].update(name="x/a"), "pods[1].name: must be a DNS label"),
    (lambda d: d["pods"].append(copy.deepcopy(d["pods"][0])), "pod x/a is listed twice"),
    (lambda d: d["pods"][0]["ports"].append({"containerPort": 80, "protocol": "ICMP"}),
     "pods[0].ports[2].protocol: must be one of TCP, UDP, SCTP"),
    (lambda d: d["pods"][0]["ports"].append({"containerPort": 0}),
     "pods[0].ports[2].containerPort: must be a port number"),
    (lambda d: d["pods"][0]["ports"].append({"containerPort": 80}), "80/TCP listed twice"),
    (lambda d: d["pods"][0].update(labels={"a": 1}), "labels must map strings to strings"),
    (lambda d: d["steps"][0].pop("probes"), "steps[0].probes: must be a list"),
    (lambda d: d["steps"][0].update(probes=[{"port": 80, "protocol": "ICMP"}]),
     "steps[0].probes[0].protocol"),
    (lambda d: d["steps"][1].update(name="allow"), "step 'allow' is named twice"),
    (lambda d: d["steps"][1]["pod_labels"].update({"x/z": {}}), "steps[1].pod_labels.x/z"),
    (lambda d: d["steps"][1]["namespace_labels"].update(z={}),
     "steps[1].namespace_labels.z: not one"),
    (lambda d: d["steps"][1]["probes"][0]["expected"]["x/a"].update({"x/a": True}),
     "not another pod of the file"),
    (lambda d: d["steps"][1]["policies"].append({"apiVersion": "v1", "kind": "Pod"}),
     "steps[1].policies[3].apiVersion"),
    (lambda d: d["steps"][1]["policies"].append(
        {"apiVersion": "projectcalico.org/v3", "kind": "IPPool", "metadata": {"name": "p"}}),
     "steps[1].policies[3].kind: must be one of"),
    (lambda d: d["steps"][1]["policies"].append(copy.deepcopy(d["steps"][1]["policies"][1])),
     "Tier /security is given twice"),
    (lambda d: d["steps"][1]["policies"][2]["spec"].update(selector="all("),
     "steps[1].policies[2].spec.selector"),
    (lambda d: d["steps"][1]["policies"][0]["spec"]["ingress"].append(
        {"ports": [{"port": "serve-80-tcp", "endPort": 90}]}), "Calico would drop this rule"),
])
def test_bad_file_names_the_field(mutate: Any, needle: str) -> None:
    errors = _bad(mutate)
    assert any(needle in e for e in errors), errors


def test_not_json() -> None:
    with pytest.raises(labfile.LabFileError, match="not valid JSON"):
        labfile.parse("{")


def test_step_profiles_and_endpoint() -> None:
    lab = labfile.from_document(good())
    profs = {p.metadata.name: p for p in world.profiles(lab, lab.steps[1])}
    assert sorted(profs) == ["kns.x", "kns.y", "ksa.x.default", "ksa.y.default"]
    assert profs["kns.y"].spec.labels_to_apply == {
        "pcns.team": "y", "pcns.kubernetes.io/metadata.name": "y",
        "pcns.projectcalico.org/name": "y"}
    wep = codec.decode({"kind": "WorkloadEndpoint", "apiVersion": "projectcalico.org/v3",
                        "metadata": {"name": "node--1-k8s-a-eth0", "namespace": "x",
                                     "labels": {"projectcalico.org/orchestrator": "k8s"}},
                        "spec": {"node": "node-1", "orchestrator": "k8s", "pod": "a",
                                 "endpoint": "eth0", "ipNetworks": ["10.244.1.10/32"],
                                 "profiles": ["demo-net"], "interfaceName": "cali1"}})
    assert isinstance(wep, WorkloadEndpoint)
    got = world.endpoint(wep, lab.pods[0], {"pod": "c"})
    assert got.metadata.labels == {"pod": "c", "projectcalico.org/namespace": "x",
                                   "projectcalico.org/orchestrator": "k8s",
                                   "projectcalico.org/serviceaccount": "default"}
    assert got.spec.profiles == ("kns.x", "ksa.x.default")
    assert [(p.name, p.port, str(p.protocol)) for p in got.spec.ports] == [
        ("serve-80-tcp", 80, "TCP")]  # only named ports are endpoint ports

    # what Felix on node-1 should program for it: its workload chains, the policy's chains
    # and the policy's selector IP set
    pol = lab.steps[1].policies[0]
    want = sync.expected([got, pol, *profs.values()], "node-1")
    assert any(c.startswith("cali-tw-") for c in want.chains)
    dump = "".join(f":{c} - [0:0]\n" for c in sorted(want.chains)) + "".join(
        f'-A {c} -m comment --comment "cali:{h}" -j X\n'
        for c, hs in want.chains.items() for h in hs)
    live = sync.live(dump,
                     "".join(f"create {n} hash:net\n" + "".join(f"add {n} {m}\n" for m in ms)
                             for n, ms in want.ipsets.items()))
    assert want.differences(live) == []
    assert want.chains and want.differences(sync.live("", ""))
    # one rule fewer in a chain (a policy not yet rewritten): not in sync
    chain = next(c for c, hs in want.chains.items() if hs)
    cut = "\n".join(ln for ln in dump.splitlines()
                    if not ln.endswith(f'"cali:{want.chains[chain][-1]}" -j X')) + "\n"
    assert any("chains with other rules" in d
               for d in want.differences(sync.live(cut, "")))


def test_live_parsing() -> None:
    ipt = (":INPUT ACCEPT [0:0]\n:cali-tw-cali1 - [0:0]\n:cali-pi-_abc - [0:0]\n"
           ":cali-INPUT - [0:0]\n"
           '-A cali-tw-cali1 -m comment --comment "cali:h1" -m conntrack -j ACCEPT\n'
           '-A cali-tw-cali1 -p udp -m comment --comment cali:h2 -m comment --comment '
           '"cali:x" -j DROP\n'
           '-A cali-INPUT -m comment --comment "cali:h3" -j ACCEPT\n')
    ips = ("create cali40s:AAA hash:net family inet\nadd cali40s:AAA 10.244.1.10\n"
           "add cali40s:AAA 10.244.2.0/24\ncreate other hash:ip\nadd other 1.2.3.4\n")
    got = sync.live(ipt, ips)
    assert got.chains == {"cali-tw-cali1": ("h1", "h2"), "cali-pi-_abc": ()}
    assert got.ipsets == {"cali40s:AAA": frozenset({"10.244.1.10", "10.244.2.0/24"})}
    want = sync.Dataplane({"cali-tw-cali1": ("h1", "h3")},
                          {"cali40s:AAA": frozenset({"10.244.1.10"}), "cali40s:BBB": frozenset()})
    assert want.differences(got) == ["chains not wanted: cali-pi-_abc",
                                      "chains with other rules: cali-tw-cali1",
                                      "ipset cali40s:AAA: 2 members, want 1",
                                      "ipset cali40s:BBB missing"]


def test_expect_differences_and_document() -> None:
    lab = labfile.from_document(good())
    m_allow = {"x/a": {"x/b": True, "y/a": True}, "x/b": {"x/a": True, "y/a": True},
               "y/a": {"x/a": True, "x/b": True}}
    doc = report.document(False, [
        ("allow", [report.probe_result(80, "TCP", m_allow)]),
        ("isolate", [report.probe_result(81, "UDP", m_allow)]),
    ])
    assert json.loads(json.dumps(doc))["steps"][1]["probes"][0]["reachable"]["x/a"] == \
        {"x/b": True, "y/a": True}
    assert report.differences(lab, doc) == [
        "step 'isolate', UDP/81: x/a -> x/b: reachable, expected not reachable"]
    doc["steps"][1]["probes"][0]["reachable"]["x/a"]["x/b"] = False
    assert report.differences(lab, doc) == []
    doc["steps"][1]["probes"][0]["reachable"]["x/a"]["x/b"] = None
    assert "not probed" in report.differences(lab, doc)[0]
    assert report.table(["x/a", "x/b"], {"x/a": {"x/b": False}, "x/b": {"x/a": True}}) == (
        "    x/a x/b\nx/a   .   X\nx/b  ok   .")


def test_policy_in_a_tier_the_step_lacks() -> None:
    doc = good()
    doc["steps"][1]["policies"][2]["spec"]["tier"] = "security"
    assert labfile.from_document(doc).steps[1].policies[2].spec.tier == "security"  # type: ignore[union-attr]
    del doc["steps"][1]["policies"][1]
    with pytest.raises(labfile.LabFileError, match="tier 'security' is not in this step"):
        labfile.from_document(doc)


def test_reconcile_to_exactly_each_steps_policies() -> None:
    from calico_node.policylab import runner
    from libcalico.client import Client
    from libcalico.datastore.memory import MemoryBackend
    from libcalico.model import keys

    doc = good()
    doc["steps"][1]["policies"][2]["spec"]["tier"] = "security"
    doc["steps"].append({"name": "only knp", "policies": [doc["steps"][1]["policies"][0]],
                         "probes": [{"port": 80}]})
    lab = labfile.from_document(doc)
    client = Client(MemoryBackend())

    def stored() -> list[str]:
        out = []
        for kind in labfile.POLICY_KINDS:
            out += [kv.key.rsplit("projectcalico.org/", 1)[1]
                    for kv in client.backend.list(keys.resource_prefix(kind)).kvs]
        return sorted(out)

    runner.reconcile_policies(client, lab.steps[1].policies)
    assert stored() == ["networkpolicies/default/calico-np", "networkpolicies/x/knp.default.np",
                        "tiers/default", "tiers/security"]
    revs = {kv.key: kv.revision for kv in client.backend.list(
        keys.resource_prefix("NetworkPolicy")).kvs}
    runner.reconcile_policies(client, lab.steps[1].policies)  # unchanged: nothing rewritten
    assert revs == {kv.key: kv.revision for kv in client.backend.list(
        keys.resource_prefix("NetworkPolicy")).kvs}
    runner.reconcile_policies(client, lab.steps[2].policies)
    assert stored() == ["networkpolicies/x/knp.default.np", "tiers/default"]
    runner.reconcile_policies(client, lab.steps[0].policies)
    assert stored() == ["tiers/default"]  # a built-in tier stays
