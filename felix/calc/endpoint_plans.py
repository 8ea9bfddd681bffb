"""The plan of a local endpoint from the policies that match it (Felix's PolicySorter): tiers
ordered (existing first, then order, unset last, then name), policies within a tier by order
then `name/namespace/kind`; a host endpoint gets one list of tiers per kind (normal,
doNotTrack, preDNAT, applyOnForward). Pure."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from felix.calc.policy_chains import EndpointPlan, HostPlan, TierPlan
from felix.calc.policy_entries import IndexedPolicy
from libcalico.model import resources as r

PURE = True


def endpoint_plan(wep: r.WorkloadEndpoint, policies: Iterable[IndexedPolicy],
                  tier_defs: Mapping[str, r.Tier]) -> EndpointPlan:
    """The tiers (in order) and profiles of a local endpoint."""
    by_tier: dict[str, list[IndexedPolicy]] = {}
    for pol in policies:
        if pol.normal:     # workloads never get doNotTrack or preDNAT policies
            by_tier.setdefault(pol.tier, []).append(pol)
    tiers = []
    for name in sorted(by_tier, key=lambda n: tier_sort_key(tier_defs, n)):
        pols = sorted(by_tier[name], key=lambda p: p.sort_key)
        tier = tier_defs.get(name)
        action = str(tier.spec.default_action) if tier and tier.spec.default_action \
            else "Deny"
        tiers.append(TierPlan(
            name, action,
            ingress=tuple(p.ref for p in pols if p.ingress_applies),
            egress=tuple(p.ref for p in pols if p.egress_applies)))
    return EndpointPlan(wep.spec.interface_name or "", tuple(tiers), wep.spec.profiles)


def host_endpoint_plan(hep: r.HostEndpoint, policies: Iterable[IndexedPolicy],
                       tier_defs: Mapping[str, r.Tier]) -> HostPlan:
    """The tiers of each kind and the profiles of a local host endpoint."""
    by_tier: dict[str, list[IndexedPolicy]] = {}
    for pol in policies:
        by_tier.setdefault(pol.tier, []).append(pol)
    normal: list[TierPlan] = []
    untracked: list[TierPlan] = []
    pre_dnat: list[TierPlan] = []
    forward: list[TierPlan] = []
    for name in sorted(by_tier, key=lambda n: tier_sort_key(tier_defs, n)):
        pols = sorted(by_tier[name], key=lambda p: p.sort_key)
        tier = tier_defs.get(name)
        action = str(tier.spec.default_action) if tier and tier.spec.default_action \
            else "Deny"
        for out, chosen, act, egress in (
                (normal, [p for p in pols if p.normal], action, True),
                (untracked, [p for p in pols if p.do_not_track], "Pass", True),
                (pre_dnat, [p for p in pols if p.pre_dnat and not p.do_not_track],
                 "Pass", False),
                (forward, [p for p in pols if p.normal and p.apply_on_forward], action,
                 True)):
            plan = TierPlan(name, act,
                            ingress=tuple(p.ref for p in chosen if p.ingress_applies),
                            egress=tuple(p.ref for p in chosen if egress and
                                         p.egress_applies))
            if plan.ingress or plan.egress:
                out.append(plan)
    return HostPlan(tuple(normal), tuple(untracked), tuple(pre_dnat), tuple(forward),
                    hep.spec.profiles)


def tier_sort_key(tier_defs: Mapping[str, r.Tier], name: str) -> tuple[bool, float, str]:
    """Existing tiers first, then order (unset last), then name (PolicySorter.TierLess)."""
    tier = tier_defs.get(name)
    if tier is None:
        return (True, float("inf"), name)
    order = tier.spec.order
    return (False, float("inf") if order is None else order, name)
