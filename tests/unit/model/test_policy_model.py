"""Policy kinds: NetworkPolicy, GlobalNetworkPolicy, Tier, (Global)NetworkSet and the staged
kinds. Calico-written JSON round trips byte for byte; Calico's defaults; one row per Calico
validation rule."""

from __future__ import annotations

import copy
import ipaddress
import json
from typing import Any

import pytest

from libcalico.errors import ValidationError
from libcalico.model import codec, keys
from libcalico.model import resources as r
from libcalico.model import resources_policy as rp

V3 = "projectcalico.org/v3"
TS = '"uid":"5b1a1e6e-8f52-4c39-9a39-4b1d1d9a3a01","creationTimestamp":"2026-11-30T10:00:00Z"'

# Values as Calico's etcdv3 backend stores them (Go encoding/json of the v3 structs: Go field
# order, omitempty, `&&` escaped), already defaulted (tier, types, tier label, stagedAction,
# defaultAction), so that loads -> dumps gives the same bytes.
STORED: list[tuple[str, str]] = [
    ("np-ingress", '{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":'
     '{"name":"allow-api","namespace":"prod",' + TS + '},"spec":{"tier":"default",'
     '"order":1000,"ingress":[{"action":"Allow","protocol":"TCP","source":{"selector":'
     '"app == \'api\' \\u0026\\u0026 has(team)"},"destination":{"ports":[5432,"8000:8080",'
     '"metrics"]}}],"selector":"app == \'db\'","types":["Ingress"]}}'),
    ("np-tiered", '{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":'
     '{"name":"deny-all","namespace":"prod",' + TS + ',"labels":{"projectcalico.org/tier":'
     '"security"}},"spec":{"tier":"security","order":10.5,"ingress":[{"action":"Deny",'
     '"source":{},"destination":{}}],"egress":[{"action":"Pass","ipVersion":6,"source":'
     '{"notNets":["fd00::/64"]},"destination":{}}],"selector":"all()","types":["Ingress",'
     '"Egress"],"serviceAccountSelector":"role == \'x\'","performanceHints":'
     '["AssumeNeededOnEveryNode"]}}'),
    ("np-icmp-log", '{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":'
     '{"name":"knp.default.k8s-mirror","namespace":"prod",' + TS + '},"spec":{"tier":'
     '"default","egress":[{"action":"Log","protocol":"ICMP","icmp":{"type":8,"code":0},'
     '"notProtocol":"UDP","source":{},"destination":{"nets":["10.0.0.0/8"],'
     '"namespaceSelector":"global()","serviceAccounts":{"names":["a","b"],"selector":'
     '"has(x)"}},"metadata":{"annotations":{"k":"v"}}}],"types":["Egress"]}}'),
    ("gnp-predant", '{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3",'
     '"metadata":{"name":"edge.block-ssh",' + TS + ',"labels":{"projectcalico.org/tier":'
     '"edge"}},"spec":{"tier":"edge","order":0,"ingress":[{"action":"Deny","protocol":6,'
     '"source":{"nets":["0.0.0.0/0"]},"destination":{"ports":[22]}}],"selector":'
     '"has(host-endpoint)","types":["Ingress"],"preDNAT":true,"applyOnForward":true,'
     '"namespaceSelector":"has(team)"}}'),
    ("gnp-services", '{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3",'
     '"metadata":{"name":"to-dns",' + TS + '},"spec":{"tier":"default","egress":[{"action":'
     '"Allow","protocol":"UDP","source":{},"destination":{"services":{"name":"kube-dns",'
     '"namespace":"kube-system"}}}],"types":["Egress"],"doNotTrack":true,'
     '"applyOnForward":true}}'),
    ("snp", '{"kind":"StagedNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":'
     '{"name":"try-deny","namespace":"prod",' + TS + '},"spec":{"stagedAction":"Set","tier":'
     '"default","order":5,"ingress":[{"action":"Deny","source":{},"destination":{}}],'
     '"selector":"app == \'web\'","types":["Ingress"]}}'),
    ("snp-delete", '{"kind":"StagedNetworkPolicy","apiVersion":"projectcalico.org/v3",'
     '"metadata":{"name":"gone","namespace":"prod",' + TS + '},"spec":{"stagedAction":'
     '"Delete","tier":"default"}}'),
    ("sgnp", '{"kind":"StagedGlobalNetworkPolicy","apiVersion":"projectcalico.org/v3",'
     '"metadata":{"name":"try-gnp",' + TS + '},"spec":{"stagedAction":"Learn","tier":'
     '"default","egress":[{"action":"Allow","source":{},"destination":{}}],"types":'
     '["Egress"]}}'),
    ("sknp", '{"kind":"StagedKubernetesNetworkPolicy","apiVersion":"projectcalico.org/v3",'
     '"metadata":{"name":"try-knp","namespace":"prod",' + TS + '},"spec":{"stagedAction":'
     '"Set","podSelector":{"matchLabels":{"app":"db"},"matchExpressions":[{"key":"tier",'
     '"operator":"In","values":["a","b"]}]},"ingress":[{"ports":[{"protocol":"TCP","port":'
     '5432,"endPort":5440},{"port":"metrics"}],"from":[{"podSelector":{}},{"ipBlock":'
     '{"cidr":"10.0.0.0/8","except":["10.9.0.0/16"]}}]}],"egress":[{"to":'
     '[{"namespaceSelector":{"matchLabels":{"ns":"y"}}}]}],"policyTypes":["Ingress",'
     '"Egress"]}}'),
    ("sknp-empty-selector", '{"kind":"StagedKubernetesNetworkPolicy","apiVersion":'
     '"projectcalico.org/v3","metadata":{"name":"deny","namespace":"prod",' + TS + '},'
     '"spec":{"stagedAction":"Set","podSelector":{},"policyTypes":["Ingress"]}}'),
    ("tier", '{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":'
     '"security",' + TS + '},"spec":{"order":100,"defaultAction":"Pass"}}'),
    ("tier-default", '{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":'
     '"default",' + TS + '},"spec":{"order":1000000,"defaultAction":"Deny"}}'),
    ("tier-no-order", '{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":'
     '{"name":"last",' + TS + '},"spec":{"defaultAction":"Deny"}}'),
    ("netset", '{"kind":"NetworkSet","apiVersion":"projectcalico.org/v3","metadata":{"name":'
     '"external-dbs","namespace":"prod",' + TS + ',"labels":{"role":"db"}},"spec":{"nets":'
     '["198.51.100.0/28","2001:db8::/48"]}}'),
    ("gnetset", '{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3","metadata":'
     '{"name":"blocklist",' + TS + ',"labels":{"feed":"x"}},"spec":{"nets":'
     '["203.0.113.7/32"]}}'),
    ("gnetset-empty", '{"kind":"GlobalNetworkSet","apiVersion":"projectcalico.org/v3",'
     '"metadata":{"name":"none",' + TS + '},"spec":{}}'),
]


@pytest.mark.parametrize(("name", "stored"), STORED, ids=[n for n, _ in STORED])
def test_stored_json_round_trips_byte_for_byte(name: str, stored: str) -> None:
    res = codec.loads(stored, name)
    assert codec.dumps(res) == stored
    # As a document (what calicoctl apply reads): the same value, compiled or full decode.
    doc = json.loads(stored)
    assert codec.decode(copy.deepcopy(doc)) == res
    assert codec._decode_full(copy.deepcopy(doc), "") == res


def test_values_are_typed() -> None:
    np = codec.loads(STORED[0][1])
    assert isinstance(np, r.NetworkPolicy)
    assert np.spec.order == 1000.0 and np.spec.types == (r.PolicyType.INGRESS,)
    rule = np.spec.ingress[0]
    assert rule.action == r.Action.ALLOW
    assert [str(p) for p in rule.destination.ports] == ["5432", "8000:8080", "metrics"]
    assert rule.source.selector == "app == 'api' && has(team)"
    gnp = codec.loads(STORED[3][1])
    assert isinstance(gnp, r.GlobalNetworkPolicy)
    assert gnp.spec.pre_dnat and gnp.spec.apply_on_forward and gnp.spec.order == 0.0
    assert gnp.spec.ingress[0].protocol == 6
    sknp = codec.loads(STORED[8][1])
    assert isinstance(sknp, r.StagedKubernetesNetworkPolicy)
    block = sknp.spec.ingress[0].from_[1].ip_block
    assert block is not None and block.except_ == (ipaddress.ip_network("10.9.0.0/16"),)
    assert sknp.spec.ingress[0].ports[0].end_port == 5440
    ns = codec.loads(STORED[13][1])
    assert isinstance(ns, r.NetworkSet)
    assert ns.spec.nets[1] == ipaddress.ip_network("2001:db8::/48")


def _np(spec: dict[str, Any], kind: str = "NetworkPolicy", name: str = "p",
        **meta: Any) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name, **meta}
    if kind in ("NetworkPolicy", "StagedNetworkPolicy", "StagedKubernetesNetworkPolicy",
                "NetworkSet") and "namespace" not in md:
        md["namespace"] = "default"
    return {"apiVersion": V3, "kind": kind, "metadata": md, "spec": spec}


ALLOW = {"action": "Allow"}


@pytest.mark.parametrize(("ingress", "egress", "types"), [
    (None, None, ["Ingress"]),
    ([ALLOW], None, ["Ingress"]),
    (None, [ALLOW], ["Egress"]),
    ([ALLOW], [ALLOW], ["Ingress", "Egress"]),
])
def test_types_are_inferred_from_the_rules(ingress: Any, egress: Any, types: list[str]
                                          ) -> None:
    spec: dict[str, Any] = {}
    if ingress:
        spec["ingress"] = ingress
    if egress:
        spec["egress"] = egress
    for kind in ("NetworkPolicy", "GlobalNetworkPolicy", "StagedNetworkPolicy",
                 "StagedGlobalNetworkPolicy"):
        res = codec.decode(_np(spec, kind))
        assert codec.encode(res)["spec"]["types"] == types  # type: ignore[index]


def test_explicit_types_are_kept() -> None:
    res = codec.decode(_np({"ingress": [ALLOW], "types": ["Egress"]}))
    assert isinstance(res, r.NetworkPolicy) and res.spec.types == (r.PolicyType.EGRESS,)


def test_tier_defaults_and_tier_label() -> None:
    res = codec.decode(_np({}))
    assert isinstance(res, r.NetworkPolicy)
    assert res.spec.tier == "default" and r.LABEL_TIER not in res.metadata.labels
    res = codec.decode(_np({"tier": "security"}, name="any-name"))
    assert res.metadata.labels == {r.LABEL_TIER: "security"}
    # v3.32: a policy's name no longer needs its tier as prefix (calico PR #11232); a dotted
    # name is still a plain name, whatever its first label.
    res = codec.decode(_np({"tier": "security"}, kind="GlobalNetworkPolicy",
                           name="default.x"))
    assert res.metadata.name == "default.x" and res.spec.tier == "security"  # type: ignore[union-attr]


def test_staged_action_and_tier_default_action_defaults() -> None:
    res = codec.decode(_np({}, kind="StagedGlobalNetworkPolicy"))
    assert isinstance(res, r.StagedGlobalNetworkPolicy)
    assert res.spec.staged_action == r.StagedAction.SET
    sknp = codec.decode(_np({}, kind="StagedKubernetesNetworkPolicy"))
    assert isinstance(sknp, r.StagedKubernetesNetworkPolicy)
    assert sknp.spec.staged_action == r.StagedAction.SET
    assert codec.encode(sknp)["spec"] == {"stagedAction": "Set", "podSelector": {}}
    tier = codec.decode({"apiVersion": V3, "kind": "Tier", "metadata": {"name": "t"},
                         "spec": {"order": 5}})
    assert isinstance(tier, r.Tier) and tier.spec.default_action == r.Action.DENY


def test_builtin_tiers_are_calico_v332s() -> None:
    assert {n: (o, str(a)) for n, (o, a) in r.BUILTIN_TIERS.items()} == {
        "kube-admin": (1000.0, "Pass"), "default": (1e6, "Deny"),
        "kube-baseline": (1e7, "Pass")}
    for name in r.BUILTIN_TIERS:
        tier = r.builtin_tier(name)
        assert codec.validate(tier) == tier


def test_policy_helpers() -> None:
    res = codec.decode(_np({"ingress": [ALLOW]}))
    assert isinstance(res, r.NetworkPolicy)
    assert rp.policy_order(res) == float("inf")
    assert rp.applies_to(res, r.PolicyType.INGRESS)
    assert not rp.applies_to(res, r.PolicyType.EGRESS)
    assert rp.applies_to(r.NetworkPolicy(r.Metadata("x")), r.PolicyType.EGRESS)


@pytest.mark.parametrize(("kind", "name", "namespace", "key"), [
    ("NetworkPolicy", "p", "prod", "networkpolicies/prod/p"),
    ("GlobalNetworkPolicy", "g", None, "globalnetworkpolicies/g"),
    ("StagedNetworkPolicy", "s", "prod", "stagednetworkpolicies/prod/s"),
    ("StagedGlobalNetworkPolicy", "s", None, "stagedglobalnetworkpolicies/s"),
    ("StagedKubernetesNetworkPolicy", "k", "prod", "stagedkubernetesnetworkpolicies/prod/k"),
    ("Tier", "default", None, "tiers/default"),
    ("NetworkSet", "n", "prod", "networksets/prod/n"),
    ("GlobalNetworkSet", "n", None, "globalnetworksets/n"),
    ("HostEndpoint", "h", None, "hostendpoints/h"),
])
def test_keys_are_calicos(kind: str, name: str, namespace: str | None, key: str) -> None:
    full = keys.resource_key(kind, name, namespace)
    assert full == "/calico/resources/v3/projectcalico.org/" + key
    assert keys.parse_resource_key(full) == (kind, namespace, name)


def _rule(**fields: Any) -> dict[str, Any]:
    return {"action": "Allow", **fields}


def _gnp(spec: dict[str, Any], name: str = "g") -> dict[str, Any]:
    return _np(spec, "GlobalNetworkPolicy", name)


INVALID: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, document, path, reason fragment): one row per Calico rule.
    ("np-name-two-dots", _np({}, name="a.b.c"), "metadata.name", "at most one '.'"),
    ("np-name-upper", _np({}, name="Allow"), "metadata.name", "invalid NetworkPolicy name"),
    ("gnp-name-knp-prefix", _gnp({}, name="knp.default.x"), "metadata.name",
     "invalid GlobalNetworkPolicy name"),
    ("np-name-long", _np({}, name="a" * 254), "metadata.name", "longer than 253"),
    ("tier-name-dot", {"apiVersion": V3, "kind": "Tier", "metadata": {"name": "a.b"},
                       "spec": {}}, "metadata.name", "invalid Tier name"),
    ("tier-name-long", {"apiVersion": V3, "kind": "Tier", "metadata": {"name": "a" * 64},
                        "spec": {}}, "metadata.name", "longer than 63"),
    ("tier-action", {"apiVersion": V3, "kind": "Tier", "metadata": {"name": "t"},
                     "spec": {"defaultAction": "Allow"}}, "spec.defaultAction",
     "must be one of Deny, Pass"),
    ("tier-default-order", {"apiVersion": V3, "kind": "Tier", "metadata": {"name": "default"},
                            "spec": {"order": 5, "defaultAction": "Deny"}}, "spec.order",
     "default tier order must be 1000000"),
    ("tier-admin-action", {"apiVersion": V3, "kind": "Tier", "metadata":
                           {"name": "kube-admin"}, "spec": {"order": 1000}},
     "spec.defaultAction", "'kube-admin' tier must have default action 'Pass'"),
    ("policy-tier-name", _np({"tier": "a.b"}), "spec.tier", "invalid Tier name"),
    ("np-namespace-selector", _np({"namespaceSelector": "all()"}), "spec.namespaceSelector",
     "unknown field"),
    ("types-bad", _np({"types": ["Forward"]}), "spec.types[0]", "must be one of"),
    ("types-dup", _np({"types": ["Ingress", "Ingress"]}), "spec.types", "each once"),
    ("hint", _np({"performanceHints": ["Fast"]}), "spec.performanceHints[0]",
     "must be one of"),
    ("selector", _np({"selector": "app = 'x'"}), "spec.selector", ""),
    ("selector-global", _np({"selector": "global()"}), "spec.selector",
     "global() can only be used in an EntityRule namespaceSelector"),
    ("gnp-ns-selector-global", _gnp({"namespaceSelector": "global()"}),
     "spec.namespaceSelector", "global() can only be used"),
    ("action", _np({"ingress": [{"action": "Accept"}]}), "spec.ingress[0].action",
     "must be one of"),
    ("ports-no-protocol", _np({"ingress": [_rule(destination={"ports": [80]})]}),
     "spec.ingress[0].destination.ports", "numeric port or port range must set protocol"),
    ("ports-icmp", _np({"egress": [_rule(protocol="ICMP", source={"ports": ["http"]})]}),
     "spec.egress[0].source.ports", "rules that specify ports must set protocol"),
    ("ports-range-order", _np({"ingress": [_rule(protocol="TCP", destination={
        "ports": ["90:80"]})]}), "spec.ingress[0].destination.ports[0]",
     "minimum is greater than maximum"),
    ("icmp-no-protocol", _np({"ingress": [_rule(icmp={"type": 8})]}), "spec.ingress[0].icmp",
     "ICMP fields must set protocol to ICMP or ICMPv6"),
    ("icmp-code-alone", _np({"ingress": [_rule(protocol="ICMP", icmp={"code": 1})]}),
     "spec.ingress[0].icmp.code", "ICMP code specified without an ICMP type"),
    ("icmp-type-range", _np({"ingress": [_rule(protocol="ICMP", icmp={"type": 255})]}),
     "spec.ingress[0].icmp.type", "out of range 0-254"),
    ("icmp-v6-version", _np({"ingress": [_rule(protocol="ICMP", ipVersion=6)]}),
     "spec.ingress[0].ipVersion", "must be 4 with protocol ICMP"),
    ("icmpv6-v4-version", _np({"ingress": [_rule(notProtocol="ICMPv6", ipVersion=4)]}),
     "spec.ingress[0].ipVersion", "must be 6 with protocol ICMPv6"),
    ("ip-version", _np({"ingress": [_rule(ipVersion=5)]}), "spec.ingress[0].ipVersion",
     "out of range"),
    ("nets-version", _np({"ingress": [_rule(ipVersion=4, source={"nets": ["fd00::/64"]})]}),
     "spec.ingress[0].source.nets", "rule IP version doesn't match CIDR version"),
    ("nets-mixed", _np({"ingress": [_rule(source={"nets": ["10.0.0.0/8"]},
                                          destination={"notNets": ["fd00::/64"]})]}),
     "spec.ingress[0].destination.notNets", "both IPv4 and IPv6"),
    ("not-nets-catch-all", _np({"ingress": [_rule(source={"notNets": ["0.0.0.0/0"]})]}),
     "spec.ingress[0].source.notNets[0]", "catch-all CIDR in negation"),
    ("bad-net", _np({"ingress": [_rule(source={"nets": ["10.0.0.0/33"]})]}),
     "spec.ingress[0].source.nets[0]", "invalid CIDR"),
    ("entity-selector-global", _np({"ingress": [_rule(source={"selector": "global()"})]}),
     "spec.ingress[0].source.selector", "global() can only be used"),
    ("ns-selector-global-mixed", _np({"ingress": [_rule(source={
        "namespaceSelector": "global() && has(a)"})]}),
     "spec.ingress[0].source.namespaceSelector", "cannot be combined with other selectors"),
    ("services-no-name", _np({"egress": [_rule(destination={"services": {
        "namespace": "x"}})]}), "spec.egress[0].destination.services.name",
     "must specify a service name"),
    ("services-and-selector", _np({"egress": [_rule(destination={"services": {
        "name": "s"}, "selector": "has(a)"})]}), "spec.egress[0].destination.services",
     "cannot specify selector/notSelector and services"),
    ("services-and-nets", _np({"egress": [_rule(destination={"services": {"name": "s"},
                                                             "nets": ["10.0.0.0/8"]})]}),
     "spec.egress[0].destination.services", "cannot specify nets/notNets and services"),
    ("services-dest-ports", _np({"egress": [_rule(protocol="TCP", destination={
        "services": {"name": "s"}, "ports": [80]})]}),
     "spec.egress[0].destination.ports", "cannot specify ports or notPorts with a service"),
    ("services-egress-source", _np({"egress": [_rule(source={"services": {"name": "s"}})]}),
     "spec.egress[0].source.services", "not allowed in egress rule source"),
    ("services-ingress-dest", _np({"ingress": [_rule(destination={"services": {
        "name": "s"}})]}), "spec.ingress[0].destination.services",
     "not allowed in ingress rule destination"),
    ("gnp-services-namespace", _gnp({"egress": [_rule(destination={"services": {
        "name": "s"}})]}), "spec.egress[0].destination.services.namespace",
     "must specify a namespace"),
    ("http-egress", _np({"egress": [_rule(http={"methods": ["GET"]})]}),
     "spec.egress[0].http", "not allowed in egress rule"),
    ("http-deny", _np({"ingress": [{"action": "Deny", "http": {"methods": ["GET"]}}]}),
     "spec.ingress[0].http", "only valid for Allow rules"),
    ("http-udp", _np({"ingress": [_rule(protocol="UDP", http={"methods": ["GET"]})]}),
     "spec.ingress[0].protocol", "must set protocol to TCP or empty"),
    ("http-dup-methods", _np({"ingress": [_rule(http={"methods": ["GET", "GET"]})]}),
     "spec.ingress[0].http.methods", "duplicate methods"),
    ("http-path-both", _np({"ingress": [_rule(http={"paths": [{"exact": "/a",
                                                               "prefix": "/b"}]})]}),
     "spec.ingress[0].http.paths[0]", "both 'exact' and 'prefix' are set"),
    ("http-path-query", _np({"ingress": [_rule(http={"paths": [{"prefix": "/a?b"}]})]}),
     "spec.ingress[0].http.paths[0]", "must start with '/' and not contain"),
    ("rule-annotation", _np({"ingress": [_rule(metadata={"annotations": {"-k": "v"}})]}),
     "spec.ingress[0].metadata.annotations.-k", "invalid key"),
    ("prednat-donottrack", _gnp({"preDNAT": True, "doNotTrack": True,
                                 "applyOnForward": True}), "spec.preDNAT",
     "cannot both be true"),
    ("prednat-egress-rules", _gnp({"preDNAT": True, "applyOnForward": True,
                                   "egress": [ALLOW]}), "spec.egress",
     "preDNAT policy cannot have any egress rules"),
    ("prednat-egress-type", _gnp({"preDNAT": True, "applyOnForward": True,
                                  "types": ["Egress"]}), "spec.types",
     "preDNAT policy cannot have 'Egress' type"),
    ("donottrack-aof", _gnp({"doNotTrack": True}), "spec.applyOnForward",
     "applyOnForward must be true"),
    ("staged-action", _np({"stagedAction": "Enforce"}, "StagedNetworkPolicy"),
     "spec.stagedAction", "must be one of"),
    ("staged-delete-fields", _np({"stagedAction": "Delete", "selector": "all()"},
                                 "StagedGlobalNetworkPolicy"), "spec",
     "should all be zero-value if stagedAction is Delete"),
    ("sknp-delete-fields", _np({"stagedAction": "Delete", "policyTypes": ["Ingress"]},
                               "StagedKubernetesNetworkPolicy"), "spec",
     "should all be zero-value"),
    ("sknp-except", _np({"ingress": [{"from": [{"ipBlock": {"cidr": "10.0.0.0/16",
                                                            "except": ["10.1.0.0/24"]}}]}]},
                        "StagedKubernetesNetworkPolicy"),
     "spec.ingress[0].from[0].ipBlock.except[0]", "strict subset of 10.0.0.0/16"),
    ("sknp-ipblock-and-pods", _np({"egress": [{"to": [{"ipBlock": {"cidr": "10.0.0.0/8"},
                                                       "podSelector": {}}]}]},
                                  "StagedKubernetesNetworkPolicy"), "spec.egress[0].to[0]",
     "ipBlock cannot be combined"),
    ("sknp-protocol", _np({"ingress": [{"ports": [{"protocol": "ICMP"}]}]},
                          "StagedKubernetesNetworkPolicy"), "spec.ingress[0].ports[0].protocol",
     "must be TCP, UDP or SCTP"),
    ("sknp-endport-named", _np({"ingress": [{"ports": [{"port": "web", "endPort": 90}]}]},
                               "StagedKubernetesNetworkPolicy"),
     "spec.ingress[0].ports[0].endPort", "numeric port"),
    ("sknp-endport-below", _np({"ingress": [{"ports": [{"port": 90, "endPort": 80}]}]},
                               "StagedKubernetesNetworkPolicy"),
     "spec.ingress[0].ports[0].endPort", "greater than or equal to port"),
    ("sknp-match-expr-op", _np({"podSelector": {"matchExpressions": [
        {"key": "a", "operator": "Is"}]}}, "StagedKubernetesNetworkPolicy"),
     "spec.podSelector.matchExpressions[0].operator", "must be one of"),
    ("netset-namespace-label", _np({"nets": ["10.0.0.0/8"]}, "NetworkSet",
                                   labels={"projectcalico.org/namespace": "x"}),
     "metadata.labels.projectcalico.org/namespace", "not a valid label name"),
    ("gnetset-bad-net", _np({"nets": ["10.0.0.300/32"]}, "GlobalNetworkSet"),
     "spec.nets[0]", "invalid CIDR"),
    ("gnetset-namespace", {"apiVersion": V3, "kind": "GlobalNetworkSet",
                           "metadata": {"name": "g", "namespace": "x"}, "spec": {}},
     "metadata.namespace", "not namespaced"),
]


@pytest.mark.parametrize(("doc", "path", "reason"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])
def test_invalid_documents_are_refused(doc: dict[str, Any], path: str, reason: str) -> None:
    with pytest.raises(ValidationError) as info:
        codec.decode(copy.deepcopy(doc), "doc")
    found = [(e.path, e.reason) for e in info.value.errors]
    assert any(p == path and reason in why for p, why in found), found
    # The compiled decoder refuses it too (and the full decode names the same problems).
    with pytest.raises(ValidationError) as full:
        codec._decode_full(copy.deepcopy(doc), "doc")
    assert [(e.path, e.reason) for e in full.value.errors] == found


@pytest.mark.parametrize("doc", [
    _np({"ingress": [_rule(destination={"ports": ["metrics"]})]}),  # named port, no protocol
    _np({"ingress": [_rule(protocol="SCTP", destination={"notPorts": ["1:1024"]})]}),
    _np({"ingress": [_rule(protocol="ICMPv6", ipVersion=6, notICMP={"type": 128})]}),
    _np({"egress": [_rule(destination={"namespaceSelector": "global()"})]}),
    _np({"egress": [_rule(destination={"services": {"name": "kube-dns"}})]}),
    _np({"ingress": [_rule(source={"services": {"name": "web", "namespace": "x"}},
                           protocol="TCP", destination={"ports": [80]})]}),
    _np({"ingress": [_rule(http={"methods": ["GET"], "paths": [{"prefix": "/api"}]})]}),
    _np({}, name="knp.default.a.b.c"),
    _np({}, name="ossg.default.sg-1"),
    _gnp({"doNotTrack": True, "applyOnForward": True, "ingress": [ALLOW], "egress": [ALLOW]}),
    _np({"stagedAction": "Delete"}, "StagedNetworkPolicy"),
    _np({"stagedAction": "Delete"}, "StagedKubernetesNetworkPolicy"),
], ids=lambda d: json.dumps(d["spec"])[:60])
def test_valid_documents_are_accepted(doc: dict[str, Any]) -> None:
    res = codec.decode(copy.deepcopy(doc))
    assert codec.loads(codec.dumps(res)) == res
