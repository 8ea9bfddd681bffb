"""The staged kinds: StagedNetworkPolicy, StagedGlobalNetworkPolicy (checked and defaulted
with the policies they stage, in resources_policy) and StagedKubernetesNetworkPolicy (its
check and defaults here). Registered by resources_policy (all policy kinds in one place, in
Calico's order), which re-exports these names."""

from __future__ import annotations

# ruff: noqa: RUF009 - fields.fld/opt are dataclass field specifiers (dataclasses.field)
from dataclasses import dataclass, replace
from typing import ClassVar

from libcalico.errors import FieldError
from libcalico.model import validate as v
from libcalico.model.fields import PORT, PROTOCOL, fld, opt
from libcalico.model.metadata import Metadata
from libcalico.model.policy_types import PerformanceHint, PolicyStatus, PolicyType, StagedAction
from libcalico.model.resources_endpoint import Rule
from libcalico.model.types import IPNetwork, Port, ProtocolValue

PURE = True


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
