"""The iptables match side of a rendered policy rule (felix/iptables/match_builder.go and the
match blocks of felix/rules/policy.go): the mark bits and their set/match spelling, protocol /
port / CIDR / IP set / ICMP fragments, 15-slot multiport splits, per-version filtering,
`MatchBlocks` (alternatives ORed into the scratch mark bits) and `rule_match` (Calico's match
order). Pure."""

from __future__ import annotations

from dataclasses import replace

from felix.calc.parsed_rule import ParsedRule
from felix.calc.policy_selectors import set_name
from felix.drivers.iptables.rules import Rule
from libcalico.model.types import IPNetwork, Port, ProtocolValue

PURE = True

MARK_ACCEPT = 0x10000
MARK_PASS = 0x20000
MARK_DROP = 0x40000
MARK_SCRATCH0 = 0x80000
MARK_SCRATCH1 = 0x100000


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


class MatchBlocks:
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
