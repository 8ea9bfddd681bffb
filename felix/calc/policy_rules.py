"""Calico policy rules -> iptables rules, as Felix renders them (`felix/rules/policy.go`).
Pure.

`render_rule` / `render_rules`: a ParsedRule (`felix.calc.parsed_rule`) -> iptables `Rule`s
for one IP version: the match (`felix.calc.rule_matches`: Calico's match order, match blocks
on the scratch mark bits), the action rules (Allow/Pass/Deny set a mark and RETURN/DROP on it,
Log logs), annotations as comments, and chain assembly (trailing RETURNs stripped, the chain
comment on the first rule). The selectors and IP set ids live in `felix.calc.policy_selectors`.
"""

from __future__ import annotations

import re
from dataclasses import replace

from felix.calc.parsed_rule import ParsedRule
from felix.calc.rule_matches import (
    MARK_ACCEPT,
    MARK_DROP,
    MARK_PASS,
    MARK_SCRATCH0,
    MatchBlocks,
    filter_to_version,
    match_mark_set,
    rule_match,
    set_mark,
    split_ports,
)
from felix.drivers.iptables.rules import Rule

PURE = True

LOG_PREFIX = "calico-packet"


def render_rule(version: int, parsed: ParsedRule, log_prefix: str = LOG_PREFIX
                ) -> list[Rule]:
    """ProtoRuleToIptablesRules for one IP version ([] when the rule does not apply)."""
    r = filter_to_version(parsed, version)
    if r is None:
        return []
    blocks = MatchBlocks()
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
