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
import enum
import re
from dataclasses import dataclass, replace
from typing import ClassVar

from libcalico.errors import FieldError
from libcalico.model import validate as v
from libcalico.model.fields import PORT, PROTOCOL, fld, opt
from libcalico.model.metadata import KindSpec, Metadata, register
from libcalico.model.resources_endpoint import LABEL_NAMESPACE, Action, Rule, rule_check
from libcalico.model.resources_net import Condition
from libcalico.model.types import IPNetwork, Port, ProtocolValue

PURE = True

LABEL_TIER = "projectcalico.org/tier"
DEFAULT_TIER = "default"
KUBE_ADMIN_TIER = "kube-admin"
KUBE_BASELINE_TIER = "kube-baseline"
MAX_RULES = 1024
MAX_SELECTOR = 1024


class PolicyType(enum.StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


class StagedAction(enum.StrEnum):
    SET = "Set"
    DELETE = "Delete"
    LEARN = "Learn"
    IGNORE = "Ignore"


class PerformanceHint(enum.StrEnum):
    ASSUME_NEEDED_ON_EVERY_NODE = "AssumeNeededOnEveryNode"


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyStatus:
    """Written by Calico's controllers (`Valid` condition); kept as read."""

    conditions: tuple[Condition, ...] = fld(default=())


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


@dataclass(frozen=True, slots=True, kw_only=True)
class StagedNetworkPolicySpec:
    staged_action: StagedAction | None = opt()
    tier: str = fld(default="")
    order: float | None = opt(ptr=True)
    ingress: tuple[Rule, ...] = fld(default=())
    egress: tuple[Rule, ...] = fld(default=())
    selector: str = fld(default="", check=v.selector)
    types: tuple[PolicyType, ...] = fld(default=())
    service_account_selector: str = fld(default="", check=v.selector)
    performance_hints: tuple[PerformanceHint, ...] = fld(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class StagedGlobalNetworkPolicySpec:
    staged_action: StagedAction | None = opt()
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


@dataclass(frozen=True, slots=True)
class StagedNetworkPolicy:
    KIND: ClassVar[str] = "StagedNetworkPolicy"
    metadata: Metadata
    spec: StagedNetworkPolicySpec = fld(factory=StagedNetworkPolicySpec)


@dataclass(frozen=True, slots=True)
class StagedGlobalNetworkPolicy:
    KIND: ClassVar[str] = "StagedGlobalNetworkPolicy"
    metadata: Metadata
    spec: StagedGlobalNetworkPolicySpec = fld(factory=StagedGlobalNetworkPolicySpec)


# ---------------------------------------------------------------------------------------------
# StagedKubernetesNetworkPolicy: a networking.k8s.io/v1 NetworkPolicy spec plus stagedAction.


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelSelectorRequirement:
    key: str = fld(omitempty=False)
    operator: str = fld(omitempty=False,
                        check=v.one_of("In", "NotIn", "Exists", "DoesNotExist"))
    values: tuple[str, ...] = fld(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class LabelSelector:
    """metav1.LabelSelector."""

    match_labels: dict[str, str] = fld(factory=dict, check=v.label_map)
    match_expressions: tuple[LabelSelectorRequirement, ...] = fld(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class IPBlock:
    cidr: IPNetwork = fld(omitempty=False)
    except_: tuple[IPNetwork, ...] = fld("except", default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class K8sPolicyPeer:
    pod_selector: LabelSelector | None = opt()
    namespace_selector: LabelSelector | None = opt()
    ip_block: IPBlock | None = opt("ipBlock")


@dataclass(frozen=True, slots=True, kw_only=True)
class K8sPolicyPort:
    protocol: ProtocolValue | None = opt(codec=PROTOCOL)
    port: Port | None = opt(codec=PORT)
    end_port: int | None = opt(ptr=True, check=v.int_range(1, 65535))


@dataclass(frozen=True, slots=True, kw_only=True)
class K8sIngressRule:
    ports: tuple[K8sPolicyPort, ...] = fld(default=())
    from_: tuple[K8sPolicyPeer, ...] = fld("from", default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class K8sEgressRule:
    ports: tuple[K8sPolicyPort, ...] = fld(default=())
    to: tuple[K8sPolicyPeer, ...] = fld(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class StagedKubernetesNetworkPolicySpec:
    staged_action: StagedAction | None = opt()
    pod_selector: LabelSelector = fld(factory=LabelSelector)
    ingress: tuple[K8sIngressRule, ...] = fld(default=())
    egress: tuple[K8sEgressRule, ...] = fld(default=())
    policy_types: tuple[PolicyType, ...] = fld(default=())


@dataclass(frozen=True, slots=True)
class StagedKubernetesNetworkPolicy:
    KIND: ClassVar[str] = "StagedKubernetesNetworkPolicy"
    metadata: Metadata
    spec: StagedKubernetesNetworkPolicySpec = fld(factory=StagedKubernetesNetworkPolicySpec)
    status: PolicyStatus | None = opt()


# ---------------------------------------------------------------------------------------------
# Tier


@dataclass(frozen=True, slots=True, kw_only=True)
class TierSpec:
    order: float | None = opt(ptr=True)
    default_action: Action | None = opt()


@dataclass(frozen=True, slots=True, kw_only=True)
class TierStatus:
    conditions: tuple[Condition, ...] = fld(default=())


@dataclass(frozen=True, slots=True)
class Tier:
    KIND: ClassVar[str] = "Tier"
    metadata: Metadata
    spec: TierSpec = fld(factory=TierSpec)
    status: TierStatus | None = opt()

    @property
    def effective_order(self) -> float:
        """nil order sorts last (+inf)."""
        return float("inf") if self.spec.order is None else self.spec.order


BUILTIN_TIERS: dict[str, tuple[float, Action]] = {
    KUBE_ADMIN_TIER: (1_000.0, Action.PASS),
    DEFAULT_TIER: (1_000_000.0, Action.DENY),
    KUBE_BASELINE_TIER: (10_000_000.0, Action.PASS),
}
"""name -> (order, defaultAction) of the tiers Calico v3.32 creates and protects."""


def builtin_tier(name: str) -> Tier:
    order, action = BUILTIN_TIERS[name]
    return Tier(Metadata(name), TierSpec(order=order, default_action=action))


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
# Names

_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = _LABEL + r"(\." + _LABEL + ")*"
_NP_NAME = re.compile(rf"^(({_LABEL})(\.{_LABEL})?|((knp|ossg)\.default\.({_SUBDOMAIN})))$")
_GNP_NAME = re.compile(rf"^({_LABEL}\.)?{_LABEL}$")
_TIER_NAME = re.compile(rf"^{_LABEL}$")
K8S_POLICY_PREFIX = "knp.default."
"""kube-controllers' name prefix for Kubernetes NetworkPolicies mirrored into etcd."""


def _name(regex: re.Pattern[str], limit: int, what: str) -> v.Check:
    def check(value: str, path: str) -> list[FieldError]:
        if len(value) > limit:
            return [FieldError(path, f"name {value!r} is longer than {limit} characters")]
        if not regex.match(value):
            return [FieldError(path, f"invalid {what} name {value!r}: {_NAME_HELP[what]}")]
        return []

    return check


_NAME_HELP = {
    "NetworkPolicy": "lower case alphanumeric characters or '-', with at most one '.'"
                     " (or a knp.default. / ossg.default. prefixed name)",
    "GlobalNetworkPolicy": "lower case alphanumeric characters or '-', with at most one '.'",
    "Tier": "lower case alphanumeric characters or '-' (no '.'), starting and ending with an"
            " alphanumeric character",
}

np_name = _name(_NP_NAME, 253, "NetworkPolicy")
gnp_name = _name(_GNP_NAME, 253, "GlobalNetworkPolicy")
tier_name = _name(_TIER_NAME, 63, "Tier")


# ---------------------------------------------------------------------------------------------
# Rule checks: the rule-level ones are the Profile's (resources_endpoint.rule_check: one rule
# model, one check); here only what depends on where the rule is.


def rule_problems(rule: Rule, path: str, *, ingress: bool, global_policy: bool
                  ) -> list[FieldError]:
    """Every check Calico applies to one policy rule (`ingress` says which list it is in)."""
    errs = rule_check(rule, path)
    if rule.ip_version not in (None, 4, 6):
        errs.append(FieldError(f"{path}.ipVersion", f"{rule.ip_version} is out of range: must"
                               " be 4 or 6"))
    for side, ent in (("source", rule.source), ("destination", rule.destination)):
        for name, nets in (("nets", ent.nets), ("notNets", ent.not_nets)):
            if len(nets) > 256:
                errs.append(FieldError(f"{path}.{side}.{name}", "at most 256 CIDRs"))
        svc = ent.services
        if svc is None:
            continue
        p = f"{path}.{side}.services"
        if side == "source" and not ingress:
            errs.append(FieldError(p, "not allowed in egress rule source"))
        if side == "destination" and ingress:
            errs.append(FieldError(p, "not allowed in ingress rule destination"))
        if global_policy and not svc.namespace and (side == "source") == ingress:
            errs.append(FieldError(f"{p}.namespace", "must specify a namespace"))
    if rule.http is not None and not ingress:
        errs.append(FieldError(f"{path}.http", "not allowed in egress rule"))
    return errs


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


def sknp_check(pol: StagedKubernetesNetworkPolicy) -> list[FieldError]:
    spec = pol.spec
    errs: list[FieldError] = []
    if spec.staged_action == StagedAction.DELETE:
        if replace(spec, staged_action=None) != StagedKubernetesNetworkPolicySpec():
            errs.append(FieldError("spec", "Spec fields should all be zero-value if"
                                   " stagedAction is Delete"))
        return errs
    if len(spec.policy_types) > 2 or len(set(spec.policy_types)) != len(spec.policy_types):
        errs.append(FieldError("spec.policyTypes", "at most Ingress and Egress, each once"))
    peers = [(f"spec.ingress[{i}].from[{j}]", p)
             for i, r in enumerate(spec.ingress) for j, p in enumerate(r.from_)]
    peers += [(f"spec.egress[{i}].to[{j}]", p)
              for i, r in enumerate(spec.egress) for j, p in enumerate(r.to)]
    for path, peer in peers:
        block = peer.ip_block
        if block is None:
            continue
        if peer.pod_selector is not None or peer.namespace_selector is not None:
            errs.append(FieldError(path, "ipBlock cannot be combined with podSelector or"
                                   " namespaceSelector"))
        for k, ex in enumerate(block.except_):
            if ex.version != block.cidr.version or ex == block.cidr or not ex.subnet_of(
                    block.cidr):  # type: ignore[arg-type]
                errs.append(FieldError(f"{path}.ipBlock.except[{k}]",
                                       f"must be a strict subset of {block.cidr}"))
    rules = [(f"spec.ingress[{i}].ports", r.ports) for i, r in enumerate(spec.ingress)]
    rules += [(f"spec.egress[{i}].ports", r.ports) for i, r in enumerate(spec.egress)]
    for path, ports in rules:
        for k, port in enumerate(ports):
            if port.protocol is not None and port.protocol not in ("TCP", "UDP", "SCTP"):
                errs.append(FieldError(f"{path}[{k}].protocol", "must be TCP, UDP or SCTP"))
            if port.end_port is not None:
                if port.port is None or port.port.name:
                    errs.append(FieldError(f"{path}[{k}].endPort", "may only be used with a"
                                           " numeric port"))
                elif port.end_port < port.port.min_port:
                    errs.append(FieldError(f"{path}[{k}].endPort", "must be greater than or"
                                           " equal to port"))
            if port.port is not None and not port.port.name and (
                    port.port.min_port != port.port.max_port or port.port.min_port == 0):
                errs.append(FieldError(f"{path}[{k}].port", "must be a port number 1-65535 or"
                                       " a port name"))
    return errs


def sknp_defaults(pol: StagedKubernetesNetworkPolicy) -> StagedKubernetesNetworkPolicy:
    if pol.spec.staged_action is None:
        return replace(pol, spec=replace(pol.spec, staged_action=StagedAction.SET))
    return pol


def tier_check(tier: Tier) -> list[FieldError]:
    errs: list[FieldError] = []
    action = tier.spec.default_action
    if action not in (None, Action.DENY, Action.PASS):
        errs.append(FieldError("spec.defaultAction", f"invalid value {action!r}: must be one"
                               " of Deny, Pass"))
    builtin = BUILTIN_TIERS.get(tier.metadata.name)
    if builtin is not None:
        order, want = builtin
        name = tier.metadata.name
        if tier.spec.order != order:
            errs.append(FieldError("spec.order", f"{name} tier order must be {order:.0f}"))
        if action != want:
            errs.append(FieldError("spec.defaultAction", f"The '{name}' tier must have"
                                   f" default action '{want}'"))
    return errs


def tier_defaults(tier: Tier) -> Tier:
    if tier.spec.default_action is None:
        return replace(tier, spec=replace(tier.spec, default_action=Action.DENY))
    return tier


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
