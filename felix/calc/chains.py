"""The iptables rules Felix wants: Calico's cali-* skeleton, dispatch chains, NAT outgoing.
The workload, policy and profile chains the dispatch chains lead to come from the policy
calculation (felix/calc/policy_*.py, one Calico rule renderer). Pure; results are cached
because the same inputs recur on every apply."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

from felix.calc.hostendpoint import FailsafePort, failsafe_chains
from felix.calc.rules import ACCEPT_MARK, J_SET_ACCEPT, M_ACCEPT, set_name
from felix.drivers.iptables.rules import Rule, length_limited

PURE = True

SCRATCH0 = 0x80000
ALL_BITS = 0x1B0000

J_CLEAR = f"-j MARK --set-xmark 0x0/{ALL_BITS:#x}"


@dataclass(frozen=True)
class TableDesired:
    """Our chains (full content), and our rules in kernel chains (top inserts, tail appends)."""

    chains: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    inserts: dict[str, tuple[Rule, ...]] = field(default_factory=dict)
    appends: dict[str, tuple[Rule, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EndpointPolicy:
    iface: str
    profiles: tuple[str, ...]


@functools.lru_cache(maxsize=65536)
def endpoint_policy(iface: str, profiles: tuple[str, ...]) -> EndpointPolicy:
    return EndpointPolicy(iface, profiles)


@dataclass(frozen=True, slots=True)
class RuleOptions:
    ip_version: int
    prefixes: tuple[str, ...]
    vxlan: bool
    ipip: bool
    vxlan_port: int
    insert_mode: str
    endpoint_to_host_action: str
    allow_vxlan_from_workloads: bool
    allow_ipip_from_workloads: bool
    nat_outgoing: bool
    tunnel_devices: tuple[str, ...]
    failsafe_in: tuple[tuple[str, int] | tuple[str, int, str], ...]
    failsafe_out: tuple[tuple[str, int] | tuple[str, int, str], ...]
    """(protocol, port[, CIDR]) of FailsafeInbound/OutboundHostPorts."""


@functools.lru_cache(maxsize=16384)
def tw_chain(iface: str) -> str:
    return length_limited("cali-tw-", iface)


@functools.lru_cache(maxsize=16384)
def fw_chain(iface: str) -> str:
    return length_limited("cali-fw-", iface)


def build(opts: RuleOptions, endpoints: tuple[EndpointPolicy, ...]
          ) -> dict[str, TableDesired]:
    """table name → desired state for one IP version (the filter table without the
    workload, policy and profile chains, which the caller adds)."""
    filt = _filter_skeleton(opts)
    for name, rules in _dispatch(opts, tuple(sorted(e.iface for e in endpoints))).items():
        filt.chains[name] = rules
    return {"raw": _raw(opts), "mangle": _mangle(opts), "filter": filt, "nat": _nat(opts)}


def _hooks(opts: RuleOptions, pairs: list[tuple[str, str]], t: TableDesired) -> None:
    for kchain, ours in pairs:
        rule = (Rule(action=f"-j {ours}"),)
        if opts.insert_mode == "insert":
            t.inserts[kchain] = rule
        else:
            t.appends[kchain] = rule


def _iface_matches(opts: RuleOptions, flag: str) -> list[str]:
    return [f"{flag} {p}+" for p in opts.prefixes]


def _raw(opts: RuleOptions) -> TableDesired:
    t = TableDesired()
    pre = [Rule(action=J_CLEAR)]
    if opts.vxlan and opts.ip_version == 4:
        pre.append(Rule(f"-p udp -m udp --dport {opts.vxlan_port}", "-j NOTRACK"))
    pre += [Rule(m, f"-j MARK --set-xmark {SCRATCH0:#x}/{SCRATCH0:#x}")
            for m in _iface_matches(opts, "-i")]
    pre += [
        Rule(f"-m mark --mark {SCRATCH0:#x}/{SCRATCH0:#x}", "-j cali-rpf-skip"),
        Rule(f"-m mark --mark {SCRATCH0:#x}/{SCRATCH0:#x} -m rpfilter --validmark --invert",
             "-j DROP"),
        Rule(f"-m mark --mark 0x0/{SCRATCH0:#x}", "-j cali-from-host-endpoint"),
        Rule(M_ACCEPT, "-j ACCEPT"),
    ]
    out = [Rule(action=J_CLEAR), Rule(action="-j cali-to-host-endpoint")]
    if opts.vxlan and opts.ip_version == 4:
        out.append(Rule(f"-p udp -m udp --dport {opts.vxlan_port}", "-j NOTRACK"))
    out.append(Rule(M_ACCEPT, "-j ACCEPT"))
    t.chains.update({"cali-PREROUTING": tuple(pre), "cali-OUTPUT": tuple(out),
                     "cali-rpf-skip": (), "cali-from-host-endpoint": (),
                     "cali-to-host-endpoint": ()})
    _hooks(opts, [("PREROUTING", "cali-PREROUTING"), ("OUTPUT", "cali-OUTPUT")], t)
    return t


def _mangle(opts: RuleOptions) -> TableDesired:
    t = TableDesired()
    t.chains["cali-PREROUTING"] = (
        Rule("-m conntrack --ctstate RELATED,ESTABLISHED", "-j ACCEPT"),
        Rule(M_ACCEPT, "-j ACCEPT"),
        Rule(action="-j cali-from-host-endpoint"),
        Rule(M_ACCEPT, "-j ACCEPT", "Host endpoint policy accepted packet."),
    )
    t.chains["cali-POSTROUTING"] = (
        Rule(M_ACCEPT, "-j RETURN"),
        Rule(action=J_CLEAR),
        Rule("-m conntrack --ctstate DNAT", "-j cali-to-host-endpoint"),
        Rule(M_ACCEPT, "-j RETURN"),
    )
    t.chains["cali-from-host-endpoint"] = ()
    t.chains["cali-to-host-endpoint"] = ()
    _hooks(opts, [("PREROUTING", "cali-PREROUTING"), ("POSTROUTING", "cali-POSTROUTING")], t)
    return t


def _filter_skeleton(opts: RuleOptions) -> TableDesired:
    t = TableDesired()
    v = opts.ip_version
    inp: list[Rule] = []
    outp: list[Rule] = [Rule(M_ACCEPT, "-j ACCEPT")]
    outp += [Rule(m, "-j RETURN") for m in _iface_matches(opts, "-o")]
    if opts.ipip and v == 4:
        hosts = set_name(4, "all-hosts-net")
        inp += [Rule(f"-p ipencap -m set --match-set {hosts} src -m addrtype --dst-type LOCAL",
                     "-j ACCEPT", "Allow IPIP packets from Calico hosts"),
                Rule("-p ipencap", "-j DROP", "Drop IPIP packets from non-Calico hosts")]
        outp.append(Rule(f"-p ipencap -m set --match-set {hosts} dst -m addrtype "
                         "--src-type LOCAL", "-j ACCEPT",
                         "Allow IPIP packets to other Calico hosts"))
    if opts.vxlan and v == 4:
        vx = set_name(4, "all-vxlan-net")
        port = opts.vxlan_port
        inp += [Rule(f"-p udp -m multiport --dports {port} -m set --match-set {vx} src "
                     "-m addrtype --dst-type LOCAL", "-j ACCEPT",
                     "Allow VXLAN packets from allowed hosts"),
                Rule(f"-p udp -m multiport --dports {port} -m addrtype --dst-type LOCAL",
                     "-j DROP", "Drop VXLAN packets from non-allowed hosts")]
        outp.append(Rule(f"-p udp -m multiport --dports {port} -m addrtype --src-type LOCAL "
                         f"-m set --match-set {vx} dst", "-j ACCEPT",
                         "Allow VXLAN packets to other allowed hosts"))
    inp += [Rule(m, "-g cali-wl-to-host") for m in _iface_matches(opts, "-i")]
    inp += [Rule(M_ACCEPT, "-j ACCEPT"), Rule(action=J_CLEAR),
            Rule(action="-j cali-from-host-endpoint"),
            Rule(M_ACCEPT, "-j ACCEPT", "Host endpoint policy accepted packet.")]
    outp += [Rule(action=J_CLEAR),
             Rule("-m conntrack ! --ctstate DNAT", "-j cali-to-host-endpoint"),
             Rule(M_ACCEPT, "-j ACCEPT", "Host endpoint policy accepted packet.")]
    fwd = [Rule(action="-j MARK --set-xmark 0x0/0x1a0000"),
           Rule(f"-m mark --mark 0x0/{ACCEPT_MARK:#x}", "-j cali-from-hep-forward")]
    fwd += [Rule(m, "-j cali-from-wl-dispatch") for m in _iface_matches(opts, "-i")]
    fwd += [Rule(m, "-j cali-to-wl-dispatch") for m in _iface_matches(opts, "-o")]
    fwd += [Rule(action="-j cali-to-hep-forward"), Rule(action="-j cali-cidr-block")]
    t.chains.update({
        "cali-INPUT": tuple(inp),
        "cali-OUTPUT": tuple(outp),
        "cali-FORWARD": tuple(fwd),
        "cali-wl-to-host": (
            Rule(action="-j cali-from-wl-dispatch"),
            Rule(action=f"-j {opts.endpoint_to_host_action}",
                 comment="Configured DefaultEndpointToHostAction"),
        ),
        "cali-from-hep-forward": (), "cali-to-hep-forward": (), "cali-cidr-block": (),
        "cali-from-host-endpoint": (), "cali-to-host-endpoint": (),
    })
    t.chains.update(failsafe_chains(v, (FailsafePort(*p) for p in opts.failsafe_in),
                                    (FailsafePort(*p) for p in opts.failsafe_out)))
    _hooks(opts, [("INPUT", "cali-INPUT"), ("FORWARD", "cali-FORWARD"),
                  ("OUTPUT", "cali-OUTPUT")], t)
    t.appends["FORWARD"] = (
        Rule(M_ACCEPT, "-j ACCEPT", "Policy explicitly accepted packet."),
        Rule(action=J_SET_ACCEPT),
    )
    return t


def _nat(opts: RuleOptions) -> TableDesired:
    t = TableDesired()
    v = opts.ip_version
    post = [Rule(action="-j cali-fip-snat"), Rule(action="-j cali-nat-outgoing")]
    for dev in opts.tunnel_devices:
        post.append(Rule(f"-o {dev} -m addrtype ! --src-type LOCAL --limit-iface-out "
                         "-m addrtype --src-type LOCAL", "-j MASQUERADE --random-fully"))
    natout: tuple[Rule, ...] = ()
    if opts.nat_outgoing:
        natout = (Rule(f"-m set --match-set {set_name(v, 'masq-ipam-pools')} src "
                       f"-m set ! --match-set {set_name(v, 'network-ip-pools')} dst",
                       "-j MASQUERADE --random-fully"),)
    t.chains.update({
        "cali-PREROUTING": (Rule(action="-j cali-fip-dnat"),),
        "cali-OUTPUT": (Rule(action="-j cali-fip-dnat"),),
        "cali-POSTROUTING": tuple(post),
        "cali-nat-outgoing": natout,
        "cali-fip-dnat": (), "cali-fip-snat": (),
    })
    _hooks(opts, [("PREROUTING", "cali-PREROUTING"), ("OUTPUT", "cali-OUTPUT")], t)
    t.inserts.pop("POSTROUTING", None)
    t.appends["POSTROUTING"] = (Rule(action="-j cali-POSTROUTING"),)
    return t


def _group_key(opts: RuleOptions, iface: str) -> str:
    for p in opts.prefixes:
        if iface.startswith(p) and len(iface) > len(p):
            return iface[: len(p) + 1]
    return iface


def _dispatch(opts: RuleOptions, ifaces: tuple[str, ...]) -> dict[str, tuple[Rule, ...]]:
    return _dispatch_cached(opts.prefixes, ifaces)


@functools.lru_cache(maxsize=64)
def _dispatch_cached(prefixes: tuple[str, ...],
                     ifaces: tuple[str, ...]) -> dict[str, tuple[Rule, ...]]:
    """Calico's fail-closed dispatch: interfaces sharing the character after the prefix go
    behind `-i cali3+ -g <root>-3`. Groups larger than SPLIT_ABOVE are split again on the
    next character (`<root>-3a`), so that adding one endpoint among thousands rewrites a
    chain of a few rules instead of one of hundreds. Every chain ends in DROP."""
    out: dict[str, tuple[Rule, ...]] = {}
    by_prefix: dict[str, list[str]] = {}
    for i in ifaces:
        p = _prefix_of(prefixes, i)
        by_prefix.setdefault(p, []).append(i)
    for root, flag in (("cali-from-wl-dispatch", "-i"), ("cali-to-wl-dispatch", "-o")):
        rules: list[Rule] = []
        for p in sorted(by_prefix):
            rules += _dispatch_level(out, root, flag, p, tuple(by_prefix[p]), 0)
        out[root] = (*rules, _UNKNOWN_DROP)
    return out


@functools.lru_cache(maxsize=65536)
def _prefix_of(prefixes: tuple[str, ...], iface: str) -> str:
    return next((p for p in prefixes if iface.startswith(p) and len(iface) > len(p)), "")


SPLIT_ABOVE = 16
MAX_DEPTH = 3


def _dispatch_level(out: dict[str, tuple[Rule, ...]], root: str, flag: str, prefix: str,
                    members: tuple[str, ...], depth: int) -> list[Rule]:
    """Rules for `members` (all starting with `prefix` + `depth` shared characters);
    child chains are added to `out`."""
    rules, children = _dispatch_group(root, flag, prefix, members, depth)
    out.update(children)
    return list(rules)


@functools.lru_cache(maxsize=4096)
def _dispatch_group(root: str, flag: str, prefix: str, members: tuple[str, ...], depth: int
                    ) -> tuple[tuple[Rule, ...], dict[str, tuple[Rule, ...]]]:
    """(rules, child chains) for one group; cached, so that a new interface recomputes only
    the groups it falls in. Callers only read the result."""
    if not prefix:
        return tuple(_dispatch_rule(flag, m) for m in members), {}
    pos = len(prefix) + depth
    groups: dict[str, list[str]] = {}
    for m in members:
        groups.setdefault(m[: pos + 1], []).append(m)
    rules: list[Rule] = []
    out: dict[str, tuple[Rule, ...]] = {}
    for key in sorted(groups):
        g = groups[key]
        if len(g) == 1 or len(key) <= pos:
            rules += [_dispatch_rule(flag, m) for m in g]
            continue
        child = f"{root}-{key[len(prefix):]}"
        rules.append(Rule(f"{flag} {key}+", f"-g {child}"))
        if len(g) > SPLIT_ABOVE and depth + 1 < MAX_DEPTH:
            out[child] = (*_dispatch_level(out, root, flag, prefix, tuple(g), depth + 1),
                          _UNKNOWN_DROP)
        else:
            out[child] = _dispatch_child(flag, tuple(g))
    return tuple(rules), out


_UNKNOWN_DROP = Rule(action="-j DROP", comment="Unknown interface")


@functools.lru_cache(maxsize=32768)
def _dispatch_rule(flag: str, iface: str) -> Rule:
    target = fw_chain(iface) if flag == "-i" else tw_chain(iface)
    return Rule(f"{flag} {iface}", f"-g {target}")


@functools.lru_cache(maxsize=4096)
def _dispatch_child(flag: str, members: tuple[str, ...]) -> tuple[Rule, ...]:
    """One group's chain; cached so that a change in one group rebuilds only that one."""
    return (*(_dispatch_rule(flag, m) for m in members), _UNKNOWN_DROP)
