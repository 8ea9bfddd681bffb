"""`calico-node policy-lab` end to end: a real cluster (the demo's: etcd, BIRD, confd, Felix,
the CNI plugin) with pods at fixed addresses, three steps, reachability matrices compared
with what Kubernetes and Calico policy mean, and nothing left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from calico_node.demo import lab as labmod

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.bird]

BIN = Path(sys.executable).parent
PODS = ("x/a", "x/b", "y/a", "y/b")
SERVES = [{"name": "serve-80-tcp", "containerPort": 80, "protocol": "TCP"},
          {"name": "serve-81-tcp", "containerPort": 81, "protocol": "TCP"},
          {"name": "serve-80-udp", "containerPort": 80, "protocol": "UDP"}]


def matrix(blocked: set[tuple[str, str]]) -> dict[str, dict[str, bool]]:
    return {a: {b: (a, b) not in blocked for b in PODS if b != a} for a in PODS}


def to(dst: str, *, but: tuple[str, ...] = ()) -> set[tuple[str, str]]:
    return {(a, dst) for a in PODS if a != dst and a not in but}


ISOLATE_XB = {
    "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
    "metadata": {"name": "x-b-port-80-from-x", "namespace": "x"},
    "spec": {"podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Ingress"],
             "ingress": [{"from": [{"podSelector": {}}],
                          "ports": [{"port": "serve-80-tcp"}]}]}}
DENY_Y = [
    {"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": "security"},
     "spec": {"order": 100}},
    {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
     "metadata": {"name": "deny-into-y"},
     "spec": {"tier": "security", "order": 10,
              "selector": "projectcalico.org/namespace == 'y'", "types": ["Ingress"],
              "ingress": [{"action": "Deny"}]}},
]


def lab_file(wrong: bool = False) -> dict[str, Any]:
    def pod(key: str, ip: str, node: str) -> dict[str, Any]:
        ns, name = key.split("/")
        return {"namespace": ns, "name": name, "labels": {"pod": name}, "ip": ip,
                "node": node, "ports": SERVES}

    isolated = to("x/b", but=("x/a",))
    step2_80 = matrix(isolated)
    if wrong:
        step2_80["y/a"]["x/b"] = True
    return {
        "namespaces": {"x": {"labels": {"ns": "x"}}, "y": {"labels": {"ns": "y"}}},
        "pods": [pod("x/a", "10.244.1.10", "node-1"), pod("x/b", "10.244.2.10", "node-2"),
                 pod("y/a", "10.244.1.11", "node-1"), pod("y/b", "10.244.3.10", "node-3")],
        "steps": [
            {"name": "default allow", "policies": [],
             "probes": [{"port": 80, "protocol": "TCP", "expected": matrix(set())},
                        {"port": 80, "protocol": "UDP", "expected": matrix(set())}]},
            {"name": "x/b allows port 80 from its namespace", "policies": [ISOLATE_XB],
             "probes": [{"port": 80, "protocol": "TCP", "expected": step2_80},
                        {"port": 81, "protocol": "TCP", "expected": matrix(to("x/b"))},
                        {"port": 80, "protocol": "UDP", "expected": matrix(to("x/b"))}]},
            {"name": "deny into y in an earlier tier", "policies": [ISOLATE_XB, *DENY_Y],
             "probes": [{"port": 80, "protocol": "TCP",
                         "expected": matrix(isolated | to("y/a") | to("y/b"))}]},
        ]}


def policy_lab(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root")
    return subprocess.run([str(BIN / "calico-node"), "policy-lab", str(path), *args],
                          capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "false"})


def leftovers() -> list[str]:
    """The lab's namespaces (the shared mountpoints are not compared: concurrent demos and
    tests create and remove them; the lab's own teardown check covers its part)."""
    return [e.name for e in labmod.NETNS_DIR.glob("cplab*")] if labmod.NETNS_DIR.is_dir() \
        else []


def test_three_steps_matrices_and_expect(tmp_path: Path) -> None:
    before = leftovers()
    f = tmp_path / "lab.json"
    doc = lab_file()
    f.write_text(json.dumps(doc))
    r = policy_lab(f, "--expect")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = json.loads(r.stdout)
    assert isinstance(out["sctp_unavailable"], bool)
    assert [s["name"] for s in out["steps"]] == [s["name"] for s in doc["steps"]]
    for step, want in zip(out["steps"], doc["steps"], strict=True):
        for probe, wprobe in zip(step["probes"], want["probes"], strict=True):
            assert (probe["port"], probe["protocol"]) == (wprobe["port"], wprobe["protocol"])
            assert probe["reachable"] == wprobe["expected"], (step["name"], probe["port"])
    assert "every expected pair matched" in r.stderr
    assert "Felix in sync on 3 nodes" in r.stderr
    assert "done: no namespace, process or file left" in r.stderr
    assert leftovers() == before


def test_expect_difference_exits_1(tmp_path: Path) -> None:
    before = leftovers()
    f = tmp_path / "lab.json"
    doc = lab_file(wrong=True)
    doc["steps"] = doc["steps"][1:2]
    f.write_text(json.dumps(doc))
    r = policy_lab(f, "--expect", "--nodes", "3")
    assert r.returncode == 1, r.stdout[-3000:] + r.stderr[-3000:]
    assert json.loads(r.stdout)["steps"][0]["probes"][0]["reachable"]["y/a"]["x/b"] is False
    assert ("DIFFERENCE step 'x/b allows port 80 from its namespace', TCP/80: y/a -> x/b: "
            "not reachable, expected reachable") in r.stderr
    assert leftovers() == before


def knp(name: str, ns: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


Y_FROM_TEAM_X = knp("from-team-x", "y", {
    "podSelector": {}, "policyTypes": ["Ingress"],
    "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"team": "x"}}}]}]})


def test_labels_egress_ipblock_and_network_sets(tmp_path: Path) -> None:
    """Namespace and pod label changes reach the policies, labels do not carry over to the
    next step, egress ipBlock with except, a GlobalNetworkSet in a Calico Deny."""
    before = leftovers()
    doc = lab_file()
    doc["namespaces"] = {"x": {"labels": {"team": "x"}}, "y": {"labels": {"team": "y"}}}
    doc["steps"] = [
        {"name": "y admits namespaces labelled team=x", "policies": [Y_FROM_TEAM_X],
         "probes": [{"port": 80, "protocol": "TCP",
                     "expected": matrix({("y/a", "y/b"), ("y/b", "y/a")})}]},
        {"name": "y relabelled team=x; x/b admits role=client only",
         "policies": [Y_FROM_TEAM_X, knp("clients", "x", {
             "podSelector": {"matchLabels": {"pod": "b"}}, "policyTypes": ["Ingress"],
             "ingress": [{"from": [{"podSelector": {"matchLabels": {"role": "client"}}}]}]})],
         "namespace_labels": {"y": {"team": "x"}},
         "pod_labels": {"x/a": {"pod": "a", "role": "client"}},
         "probes": [{"port": 81, "protocol": "TCP",
                     "expected": matrix(to("x/b", but=("x/a",)))}]},
        {"name": "egress ipBlock except; a network set denied",
         "policies": [
             knp("egress", "x", {
                 "podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Egress"],
                 "egress": [{"to": [{"ipBlock": {"cidr": "10.244.0.0/16",
                                                 "except": ["10.244.3.0/24"]}}]}]}),
             {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
              "metadata": {"name": "blocked", "labels": {"role": "blocked"}},
              "spec": {"nets": ["10.244.2.10/32"]}},
             {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkPolicy",
              "metadata": {"name": "y-not-to-blocked"},
              "spec": {"order": 1, "selector": "projectcalico.org/namespace == 'y'",
                       "types": ["Egress"],
                       "egress": [{"action": "Deny",
                                   "destination": {"selector": "role == 'blocked'"}},
                                  {"action": "Allow"}]}}],
         "probes": [{"port": 80, "protocol": "TCP",
                     "expected": matrix({("x/a", "y/b"), ("y/a", "x/b"), ("y/b", "x/b")})}]},
    ]
    f = tmp_path / "lab.json"
    f.write_text(json.dumps(doc))
    r = policy_lab(f, "--expect")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = json.loads(r.stdout)
    for step, want in zip(out["steps"], doc["steps"], strict=True):
        assert step["probes"][0]["reachable"] == want["probes"][0]["expected"], step["name"]
    assert leftovers() == before


def test_bad_file_exits_2_and_starts_nothing(tmp_path: Path) -> None:
    before = leftovers()
    f = tmp_path / "lab.json"
    doc = lab_file()
    doc["pods"][1]["ip"] = "10.244.1.12"  # node-2's pod in node-1's block
    f.write_text(json.dumps(doc))
    r = policy_lab(f)
    assert r.returncode == 2 and r.stdout == ""
    assert "pods[1].ip: 10.244.1.12 is in block 10.244.1.0/26" in r.stderr
    assert "workdir" not in r.stderr
    assert leftovers() == before
