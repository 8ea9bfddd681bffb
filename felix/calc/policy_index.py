"""Which policies and profiles apply to which local endpoint, and what every IP set holds,
kept up to date incrementally (Felix's ActiveRulesCalculator, RuleScanner, PolicyResolver /
PolicySorter and IP set member index). Pure: typed resources in, plans and sets out.

Cost of one change (what it touches, not the whole host):
- an endpoint (or its labels): its effective labels, every policy selector against it when it
  is local (O(policies)), every active IP set's selector against it (O(active sets));
- a policy: its selector against the local endpoints (O(local endpoints)); the members of an IP
  set it starts using, over all endpoints and network sets (once per new set);
- a profile: the endpoints that inherit its labels (as endpoint changes), its rules;
- a tier: the plans of the endpoints that have policies in it.

`take_dirty()` says what changed since the last call: local endpoints whose plan may differ,
policies and profiles whose chains may differ, IP sets whose members or existence changed.
"""

from __future__ import annotations

import ipaddress
from collections import Counter
from collections.abc import Iterable, Mapping

from felix.calc.endpoint_plans import endpoint_plan, host_endpoint_plan
from felix.calc.label_restriction import LabelRestriction
from felix.calc.parsed_rule import ParsedRule, parse_rule
from felix.calc.policy_chains import EndpointPlan, HostPlan, PolicyRef
from felix.calc.policy_entries import (
    HOST_ENDPOINT,
    LABEL_ORCHESTRATOR,
    AnyPolicy,
    AnySet,
    Dirty,
    Holder,
    IndexedPolicy,
    Key,
    contribution,
    host_nets,
    parse_policy,
)
from felix.calc.policy_selectors import LABEL_NAMESPACE, LABEL_SERVICE_ACCOUNT, IPSetSpec
from libcalico.model import resources as r
from libcalico.model import selector as sel

PURE = True


class PolicyIndex:
    """The policy state of one host (`hostname`): feed it resources as they change."""

    def __init__(self, hostname: str) -> None:
        self.hostname = hostname
        self._policies: dict[Key, IndexedPolicy] = {}
        self._policy_restriction = LabelRestriction()
        self._set_restriction = LabelRestriction()
        self._set_parsed: dict[str, sel.Selector] = {}
        self._tiers: dict[str, r.Tier] = {}
        self._profiles: dict[str, r.Profile] = {}
        self._profile_rules: dict[str, tuple[tuple[ParsedRule, ...], tuple[ParsedRule, ...]]] = {}
        self._holders: dict[Key, Holder] = {}
        self._local: dict[Key, r.WorkloadEndpoint] = {}
        self._local_heps: dict[Key, r.HostEndpoint] = {}
        self._host_plans: dict[Key, HostPlan] = {}
        self._by_profile: dict[str, set[Key]] = {}
        # policy <-> local endpoint matches
        self._ep_policies: dict[Key, set[Key]] = {}
        self._policy_eps: dict[Key, set[Key]] = {}
        # IP sets: refcounts by the active policies/profiles using them; members as counts
        self._set_refs: Counter[IPSetSpec] = Counter()
        self._set_members: dict[str, Counter[str]] = {}
        self._set_specs: dict[str, IPSetSpec] = {}
        self._active_policies: set[Key] = set()
        self._active_sets: dict[Key, frozenset[IPSetSpec]] = {}
        self._active_profiles: set[str] = set()
        self._profile_users: Counter[str] = Counter()
        self._dirty_eps: set[Key] = set()
        self._dirty_policies: set[Key] = set()
        self._dirty_profiles: set[str] = set()
        self._dirty_sets: set[str] = set()

    # -- inputs ------------------------------------------------------------------------------

    def update_endpoint(self, key: Key, wep: r.WorkloadEndpoint | None) -> None:
        old_local = key in self._local
        old_profiles = self._local[key].spec.profiles if old_local else ()
        if wep is None:
            self._remove_holder(key)
            self._local.pop(key, None)
        else:
            own = dict(wep.metadata.labels)
            ns = wep.metadata.namespace or ""
            if ns:
                own.setdefault(LABEL_NAMESPACE, ns)
            if wep.spec.orchestrator:
                own.setdefault(LABEL_ORCHESTRATOR, wep.spec.orchestrator)
            sa = wep.spec.service_account_name
            if sa and len(sa) < 63:
                own.setdefault(LABEL_SERVICE_ACCOUNT, sa)
            ports = tuple((p.name, str(p.protocol).lower(), p.port) for p in wep.spec.ports
                          if p.name)
            nets = tuple(str(ipaddress.ip_network(str(n), strict=False))
                         for n in wep.spec.ip_networks)
            self._set_holder(key, Holder({}, nets, ports, wep.spec.profiles, own))
            if wep.spec.node == self.hostname and wep.spec.interface_name:
                self._local[key] = wep
            else:
                self._local.pop(key, None)
        if key in self._local:
            self._match_endpoint(key)
            self._dirty_eps.add(key)
        elif old_local:
            self._unmatch_endpoint(key)
            self._dirty_eps.add(key)
        new_profiles = self._local[key].spec.profiles if key in self._local else ()
        if new_profiles != old_profiles:
            self._use_profiles(old_profiles, new_profiles)

    def update_host_endpoint(self, key: Key, hep: r.HostEndpoint | None) -> None:
        """A HostEndpoint: its labels (and its profiles' labelsToApply) for selectors, its
        expectedIPs and named ports as IP set members; local (policies matched against it)
        when `spec.node` is this host."""
        old = self._local_heps.get(key)
        old_profiles = old.spec.profiles if old is not None else ()
        if hep is None:
            self._remove_holder(key)
            self._local_heps.pop(key, None)
        else:
            ports = tuple((p.name, str(p.protocol).lower(), p.port) for p in hep.spec.ports
                          if p.name)
            nets = tuple(str(ipaddress.ip_network(str(ip))) for ip in hep.spec.expected_ips)
            self._set_holder(key, Holder({}, nets, ports, hep.spec.profiles,
                                          dict(hep.metadata.labels)))
            if hep.spec.node == self.hostname:
                self._local_heps[key] = hep
            else:
                self._local_heps.pop(key, None)
        if key in self._local_heps:
            self._match_endpoint(key)
            self._dirty_eps.add(key)
        elif old is not None:
            self._unmatch_endpoint(key)
            self._dirty_eps.add(key)
        new_profiles = self._local_heps[key].spec.profiles if key in self._local_heps else ()
        if new_profiles != old_profiles:
            self._use_profiles(old_profiles, new_profiles)

    def update_networkset(self, key: Key, ns: AnySet | None) -> None:
        if ns is None:
            self._remove_holder(key)
            return
        own = dict(ns.metadata.labels)
        profiles: tuple[str, ...] = ()
        if isinstance(ns, r.NetworkSet) and ns.metadata.namespace:
            own[LABEL_NAMESPACE] = ns.metadata.namespace
            profiles = (f"kns.{ns.metadata.namespace}",)
        self._set_holder(key, Holder({}, host_nets(ns.spec.nets), (), profiles, own))

    def update_policy(self, key: Key, pol: AnyPolicy | None) -> None:
        old = self._policies.pop(key, None)
        self._policy_restriction.remove(key)
        eps = self._policy_eps.pop(key, set())
        for ep in eps:
            self._ep_policies.get(ep, set()).discard(key)
        self._dirty_eps |= eps
        if old is not None:
            self._dirty_policies.add(key)
        if pol is not None:
            parsed = parse_policy(pol)
            self._policies[key] = parsed
            self._policy_restriction.add(key, parsed.selector)
            matched = {ep for ep in (*self._local, *self._local_heps)
                       if parsed.selector.evaluate(self._holders[ep].labels)}
            self._policy_eps[key] = matched
            for ep in matched:
                self._ep_policies.setdefault(ep, set()).add(key)
            self._dirty_eps |= matched
            self._dirty_policies.add(key)
        self._refresh_activity(key)

    def update_tier(self, name: str, tier: r.Tier | None) -> None:
        if tier is None:
            self._tiers.pop(name, None)
        else:
            self._tiers[name] = tier
        for key, pol in self._policies.items():
            if pol.tier == name:
                self._dirty_eps |= self._policy_eps.get(key, set())

    def update_profile(self, name: str, profile: r.Profile | None) -> None:
        old = self._profiles.get(name)
        if profile is None:
            self._profiles.pop(name, None)
            self._profile_rules.pop(name, None)
        else:
            self._profiles[name] = profile
            self._profile_rules[name] = (
                tuple(parse_rule(x, None) for x in profile.spec.ingress),
                tuple(parse_rule(x, None) for x in profile.spec.egress))
        old_labels = old.spec.labels_to_apply if old else {}
        new_labels = profile.spec.labels_to_apply if profile else {}
        if old_labels != new_labels:
            for key in list(self._by_profile.get(name, ())):
                self._set_holder(key, self._holders[key])
                if key in self._local or key in self._local_heps:
                    self._match_endpoint(key)
                    self._dirty_eps.add(key)
        if name in self._active_profiles:
            self._swap_profile_sets(name, old)
            self._dirty_profiles.add(name)

    # -- outputs -----------------------------------------------------------------------------

    def local_endpoints(self) -> dict[Key, r.WorkloadEndpoint]:
        return dict(self._local)

    def labels(self, key: Key) -> Mapping[str, str]:
        return self._holders[key].labels

    def plan(self, key: Key) -> EndpointPlan:
        """The tiers (in order) and profiles of a local endpoint."""
        return endpoint_plan(self._local[key], (self._policies[pkey] for pkey in
                                                self._ep_policies.get(key, ())), self._tiers)

    def local_host_endpoints(self) -> dict[Key, r.HostEndpoint]:
        return dict(self._local_heps)

    def host_plan(self, key: Key) -> HostPlan:
        """The tiers of each kind and the profiles of a local host endpoint (memoised until
        the endpoint is reported dirty)."""
        hit = self._host_plans.get(key)
        if hit is not None and key not in self._dirty_eps:
            return hit
        plan_ = host_endpoint_plan(self._local_heps[key], (
            self._policies[pkey] for pkey in self._ep_policies.get(key, ())), self._tiers)
        self._host_plans[key] = plan_
        return plan_

    def active_policies(self) -> dict[Key, tuple[PolicyRef, tuple[ParsedRule, ...],
                                                 tuple[ParsedRule, ...]]]:
        """Policies that apply to some local endpoint (or are forced by the
        AssumeNeededOnEveryNode hint): their ref and parsed rules."""
        return {k: (self._policies[k].ref, self._policies[k].ingress, self._policies[k].egress)
                for k in self._active_policies}

    def policy(self, key: Key) -> tuple[PolicyRef, tuple[ParsedRule, ...],
                                        tuple[ParsedRule, ...]] | None:
        pol = self._policies.get(key) if key in self._active_policies else None
        return None if pol is None else (pol.ref, pol.ingress, pol.egress)

    def active_profiles(self) -> dict[str, tuple[tuple[ParsedRule, ...],
                                                 tuple[ParsedRule, ...]] | None]:
        """Profiles local endpoints use: parsed rules, None for a missing profile."""
        return {n: self._profile_rules.get(n) for n in self._active_profiles}

    def active_profile_names(self) -> frozenset[str]:
        return frozenset(self._active_profiles)

    def ipsets(self) -> dict[str, tuple[IPSetSpec, frozenset[str]]]:
        """Every IP set in use: uid -> (what it is, its members)."""
        return {uid: (self._set_specs[uid], frozenset(self._set_members[uid]))
                for uid in self._set_specs}

    def ipset(self, uid: str) -> tuple[IPSetSpec, frozenset[str]] | None:
        spec = self._set_specs.get(uid)
        return None if spec is None else (spec, frozenset(self._set_members[uid]))

    def everything(self) -> Dirty:
        """Every endpoint, policy, profile and IP set, as dirty (for a new PolicyState)."""
        self._host_plans.clear()
        return Dirty(frozenset(self._local), frozenset(self._policies),
                     frozenset(self._active_profiles), frozenset(self._set_specs),
                     frozenset(self._local_heps))

    def take_dirty(self) -> Dirty:
        heps = frozenset(k for k in self._dirty_eps if k[0] == HOST_ENDPOINT)
        for k in heps:
            self._host_plans.pop(k, None)
        out = Dirty(frozenset(self._dirty_eps) - heps, frozenset(self._dirty_policies),
                    frozenset(self._dirty_profiles), frozenset(self._dirty_sets), heps)
        self._dirty_eps.clear()
        self._dirty_policies.clear()
        self._dirty_profiles.clear()
        self._dirty_sets.clear()
        return out

    # -- endpoint matching ---------------------------------------------------------------------

    def _match_endpoint(self, key: Key) -> None:
        labels = self._holders[key].labels
        old = self._ep_policies.get(key, set())
        new: set[Key] = set()
        for pk in self._policy_restriction.candidates(labels):
            assert isinstance(pk, tuple)
            if self._policies[pk].selector.evaluate(labels):
                new.add(pk)
        for pk in old - new:
            self._policy_eps[pk].discard(key)
        for pk in new - old:
            self._policy_eps.setdefault(pk, set()).add(key)
        self._ep_policies[key] = new
        for pk in old ^ new:
            self._refresh_activity(pk)

    def _unmatch_endpoint(self, key: Key) -> None:
        for pk in self._ep_policies.pop(key, set()):
            self._policy_eps[pk].discard(key)
            self._refresh_activity(pk)

    # -- activity and IP set references ---------------------------------------------------------

    def _refresh_activity(self, pkey: Key) -> None:
        pol = self._policies.get(pkey)
        active = pol is not None and (pol.forced or bool(self._policy_eps.get(pkey)))
        was = pkey in self._active_policies
        if was:
            self._active_policies.discard(pkey)
            self._release(self._active_sets.pop(pkey, frozenset()))
        if active:
            assert pol is not None
            self._active_policies.add(pkey)
            self._active_sets[pkey] = pol.ipsets
            self._acquire(pol.ipsets)
        if was != active:
            self._dirty_policies.add(pkey)

    def _use_profiles(self, old: tuple[str, ...], new: tuple[str, ...]) -> None:
        """A local endpoint's profiles changed from `old` to `new`."""
        for name in new:
            self._profile_users[name] += 1
            if self._profile_users[name] == 1:
                self._active_profiles.add(name)
                self._acquire(self._profile_sets(name))
                self._dirty_profiles.add(name)
        for name in old:
            self._profile_users[name] -= 1
            if self._profile_users[name] <= 0:
                del self._profile_users[name]
                self._active_profiles.discard(name)
                self._release(self._profile_sets(name))
                self._dirty_profiles.add(name)

    def _profile_sets(self, name: str, profile: r.Profile | None = None) -> frozenset[IPSetSpec]:
        rules = self._profile_rules.get(name) if profile is None else (
            tuple(parse_rule(x, None) for x in profile.spec.ingress),
            tuple(parse_rule(x, None) for x in profile.spec.egress))
        if rules is None:
            return frozenset()
        return frozenset(s for pr in rules[0] + rules[1] for s in pr.ipsets)

    def _swap_profile_sets(self, name: str, old: r.Profile | None) -> None:
        old_sets = self._profile_sets(name, old) if old is not None else frozenset()
        self._acquire(self._profile_sets(name))
        self._release(old_sets)

    def _acquire(self, specs: Iterable[IPSetSpec]) -> None:
        for spec in specs:
            self._set_refs[spec] += 1
            if self._set_refs[spec] == 1 and spec.uid not in self._set_specs:
                self._set_specs[spec.uid] = spec
                self._set_parsed[spec.uid] = parsed = sel.parse(spec.selector)
                self._set_restriction.add(spec.uid, parsed)
                self._set_members[spec.uid] = self._members_of(spec)
                self._dirty_sets.add(spec.uid)

    def _release(self, specs: Iterable[IPSetSpec]) -> None:
        for spec in specs:
            self._set_refs[spec] -= 1
            if self._set_refs[spec] <= 0:
                del self._set_refs[spec]
                self._set_specs.pop(spec.uid, None)
                self._set_parsed.pop(spec.uid, None)
                self._set_restriction.remove(spec.uid)
                self._set_members.pop(spec.uid, None)
                self._dirty_sets.add(spec.uid)

    # -- IP set members ---------------------------------------------------------------------------

    def _members_of(self, spec: IPSetSpec) -> Counter[str]:
        out: Counter[str] = Counter()
        parsed = sel.parse(spec.selector)
        for holder in self._holders.values():
            out.update(contribution(spec, parsed, holder))
        return out

    def _set_holder(self, key: Key, holder: Holder) -> None:
        old = self._holders.get(key)
        for name in old.profiles if old else ():
            self._by_profile.get(name, set()).discard(key)
        for name in holder.profiles:
            self._by_profile.setdefault(name, set()).add(key)
        labels = dict(holder.raw_labels)
        for name in holder.profiles:
            prof = self._profiles.get(name)
            for k, v in (prof.spec.labels_to_apply.items() if prof else ()):
                labels.setdefault(k, v)
        new = Holder(labels, holder.nets, holder.ports, holder.profiles, holder.raw_labels)
        self._holders[key] = new
        self._update_members(old, new)

    def _remove_holder(self, key: Key) -> None:
        old = self._holders.pop(key, None)
        if old is None:
            return
        for name in old.profiles:
            self._by_profile.get(name, set()).discard(key)
        self._update_members(old, None)

    def _update_members(self, old: Holder | None, new: Holder | None) -> None:
        """Only the sets whose selector can match the old or the new labels (restriction
        index) are looked at: an endpoint costs O(its candidate sets), not O(all sets)."""
        cands: set[object] = set()
        for h in (old, new):
            if h is not None:
                cands |= self._set_restriction.candidates(h.labels)
        for uid in cands:
            assert isinstance(uid, str)
            spec = self._set_specs[uid]
            parsed = self._set_parsed[uid]
            before = contribution(spec, parsed, old) if old else ()
            after = contribution(spec, parsed, new) if new else ()
            if before == after:
                continue
            members = self._set_members[uid]
            members.subtract(before)
            members.update(after)
            for m in before:
                if members[m] <= 0:
                    del members[m]
            self._dirty_sets.add(uid)
