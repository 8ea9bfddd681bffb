"""calicoctl's policy kinds: Calico's aliases and table columns (ps and wide)."""

from __future__ import annotations

from typing import Any

import pytest

from calicoctl import kinds, output
from libcalico.model import codec
from libcalico.model import resources as r


@pytest.mark.parametrize(("alias", "kind"), [
    ("networkpolicy", "NetworkPolicy"), ("networkpolicies", "NetworkPolicy"),
    ("policy", "NetworkPolicy"), ("np", "NetworkPolicy"), ("policies", "NetworkPolicy"),
    ("pol", "NetworkPolicy"), ("pols", "NetworkPolicy"),
    ("globalnetworkpolicy", "GlobalNetworkPolicy"), ("gnp", "GlobalNetworkPolicy"),
    ("gnps", "GlobalNetworkPolicy"), ("tier", "Tier"), ("tiers", "Tier"),
    ("networkset", "NetworkSet"), ("netsets", "NetworkSet"),
    ("globalnetworkset", "GlobalNetworkSet"), ("gnetsets", "GlobalNetworkSet"),
    ("stagednetworkpolicy", "StagedNetworkPolicy"), ("snp", "StagedNetworkPolicy"),
    ("stagedpolicy", "StagedNetworkPolicy"), ("spols", "StagedNetworkPolicy"),
    ("stagedglobalnetworkpolicy", "StagedGlobalNetworkPolicy"),
    ("sgnp", "StagedGlobalNetworkPolicy"),
    ("stagedkubernetesnetworkpolicy", "StagedKubernetesNetworkPolicy"),
    ("sknp", "StagedKubernetesNetworkPolicy"), ("skpols", "StagedKubernetesNetworkPolicy"),
    ("hep", "HostEndpoint"),
])
def test_aliases(alias: str, kind: str) -> None:
    assert kinds.resolve(alias).kind == kind


def _table(kind: str, docs: list[dict[str, Any]], wide: bool) -> list[list[str]]:
    text = output.resource_table(kinds.resolve(kind), docs, wide, False)
    return [line.split("   ") for line in text.splitlines()]


def _cells(kind: str, docs: list[dict[str, Any]], wide: bool) -> list[list[str]]:
    return [[c.strip() for c in row if c.strip()] for row in _table(kind, docs, wide)]


def _doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    md: dict[str, Any] = {"name": name}
    if kind in ("NetworkPolicy", "StagedNetworkPolicy", "StagedKubernetesNetworkPolicy",
                "NetworkSet"):
        md["namespace"] = "prod"
    return codec.encode(codec.decode({"apiVersion": "projectcalico.org/v3", "kind": kind,
                                      "metadata": md, "spec": spec}))


def test_networkpolicy_columns() -> None:
    docs = [_doc("NetworkPolicy", "a", {"order": 100, "selector": "app == 'db'"}),
            _doc("NetworkPolicy", "b", {"tier": "security"})]
    assert _cells("NetworkPolicy", docs, False) == [
        ["NAME", "TIER"], ["a", "default"], ["b", "security"]]
    assert _cells("NetworkPolicy", docs, True) == [
        ["NAME", "TIER", "ORDER", "SELECTOR"], ["a", "default", "100", "app == 'db'"],
        ["b", "security", "<nil>"]]


def test_gnp_and_staged_columns() -> None:
    gnp = [_doc("GlobalNetworkPolicy", "g", {"order": 1e6, "selector": "all()"})]
    assert _cells("GlobalNetworkPolicy", gnp, False) == [["NAME"], ["g"]]
    assert _cells("GlobalNetworkPolicy", gnp, True) == [
        ["NAME", "ORDER", "SELECTOR"], ["g", "1e+06", "all()"]]
    for kind in ("StagedNetworkPolicy", "StagedGlobalNetworkPolicy"):
        staged = [_doc(kind, "s", {"order": 2.5})]
        assert _cells(kind, staged, False) == [["NAME", "TIER"], ["s", "default"]]
        assert _cells(kind, staged, True) == [
            ["NAME", "TIER", "ORDER", "SELECTOR"], ["s", "default", "2.5"]]
    sknp = [_doc("StagedKubernetesNetworkPolicy", "k",
                 {"podSelector": {"matchLabels": {"app": "db", "a": "b"}}})]
    assert _cells("StagedKubernetesNetworkPolicy", sknp, True) == [
        ["NAME", "PODSELECTOR"],
        ["k", "&LabelSelector{MatchLabels:map[string]string{a: b,app: db,},"
              "MatchExpressions:[]LabelSelectorRequirement{},}"]]


def test_tier_and_networkset_columns() -> None:
    tiers = [_doc("Tier", "default", {"order": 1e6, "defaultAction": "Deny"}),
             _doc("Tier", "t", {})]
    assert _cells("Tier", tiers, False) == [["NAME", "ORDER"], ["default", "1e+06"],
                                            ["t", "<nil>"]]
    nets = [f"10.0.{i}.0/24" for i in range(8)]
    sets = [_doc("NetworkSet", "n", {"nets": nets}), _doc("GlobalNetworkSet", "g", {})]
    wide = _cells("NetworkSet", sets[:1], True)
    assert wide[0] == ["NAME", "NETS"]
    assert wide[1][1] == ",".join(nets)[:77] + "..."
    assert _cells("GlobalNetworkSet", sets[1:], True) == [["NAME", "NETS"], ["g"]]


def test_tiers_list_in_order_unset_last() -> None:
    tiers = [r.Tier(r.Metadata(n), r.TierSpec(order=o)) for n, o in
             (("a", None), ("b", 5.0), ("c", 1.0), ("d", None), ("e", 5.0))]
    assert [t.metadata.name for t in sorted(tiers, key=kinds.tier_sort_key)] == [
        "c", "b", "e", "a", "d"]


@pytest.mark.parametrize(("value", "text"), [
    (100, "100"), (100.5, "100.5"), (0, "0"), (123456, "123456"), (1e6, "1e+06"),
    (1234567, "1.234567e+06"), (1e7, "1e+07"), (0.0001, "0.0001"), (0.00001, "1e-05"),
    (-2.25, "-2.25")])
def test_orders_print_as_go_prints_a_float64(value: float, text: str) -> None:
    assert kinds.go_float(value) == text


def test_kubernetes_policy_mirrors_are_refused() -> None:
    assert kinds.refusal("create", "NetworkPolicy", "knp.default.x", "prod") == (
        "operation create or apply is not supported on NetworkPolicy(prod/knp.default.x):"
        " kubernetes network policies must be managed through the kubernetes API")
    assert "operation delete is not supported" in str(
        kinds.refusal("delete", "NetworkPolicy", "knp.default.x", "prod"))
    assert kinds.refusal("apply", "NetworkPolicy", "knp-default", "prod") is None
    assert kinds.refusal("apply", "GlobalNetworkPolicy", "knp.default", None) is None
