"""Host endpoints: which HostEndpoint governs which host interface, and the chains Felix
writes for them in the raw, mangle and filter tables (felix/dataplane/linux/endpoint_mgr.go
resolveHostEndpoints / updateHostEndpoints, felix/rules/endpoints.go, dispatch.go, and the
failsafe chains of static.go). Pure.

Resolution: a HostEndpoint of this node with an exact `interfaceName` governs that interface;
one without a name governs an interface holding one of its `expectedIPs` (never one naming
another interface); ties go to the lowest name. Workload interfaces are never host endpoints.
The best `interfaceName: "*"` endpoint becomes the pseudo-interface `any-interface-at-all`, the
dispatch chains' fallback for every interface without its own host endpoint.

Chains per governed interface (Calico's names; `*` gives `cali-th-any-interface-at-all`):

- filter `cali-th-` / `cali-fh-`: normal egress / ingress policy, ACCEPT, failsafe out / in,
  then tiers, profiles, drop;
- filter `cali-thfw-` / `cali-fhfw-`: applyOnForward policy, no failsafes, allow when no tier
  has such a policy;
- mangle `cali-th-` (host traffic that was DNAT'd): normal egress policy, RETURN, failsafe out,
  tiers, profiles, drop;
- mangle `cali-fh-` (only with preDNAT policy): preDNAT ingress policy, ACCEPT, failsafe in,
  never drops (the filter table still runs);
- raw `cali-th-` / `cali-fh-` (only with doNotTrack policy; not for `*`): untracked policy,
  an accept is NOTRACK + ACCEPT, raw failsafes, never drops.

Dispatch: filter `cali-from-host-endpoint` / `cali-to-host-endpoint` (INPUT / OUTPUT) and
`cali-from-hep-forward` / `cali-to-hep-forward` (FORWARD); mangle `cali-from-host-endpoint`
(PREROUTING, pre-DNAT endpoints) and `cali-to-host-endpoint` (POSTROUTING, which skips
traffic to local workloads before the `*` fallback); raw `cali-from-host-endpoint` /
`cali-to-host-endpoint` (untracked endpoints). `-i|-o <iface> -g <chain>` per interface,
interfaces sharing the character after their common prefix behind a child chain
(`<dispatch>-<char>`); without a `*` endpoint there is no end rule, so traffic of other
interfaces goes on (Calico's host dispatch has no terminal drop).

Failsafes: `cali-failsafe-in` accepts `FailsafeInboundHostPorts` by destination port (from a
CIDR, when the entry has one), `cali-failsafe-out` `FailsafeOutboundHostPorts` (to a CIDR);
in raw each also accepts the other list's ports as source ports (replies, before conntrack).
They are jumped to right after the conntrack rules of every host endpoint chain except the
forward ones, so no policy can cut the host off from SSH, its datastore, BGP or the API
server.

Policy, profile and group chains the host endpoint chains jump to are written into the table
that references them, with the content the policy calculation rendered (PolicyState).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from felix.calc.policy_chains import (
    ACCEPT,
    FORWARD,
    PRE_DNAT,
    RETURN,
    UNTRACKED,
    HostPlan,
    endpoint_chain,
)
from felix.calc.policy_entries import Key
from felix.drivers.iptables.rules import Rule, length_limited
from libcalico.model.resources import HostEndpoint

PURE = True

ALL_INTERFACES = "any-interface-at-all"
FAILSAFE_IN = "cali-failsafe-in"
FAILSAFE_OUT = "cali-failsafe-out"
FROM_HEP = "cali-from-host-endpoint"
TO_HEP = "cali-to-host-endpoint"
FROM_HEP_FWD = "cali-from-hep-forward"
TO_HEP_FWD = "cali-to-hep-forward"
_TARGET_PREFIXES = ("cali-pi-", "cali-po-", "cali-pri-", "cali-pro-", "cali-gi-", "cali-go-")

Chains = dict[str, tuple[Rule, ...]]


class _Iface(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def addrs(self) -> tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]: ...


class Targets(Protocol):
    """Where rendered policy and profile chains come from (PolicyState)."""

    def target(self, name: str) -> tuple[Rule, ...] | None: ...


@dataclass(frozen=True, slots=True)
class FailsafePort:
    protocol: str
    port: int
    net: str = ""


# -- resolution --------------------------------------------------------------------------------


@dataclass
class _Last:
    """The last resolution: the loop hands in the same interface map until a link changes,
    so resolving runs once per interface or host endpoint change."""

    ifaces: object = None
    prefixes: tuple[str, ...] = ()
    items: tuple[tuple[Key, HostEndpoint], ...] = ()
    result: dict[str, Key] = field(default_factory=dict)


_last = _Last()


def resolve(heps: Mapping[Key, HostEndpoint], ifaces: Mapping[str, _Iface],
            prefixes: tuple[str, ...]) -> dict[str, Key]:
    """Host interface (or ALL_INTERFACES) -> the key of the host endpoint governing it."""
    if not heps:
        return {}
    items = tuple(sorted(heps.items()))
    if _last.ifaces is ifaces and _last.prefixes == prefixes and _last.items == items:
        return dict(_last.result)
    out: dict[str, Key] = {}
    named = [(k, h) for k, h in items if h.spec.interface_name != "*"]
    if named:
        for name in sorted(ifaces):
            if any(name.startswith(p) for p in prefixes):
                continue            # workload interfaces are never host endpoints
            addrs = {a.ip for a in ifaces[name].addrs}
            for key, hep in named:   # sorted: the first match has the lowest name
                want = hep.spec.interface_name
                if want == name or (not want and any(
                        ipaddress.ip_address(str(ip)) in addrs for ip in hep.spec.expected_ips)):
                    out[name] = key
                    break
    star = [k for k, h in items if h.spec.interface_name == "*"]
    if star:
        out[ALL_INTERFACES] = star[0]
    _last.ifaces, _last.prefixes, _last.items, _last.result = ifaces, prefixes, items, dict(out)
    return out


# -- failsafes ---------------------------------------------------------------------------------


def _version_of(net: str) -> int:
    return ipaddress.ip_network(net, strict=False).version


def failsafe_chains(version: int, inbound: Iterable[FailsafePort],
                    outbound: Iterable[FailsafePort], raw: bool = False) -> Chains:
    """`cali-failsafe-in` / `cali-failsafe-out` of one table (static.go failsafeInChain /
    failsafeOutChain). An entry whose CIDR is of the other IP version is left out."""
    ins, outs = tuple(inbound), tuple(outbound)

    def rules(ports: tuple[FailsafePort, ...], side: str, net_flag: str) -> list[Rule]:
        out: list[Rule] = []
        for p in ports:
            if p.net and _version_of(p.net) != version:
                continue
            match = f"-p {p.protocol} -m multiport --{side}-ports {p.port}"
            if p.net:
                match += f" {net_flag} {p.net}"
            out.append(Rule(match, ACCEPT))
        return out

    fs_in = rules(ins, "destination", "--source")
    fs_out = rules(outs, "destination", "--destination")
    if raw:
        fs_in += rules(outs, "source", "--source")
        fs_out += rules(ins, "source", "--destination")
    return {FAILSAFE_IN: tuple(fs_in), FAILSAFE_OUT: tuple(fs_out)}


# -- endpoint and dispatch chains --------------------------------------------------------------


def _name(prefix: str, iface: str) -> str:
    return length_limited(prefix, iface)


@functools.lru_cache(maxsize=256)
def endpoint_chains(iface: str, plan: HostPlan) -> dict[str, Chains]:
    """table -> the chains of one governed interface (and the group chains they use)."""
    filt: Chains = {}
    mangle: Chains = {}
    raw: Chains = {}
    groups: Chains = {}
    filt[_name("cali-th-", iface)] = endpoint_chain(
        plan.normal, plan.profiles, False, groups, failsafe=FAILSAFE_OUT)
    filt[_name("cali-fh-", iface)] = endpoint_chain(
        plan.normal, plan.profiles, True, groups, failsafe=FAILSAFE_IN)
    filt[_name("cali-thfw-", iface)] = endpoint_chain(
        plan.forward, (), False, groups, chain_type=FORWARD)
    filt[_name("cali-fhfw-", iface)] = endpoint_chain(
        plan.forward, (), True, groups, chain_type=FORWARD)
    filt.update(groups)
    groups = {}
    mangle[_name("cali-th-", iface)] = endpoint_chain(
        plan.normal, plan.profiles, False, groups, failsafe=FAILSAFE_OUT, allow=RETURN)
    if plan.pre_dnat:
        mangle[_name("cali-fh-", iface)] = endpoint_chain(
            plan.pre_dnat, (), True, groups, chain_type=PRE_DNAT, failsafe=FAILSAFE_IN)
    mangle.update(groups)
    groups = {}
    if plan.untracked and iface != ALL_INTERFACES:
        raw[_name("cali-th-", iface)] = endpoint_chain(
            plan.untracked, (), False, groups, chain_type=UNTRACKED, failsafe=FAILSAFE_OUT)
        raw[_name("cali-fh-", iface)] = endpoint_chain(
            plan.untracked, (), True, groups, chain_type=UNTRACKED, failsafe=FAILSAFE_IN)
        raw.update(groups)
    return {"filter": filt, "mangle": mangle, "raw": raw}


def _common_prefix(names: list[str]) -> str:
    if not names:
        return ""
    lo, hi = min(names), max(names)
    n = 0
    while n < len(lo) and n < len(hi) and lo[n] == hi[n]:
        n += 1
    return lo[:n]


def dispatch_chain(root: str, flag: str, prefix: str, names: Iterable[str],
                   end: tuple[Rule, ...]) -> Chains:
    """rules/dispatch.go buildSingleDispatchChains over sortAndDivideEndpointNamesToPrefixTree:
    one `-i|-o <iface> -g <prefix><iface>` per interface, interfaces sharing the character
    after the common prefix behind `<root>-<char>` (which repeats the end rules)."""
    names_ = sorted(set(names))
    common = _common_prefix(names_)
    bins: dict[str, list[str]] = {}
    for n in names_:
        bins.setdefault(n[: len(common) + 1] if len(n) > len(common) else common, []).append(n)
    out: Chains = {}
    rules: list[Rule] = []
    for key, members in bins.items():
        if len(members) > 1:
            child = f"{root}-{key[len(common):]}"
            rules.append(Rule(f"{flag} {key}+", f"--goto {child}"))
            out[child] = (*(Rule(f"{flag} {m}", f"--goto {_name(prefix, m)}")
                            for m in members), *end)
        else:
            rules.append(Rule(f"{flag} {members[0]}", f"--goto {_name(prefix, members[0])}"))
    out[root] = (*rules, *end)
    return out


def _goto(prefix: str, default: str | None) -> tuple[Rule, ...]:
    return (Rule("", f"--goto {_name(prefix, default)}"),) if default else ()


def _skip_workloads(prefixes: tuple[str, ...], default: str | None) -> tuple[Rule, ...]:
    if not default:
        return ()
    return tuple(Rule(f"-o {p}+", RETURN, "Skip egress WHEP policy for traffic to local workload")
                 for p in prefixes)


@functools.lru_cache(maxsize=64)
def dispatch_chains(governed: tuple[str, ...], pre_dnat: tuple[str, ...],
                    untracked: tuple[str, ...], prefixes: tuple[str, ...]
                    ) -> dict[str, Chains]:
    """table -> the host endpoint dispatch chains (endpoint_mgr's HostDispatchChains calls:
    filter both ways and forward, mangle egress for all and ingress for pre-DNAT endpoints,
    raw both ways for untracked ones without the `*` fallback)."""
    def split(names: tuple[str, ...]) -> tuple[list[str], str | None]:
        return ([n for n in names if n != ALL_INTERFACES],
                ALL_INTERFACES if ALL_INTERFACES in names else None)

    names, default = split(governed)
    filt: Chains = {}
    filt.update(dispatch_chain(FROM_HEP, "-i", "cali-fh-", names, _goto("cali-fh-", default)))
    filt.update(dispatch_chain(TO_HEP, "-o", "cali-th-", names, _goto("cali-th-", default)))
    filt.update(dispatch_chain(FROM_HEP_FWD, "-i", "cali-fhfw-", names,
                               _goto("cali-fhfw-", default)))
    filt.update(dispatch_chain(TO_HEP_FWD, "-o", "cali-thfw-", names,
                               _goto("cali-thfw-", default)))
    mangle: Chains = {}
    mangle.update(dispatch_chain(TO_HEP, "-o", "cali-th-", names,
                                 _skip_workloads(prefixes, default) + _goto("cali-th-", default)))
    pnames, pdefault = split(pre_dnat)
    mangle.update(dispatch_chain(FROM_HEP, "-i", "cali-fh-", pnames,
                                 _goto("cali-fh-", pdefault)))
    unames = [n for n in untracked if n != ALL_INTERFACES]
    raw: Chains = {}
    raw.update(dispatch_chain(FROM_HEP, "-i", "cali-fh-", unames, ()))
    raw.update(dispatch_chain(TO_HEP, "-o", "cali-th-", unames, ()))
    return {"filter": filt, "mangle": mangle, "raw": raw}


# -- everything for one IP version -------------------------------------------------------------


def _missing(name: str) -> tuple[Rule, ...]:
    """Fail closed if a chain to jump to was not rendered (never expected)."""
    return (Rule("", "--jump DROP", f"Missing chain {name}: drop"),)


def tables(version: int, governed: Mapping[str, HostPlan], targets: Targets,
           prefixes: tuple[str, ...], failsafe_in: tuple[FailsafePort, ...],
           failsafe_out: tuple[FailsafePort, ...]) -> dict[str, Chains]:
    """table -> the host endpoint chains of one IP version: endpoint chains of every governed
    interface, the dispatch chains, the failsafe chains (filter always, mangle and raw when
    something there jumps to them) and the policy, profile and group chains they jump to."""
    out: dict[str, Chains] = {"filter": {}, "mangle": {}, "raw": {}}
    for iface in sorted(governed):
        for table, chains in endpoint_chains(iface, governed[iface]).items():
            out[table].update(chains)
    pre = tuple(sorted(i for i, p in governed.items() if p.pre_dnat))
    unt = tuple(sorted(i for i, p in governed.items() if p.untracked))
    for table, chains in dispatch_chains(tuple(sorted(governed)), pre, unt, prefixes).items():
        out[table].update(chains)
    for chains in out.values():
        needed = [t for rules in chains.values() for r in rules
                  if r.action.startswith("--jump cali-")
                  and (t := r.action.split()[1]).startswith(_TARGET_PREFIXES)
                  and t not in chains]
        for name in needed:
            if name not in chains:
                rendered = targets.target(name)
                chains[name] = rendered if rendered is not None else _missing(name)
    fs = failsafe_chains(version, failsafe_in, failsafe_out)
    out["filter"].update(fs)
    if any(n.startswith(("cali-th-", "cali-fh-")) for n in out["mangle"]):
        out["mangle"].update(fs)
    if out["raw"] and any(n.startswith(("cali-th-", "cali-fh-")) for n in out["raw"]):
        out["raw"].update(failsafe_chains(version, failsafe_in, failsafe_out, raw=True))
    return out


__all__ = ["ALL_INTERFACES", "FailsafePort", "dispatch_chains", "endpoint_chains",
           "failsafe_chains", "resolve", "tables"]
