"""What the policy index holds, one entry at a time: keys, a parsed policy (`IndexedPolicy`:
its selector, tier, order, rules and IP sets), a `Holder` (what IP sets can hold: an endpoint's
or network set's effective labels, nets and named ports) and what one holder contributes to a
set, and `Dirty` (what changed since the last `take_dirty()`). Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from felix.calc.parsed_rule import ParsedRule, parse_rule
from felix.calc.policy_chains import PolicyRef
from felix.calc.policy_selectors import IPSetSpec, canonical, policy_selector_text
from libcalico.model import resources as r
from libcalico.model import selector as sel
from libcalico.model.resources_policy import K8S_POLICY_PREFIX

PURE = True

LABEL_ORCHESTRATOR = "projectcalico.org/orchestrator"

AnyPolicy = (r.NetworkPolicy | r.GlobalNetworkPolicy | r.StagedNetworkPolicy
             | r.StagedGlobalNetworkPolicy)
AnySet = r.NetworkSet | r.GlobalNetworkSet
Key = tuple[str, str, str]
"""(kind, namespace or "", name)."""


HOST_ENDPOINT = "HostEndpoint"


def key_of(res: AnyPolicy | AnySet | r.WorkloadEndpoint | r.HostEndpoint) -> Key:
    return (res.KIND, res.metadata.namespace or "", res.metadata.name)


@dataclass(frozen=True, slots=True)
class IndexedPolicy:
    ref: PolicyRef
    tier: str
    order: float
    selector: sel.Selector
    ingress_applies: bool
    egress_applies: bool
    ingress: tuple[ParsedRule, ...]
    egress: tuple[ParsedRule, ...]
    ipsets: frozenset[IPSetSpec]
    forced: bool
    do_not_track: bool = False
    pre_dnat: bool = False
    apply_on_forward: bool = False

    @property
    def normal(self) -> bool:
        """Neither doNotTrack nor preDNAT: the only policies workloads get."""
        return not (self.do_not_track or self.pre_dnat)

    @property
    def sort_key(self) -> tuple[float, str]:
        """Within a tier: order (unset = +inf), then "<name>/<namespace>/<kind>"."""
        return (self.order, f"{self.ref.name}/{self.ref.namespace}/{self.ref.kind}")


@dataclass(slots=True)
class Holder:
    """Something IP sets can hold: a workload endpoint or a network set."""

    labels: Mapping[str, str]
    nets: tuple[str, ...]
    ports: tuple[tuple[str, str, int], ...] = ()
    """(name, protocol, port) of a workload's named ports."""
    profiles: tuple[str, ...] = ()
    raw_labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Dirty:
    endpoints: frozenset[Key]
    policies: frozenset[Key]
    profiles: frozenset[str]
    ipsets: frozenset[str]
    host_endpoints: frozenset[Key] = frozenset()
    """Local host endpoints whose plan may differ."""


def policy_ref(pol: AnyPolicy) -> PolicyRef:
    ns = pol.metadata.namespace or ""
    name = pol.metadata.name
    kind = pol.KIND
    if kind == "NetworkPolicy" and name.startswith(K8S_POLICY_PREFIX):
        # kube-controllers' etcd mirror of a Kubernetes NetworkPolicy (Felix's knp/ id).
        kind, name = "KubernetesNetworkPolicy", name[len(K8S_POLICY_PREFIX):]
    return PolicyRef(kind, name, ns)


def _applies(pol: AnyPolicy, direction: r.PolicyType) -> bool:
    return not pol.spec.types or direction in pol.spec.types


def parse_policy(pol: AnyPolicy) -> IndexedPolicy:
    spec = pol.spec
    namespaced = isinstance(pol, r.NetworkPolicy | r.StagedNetworkPolicy)
    ns = pol.metadata.namespace if namespaced else None
    ns_sel = getattr(spec, "namespace_selector", "")
    text = policy_selector_text(spec.selector, ns, ns_sel, spec.service_account_selector)
    selector = canonical(text)
    ingress = tuple(parse_rule(x, ns) for x in spec.ingress)
    egress = tuple(parse_rule(x, ns) for x in spec.egress)
    ipsets = frozenset(s for pr in ingress + egress for s in pr.ipsets)
    ref = policy_ref(pol)
    return IndexedPolicy(
        ref=PolicyRef(ref.kind, ref.name, ref.namespace, text), tier=spec.tier or r.DEFAULT_TIER,
        order=float("inf") if spec.order is None else spec.order,
        selector=sel.parse(selector),
        ingress_applies=_applies(pol, r.PolicyType.INGRESS),
        egress_applies=_applies(pol, r.PolicyType.EGRESS),
        ingress=ingress, egress=egress, ipsets=ipsets,
        forced=r.PerformanceHint.ASSUME_NEEDED_ON_EVERY_NODE in spec.performance_hints,
        do_not_track=bool(getattr(spec, "do_not_track", False)),
        pre_dnat=bool(getattr(spec, "pre_dnat", False)),
        apply_on_forward=bool(getattr(spec, "apply_on_forward", False)),
    )


def host_nets(nets: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> tuple[str, ...]:
    """Set members of CIDRs: a /0 becomes two /1s (ipset refuses /0)."""
    out: list[str] = []
    for n in nets:
        net = ipaddress.ip_network(str(n), strict=False)
        if net.prefixlen == 0:
            out += [str(x) for x in net.subnets(1)]
        else:
            out.append(str(net))
    return tuple(out)


def contribution(spec: IPSetSpec, parsed: sel.Selector, holder: Holder) -> tuple[str, ...]:
    if not parsed.evaluate(holder.labels):
        return ()
    if not spec.port_name:
        return holder.nets
    out = []
    for name, proto, port in holder.ports:
        if name == spec.port_name and proto == spec.protocol:
            out += [f"{str(n).split('/')[0]},{proto}:{port}" for n in holder.nets]
    return tuple(out)
