"""The filter-table chains and IP sets policy needs on this host, from a PolicyIndex. Pure.

Only referenced chains are kept (as Felix: a policy's `cali-po-` is not written while no
endpoint chain jumps to it). A profile an endpoint names but the datastore lacks gets chains
that drop (Calico's dummy drop rules); `projectcalico-default-allow` is built in (allow all).

`PolicyState.update(index, dirty)` applies what `PolicyIndex.take_dirty()` reported and returns
the names of the chains and sets that changed: it re-renders the dirty endpoints, policies and
profiles only, and keeps jump-target reference counts so that a chain appears with its first
referrer and goes with its last.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from felix.calc.parsed_rule import ParsedRule, parse_rule
from felix.calc.policy_chains import (
    EndpointOptions,
    endpoint_chains,
    policy_chain_name,
    policy_chains,
    profile_chain_name,
    profile_chains,
)
from felix.calc.policy_entries import Dirty, Key
from felix.calc.policy_index import PolicyIndex
from felix.calc.policy_selectors import set_name
from felix.drivers.iptables.rules import Rule
from libcalico.model import resources as r

PURE = True

DEFAULT_OPTIONS = EndpointOptions()
_ALLOW = (parse_rule(r.Rule(action=r.Action.ALLOW), None),)
_TARGET_PREFIXES = ("cali-pi-", "cali-po-", "cali-pri-", "cali-pro-", "cali-gi-", "cali-go-")
_GROUP_PREFIXES = ("cali-gi-", "cali-go-")


@dataclass(frozen=True, slots=True)
class IPSetDesired:
    name: str
    set_type: str
    members: frozenset[str]


def _family(members: frozenset[str], version: int) -> frozenset[str]:
    return frozenset(m for m in members if (":" in m.split(",")[0]) == (version == 6))


@dataclass
class PolicyState:
    """Chains (name -> rules) and IP sets (kernel name -> IPSetDesired) of one IP version."""

    version: int
    opts: EndpointOptions = field(default_factory=EndpointOptions)
    chains: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    ipsets: dict[str, IPSetDesired] = field(default_factory=dict)
    _endpoint_chains: dict[Key, tuple[str, ...]] = field(default_factory=dict)
    _endpoint_refs: dict[Key, tuple[str, ...]] = field(default_factory=dict)
    _refs: Counter[str] = field(default_factory=Counter)
    _targets: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    """Every renderable policy/profile chain by name (written to `chains` while referenced)."""
    _owner_chains: dict[object, tuple[str, ...]] = field(default_factory=dict)

    # -- the targets (policy and profile chains) -----------------------------------------------

    def _set_targets(self, owner: object, chains: dict[str, tuple[Rule, ...]],
                     changed: set[str]) -> None:
        for name in self._owner_chains.pop(owner, ()):
            self._targets.pop(name, None)
            if name not in chains and self.chains.pop(name, None) is not None:
                changed.add(name)
        self._owner_chains[owner] = tuple(chains)
        for name, rules in chains.items():
            self._targets[name] = rules
            if self._refs[name] > 0 and self.chains.get(name) != rules:
                self.chains[name] = rules
                changed.add(name)

    def _ref(self, name: str, delta: int, changed: set[str]) -> None:
        self._refs[name] += delta
        if self._refs[name] <= 0:
            del self._refs[name]
            if self.chains.pop(name, None) is not None:
                changed.add(name)
        elif delta > 0 and self._refs[name] == delta and name in self._targets:
            self.chains[name] = self._targets[name]
            changed.add(name)

    def target(self, name: str) -> tuple[Rule, ...] | None:
        """A policy or profile chain as rendered for an active policy or profile, whether or
        not a workload chain jumps to it (the host endpoint chains of every table use it)."""
        return self._targets.get(name)

    # -- updates -----------------------------------------------------------------------------

    def update(self, index: PolicyIndex, dirty: Dirty) -> set[str]:
        changed: set[str] = set()
        for key in dirty.policies:
            found = index.policy(key)
            chains = policy_chains(*found, self.version) if found is not None else {}
            self._set_targets(("policy", key), chains, changed)
        for name in dirty.profiles:
            active = name in index.active_profile_names()
            self._set_targets(("profile", name), _profile(index, name, self.version)
                              if active else {}, changed)
        local = index.local_endpoints()
        for key in dirty.endpoints:
            old_chains = {n: self.chains.pop(n, ()) for n in self._endpoint_chains.pop(key, ())}
            refs: tuple[str, ...] = ()
            if key in local:
                chains = endpoint_chains(index.plan(key), self.opts)
                own = {n: c for n, c in chains.items() if not n.startswith(_GROUP_PREFIXES)}
                for name, rules in chains.items():
                    if name.startswith(_GROUP_PREFIXES):
                        self._targets[name] = rules  # the same content wherever it is used
                self._endpoint_chains[key] = tuple(own)
                self.chains.update(own)
                changed |= {n for n, c in own.items() if old_chains.get(n) != c}
                refs = _transitive_jumps(own, chains)
            changed |= old_chains.keys() - set(self._endpoint_chains.get(key, ()))
            for target in refs:
                self._ref(target, 1, changed)
            for target in self._endpoint_refs.pop(key, ()):
                self._ref(target, -1, changed)
            if refs:
                self._endpoint_refs[key] = refs
        for uid in dirty.ipsets:
            kname = set_name(self.version, uid)
            found_set = index.ipset(uid)
            if found_set is None:
                if self.ipsets.pop(kname, None) is not None:
                    changed.add(kname)
                continue
            spec, members = found_set
            new = IPSetDesired(kname, spec.set_type, _family(members, self.version))
            if self.ipsets.get(kname) != new:
                self.ipsets[kname] = new
                changed.add(kname)
        return changed


def _transitive_jumps(own: dict[str, tuple[Rule, ...]], chains: dict[str, tuple[Rule, ...]]
                      ) -> tuple[str, ...]:
    """Targets of an endpoint's chains, and of the group chains among them."""
    out: list[str] = []
    for rules in own.values():
        for target in _jumps(rules):
            out.append(target)
            if target.startswith(_GROUP_PREFIXES):
                out += _jumps(chains[target])
    return tuple(out)


def _jumps(rules: tuple[Rule, ...]) -> list[str]:
    return [x.action.split()[1] for x in rules
            if x.action.startswith("--jump cali-") and x.action.split()[1].startswith(
                _TARGET_PREFIXES)]


def _profile(index: PolicyIndex, name: str, version: int) -> dict[str, tuple[Rule, ...]]:
    rules: tuple[tuple[ParsedRule, ...], tuple[ParsedRule, ...]] | None = \
        index.active_profiles().get(name)
    if rules is None and name == r.DEFAULT_ALLOW_PROFILE:
        rules = (_ALLOW, _ALLOW)
    if rules is None:
        return {profile_chain_name(inbound, name): (
            Rule("", "--jump DROP", f"Profile {name} is missing: drop"),)
            for inbound in (True, False)}
    return profile_chains(name, rules[0], rules[1], version)


def render(index: PolicyIndex, version: int, opts: EndpointOptions = DEFAULT_OPTIONS
           ) -> PolicyState:
    """Everything from scratch (first programming, and the reference `update` must match)."""
    state = PolicyState(version, opts)
    chains: dict[str, tuple[Rule, ...]] = {}
    jumped: set[str] = set()
    for key in index.local_endpoints():
        mine = endpoint_chains(index.plan(key), opts)
        own = {n: c for n, c in mine.items() if not n.startswith(_GROUP_PREFIXES)}
        jumped.update(_transitive_jumps(own, mine))
        chains.update(own)
        chains.update({n: c for n, c in mine.items() if n.startswith(_GROUP_PREFIXES)})
    for _, (ref, ingress, egress) in sorted(index.active_policies().items()):
        for name, rules in policy_chains(ref, ingress, egress, version).items():
            if name in jumped:
                chains[name] = rules
    for name in sorted(index.active_profile_names()):
        for cname, rules in _profile(index, name, version).items():
            if cname in jumped:
                chains[cname] = rules
    state.chains = chains
    for uid, (spec, members) in index.ipsets().items():
        kname = set_name(version, uid)
        state.ipsets[kname] = IPSetDesired(kname, spec.set_type, _family(members, version))
    return state


__all__ = ["IPSetDesired", "PolicyState", "policy_chain_name", "render"]
