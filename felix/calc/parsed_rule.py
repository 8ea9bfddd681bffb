"""One model Rule -> `ParsedRule` (`felix/calc/rule_scanner.go`): IP set IDs instead of
selectors, named ports as IP,port sets; `ipsets` says what each set holds. Pure."""

from __future__ import annotations

from dataclasses import dataclass, field

from felix.calc.policy_selectors import (
    ALL_SELECTOR,
    IPSetSpec,
    canonical,
    entity_selectors,
    named_port_uid,
    selector_uid,
)
from libcalico.model.resources import Action
from libcalico.model.resources import Rule as ModelRule
from libcalico.model.types import IPNetwork, Port, ProtocolValue

PURE = True


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
