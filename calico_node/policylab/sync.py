"""Whether Felix on a node has programmed a step (pure): the policy and workload chains (by
name and by each rule's `cali:` hash, which covers the rule's text and position) and the IP
sets (by members) the node should have, from the same calculation Felix runs
(felix/calc/policy_*, felix/drivers/iptables/rules.rule_hashes), compared with what
`iptables-save -t filter` and `ipset save` show in the node's namespace."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from felix.calc.policy_entries import key_of
from felix.calc.policy_index import PolicyIndex
from felix.calc.policy_state import render
from felix.drivers.iptables.rules import rule_hashes
from libcalico.model.resources import (
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    NetworkPolicy,
    NetworkSet,
    Profile,
    StagedGlobalNetworkPolicy,
    StagedNetworkPolicy,
    Tier,
    WorkloadEndpoint,
)

PURE = True

CHAIN_PREFIXES = ("cali-pi-", "cali-po-", "cali-tw-", "cali-fw-", "cali-pri-", "cali-pro-",
                  "cali-gi-", "cali-go-")
SET_PREFIXES = ("cali40s:", "cali40n:")
_CHAIN = re.compile(r"^:(\S+) ")
_ADD = re.compile(r"^add (\S+) (\S+)")
_RULE = re.compile(r'^-A (\S+) .*?--comment "?cali:([A-Za-z0-9_-]+)"?')
"""A rule's hash comment (iptables-save may print `-p udp` before it)."""


@dataclass(frozen=True, slots=True)
class Dataplane:
    chains: dict[str, tuple[str, ...]]
    """Chain name -> its rules' hashes in order."""
    ipsets: dict[str, frozenset[str]]

    def differences(self, live: Dataplane) -> list[str]:
        out = []
        if missing := sorted(self.chains.keys() - live.chains.keys()):
            out.append(f"chains missing: {' '.join(missing)}")
        if extra := sorted(live.chains.keys() - self.chains.keys()):
            out.append(f"chains not wanted: {' '.join(extra)}")
        if changed := sorted(n for n, h in self.chains.items()
                             if n in live.chains and live.chains[n] != h):
            out.append(f"chains with other rules: {' '.join(changed)}")
        for name, members in sorted(self.ipsets.items()):
            have = live.ipsets.get(name)
            if have is None:
                out.append(f"ipset {name} missing")
            elif have != members:
                out.append(f"ipset {name}: {len(have)} members, want {len(members)}")
        return out


def expected(resources: Iterable[object], node: str) -> Dataplane:
    """The policy chains and IP sets Felix on `node` programs for these resources."""
    index = PolicyIndex(node)
    for res in resources:
        if isinstance(res, WorkloadEndpoint):
            index.update_endpoint(key_of(res), res)
        elif isinstance(res, NetworkPolicy | GlobalNetworkPolicy | StagedNetworkPolicy
                        | StagedGlobalNetworkPolicy):
            index.update_policy(key_of(res), res)
        elif isinstance(res, Tier):
            index.update_tier(res.metadata.name, res)
        elif isinstance(res, Profile):
            index.update_profile(res.metadata.name, res)
        elif isinstance(res, NetworkSet | GlobalNetworkSet):
            index.update_networkset(key_of(res), res)
    state = render(index, 4)
    return Dataplane({n: tuple(rule_hashes(n, rules)) for n, rules in state.chains.items()
                      if n.startswith(CHAIN_PREFIXES)},
                     {n: frozenset(_member(m) for m in s.members)
                      for n, s in state.ipsets.items()})


def _member(text: str) -> str:
    """`ipset save` spelling: a host network without its /32 (/128)."""
    for suffix in ("/32", "/128"):
        if text.endswith(suffix):
            return text[: -len(suffix)]
    return text.lower()


def live(iptables_save: str, ipset_save: str) -> Dataplane:
    chains: dict[str, list[str]] = {}
    for ln in iptables_save.splitlines():
        if (m := _CHAIN.match(ln)) and m.group(1).startswith(CHAIN_PREFIXES):
            chains.setdefault(m.group(1), [])
        elif (m := _RULE.match(ln)) and m.group(1).startswith(CHAIN_PREFIXES):
            chains.setdefault(m.group(1), []).append(m.group(2))
    sets: dict[str, set[str]] = {}
    for ln in ipset_save.splitlines():
        if ln.startswith("create "):
            name = ln.split()[1]
            if name.startswith(SET_PREFIXES):
                sets.setdefault(name, set())
        elif (m := _ADD.match(ln)) and m.group(1).startswith(SET_PREFIXES):
            sets.setdefault(m.group(1), set()).add(_member(m.group(2)))
    return Dataplane({k: tuple(v) for k, v in chains.items()},
                     {k: frozenset(v) for k, v in sets.items()})
