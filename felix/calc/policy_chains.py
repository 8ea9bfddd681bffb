"""Policy, profile and per-endpoint chains as Felix writes them (`felix/rules/policy.go`,
`felix/rules/endpoints.go`). Pure.

- `policy_chains`: `cali-pi-<id>` (ingress) / `cali-po-<id>` (egress) of one policy; ids are
  v3.32's `np/<ns>/<name>`, `gnp/<name>`, `knp/<ns>/<name>`, names over 28 characters hashed.
- `profile_chains`: `cali-pri-<profile>` / `cali-pro-<profile>`.
- `endpoint_chains`: a workload's `cali-tw-<iface>` (its ingress) and `cali-fw-<iface>` (its
  egress): conntrack, mark clear, (from-workload) VXLAN/IPIP drops, then each tier that has
  policies for the direction (Start of tier, a jump and a Return-if-accepted per policy, an
  end-of-tier DROP when a non-staged policy of the tier applied and its default action is not
  Pass), then the profiles, then "Drop if no profiles matched". Staged policies are never
  jumped to.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass, field

from felix.calc.parsed_rule import ParsedRule
from felix.calc.policy_rules import LOG_PREFIX, render_rules
from felix.calc.rule_matches import (
    MARK_ACCEPT,
    MARK_PASS,
    clear_mark,
    match_mark_clear,
    match_mark_set,
    set_mark,
)
from felix.drivers.iptables.rules import Rule, length_limited

PURE = True

_ID_PREFIX = {
    "NetworkPolicy": "np", "GlobalNetworkPolicy": "gnp", "KubernetesNetworkPolicy": "knp",
    "KubernetesClusterNetworkPolicy": "kcnp", "StagedNetworkPolicy": "snp",
    "StagedGlobalNetworkPolicy": "sgnp", "StagedKubernetesNetworkPolicy": "sknp",
}
STAGED_KINDS = frozenset({"StagedNetworkPolicy", "StagedGlobalNetworkPolicy",
                          "StagedKubernetesNetworkPolicy"})


@dataclass(frozen=True, slots=True, order=True)
class PolicyRef:
    """One policy as Felix names it (types.PolicyID)."""

    kind: str
    name: str
    namespace: str = ""
    selector: str = field(default="", compare=False)
    """The policy's selector as composed for Felix (policies are grouped by it)."""

    @property
    def id(self) -> str:
        prefix = _ID_PREFIX[self.kind]
        return f"{prefix}/{self.namespace}/{self.name}" if self.namespace else \
            f"{prefix}/{self.name}"

    @property
    def staged(self) -> bool:
        return self.kind in STAGED_KINDS

    def __str__(self) -> str:
        """types.PolicyID.String()."""
        return f"{{Name: {self.name}, Namespace: {self.namespace}, Kind: {self.kind}}}"

    def comment(self, direction: str) -> str:
        who = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {who} {direction}"


def policy_chain_name(inbound: bool, ref: PolicyRef) -> str:
    return length_limited("cali-pi-" if inbound else "cali-po-", ref.id)


def profile_chain_name(inbound: bool, profile: str) -> str:
    return length_limited("cali-pri-" if inbound else "cali-pro-", profile)


def tw_chain(iface: str) -> str:
    return length_limited("cali-tw-", iface)


def fw_chain(iface: str) -> str:
    return length_limited("cali-fw-", iface)


GROUP_UID_LENGTH = 28 - len("cali-gi-")
RETURN_STRIDE = 5


@dataclass(frozen=True, slots=True)
class PolicyGroup:
    """A run of consecutive policies of one tier with the same selector (endpoint_mgr
    groupPolicies): inlined into the endpoint chain when it holds at most one non-staged
    policy, else a shared `cali-gi-`/`cali-go-<uid>` chain (calico PR #8098)."""

    inbound: bool
    policies: tuple[PolicyRef, ...]
    selector: str

    @property
    def uid(self) -> str:
        h = hashlib.sha3_224()
        for part in (self.selector, "inbound" if self.inbound else "outbound",
                     str(len(self.policies)), *(str(p) for p in self.policies)):
            h.update(part.encode() + b"\n")
        return base64.urlsafe_b64encode(h.digest()).decode().rstrip("=")[:GROUP_UID_LENGTH]

    @property
    def chain_name(self) -> str:
        return ("cali-gi-" if self.inbound else "cali-go-") + self.uid

    @property
    def enforced(self) -> tuple[PolicyRef, ...]:
        return tuple(p for p in self.policies if not p.staged)

    @property
    def inlined(self) -> bool:
        return len(self.enforced) <= 1

    def chain(self) -> tuple[Rule, ...]:
        """PolicyGroupToIptablesChains: a jump per non-staged policy, guarded by "no verdict
        yet" except at the start of each block of 5, and a Return on verdict between blocks."""
        rules: list[Rule] = []
        verdict = MARK_PASS | MARK_ACCEPT
        for count, ref in enumerate(self.enforced):
            if count and count % RETURN_STRIDE == 0:
                rules.append(Rule(f"-m mark ! --mark 0/{verdict:#x}", "--jump RETURN",
                                  "Return on verdict"))
            match = "" if count % RETURN_STRIDE == 0 else match_mark_clear(verdict)
            rules.append(Rule(match, f"--jump {policy_chain_name(self.inbound, ref)}"))
        return tuple(rules)


def group_policies(refs: tuple[PolicyRef, ...], inbound: bool) -> list[PolicyGroup]:
    groups: list[PolicyGroup] = []
    for ref in refs:
        if groups and groups[-1].selector == ref.selector:
            last = groups[-1]
            groups[-1] = PolicyGroup(inbound, (*last.policies, ref), last.selector)
        else:
            groups.append(PolicyGroup(inbound, (ref,), ref.selector))
    return groups


def policy_chains(ref: PolicyRef, ingress: tuple[ParsedRule, ...],
                  egress: tuple[ParsedRule, ...], version: int,
                  log_prefix: str = LOG_PREFIX) -> dict[str, tuple[Rule, ...]]:
    """Both chains of a policy (none for a staged one: Felix never programs those)."""
    if ref.staged:
        return {}
    return {
        policy_chain_name(True, ref): render_rules(version, ingress, ref.comment("ingress"),
                                                   log_prefix),
        policy_chain_name(False, ref): render_rules(version, egress, ref.comment("egress"),
                                                    log_prefix),
    }


def profile_chains(name: str, ingress: tuple[ParsedRule, ...], egress: tuple[ParsedRule, ...],
                   version: int, log_prefix: str = LOG_PREFIX) -> dict[str, tuple[Rule, ...]]:
    return {
        profile_chain_name(True, name): render_rules(version, ingress,
                                                     f"Profile {name} ingress", log_prefix),
        profile_chain_name(False, name): render_rules(version, egress,
                                                      f"Profile {name} egress", log_prefix),
    }


@dataclass(frozen=True, slots=True)
class TierPlan:
    """A tier as it applies to one endpoint: its policies in order (order, then name) for
    each direction, staged ones included (they decide nothing but are listed)."""

    name: str
    default_action: str
    ingress: tuple[PolicyRef, ...] = ()
    egress: tuple[PolicyRef, ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointPlan:
    """What one local workload's chains jump to."""

    iface: str
    tiers: tuple[TierPlan, ...] = ()
    profiles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HostPlan:
    """What one local host endpoint's chains jump to, with its policies split by kind as
    Felix's event sequencer splits them (tierInfoToProtoTierInfo): `doNotTrack` policies
    only in `untracked`, `preDNAT` ones only in `pre_dnat` (ingress only), the others in
    `normal` and, with `applyOnForward`, also in `forward`. Untracked and pre-DNAT tiers
    have default action Pass. Tiers without a policy of their kind are left out."""

    normal: tuple[TierPlan, ...] = ()
    untracked: tuple[TierPlan, ...] = ()
    pre_dnat: tuple[TierPlan, ...] = ()
    forward: tuple[TierPlan, ...] = ()
    profiles: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointOptions:
    vxlan_port: int = 4789
    allow_vxlan_from_workloads: bool = False
    allow_ipip_from_workloads: bool = False


def endpoint_chains(plan: EndpointPlan, opts: EndpointOptions = EndpointOptions()
                    ) -> dict[str, tuple[Rule, ...]]:
    """`cali-tw-<iface>` (policies' ingress, `cali-pi-`, `cali-pri-`) and `cali-fw-<iface>`
    (egress, `cali-po-`, `cali-pro-`), then the group chains they jump to. The same for both
    IP versions."""
    groups: dict[str, tuple[Rule, ...]] = {}
    out = {
        tw_chain(plan.iface): _endpoint_chain(plan, True, opts, groups),
        fw_chain(plan.iface): _endpoint_chain(plan, False, opts, groups),
    }
    out.update(groups)
    return out


def _endpoint_chain(plan: EndpointPlan, inbound: bool, opts: EndpointOptions,
                    groups: dict[str, tuple[Rule, ...]]) -> tuple[Rule, ...]:
    drop_vxlan = None if inbound or opts.allow_vxlan_from_workloads else opts.vxlan_port
    drop_ipip = not inbound and not opts.allow_ipip_from_workloads
    return endpoint_chain(plan.tiers, plan.profiles, inbound, groups,
                          drop_vxlan_port=drop_vxlan, drop_ipip=drop_ipip)


NORMAL, UNTRACKED, PRE_DNAT, FORWARD = "normal", "untracked", "preDNAT", "forward"
"""Endpoint chain types (rules/endpoints.go endpointChainType)."""

ACCEPT = "--jump ACCEPT"
RETURN = "--jump RETURN"


def endpoint_chain(tiers: tuple[TierPlan, ...], profiles: tuple[str, ...], inbound: bool,
                   groups: dict[str, tuple[Rule, ...]], *, chain_type: str = NORMAL,
                   failsafe: str = "", allow: str = ACCEPT, drop_vxlan_port: int | None = None,
                   drop_ipip: bool = False) -> tuple[Rule, ...]:
    """One endpoint chain as Felix's endpointIptablesChain builds it. Workloads: normal
    chains without failsafes. Host endpoints: failsafes first (after conntrack); untracked
    (raw) chains have no conntrack rules, map an accept to NOTRACK too and never drop;
    pre-DNAT (mangle) chains never drop; forward chains allow by default when no tier has an
    applyOnForward policy; only normal chains go on to profiles and end in a drop. Group
    chains the result jumps to are added to `groups`."""
    rules: list[Rule] = []
    if chain_type != UNTRACKED:
        if allow != ACCEPT:
            rules.append(Rule("-m conntrack --ctstate RELATED,ESTABLISHED",
                              set_mark(MARK_ACCEPT)))
        rules += [Rule("-m conntrack --ctstate RELATED,ESTABLISHED", allow),
                  Rule("-m conntrack --ctstate INVALID", "--jump DROP")]
    if failsafe:
        rules.append(Rule("", f"--jump {failsafe}"))
    rules.append(Rule("", clear_mark(MARK_ACCEPT | MARK_PASS)))
    if drop_vxlan_port is not None:
        rules.append(Rule(f"-p 17 -m multiport --destination-ports {drop_vxlan_port}",
                          "--jump DROP",
                          "Drop VXLAN encapped packets originating in workloads"))
    if drop_ipip:
        rules.append(Rule("-p 4", "--jump DROP",
                          "Drop IPinIP encapped packets originating in workloads"))
    for tier in tiers:
        refs = tier.ingress if inbound else tier.egress
        if not refs:
            continue
        rules.append(Rule("", clear_mark(MARK_PASS), f"Start of tier {tier.name}"))
        enforced = [r for r in refs if not r.staged]
        for group in group_policies(refs, inbound):
            if group.inlined:
                targets = [policy_chain_name(inbound, r) for r in group.enforced]
            else:
                targets = [group.chain_name]
                groups[group.chain_name] = group.chain()
            for target in targets:
                rules.append(Rule(match_mark_clear(MARK_PASS), f"--jump {target}"))
                if chain_type == UNTRACKED:
                    rules.append(Rule(match_mark_set(MARK_ACCEPT), "--jump NOTRACK"))
                rules.append(Rule(match_mark_set(MARK_ACCEPT), RETURN,
                                  "Return if policy accepted"))
        if chain_type in (NORMAL, FORWARD) and enforced and tier.default_action != "Pass":
            rules.append(Rule(match_mark_clear(MARK_PASS), "--jump DROP",
                              f"End of tier {tier.name}. Drop if no policies passed packet"))
    if chain_type == FORWARD and not tiers:
        rules += [Rule("", set_mark(MARK_ACCEPT), "Allow forwarded traffic by default"),
                  Rule("", RETURN, "Return for accepted forward traffic")]
    if chain_type == NORMAL:
        for profile in profiles:
            rules.append(Rule("", f"--jump {profile_chain_name(inbound, profile)}"))
            rules.append(Rule(match_mark_set(MARK_ACCEPT), RETURN,
                              "Return if profile accepted"))
        rules.append(Rule("", "--jump DROP", "Drop if no profiles matched"))
    return tuple(rules)


def referenced_chains(chains: dict[str, tuple[Rule, ...]]) -> set[str]:
    """Chains that rules of `chains` jump to."""
    out: set[str] = set()
    for rules in chains.values():
        for r in rules:
            if r.action.startswith("--jump cali-"):
                out.add(r.action.split()[1])
    return out


def is_endpoint_chain(name: str) -> bool:
    return name.startswith(("cali-tw-", "cali-fw-"))
