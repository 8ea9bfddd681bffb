"""Calico rules (`libcalico.model` Rule, as in Profiles and policies) → iptables rules. Pure.

A rule's verdict is carried in the mark bits, as Calico does: Allow sets the accept mark and
returns, Pass sets the pass mark and returns, Deny drops, Log logs and goes on. A rule we
cannot express exactly fails closed: an Allow is left out (allows less), a Deny drops
everything that reaches it (denies more). Selectors become `cali40s:<hash>` / `cali60s:<hash>`
IP sets (their members are computed by desired.py).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress

from felix.drivers.iptables.rules import Rule as IptRule
from libcalico.model import selector
from libcalico.model.resources import Action, EntityRule, Rule

PURE = True

ACCEPT_MARK = 0x10000
PASS_MARK = 0x20000
M_ACCEPT = f"-m mark --mark {ACCEPT_MARK:#x}/{ACCEPT_MARK:#x}"
J_SET_ACCEPT = f"-j MARK --set-xmark {ACCEPT_MARK:#x}/{ACCEPT_MARK:#x}"
_PORT_PROTOCOLS = ("tcp", "udp", "sctp")


def set_name(version: int, ident: str) -> str:
    return f"cali{version}0{ident}"[:31]


@functools.lru_cache(maxsize=4096)
def selector_set_id(canonical: str) -> str:
    """The IP set of a selector: `s:` + a hash of its canonical text (cali40s:…, 31 chars)."""
    digest = hashlib.sha224(canonical.encode()).digest()
    return "s:" + base64.urlsafe_b64encode(digest).decode()[:23]


@functools.lru_cache(maxsize=4096)
def canonical(text: str) -> str:
    """A selector's canonical text (the codec has already validated it)."""
    return str(selector.parse(text))


def unsupported(rule: Rule) -> str:
    """Why this Felix cannot render `rule` exactly ("" when it can)."""
    for side, ent in (("source", rule.source), ("destination", rule.destination)):
        for name, value in (("namespaceSelector", ent.namespace_selector),
                            ("serviceAccounts", ent.service_accounts),
                            ("services", ent.services), ("notPorts", ent.not_ports)):
            if value:
                return f"{side}.{name} is not supported by this Felix"
        if any(p.name for p in ent.ports):
            return f"{side}.ports: named ports are not supported by this Felix"
    if rule.icmp or rule.not_icmp or rule.http:
        return "icmp/http matches are not supported by this Felix"
    return ""


def _selectors(ent: EntityRule) -> tuple[str, str]:
    return (canonical(ent.selector) if ent.selector else "",
            canonical(ent.not_selector) if ent.not_selector else "")


def selectors_of(rules: tuple[Rule, ...]) -> set[str]:
    """Canonical selectors the renderable rules match on (each needs an IP set)."""
    out: set[str] = set()
    for r in rules:
        if unsupported(r):
            continue
        for ent in (r.source, r.destination):
            out.update(s for s in _selectors(ent) if s)
    return out


_memo: dict[tuple[int, int], tuple[tuple[Rule, ...], tuple[IptRule, ...]]] = {}


def render(version: int, rules: tuple[Rule, ...]) -> tuple[IptRule, ...]:
    """The iptables rules of a rule list for one IP version. Memoised by the identity of
    `rules` (resources are immutable and kept by the snapshot while unchanged)."""
    hit = _memo.get((version, id(rules)))
    if hit is not None and hit[0] is rules:
        return hit[1]
    out = _render(version, rules)
    if len(_memo) > 8192:
        _memo.clear()
    _memo[(version, id(rules))] = (rules, out)
    return out


def _render(version: int, rules: tuple[Rule, ...]) -> tuple[IptRule, ...]:
    out: list[IptRule] = []
    for r in rules:
        if r.ip_version and r.ip_version != version:
            continue
        matches = None if unsupported(r) else _matches(version, r)
        if matches is None:
            if r.action != Action.DENY:
                continue
            matches = [""]
        for match in matches:
            if r.action == Action.ALLOW:
                out += [IptRule(match, J_SET_ACCEPT), IptRule(M_ACCEPT, "-j RETURN")]
            elif r.action == Action.DENY:
                out.append(IptRule(match, "-j DROP"))
            elif r.action == Action.PASS:
                out += [IptRule(match, f"-j MARK --set-xmark {PASS_MARK:#x}/{PASS_MARK:#x}"),
                        IptRule(f"-m mark --mark {PASS_MARK:#x}/{PASS_MARK:#x}", "-j RETURN")]
            else:
                out.append(IptRule(match, "-j LOG --log-prefix calico-packet --log-level 5"))
    return tuple(out)


def _fam(nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...], version: int
         ) -> tuple[list[str], bool]:
    """(nets of this family, whether the rule had nets but none of this family)."""
    same = [str(n) for n in nets if n.version == version]
    return same, bool(nets) and not same


def _proto(value: str | int | None) -> str | None:
    return None if value is None else str(value).lower()


def _matches(version: int, r: Rule) -> list[str] | None:
    """iptables matches for one rule ([] when it cannot apply to this IP version; None when
    it cannot be expressed)."""
    src, skip1 = _fam(r.source.nets, version)
    dst, skip2 = _fam(r.destination.nets, version)
    nsrc, _ = _fam(r.source.not_nets, version)
    ndst, _ = _fam(r.destination.not_nets, version)
    if skip1 or skip2:
        return []
    base: list[str] = []
    proto = _proto(r.protocol)
    not_proto = _proto(r.not_protocol)
    if proto == "icmp" and version == 6:
        proto = "ipv6-icmp"
    if proto:
        base.append(f"-p {proto}")
    if not_proto:
        base.append(f"! -p {not_proto}")
    sports = [str(p) for p in r.source.ports]
    dports = [str(p) for p in r.destination.ports]
    if (sports or dports) and proto not in _PORT_PROTOCOLS:
        return None
    for n in nsrc:
        base.append(f"! -s {n}")
    for n in ndst:
        base.append(f"! -d {n}")
    (ssel, nssel), (dsel, ndsel) = _selectors(r.source), _selectors(r.destination)
    for sel, neg, side in ((ssel, "", "src"), (dsel, "", "dst"), (nssel, "! ", "src"),
                           (ndsel, "! ", "dst")):
        if sel:
            base.append(f"-m set {neg}--match-set "
                        f"{set_name(version, selector_set_id(sel))} {side}")
    if len(nsrc) > 1 or len(ndst) > 1:
        return None  # iptables takes one -s/-d per rule; not expressible without ipsets
    variants = [" ".join(base)]
    for flag, nets in (("-s", src), ("-d", dst)):
        if nets:
            variants = [f"{v} {flag} {n}".strip() for v in variants for n in nets]
    for flag, ports in (("--sports", sports), ("--dports", dports)):
        if ports:
            chunks = [ports[i:i + 15] for i in range(0, len(ports), 15)]
            variants = [f"{v} -m multiport {flag} {','.join(c)}".strip()
                        for v in variants for c in chunks]
    return variants


__all__ = ["ACCEPT_MARK", "J_SET_ACCEPT", "M_ACCEPT", "PASS_MARK", "canonical", "render",
           "selector_set_id", "selectors_of", "set_name", "unsupported"]
