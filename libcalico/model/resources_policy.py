"""Policy kinds: NetworkPolicy, GlobalNetworkPolicy, Tier, NetworkSet, GlobalNetworkSet and the
staged kinds (StagedNetworkPolicy, StagedGlobalNetworkPolicy, StagedKubernetesNetworkPolicy).

The rules are the Profile's (`resources_endpoint.Rule`, `EntityRule`): one rule model. Checks
follow Calico v3.32's validator (`libcalico-go/lib/validator/v3/validator.go`) and the CEL
rules of the CRDs; defaults follow clientv3 and the CRD defaults:

- `tier` empty -> `default`; a policy of another tier carries the label
  `projectcalico.org/tier: <tier>` (clientv3 adds it on create).
- `types` empty -> `[Ingress]` when there are no egress rules (even with no rules at all),
  `[Egress]` with egress rules only, `[Ingress, Egress]` with both
  (`defaultPolicyTypesField`).
- Tier `defaultAction` absent -> `Deny` (CRD default).
- Staged kinds: `stagedAction` absent -> `Set`.

Names (v3.32 no longer ties a policy's name to its tier, calico PR #11232): NetworkPolicy a
DNS label, `label.label`, or `knp.default.` / `ossg.default.` + a subdomain; GlobalNetworkPolicy
`(label.)?label`; Tier a DNS label (no dots). Built-in tiers: `default` (order 1,000,000, Deny),
`kube-admin` (1,000, Pass), `kube-baseline` (10,000,000, Pass); their order and default action
are fixed.
"""

from __future__ import annotations

# ruff: noqa: RUF009 - fields.fld/opt are dataclass field specifiers (dataclasses.field)
from dataclasses import dataclass, replace
from typing import ClassVar

from libcalico.errors import FieldError
from libcalico.model import validate as v
from libcalico.model.fields import fld, opt
from libcalico.model.metadata import KindSpec, Metadata, register
from libcalico.model.policy_checks import (
    K8S_POLICY_PREFIX,
    gnp_name,
    np_name,
    rule_problems,
    tier_name,
)
from libcalico.model.policy_types import PerformanceHint, PolicyStatus, PolicyType, StagedAction
from libcalico.model.resources_endpoint import LABEL_NAMESPACE, Rule
from libcalico.model.resources_staged import (
    IPBlock,
    K8sEgressRule,
    K8sIngressRule,
    K8sPolicyPeer,
    K8sPolicyPort,
    LabelSelector,
    LabelSelectorRequirement,
    StagedGlobalNetworkPolicy,
    StagedGlobalNetworkPolicySpec,
    StagedKubernetesNetworkPolicy,
    StagedKubernetesNetworkPolicySpec,
    StagedNetworkPolicy,
    StagedNetworkPolicySpec,
    sknp_check,
    sknp_defaults,
)
from libcalico.model.resources_tier import (
    BUILTIN_TIERS,
    DEFAULT_TIER,
    KUBE_ADMIN_TIER,
    KUBE_BASELINE_TIER,
    LABEL_TIER,
    Tier,
    TierSpec,
    TierStatus,
    builtin_tier,
    tier_check,
    tier_defaults,
)
from libcalico.model.types import IPNetwork

PURE = True

MAX_RULES = 1024
MAX_SELECTOR = 1024

__all__ = [
    "BUILTIN_TIERS", "DEFAULT_TIER", "K8S_POLICY_PREFIX", "KUBE_ADMIN_TIER",
    "KUBE_BASELINE_TIER", "LABEL_TIER", "MAX_RULES", "MAX_SELECTOR", "STAGED_KINDS",
    "TIERED_KINDS", "AnyPolicy", "AnyPolicySpec", "GlobalNetworkPolicy",
    "GlobalNetworkPolicySpec", "GlobalNetworkSet", "IPBlock", "K8sEgressRule",
    "K8sIngressRule", "K8sPolicyPeer", "K8sPolicyPort", "LabelSelector",
    "LabelSelectorRequirement", "NetworkPolicy", "NetworkPolicySpec", "NetworkSet",
    "NetworkSetSpec", "PerformanceHint", "PolicyStatus", "PolicyType", "StagedAction",
    "StagedGlobalNetworkPolicy", "StagedGlobalNetworkPolicySpec",
    "StagedKubernetesNetworkPolicy", "StagedKubernetesNetworkPolicySpec",
    "StagedNetworkPolicy", "StagedNetworkPolicySpec", "Tier", "TierSpec", "TierStatus",
    "applies_to", "builtin_tier", "default_types", "gnp_name", "networkset_check",
    "np_name", "policy_check", "policy_defaults", "policy_order", "rule_problems",
    "sknp_check", "sknp_defaults", "tier_check", "tier_defaults", "tier_name",
]


# ---------------------------------------------------------------------------------------------
# Specs (attribute order = Calico's Go struct order = JSON field order)


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkPolicySpec:
    tier: str = fld(default="")
    order: float | None = opt(ptr=True)
    ingress: tuple[Rule, ...] = fld(default=())
    egress: tuple[Rule, ...] = fld(default=())
    selector: str = fld(default="", check=v.selector)
    types: tuple[PolicyType, ...] = fld(default=())
    service_account_selector: str = fld(default="", check=v.selector)
    performance_hints: tuple[PerformanceHint, ...] = fld(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class GlobalNetworkPolicySpec:
    tier: str = fld(default="")
    order: float | None = opt(ptr=True)
    ingress: tuple[Rule, ...] = fld(default=())
    egress: tuple[Rule, ...] = fld(default=())
    selector: str = fld(default="", check=v.selector)
    types: tuple[PolicyType, ...] = fld(default=())
    do_not_track: bool = fld(default=False)
    pre_dnat: bool = fld("preDNAT", default=False)
    apply_on_forward: bool = fld(default=False)
    service_account_selector: str = fld(default="", check=v.selector)
    namespace_selector: str = fld(default="", check=v.selector)
    performance_hints: tuple[PerformanceHint, ...] = fld(default=())


@dataclass(frozen=True, slots=True)
class NetworkPolicy:
    KIND: ClassVar[str] = "NetworkPolicy"
    metadata: Metadata
    spec: NetworkPolicySpec = fld(factory=NetworkPolicySpec)
    status: PolicyStatus | None = opt()


@dataclass(frozen=True, slots=True)
class GlobalNetworkPolicy:
    KIND: ClassVar[str] = "GlobalNetworkPolicy"
    metadata: Metadata
    spec: GlobalNetworkPolicySpec = fld(factory=GlobalNetworkPolicySpec)



# ---------------------------------------------------------------------------------------------
# NetworkSet, GlobalNetworkSet


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkSetSpec:
    nets: tuple[IPNetwork, ...] = fld(default=())


@dataclass(frozen=True, slots=True)
class NetworkSet:
    KIND: ClassVar[str] = "NetworkSet"
    metadata: Metadata
    spec: NetworkSetSpec = fld(factory=NetworkSetSpec)


@dataclass(frozen=True, slots=True)
class GlobalNetworkSet:
    KIND: ClassVar[str] = "GlobalNetworkSet"
    metadata: Metadata
    spec: NetworkSetSpec = fld(factory=NetworkSetSpec)


# ---------------------------------------------------------------------------------------------
# Policy checks and defaults

AnyPolicy = NetworkPolicy | GlobalNetworkPolicy | StagedNetworkPolicy | StagedGlobalNetworkPolicy
AnyPolicySpec = (NetworkPolicySpec | GlobalNetworkPolicySpec | StagedNetworkPolicySpec
                 | StagedGlobalNetworkPolicySpec)


def _no_global(value: str, path: str) -> list[FieldError]:
    if "global(" in value:
        return [FieldError(path, "global() can only be used in an EntityRule"
                           " namespaceSelector")]
    return []


def _spec_problems(spec: AnyPolicySpec, *, global_policy: bool) -> list[FieldError]:
    errs: list[FieldError] = []
    if spec.tier:
        errs += tier_name(spec.tier, "spec.tier")
    for name, rules, ingress in (("ingress", spec.ingress, True),
                                 ("egress", spec.egress, False)):
        if len(rules) > MAX_RULES:
            errs.append(FieldError(f"spec.{name}", f"at most {MAX_RULES} rules"))
        for i, r in enumerate(rules):
            errs += rule_problems(r, f"spec.{name}[{i}]", ingress=ingress,
                                  global_policy=global_policy)
    if len(spec.types) > 2 or len(set(spec.types)) != len(spec.types):
        errs.append(FieldError("spec.types", "at most Ingress and Egress, each once"))
    if len(set(spec.performance_hints)) != len(spec.performance_hints):
        errs.append(FieldError("spec.performanceHints", "duplicate hint"))
    selectors = [("selector", spec.selector),
                 ("serviceAccountSelector", spec.service_account_selector)]
    if isinstance(spec, GlobalNetworkPolicySpec | StagedGlobalNetworkPolicySpec):
        selectors.append(("namespaceSelector", spec.namespace_selector))
        if spec.do_not_track and spec.pre_dnat:
            errs.append(FieldError("spec.preDNAT", "preDNAT and doNotTrack cannot both be"
                                   " true"))
        if spec.pre_dnat and spec.egress:
            errs.append(FieldError("spec.egress", "preDNAT policy cannot have any egress"
                                   " rules"))
        if spec.pre_dnat and PolicyType.EGRESS in spec.types:
            errs.append(FieldError("spec.types", "preDNAT policy cannot have 'Egress' type"))
        if (spec.pre_dnat or spec.do_not_track) and not spec.apply_on_forward:
            errs.append(FieldError("spec.applyOnForward", "applyOnForward must be true if"
                                   " either preDNAT or doNotTrack is true"))
    for name, value in selectors:
        if len(value) > MAX_SELECTOR:
            errs.append(FieldError(f"spec.{name}", f"longer than {MAX_SELECTOR} characters"))
        errs += _no_global(value, f"spec.{name}")
    return errs


def policy_check(pol: AnyPolicy) -> list[FieldError]:
    global_policy = isinstance(pol, GlobalNetworkPolicy | StagedGlobalNetworkPolicy)
    spec = pol.spec
    if (isinstance(spec, StagedNetworkPolicySpec | StagedGlobalNetworkPolicySpec)
            and spec.staged_action == StagedAction.DELETE):
        empty = type(spec)(staged_action=StagedAction.DELETE, tier=spec.tier,
                           types=spec.types)
        if replace(spec, types=()) != replace(empty, types=()):
            return [FieldError("spec", "Spec fields, except Tier, should all be zero-value if"
                               " stagedAction is Delete")]
        return []
    return _spec_problems(spec, global_policy=global_policy)


def default_types(ingress: tuple[Rule, ...], egress: tuple[Rule, ...]
                  ) -> tuple[PolicyType, ...]:
    """clientv3's defaultPolicyTypesField."""
    if egress and ingress:
        return (PolicyType.INGRESS, PolicyType.EGRESS)
    if egress:
        return (PolicyType.EGRESS,)
    return (PolicyType.INGRESS,)


def policy_defaults(pol: AnyPolicy) -> AnyPolicy:
    spec = pol.spec
    changes: dict[str, object] = {}
    if not spec.tier:
        changes["tier"] = DEFAULT_TIER
    if not spec.types and not (
        isinstance(spec, StagedNetworkPolicySpec | StagedGlobalNetworkPolicySpec)
        and spec.staged_action == StagedAction.DELETE
    ):
        changes["types"] = default_types(spec.ingress, spec.egress)
    if isinstance(spec, StagedNetworkPolicySpec | StagedGlobalNetworkPolicySpec) and (
            spec.staged_action is None):
        changes["staged_action"] = StagedAction.SET
    if changes:
        spec = replace(spec, **changes)  # type: ignore[arg-type]
    md = pol.metadata
    tier = spec.tier
    if tier != DEFAULT_TIER and md.labels.get(LABEL_TIER) != tier:
        md = replace(md, labels={**md.labels, LABEL_TIER: tier})
    if spec is pol.spec and md is pol.metadata:
        return pol
    return replace(pol, metadata=md, spec=spec)  # type: ignore[arg-type]


def networkset_check(ns: NetworkSet | GlobalNetworkSet) -> list[FieldError]:
    errs: list[FieldError] = []
    if LABEL_NAMESPACE in ns.metadata.labels:
        errs.append(FieldError(f"metadata.labels.{LABEL_NAMESPACE}",
                               f"{LABEL_NAMESPACE} is not a valid label name"))
    return errs


register(KindSpec(NetworkPolicy, namespaced=True, name_check=np_name, check=policy_check,
                  defaults=policy_defaults, has_status=True))
register(KindSpec(GlobalNetworkPolicy, name_check=gnp_name, check=policy_check,
                  defaults=policy_defaults))
register(KindSpec(StagedNetworkPolicy, namespaced=True, name_check=np_name,
                  check=policy_check, defaults=policy_defaults))
register(KindSpec(StagedGlobalNetworkPolicy, name_check=gnp_name, check=policy_check,
                  defaults=policy_defaults))
register(KindSpec(StagedKubernetesNetworkPolicy, namespaced=True, check=sknp_check,
                  defaults=sknp_defaults, has_status=True))
register(KindSpec(Tier, name_check=tier_name, check=tier_check, defaults=tier_defaults,
                  has_status=True))
register(KindSpec(NetworkSet, namespaced=True, check=networkset_check))
register(KindSpec(GlobalNetworkSet, check=networkset_check))


# ---------------------------------------------------------------------------------------------
# Helpers for consumers (calicoctl, Felix)

TIERED_KINDS = frozenset({"NetworkPolicy", "GlobalNetworkPolicy", "StagedNetworkPolicy",
                          "StagedGlobalNetworkPolicy"})
STAGED_KINDS = frozenset({"StagedNetworkPolicy", "StagedGlobalNetworkPolicy",
                          "StagedKubernetesNetworkPolicy"})


def policy_order(pol: AnyPolicy) -> float:
    """nil order is +inf (sorts last within its tier)."""
    return float("inf") if pol.spec.order is None else pol.spec.order


def applies_to(pol: AnyPolicy, direction: PolicyType) -> bool:
    """Whether `direction` is in the policy's types (an empty list, as Felix reads a policy
    written without clientv3, counts as both)."""
    return not pol.spec.types or direction in pol.spec.types
