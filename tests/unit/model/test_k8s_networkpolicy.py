"""Kubernetes NetworkPolicy -> Calico NetworkPolicy, case by case as Calico v3.32's
conversion (libcalico-go lib/backend/k8s/conversion) converts them."""

from __future__ import annotations

from typing import Any

import pytest

from libcalico.errors import ValidationError
from libcalico.model import codec
from libcalico.model import k8s_networkpolicy as knp

ORCH = "projectcalico.org/orchestrator == 'k8s'"


def kpol(spec: dict[str, Any], name: str = "test.policy", ns: str = "default",
         **meta: Any) -> dict[str, Any]:
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns, **meta}, "spec": spec}


def spec_json(obj: dict[str, Any]) -> dict[str, Any]:
    doc = codec.encode(knp.convert(obj).policy)
    spec = doc["spec"]
    assert isinstance(spec, dict)
    return spec


# ---- selectors (Calico's "selector conversion table") ---------------------------------------
@pytest.mark.parametrize(("sel", "pod", "want"), [
    ({}, True, ORCH),
    ({}, False, "all()"),
    ({"matchExpressions": [{"key": "toast", "operator": "DoesNotExist"}]}, False,
     "! has(toast)"),
    ({"matchExpressions": [{"key": "toast", "operator": "Exists"}]}, False, "has(toast)"),
    ({"matchExpressions": [{"key": "toast", "operator": "In", "values": ["butter", "jam"]}]},
     False, "toast in { 'butter', 'jam' }"),
    ({"matchExpressions": [{"key": "toast", "operator": "NotIn",
                            "values": ["marmite", "milk"]}]}, False,
     "toast not in { 'marmite', 'milk' }"),
    ({"matchExpressions": [{"key": "toast", "operator": "DoesNotExist"}]}, True,
     f"{ORCH} && ! has(toast)"),
    (None, True, ORCH),
    (None, False, ""),
    ({"matchLabels": {"b": "2", "a": "1"},
      "matchExpressions": [{"key": "z", "operator": "Exists"},
                           {"key": "c", "operator": "In", "values": ["x"]}]}, True,
     f"{ORCH} && a == '1' && b == '2' && has(z) && c in {{ 'x' }}"),
])
def test_selector(sel: dict[str, Any] | None, pod: bool, want: str) -> None:
    assert knp.selector(sel, pod=pod) == want


# ---- identity and metadata -----------------------------------------------------------------
def test_name_tier_order_namespace_and_default_types() -> None:
    res = knp.convert(kpol({"podSelector": {"matchLabels": {"label": "value"}}},
                           resourceVersion="1234")).policy
    assert res.metadata.name == "knp.default.test.policy"
    assert res.metadata.namespace == "default"
    assert res.metadata.resource_version == "1234"
    assert res.spec.tier == "default"
    assert res.spec.order == 1000.0
    assert res.spec.selector == f"{ORCH} && label == 'value'"
    assert [str(t) for t in res.spec.types] == ["Ingress"]  # no policyTypes: Ingress only
    assert res.spec.ingress == () and res.spec.egress == ()


def test_uid_bits_reversed_but_version_and_variant() -> None:
    uid = "30316465-6365-4463-ad63-3564622d3638"
    got = knp.convert_uid(uid)
    raw, new = bytes.fromhex(uid.replace("-", "")), bytes.fromhex(got.replace("-", ""))
    for i in range(16):
        want = raw[i] if i in (6, 8) else int(f"{raw[i]:08b}"[::-1], 2)
        assert new[i] == want
    assert knp.convert_uid(got) == uid  # an involution
    assert knp.convert(kpol({"podSelector": {}}, uid=uid)).policy.metadata.uid == got
    with pytest.raises(ValidationError):
        knp.convert(kpol({"podSelector": {}}, uid="not-a-uuid"))


@pytest.mark.parametrize(("types", "egress", "want"), [
    (None, None, ["Ingress"]),
    ([], None, ["Ingress"]),
    (["Ingress"], None, ["Ingress"]),
    (["Egress"], None, ["Egress"]),
    (["Egress", "Ingress"], None, ["Ingress", "Egress"]),
    (["Ingress"], [{}], ["Ingress"]),  # egress rules without Egress: kept, not a type
])
def test_policy_types(types: list[str] | None, egress: list[Any] | None,
                      want: list[str]) -> None:
    spec: dict[str, Any] = {"podSelector": {}}
    if types is not None:
        spec["policyTypes"] = types
    if egress is not None:
        spec["egress"] = egress
    assert spec_json(kpol(spec))["types"] == want


# ---- rules ---------------------------------------------------------------------------------
def _bare(rules: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rules without their empty source/destination (which the stored JSON keeps, as
    Go encodes a struct field: test_stored_json_and_hook_shape)."""
    return [{k: v for k, v in r.items() if v != {}} for r in rules]


def ingress(rule: dict[str, Any]) -> list[dict[str, Any]]:
    got = spec_json(kpol({"podSelector": {}, "ingress": [rule], "policyTypes": ["Ingress"]}))
    return _bare(list(got.get("ingress", [])))


def egress(rule: dict[str, Any]) -> list[dict[str, Any]]:
    got = spec_json(kpol({"podSelector": {}, "egress": [rule], "policyTypes": ["Egress"]}))
    return _bare(list(got.get("egress", [])))


@pytest.mark.parametrize(("rule", "want"), [
    # {} allows everything: one rule, no protocol, no peer.
    ({}, [{"action": "Allow"}]),
    # podSelector peer: orchestrator + labels (the namespace term is Felix's).
    ({"from": [{"podSelector": {"matchLabels": {"k": "v"}}}]},
     [{"action": "Allow", "source": {"selector": f"{ORCH} && k == 'v'"}}]),
    # namespaceSelector only: orchestrator selector, namespace labels.
    ({"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]},
     [{"action": "Allow", "source": {"selector": ORCH, "namespaceSelector": "ns == 'y'"}}]),
    # namespaceSelector {}: every namespace.
    ({"from": [{"namespaceSelector": {}}]},
     [{"action": "Allow", "source": {"selector": ORCH, "namespaceSelector": "all()"}}]),
    # both in one peer: AND in one rule.
    ({"from": [{"podSelector": {"matchLabels": {"pod": "b"}},
                "namespaceSelector": {"matchLabels": {"ns": "y"}}}]},
     [{"action": "Allow", "source": {"selector": f"{ORCH} && pod == 'b'",
                                     "namespaceSelector": "ns == 'y'"}}]),
    # two peers: OR, one rule each.
    ({"from": [{"podSelector": {"matchLabels": {"a": "1"}}},
               {"podSelector": {"matchLabels": {"b": "2"}}}]},
     [{"action": "Allow", "source": {"selector": f"{ORCH} && a == '1'"}},
      {"action": "Allow", "source": {"selector": f"{ORCH} && b == '2'"}}]),
    # ipBlock with except: nets (normalised) and notNets, no selector.
    ({"from": [{"ipBlock": {"cidr": "192.168.3.1/16", "except": ["192.168.3.0/24",
                                                                 "192.168.4.7/24"]}}]},
     [{"action": "Allow", "source": {"nets": ["192.168.0.0/16"],
                                     "notNets": ["192.168.3.0/24", "192.168.4.0/24"]}}]),
    # a port without protocol is TCP.
    ({"ports": [{"port": 80}]},
     [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [80]}}]),
    # named port, protocol given.
    ({"ports": [{"port": "serve-80-tcp", "protocol": "TCP"}]},
     [{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["serve-80-tcp"]}}]),
    # endPort: a range.
    ({"ports": [{"port": 32000, "endPort": 32768, "protocol": "TCP"}]},
     [{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["32000:32768"]}}]),
    # a protocol without port: every port of it.
    ({"ports": [{"protocol": "UDP"}]}, [{"action": "Allow", "protocol": "UDP"}]),
    # ...which absorbs that protocol's numbered ports in either order.
    ({"ports": [{"protocol": "UDP", "port": 53}, {"protocol": "UDP"}]},
     [{"action": "Allow", "protocol": "UDP"}]),
    ({"ports": [{"protocol": "UDP"}, {"protocol": "UDP", "port": 53}]},
     [{"action": "Allow", "protocol": "UDP"}]),
    # protocols sorted, one rule per protocol x peer; numbers merged into ranges after names.
    ({"from": [{"podSelector": {}}, {"ipBlock": {"cidr": "10.0.0.0/8"}}],
      "ports": [{"port": 81, "protocol": "UDP"}, {"port": 82}, {"port": 80},
                {"port": "http"}, {"port": 81}, {"port": 90, "protocol": "SCTP"}]},
     [{"action": "Allow", "protocol": "SCTP", "source": {"selector": ORCH},
       "destination": {"ports": [90]}},
      {"action": "Allow", "protocol": "SCTP", "source": {"nets": ["10.0.0.0/8"]},
       "destination": {"ports": [90]}},
      {"action": "Allow", "protocol": "TCP", "source": {"selector": ORCH},
       "destination": {"ports": ["http", "80:82"]}},
      {"action": "Allow", "protocol": "TCP", "source": {"nets": ["10.0.0.0/8"]},
       "destination": {"ports": ["http", "80:82"]}},
      {"action": "Allow", "protocol": "UDP", "source": {"selector": ORCH},
       "destination": {"ports": [81]}},
      {"action": "Allow", "protocol": "UDP", "source": {"nets": ["10.0.0.0/8"]},
       "destination": {"ports": [81]}}]),
    # one numeric port beside names: left as given (SimplifyPorts short-cut).
    ({"ports": [{"port": 443}, {"port": "web"}]},
     [{"action": "Allow", "protocol": "TCP", "destination": {"ports": [443, "web"]}}]),
    # ranges and single ports overlapping merge.
    ({"ports": [{"port": 100, "endPort": 105}, {"port": 106}, {"port": 103}, {"port": 200}]},
     [{"action": "Allow", "protocol": "TCP", "destination": {"ports": ["100:106", 200]}}]),
])
def test_ingress_rule(rule: dict[str, Any], want: list[dict[str, Any]]) -> None:
    assert ingress(rule) == want


def test_egress_puts_peer_and_ports_in_destination() -> None:
    got = egress({"to": [{"podSelector": {"matchLabels": {"app": "db"}},
                          "namespaceSelector": {}}],
                  "ports": [{"port": 5432}]})
    assert got == [{"action": "Allow", "protocol": "TCP",
                    "destination": {"selector": f"{ORCH} && app == 'db'",
                                    "namespaceSelector": "all()", "ports": [5432]}}]
    assert egress({"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}]}) == \
        [{"action": "Allow", "destination": {"nets": ["0.0.0.0/0"], "notNets": ["10.0.0.0/8"]}}]


def test_empty_ingress_is_default_deny() -> None:
    spec = spec_json(kpol({"podSelector": {}, "ingress": [], "policyTypes": ["Ingress"]}))
    assert "ingress" not in spec and spec["types"] == ["Ingress"]


def test_unconvertible_rule_dropped_rest_kept() -> None:
    got = knp.convert(kpol({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [
        {"ports": [{"port": "http", "endPort": 90}]},
        {"ports": [{"port": 8080}]},
    ]}))
    assert len(got.policy.spec.ingress) == 1
    assert got.policy.spec.ingress[0].destination.ports[0].min_port == 8080
    assert len(got.dropped) == 1 and got.dropped[0].startswith("ingress[0]:")


def test_stored_json_and_hook_shape() -> None:
    obj = kpol({"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"port": 80, "protocol": "TCP"}]}]},
               name="allow-80", ns="x")
    assert knp.is_kubernetes_policy(obj)
    res = knp.to_calico(obj)
    assert codec.dumps(res) == (
        '{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":'
        '{"name":"knp.default.allow-80","namespace":"x","creationTimestamp":null},"spec":'
        '{"tier":"default","order":1000,"ingress":[{"action":"Allow","protocol":"TCP",'
        '"source":{},"destination":{"ports":[80]}}],"selector":"projectcalico.org/orchestrator == '
        "'k8s' \\u0026\\u0026 pod == 'a'\",\"types\":[\"Ingress\"]}}")


def test_etcd_mirror_keeps_name_and_namespace_only() -> None:
    obj = kpol({"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{}]},
               name="web", ns="prod", uid="30316465-6365-4463-ad63-3564622d3638",
               resourceVersion="77", creationTimestamp="2026-01-02T03:04:05Z")
    full = knp.convert(obj).policy
    assert full.metadata.uid and full.metadata.resource_version == "77"
    res = knp.etcd_mirror(obj)
    assert res.metadata.name == "knp.default.web" and res.metadata.namespace == "prod"
    assert res.metadata.uid is None and res.metadata.resource_version is None
    assert res.metadata.creation_timestamp is None
    assert res.spec == full.spec
