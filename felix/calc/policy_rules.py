"""Calico policy rules -> iptables rules, as Felix renders them (`felix/rules/policy.go`,
`felix/calc/rule_scanner.go`, the update processors' selector composition). Pure.

- `policy_selector` / `entity_selectors`: the selectors Felix actually matches on (§1.5 of
  ../shared/reference/policy.md): a NetworkPolicy is limited to its namespace,
  `namespaceSelector` labels become `pcns.`, service accounts `pcsa.` /
  `projectcalico.org/serviceaccount`, a negated selector folds into the positive one.
- `parse_rule`: one model Rule -> `ParsedRule` (IP set IDs instead of selectors; named ports as
  IP,port sets); `IPSetSpec` says what each set holds.
- `render_rule` / `render_rules`: a ParsedRule -> iptables `Rule`s for one IP version, with
  Calico's match order, match blocks (port / CIDR / negated CIDR, scratch mark bits), action
  rules (Allow/Pass/Deny set a mark and RETURN/DROP on it, Log logs) and chain assembly
  (trailing RETURNs stripped, the chain comment on the first rule).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass, field, replace

from felix.drivers.iptables.rules import Rule
from libcalico.model import selector as sel
from libcalico.model.resources import Action, EntityRule
from libcalico.model.resources import Rule as ModelRule
from libcalico.model.types import IPNetwork, Port, ProtocolValue

PURE = True

MARK_ACCEPT = 0x10000
MARK_PASS = 0x20000
MARK_DROP = 0x40000
MARK_SCRATCH0 = 0x80000
MARK_SCRATCH1 = 0x100000
LOG_PREFIX = "calico-packet"

LABEL_NAMESPACE = "projectcalico.org/namespace"
LABEL_SERVICE_ACCOUNT = "projectcalico.org/serviceaccount"
NS_PREFIX = "pcns."
SA_PREFIX = "pcsa."
ALL_SELECTOR = "all()"


# ---------------------------------------------------------------------------------------------
# IP set identities (hash.MakeUniqueID) and names (ipsets.IPVersionConfig.NameForMainIPSet)


def unique_id(prefix: str, content: str) -> str:
    digest = hashlib.sha224(f"{prefix}:{content}".encode()).digest()
    return f"{prefix}:" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


@functools.lru_cache(maxsize=16384)
def selector_uid(canonical: str) -> str:
    """`s:<hash>`: the IP set of every address a selector matches."""
    return unique_id("s", canonical)


def named_port_uid(selector_canonical: str, protocol: str, port_name: str) -> str:
    """`n:<hash>` over `<selector UID>,<tcp|udp|sctp>,<name>`."""
    return unique_id("n", f"{selector_uid(selector_canonical)},{protocol},{port_name}")


def set_name(version: int, uid: str) -> str:
    """The kernel name of a set: `cali40s:…` / `cali60n:…`, at most 31 characters."""
    return f"cali{version}0{uid}"[:31]


@dataclass(frozen=True, slots=True)
class IPSetSpec:
    """What an IP set holds: the addresses of what `selector` matches, or (with a
    `port_name`) `IP,proto:port` of the endpoints that declare that named port."""

    uid: str
    selector: str
    protocol: str = ""
    port_name: str = ""

    @property
    def set_type(self) -> str:
        return "hash:ip,port" if self.port_name else "hash:net"


# ---------------------------------------------------------------------------------------------
# Selector composition (update processors: networkpolicyprocessor.go, rules.go)


@functools.lru_cache(maxsize=16384)
def canonical(text: str) -> str:
    return str(sel.parse(text))


def _prefixed(node: sel.Selector, prefix: str, all_to: str | None = None) -> sel.Selector:
    """`node` with every label key prefixed (and all() replaced by `all_to`, if given)."""
    if isinstance(node, sel.All):
        return sel.parse(all_to) if all_to else node
    if isinstance(node, sel.Not):
        return sel.Not(_prefixed(node.operand, prefix, all_to))
    if isinstance(node, sel.And | sel.Or):
        return type(node)(tuple(_prefixed(op, prefix, all_to) for op in node.operands))
    key = getattr(node, "key", None)
    if isinstance(key, str):
        return replace(node, key=prefix + key)  # type: ignore[type-var]
    return node


def _ns_term(namespace: str) -> str:
    return f"{LABEL_NAMESPACE} == '{namespace}'"


def _and(*parts: str) -> str:
    present = [p for p in parts if p]
    if len(present) == 1:
        return present[0]
    return " && ".join(f"({p})" for p in present)


def prefixed_text(text: str, prefix: str, all_to: str | None = None) -> str:
    return str(_prefixed(sel.parse(text), prefix, all_to))


def policy_selector(selector: str, namespace: str | None, namespace_selector: str = "",
                    service_account_selector: str = "") -> str:
    """The canonical selector of the endpoints a policy applies to."""
    return canonical(policy_selector_text(selector, namespace, namespace_selector,
                                          service_account_selector))


def policy_selector_text(selector: str, namespace: str | None, namespace_selector: str = "",
                         service_account_selector: str = "") -> str:
    """The selector text the update processors compose for a policy. `namespace` for
    namespaced kinds (NetworkPolicy): `(<selector>) && projectcalico.org/namespace == '<ns>'`;
    for GlobalNetworkPolicy the namespaceSelector is ANDed on with `pcns.` keys (and all() ->
    has(projectcalico.org/namespace)); a serviceAccountSelector with `pcsa.` keys."""
    text = selector.strip()
    if namespace is not None:
        text = f"({text}) && {_ns_term(namespace)}" if text else _ns_term(namespace)
    elif namespace_selector:
        pre = prefixed_text(namespace_selector, NS_PREFIX)
        text = _and(text, pre)
        text = text.replace("all()", f"has({LABEL_NAMESPACE})")
    if service_account_selector:
        pre = prefixed_text(service_account_selector, SA_PREFIX)
        text = _and(text, pre).replace("all()", f"has({LABEL_SERVICE_ACCOUNT})")
    return text or ALL_SELECTOR


def _sa_text(ent: EntityRule) -> str:
    sa = ent.service_accounts
    if sa is None:
        return ""
    out = prefixed_text(sa.selector, SA_PREFIX) if sa.selector else ""
    if sa.names:
        names = "', '".join(sa.names)
        out = _and(out, f"{LABEL_SERVICE_ACCOUNT} in {{ '{names}' }}")
    return out


def entity_selectors(ent: EntityRule, namespace: str | None) -> tuple[str, str]:
    """(positive, negated) canonical selectors of one side of a rule ("" when absent), as
    GetEntityRuleSelector composes them and Felix folds them (combineMatchesIfPossible)."""
    if ent.namespace_selector:
        ns = prefixed_text(ent.namespace_selector, NS_PREFIX, f"has({LABEL_NAMESPACE})")
        ns = re.sub(r"global\(\)", f"!has({LABEL_NAMESPACE})", ns)
    elif namespace is not None:
        ns = _ns_term(namespace)
    else:
        ns = ""
    positive = _and(ent.selector or "", _sa_text(ent))
    if ns and (ent.selector or ent.not_selector or ent.namespace_selector):
        positive = _and(ns, positive)
    negated = ent.not_selector or ""
    if positive and negated:
        positive = f"({positive}) && (!({negated}))"
        negated = ""
    return (canonical(positive) if positive else "", canonical(negated) if negated else "")


# ---------------------------------------------------------------------------------------------
# Parsed rules


@dataclass(frozen=True, slots=True)
class ParsedRule:
    """A rule with its selectors replaced by IP set UIDs (rule_scanner.ParsedRule)."""

    action: str
    ip_version: int | None = None
    protocol: ProtocolValue | None = None
    src_nets: tuple[IPNetwork, ...] = ()
    src_ports: tuple[Port, ...] = ()
    src_named_port_sets: tuple[str, ...] = ()
    src_sets: tuple[str, ...] = ()
    dst_nets: tuple[IPNetwork, ...] = ()
    dst_ports: tuple[Port, ...] = ()
    dst_named_port_sets: tuple[str, ...] = ()
    dst_sets: tuple[str, ...] = ()
    icmp_type: int | None = None
    icmp_code: int | None = None
    not_protocol: ProtocolValue | None = None
    not_src_nets: tuple[IPNetwork, ...] = ()
    not_src_ports: tuple[Port, ...] = ()
    not_src_named_port_sets: tuple[str, ...] = ()
    not_src_sets: tuple[str, ...] = ()
    not_dst_nets: tuple[IPNetwork, ...] = ()
    not_dst_ports: tuple[Port, ...] = ()
    not_dst_named_port_sets: tuple[str, ...] = ()
    not_dst_sets: tuple[str, ...] = ()
    not_icmp_type: int | None = None
    not_icmp_code: int | None = None
    annotations: tuple[tuple[str, str], ...] = ()
    ipsets: tuple[IPSetSpec, ...] = field(default=(), compare=False)
    """Every set the rule uses (for the IP set calculation)."""


def _proto_name(proto: ProtocolValue | None) -> ProtocolValue | None:
    """Protocol names are lower-cased (numbers stay numbers)."""
    if proto is None or isinstance(proto, int):
        return proto
    return int(proto) if proto.isdigit() else proto.lower()


def _named_port_protocol(proto: ProtocolValue | None) -> str:
    p = _proto_name(proto)
    if p in ("udp", 17):
        return "udp"
    if p in ("sctp", 132):
        return "sctp"
    return "tcp"


_ICMP4 = ("icmp", 1)
_ICMP6 = ("icmpv6", 58)


def parse_rule(rule: ModelRule, namespace: str | None) -> ParsedRule:
    """`namespace` is the policy's (None for global policies and profiles)."""
    src, not_src = entity_selectors(rule.source, namespace)
    dst, not_dst = entity_selectors(rule.destination, namespace)
    np_proto = _named_port_protocol(rule.protocol)
    sets: list[IPSetSpec] = []

    def named(ports: tuple[Port, ...], positive: str) -> tuple[str, ...]:
        out = []
        for p in ports:
            if p.name:
                selector = positive or canonical(ALL_SELECTOR)
                spec = IPSetSpec(named_port_uid(selector, np_proto, p.name), selector,
                                 np_proto, p.name)
                sets.append(spec)
                out.append(spec.uid)
        return tuple(out)

    def selector_sets(text: str) -> tuple[str, ...]:
        if not text:
            return ()
        spec = IPSetSpec(selector_uid(text), text)
        sets.append(spec)
        return (spec.uid,)

    def numeric(ports: tuple[Port, ...]) -> tuple[Port, ...]:
        return tuple(p for p in ports if not p.name)

    s_named = named(rule.source.ports, src)
    d_named = named(rule.destination.ports, dst)
    ns_named = named(rule.source.not_ports, src)
    nd_named = named(rule.destination.not_ports, dst)
    s_num, d_num = numeric(rule.source.ports), numeric(rule.destination.ports)
    s_sets = selector_sets(src) if s_num or not s_named else ()
    d_sets = selector_sets(dst) if d_num or not d_named else ()
    ip_version = rule.ip_version
    proto = _proto_name(rule.protocol)
    if ip_version is None and proto in _ICMP4:
        ip_version = 4
    elif ip_version is None and proto in _ICMP6:
        ip_version = 6
    action = {Action.ALLOW: "allow", Action.DENY: "deny", Action.LOG: "log",
              Action.PASS: "next-tier"}[rule.action]
    return ParsedRule(
        action=action, ip_version=ip_version, protocol=proto,
        src_nets=rule.source.nets, src_ports=s_num, src_named_port_sets=s_named,
        src_sets=s_sets,
        dst_nets=rule.destination.nets, dst_ports=d_num, dst_named_port_sets=d_named,
        dst_sets=d_sets,
        icmp_type=rule.icmp.type if rule.icmp else None,
        icmp_code=rule.icmp.code if rule.icmp else None,
        not_protocol=_proto_name(rule.not_protocol),
        not_src_nets=rule.source.not_nets, not_src_ports=numeric(rule.source.not_ports),
        not_src_named_port_sets=ns_named, not_src_sets=selector_sets(not_src),
        not_dst_nets=rule.destination.not_nets,
        not_dst_ports=numeric(rule.destination.not_ports),
        not_dst_named_port_sets=nd_named, not_dst_sets=selector_sets(not_dst),
        not_icmp_type=rule.not_icmp.type if rule.not_icmp else None,
        not_icmp_code=rule.not_icmp.code if rule.not_icmp else None,
        annotations=tuple(sorted(rule.metadata.annotations.items())) if rule.metadata else (),
        ipsets=tuple(dict.fromkeys(sets)),
    )


# ---------------------------------------------------------------------------------------------
# Rendering (iptables match and action spelling of felix/iptables/match_builder.go, actions.go)


def _mark(value: int) -> str:
    return f"{value:#x}" if value else "0"


def set_mark(bits: int) -> str:
    return f"--jump MARK --set-mark {bits:#x}/{bits:#x}"


def clear_mark(bits: int) -> str:
    return f"--jump MARK --set-mark 0/{bits:#x}"


def set_masked_mark(value: int, mask: int) -> str:
    return f"--jump MARK --set-mark {value:#x}/{mask:#x}"


def match_mark_set(bits: int) -> str:
    return f"-m mark --mark {bits:#x}/{bits:#x}"


def match_mark_clear(bits: int) -> str:
    return f"-m mark --mark 0/{bits:#x}"


def _proto_match(proto: ProtocolValue | None, negate: bool = False) -> list[str]:
    if proto is None:
        return []
    return [f"{'! ' if negate else ''}-p {proto}"]


def _ports_text(ports: tuple[Port, ...]) -> str:
    return ",".join(str(p.min_port) if p.min_port == p.max_port
                    else f"{p.min_port}:{p.max_port}" for p in ports)


def split_ports(ports: tuple[Port, ...]) -> list[tuple[Port, ...]]:
    """Groups of at most 15 multiport slots (a range takes 2)."""
    splits: list[tuple[Port, ...]] = []
    current: list[Port] = []
    free = 15
    for p in ports:
        need = 1 if p.min_port == p.max_port else 2
        if free < need:
            splits.append(tuple(current))
            current, free = [], 15
        current.append(p)
        free -= need
    if current:
        splits.append(tuple(current))
    return splits


def _ports_match(side: str, ports: tuple[Port, ...], negate: bool = False) -> str:
    flag = "--source-ports" if side == "src" else "--destination-ports"
    return f"-m multiport {'! ' if negate else ''}{flag} {_ports_text(ports)}"


def _net(side: str, net: object, negate: bool = False) -> str:
    flag = "--source" if side == "src" else "--destination"
    return f"{'! ' if negate else ''}{flag} {net}"


def _set(version: int, uid: str, side: str, negate: bool = False, ip_port: bool = False
         ) -> str:
    dirs = f"{side},{side}" if ip_port else side
    return f"-m set {'! ' if negate else ''}--match-set {set_name(version, uid)} {dirs}"


def _icmp(version: int, icmp_type: int | None, code: int | None, negate: bool) -> list[str]:
    if icmp_type is None:
        return []
    value = f"{icmp_type}/{code}" if code is not None else str(icmp_type)
    neg = "! " if negate else ""
    if version == 4:
        return [f"-m icmp {neg}--icmp-type {value}"]
    return [f"-m icmp6 {neg}--icmpv6-type {value}"]


def _family(nets: tuple[IPNetwork, ...], version: int, negated: bool
            ) -> tuple[tuple[IPNetwork, ...], bool]:
    """(the nets of this family, whether the whole rule is to be dropped)."""
    if not nets:
        return (), False
    same = tuple(n for n in nets if n.version == version)
    if not same:
        return (), True
    if negated and any(n.prefixlen == 0 for n in same):
        return (), True
    return same, False


def filter_to_version(rule: ParsedRule, version: int) -> ParsedRule | None:
    """FilterRuleToIPVersion: None when the rule does not apply to this IP version."""
    if rule.ip_version is not None and rule.ip_version != version:
        return None
    changes: dict[str, tuple[IPNetwork, ...]] = {}
    for name, negated in (("src_nets", False), ("not_src_nets", True), ("dst_nets", False),
                          ("not_dst_nets", True)):
        nets, drop = _family(getattr(rule, name), version, negated)
        if drop:
            return None
        changes[name] = nets
    return replace(rule, **changes)  # type: ignore[arg-type]


class _Blocks:
    """matchBlockBuilder: rules that OR alternatives into the scratch mark bits."""

    def __init__(self) -> None:
        self.rules: list[Rule] = []
        self.using = False
        self.done_first_positive = False

    def _initial(self, bits: int) -> None:
        if not self.using:
            self.rules.append(Rule("", set_masked_mark(bits, MARK_SCRATCH0 | MARK_SCRATCH1)))
            self.using = True

    def _mark_to_set(self) -> int:
        return MARK_SCRATCH1 if self.done_first_positive else MARK_SCRATCH0

    def _finish_positive(self) -> None:
        if not self.done_first_positive:
            self.done_first_positive = True
            return
        self.rules.append(Rule(match_mark_clear(MARK_SCRATCH1), clear_mark(MARK_SCRATCH0)))

    def ports(self, version: int, proto: ProtocolValue | None, side: str,
              splits: list[tuple[Port, ...]], named_sets: tuple[str, ...]) -> None:
        self._initial(0)
        bits = self._mark_to_set()
        for split in splits:
            m = " ".join([*_proto_match(proto), _ports_match(side, split)])
            self.rules.append(Rule(m, set_mark(bits)))
        for uid in named_sets:
            self.rules.append(Rule(_set(version, uid, side, ip_port=True), set_mark(bits)))
        self._finish_positive()

    def cidrs(self, side: str, nets: tuple[IPNetwork, ...]) -> None:
        self._initial(0)
        bits = self._mark_to_set()
        for n in nets:
            self.rules.append(Rule(_net(side, n), set_mark(bits)))
        self._finish_positive()

    def negated_cidrs(self, side: str, nets: tuple[IPNetwork, ...]) -> None:
        self._initial(MARK_SCRATCH0)
        for n in nets:
            self.rules.append(Rule(_net(side, n), clear_mark(MARK_SCRATCH0)))


def rule_match(version: int, r: ParsedRule) -> list[str]:
    """CalculateRuleMatch: the main rule's match fragments, in Calico's order."""
    m: list[str] = _proto_match(r.protocol)
    if r.src_nets:
        m.append(_net("src", r.src_nets[0]))
    m += [_set(version, uid, "src") for uid in r.src_sets]
    if r.src_ports:
        m.append(_ports_match("src", r.src_ports))
    m += [_set(version, uid, "src", ip_port=True) for uid in r.src_named_port_sets]
    if r.dst_nets:
        m.append(_net("dst", r.dst_nets[0]))
    m += [_set(version, uid, "dst") for uid in r.dst_sets]
    if r.dst_ports:
        m.append(_ports_match("dst", r.dst_ports))
    m += [_set(version, uid, "dst", ip_port=True) for uid in r.dst_named_port_sets]
    m += _icmp(version, r.icmp_type, r.icmp_code, False)
    m += _proto_match(r.not_protocol, negate=True)
    if r.not_src_nets:
        m.append(_net("src", r.not_src_nets[0], negate=True))
    m += [_set(version, uid, "src", negate=True) for uid in r.not_src_sets]
    m += [_ports_match("src", split, negate=True) for split in split_ports(r.not_src_ports)]
    m += [_set(version, uid, "src", negate=True, ip_port=True)
          for uid in r.not_src_named_port_sets]
    if r.not_dst_nets:
        m.append(_net("dst", r.not_dst_nets[0], negate=True))
    m += [_set(version, uid, "dst", negate=True) for uid in r.not_dst_sets]
    m += [_ports_match("dst", split, negate=True) for split in split_ports(r.not_dst_ports)]
    m += [_set(version, uid, "dst", negate=True, ip_port=True)
          for uid in r.not_dst_named_port_sets]
    m += _icmp(version, r.not_icmp_type, r.not_icmp_code, True)
    return m


def render_rule(version: int, parsed: ParsedRule, log_prefix: str = LOG_PREFIX
                ) -> list[Rule]:
    """ProtoRuleToIptablesRules for one IP version ([] when the rule does not apply)."""
    r = filter_to_version(parsed, version)
    if r is None:
        return []
    blocks = _Blocks()
    src_splits = split_ports(r.src_ports)
    if len(src_splits) + len(r.src_named_port_sets) > 1:
        blocks.ports(version, r.protocol, "src", src_splits, r.src_named_port_sets)
        r = replace(r, src_ports=(), src_named_port_sets=())
    dst_splits = split_ports(r.dst_ports)
    if len(dst_splits) + len(r.dst_named_port_sets) > 1:
        blocks.ports(version, r.protocol, "dst", dst_splits, r.dst_named_port_sets)
        r = replace(r, dst_ports=(), dst_named_port_sets=())
    if len(r.src_nets) > 1:
        blocks.cidrs("src", r.src_nets)
        r = replace(r, src_nets=())
    if len(r.dst_nets) > 1:
        blocks.cidrs("dst", r.dst_nets)
        r = replace(r, dst_nets=())
    if len(r.src_nets) + len(r.not_src_nets) > 1:
        blocks.negated_cidrs("src", r.not_src_nets)
        r = replace(r, not_src_nets=())
    if len(r.dst_nets) + len(r.not_dst_nets) > 1:
        blocks.negated_cidrs("dst", r.not_dst_nets)
        r = replace(r, not_dst_nets=())
    match = rule_match(version, r)
    if blocks.using:
        match.append(match_mark_set(MARK_SCRATCH0))
    out = blocks.rules + _actions(r.action, " ".join(match), log_prefix)
    if parsed.annotations:
        notes = tuple(f"{k}={v}" for k, v in parsed.annotations)
        out = [_with_comments(rule, notes) for rule in out]
    return out


def _actions(action: str, match: str, log_prefix: str) -> list[Rule]:
    """CombineMatchAndActionsForProtoRule (flow logs off)."""
    if action == "log":
        return [Rule(match, f'--jump LOG --log-prefix "{log_prefix}: " --log-level 5')]
    if action == "allow":
        return [Rule(match, set_mark(MARK_ACCEPT)),
                Rule(match_mark_set(MARK_ACCEPT), "--jump RETURN")]
    if action == "next-tier":
        return [Rule(match, set_mark(MARK_PASS)),
                Rule(match_mark_set(MARK_PASS), "--jump RETURN")]
    return [Rule(match, set_mark(MARK_DROP)), Rule(match_mark_set(MARK_DROP), "--jump DROP")]


_UNSAFE = re.compile(r"[^A-Za-z0-9_ +=:,./-]")


def sanitize_comment(text: str) -> str:
    """Calico's comment sanitising (characters outside `[\\w @%+=:,./-]` become '_'), and
    also '@' and '%', which our rule type refuses; cut at 200 characters (Calico: 256)."""
    return _UNSAFE.sub("_", text)[:200]


def _with_comments(rule: Rule, comments: tuple[str, ...]) -> Rule:
    """Extra comments after the rule's own (Rule holds one; the others lead the match)."""
    texts = [rule.comment] if rule.comment else []
    texts += [sanitize_comment(c) for c in comments]
    first, rest = texts[0], texts[1:]
    extra = " ".join(f'-m comment --comment "{c}"' for c in rest)
    match = f"{extra} {rule.match}".strip() if extra else rule.match
    return Rule(match, rule.action, first)


def render_rules(version: int, rules: tuple[ParsedRule, ...], chain_comment: str,
                 log_prefix: str = LOG_PREFIX) -> tuple[Rule, ...]:
    """ProtoRulesToIptablesRules: trailing RETURN rules stripped, `chain_comment` on the
    first rule (an empty chain gets one rule holding only the comment)."""
    out: list[Rule] = []
    for r in rules:
        out += render_rule(version, r, log_prefix)
    while out and out[-1].action == "--jump RETURN":
        out.pop()
    comment = sanitize_comment(chain_comment)
    if not out:
        return (Rule("", "", comment),)
    out[0] = _with_comments(out[0], (comment,))
    return tuple(out)
