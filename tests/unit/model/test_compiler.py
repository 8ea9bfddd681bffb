"""The compiled fast path (libcalico.model.compiler) decides exactly as the full decode does.

`codec.decode` first tries the compiled decoders (a general one per class, and one per shape,
i.e. key sequence, seen more than once) and falls back to the full decode
(`codec._decode_full`) when the compiled one declines. The fast path must never accept what
the full decode rejects, and what it accepts must be the very same value. These tests decode
every example document, the invalid-document table and thousands of mutations of them (each
value replaced by junk of every JSON type, keys dropped, case-folded or added) both ways and
compare the outcomes: the repr of the resource (types included: True is not 1, a StrEnum is
not a str) or the error's document, paths and reasons.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from libcalico.errors import ValidationError
from libcalico.model import codec, compiler
from libcalico.model import resources as r
from libcalico.model.leaf_codecs import BAD
from tests.unit.model.test_invalid import CASES as INVALID
from tests.unit.model.test_schema_properties import resources

CONFORMANCE = Path("/work/shared/conformance/calico-confd/cases")
V3 = "projectcalico.org/v3"

EXAMPLES: list[dict[str, Any]] = [
    {"kind": "IPPool", "metadata": {"name": "p1", "uid": "u", "creationTimestamp":
                                    "2026-01-01T00:00:00Z", "resourceVersion": "7"},
     "spec": {"cidr": "10.244.0.0/16", "ipipMode": "Always", "vxlanMode": "Never",
              "natOutgoing": True, "blockSize": 26, "nodeSelector": "all()",
              "allowedUses": ["Workload", "Tunnel"]}},
    {"kind": "BGPPeer", "metadata": {"name": "peer-1", "labels": {"a": "b"}},
     "spec": {"peerIP": "[fd00::1]:1179", "asNumber": "1.10", "keepOriginalNextHop": True,
              "filters": ["f1"], "ttlSecurity": 0}},
    {"kind": "BGPPeer", "metadata": {"name": "peer-2"},
     "spec": {"peerSelector": "has(rr)", "nodeSelector": "all()", "nextHopMode": "Self"}},
    {"kind": "WorkloadEndpoint", "metadata": {"name": "n1-k8s-p1-eth0", "namespace": "ns1",
                                              "labels": {"projectcalico.org/namespace": "ns1"}},
     "spec": {"orchestrator": "k8s", "node": "n1", "pod": "p1", "endpoint": "eth0",
              "ipNetworks": ["10.0.0.5/32", "fd00::5/128"], "interfaceName": "cali1",
              "ipNATs": [{"internalIP": "10.0.0.5", "externalIP": "1.2.3.4"}],
              "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
              "profiles": ["kns.ns1"], "mac": "ee:ee:ee:ee:ee:ee"}},
    {"kind": "HostEndpoint", "metadata": {"name": "h1", "ownerReferences": [
        {"apiVersion": "v1", "kind": "Node", "name": "n1", "uid": "u1", "controller": True}]},
     "spec": {"node": "n1", "interfaceName": "eth0", "expectedIPs": ["10.0.0.1"],
              "ports": [{"name": "ssh", "protocol": "TCP", "port": 22}]}},
    {"kind": "Profile", "metadata": {"name": "kns.ns1"},
     "spec": {"ingress": [{"action": "Allow", "protocol": "TCP",
                           "source": {"nets": ["10.0.0.0/8"], "selector": "has(a)"},
                           "destination": {"ports": [80, "8000:8080", "http"]}},
                          {"action": "Deny", "protocol": "ICMP", "icmp": {"type": 8, "code": 0}}],
              "egress": [{"action": "Allow"}], "labelsToApply": {"pcns.a": "b"}}},
    {"kind": "FelixConfiguration", "metadata": {"name": "node.n1"},
     "spec": {"defaultEndpointToHostAction": "Return", "routeTableRanges": [
         {"min": 1, "max": 250}], "natPortRange": "32768:65000", "logSeverityScreen": "Info",
         "healthTimeoutOverrides": [{"name": "x", "timeout": "30s"}], "ipipEnabled": False}},
    {"kind": "Node", "metadata": {"name": "n1"},
     "spec": {"bgp": {"ipv4Address": "10.0.0.1/24", "asNumber": 64512},
              "addresses": [{"address": "10.0.0.1", "type": "InternalIP"}]}},
    {"kind": "KubeControllersConfiguration", "metadata": {"name": "default"},
     "spec": {"healthChecks": "Enabled", "etcdV3CompactionPeriod": "10m",
              "controllers": {"node": {"reconcilerPeriod": "5m", "syncLabels": "Enabled"}}}},
    {"kind": "IPAMConfiguration", "metadata": {"name": "default"},
     "spec": {"strictAffinity": True, "maxBlocksPerHost": 4, "autoAllocateBlocks": True}},
    {"kind": "IPReservation", "metadata": {"name": "r"},
     "spec": {"reservedCIDRs": ["10.0.0.0/30", "fd00::/126"]}},
    {"kind": "BGPConfiguration", "metadata": {"name": "default"},
     "spec": {"nodeToNodeMeshEnabled": False, "asNumber": 64512, "logSeverityScreen": "Info",
              "serviceClusterIPs": [{"cidr": "10.96.0.0/12"}], "communities": [
                  {"name": "c1", "value": "65000:100"}],
              "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["c1"]}]}},
    {"kind": "BGPFilter", "metadata": {"name": "f1"},
     "spec": {"exportV4": [{"action": "Accept", "matchOperator": "In",
                            "cidr": "10.0.0.0/8", "prefixLength": {"min": 16, "max": 24}}],
              "importV6": [{"action": "Reject", "interface": "eth*"}]}},
    {"kind": "ClusterInformation", "metadata": {"name": "default"},
     "spec": {"clusterGUID": "abc", "datastoreReady": True, "calicoVersion": "v3.32"}},
    {"kind": "NetworkPolicy", "metadata": {"name": "allow-db", "namespace": "prod"},
     "spec": {"tier": "default", "order": 100.5, "selector": "app == 'db'",
              "ingress": [{"action": "Allow", "protocol": "TCP",
                           "source": {"selector": "app == 'api'", "notNets": ["10.9.0.0/16"]},
                           "destination": {"ports": [5432, "metrics"]}}],
              "egress": [{"action": "Pass"}], "types": ["Ingress", "Egress"]}},
    {"kind": "GlobalNetworkPolicy", "metadata": {"name": "security.deny-ssh"},
     "spec": {"tier": "security", "order": 10, "namespaceSelector": "has(team)",
              "ingress": [{"action": "Deny", "protocol": "TCP",
                           "destination": {"ports": [22]}}],
              "preDNAT": True, "applyOnForward": True, "types": ["Ingress"]}},
    {"kind": "StagedNetworkPolicy", "metadata": {"name": "s1", "namespace": "prod"},
     "spec": {"stagedAction": "Set", "tier": "default", "selector": "all()",
              "types": ["Ingress"]}},
    {"kind": "StagedGlobalNetworkPolicy", "metadata": {"name": "s2"},
     "spec": {"stagedAction": "Set", "tier": "default", "egress": [{"action": "Log"}],
              "types": ["Egress"]}},
    {"kind": "StagedKubernetesNetworkPolicy", "metadata": {"name": "k1", "namespace": "prod"},
     "spec": {"stagedAction": "Set", "podSelector": {"matchLabels": {"app": "db"}},
              "ingress": [{"ports": [{"protocol": "TCP", "port": 5432, "endPort": 5440}],
                           "from": [{"ipBlock": {"cidr": "10.0.0.0/8",
                                                 "except": ["10.9.0.0/16"]}}]}],
              "policyTypes": ["Ingress"]}},
    {"kind": "Tier", "metadata": {"name": "security"},
     "spec": {"order": 100, "defaultAction": "Pass"}},
    {"kind": "NetworkSet", "metadata": {"name": "ext", "namespace": "prod",
                                        "labels": {"role": "db"}},
     "spec": {"nets": ["198.51.100.0/24", "2001:db8::/32"]}},
    {"kind": "GlobalNetworkSet", "metadata": {"name": "ext"},
     "spec": {"nets": ["203.0.113.0/24"]}},
]
for _d in EXAMPLES:
    _d["apiVersion"] = V3


def _conformance() -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if CONFORMANCE.is_dir():
        for f in sorted(CONFORMANCE.glob("*/input/**/*.yaml")):
            out += [d for d in codec.load_documents(f.read_text()) if d.get("apiVersion") == V3]
    return out


VALID = EXAMPLES + _conformance()

JUNK: list[object] = [None, "", "x", "Always", "10.0.0.0/8", "10.0.0.1", 0, 1, -1, 70000,
                      1.5, 2.0, True, False, [], ["x"], [1], {}, {"a": "b"}, {"a": 1}]


def _outcome(fn: Any, doc: Any) -> tuple[str, object]:
    try:
        res = fn(copy.deepcopy(doc), "doc")
    except ValidationError as exc:
        return "error", (exc.document, [(e.path, e.reason) for e in exc.errors], str(exc))
    return "ok", repr(res)


def _same(doc: Any) -> None:
    full = _outcome(codec._decode_full, doc)
    # The first sight of a shape takes the general compiled decoder, later ones the
    # decoder compiled for that shape (compiler.SHAPE_AFTER).
    for attempt in range(compiler.SHAPE_AFTER + 1):
        fast = _outcome(codec.decode, doc)
        assert fast == full, f"compiled and full decode differ on {doc!r} (try {attempt})"


def _mutations(node: Any) -> Iterator[tuple[Any, Any]]:
    """(copy of the document root with one change, ...) for every place in `node`."""
    if isinstance(node, dict):
        for k in list(node):
            for junk in JUNK:
                yield _replaced(node, k, junk)
            without = dict(node)
            del without[k]
            yield without, None
            if isinstance(k, str):
                folded = {(k.lower() if kk == k else kk): v for kk, v in node.items()}
                yield folded, None
            for inner, _ in _mutations(node[k]):
                yield _replaced(node, k, inner)
        yield {**node, "unknownField": 1}, None
    elif isinstance(node, list):
        for i in range(len(node)):
            for junk in JUNK[:8]:
                yield [*node[:i], junk, *node[i + 1:]], None
            for inner, _ in _mutations(node[i]):
                yield [*node[:i], inner, *node[i + 1:]], None


def _replaced(node: dict[str, Any], key: str, value: Any) -> tuple[dict[str, Any], None]:
    out = dict(node)
    out[key] = value
    return out, None


def test_examples_cover_every_kind() -> None:
    assert {d["kind"] for d in EXAMPLES} == set(r.KINDS)


@pytest.mark.parametrize("doc", VALID, ids=lambda d: f"{d['kind']}-{d['metadata']['name']}")
def test_valid_documents_take_the_fast_path_and_decode_the_same(doc: dict[str, Any]) -> None:
    body = {k: v for k, v in doc.items() if k not in ("kind", "apiVersion")}
    for _ in range(compiler.SHAPE_AFTER + 1):
        assert compiler.decoder(r.KINDS[doc["kind"]].cls)(copy.deepcopy(body)) is not BAD
    _same(doc)


@pytest.mark.parametrize("doc", [c[1] for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_documents_give_the_same_errors(doc: dict[str, Any]) -> None:
    _same(doc)


@pytest.mark.parametrize("doc", EXAMPLES, ids=lambda d: str(d["kind"]))
def test_every_mutation_decodes_the_same_both_ways(doc: dict[str, Any]) -> None:
    count = 0
    for mutated, _ in _mutations(doc):
        _same(mutated)
        count += 1
    assert count > 100


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(resources())
def test_generated_resources_decode_the_same_both_ways(res: Any) -> None:
    """Every field of the big kinds (FelixConfiguration's ~150), valid or not."""
    _same(codec.encode(res))


def test_fast_values_are_the_frozen_classes() -> None:
    res = codec.decode(copy.deepcopy(EXAMPLES[1]))
    assert type(res) is r.BGPPeer and type(res.spec) is r.BGPPeerSpec
    with pytest.raises(dataclasses.FrozenInstanceError):
        res.spec.node = "x"  # type: ignore[misc]
    assert hash(res.spec.filters) == hash(("f1",))
    assert res == codec._decode_full(copy.deepcopy(EXAMPLES[1]), "")
    assert dataclasses.replace(res.spec, node="n") == r.BGPPeerSpec(
        **{f.name: getattr(res.spec, f.name) for f in dataclasses.fields(r.BGPPeerSpec)}
        | {"node": "n"})


def test_yaml_values_decode_the_same_both_ways() -> None:
    """YAML gives datetimes, booleans in string fields and integer-valued floats."""
    for text in ("""
kind: Node
apiVersion: projectcalico.org/v3
metadata: {name: n1, creationTimestamp: 2026-01-01T00:00:00Z, labels: {a: yes}}
spec: {bgp: {ipv4Address: 10.0.0.1/24, asNumber: 64512.0}}
""", """
kind: BGPPeer
apiVersion: projectcalico.org/v3
metadata: {name: p, annotations: {a: on}}
spec: {peerIP: 10.0.0.1, asNumber: "64512", node: yes}
"""):
        for doc in codec.load_documents(text):
            _same(doc)
