"""BGPFilter resources → BIRD filter functions (what Calico's bgpFilterBIRDFuncs renders).

Works on the typed `libcalico.model` BGPFilterSpec (validated by the codec: families, operators,
communities, AS numbers, priorities). What Calico accepts but BIRD cannot print is refused
here with a FilterError naming the field (an interface pattern BIRD cannot quote, an empty
community match or AS-path prepend); confd.birdsafe refuses such a filter as a whole, so a
half-applied filter never reaches BIRD.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from confd.functions import BirdText, is_bird_string_safe
from libcalico.model.resources_bgp import BGPFilterRule, BGPFilterSpec, FilterAction
from libcalico.model.types import IPNetwork

PURE = True

BIRD_INT_MAX = 2147483647
DIRECTIONS = ("import", "export")
_COMMUNITY = re.compile(r"(\d{1,10}):(\d{1,10})(?::(\d{1,10}))?\Z")
_OPERATORS = {"Equal": "=", "NotEqual": "!=", "In": "~", "NotIn": "!~"}


class FilterError(ValueError):
    def __init__(self, field_path: str, reason: str) -> None:
        self.field_path = field_path
        super().__init__(f"{field_path}: {reason}")


@dataclass(frozen=True)
class FilterFunction:
    """One BIRD function for one filter, direction and family."""

    filter_name: str
    direction: str
    symbol: BirdText
    """The quoted function name, e.g. `'bgp_f1_importFilterV4'`."""
    peer_type_aware: bool
    """True when the function takes `(bool is_same_as)`."""
    statements: tuple[BirdText, ...]


def function_name(filter_name: str, direction: str, version: int) -> str:
    name = filter_name
    if len(name) > 45:
        name = name[:28] + "_" + hashlib.sha256(filter_name.encode()).hexdigest()[:16].upper()
    return f"bgp_{name}_{direction}FilterV{version}"


def community(value: object, path: str) -> tuple[int, ...]:
    """The parts of an `a:b` or `a:b:c` community (FilterError when it is neither)."""
    m = _COMMUNITY.match(value) if isinstance(value, str) else None
    if not m:
        raise FilterError(path, f"bad community {str(value)[:40]!r}")
    parts = tuple(int(x) for x in m.groups() if x is not None)
    limit = 0xFFFF if len(parts) == 2 else 0xFFFFFFFF
    if any(p > limit for p in parts):
        raise FilterError(path, f"community part out of range in {value!r}")
    return parts


def _uint(v: int, path: str, hi: int = 0xFFFFFFFF) -> int:
    if not 0 <= v <= hi:
        raise FilterError(path, f"expected an integer in [0, {hi}]")
    return v


def cidr_text(net: IPNetwork) -> str:
    """A rule's CIDR as the user wrote it (Calico prints BGPFilter CIDRs verbatim:
    `9000:1::0/64`): the model's networks keep that text in `written` (types.WrittenIPv6Network)
    when it is not the canonical form."""
    written = getattr(net, "written", None)
    return written if isinstance(written, str) and written else str(net)


def _statement(rule: BGPFilterRule, path: str, version: int) -> tuple[str, str]:
    """(peer type, statement text) for one rule, checked for what BIRD can print."""
    conds: list[str] = []
    net = rule.cidr
    if net is not None:
        if net.version != version:
            raise FilterError(f"{path}.cidr", f"not an IPv{version} CIDR")
        cidr = cidr_text(net)
        op = _OPERATORS.get(rule.match_operator or "")
        if op is None:
            raise FilterError(f"{path}.matchOperator", "must be Equal, NotEqual, In or NotIn")
        plen = rule.prefix_length
        if plen is not None and (plen.min is not None or plen.max is not None) \
                and op in ("~", "!~"):
            lo = _uint(net.prefixlen if plen.min is None else plen.min,
                       f"{path}.prefixLength.min", net.max_prefixlen)
            hi = _uint(net.max_prefixlen if plen.max is None else plen.max,
                       f"{path}.prefixLength.max", net.max_prefixlen)
            conds.append(f"(net {op} [ {cidr}{{{lo},{hi}}} ])")
        else:
            conds.append(f"(net {op} {cidr})")
    if rule.source is not None:
        conds.append("((defined(source))&&(source ~ [ RTS_BGP ]))")
    iface = rule.interface or ""
    if iface:
        if not is_bird_string_safe(iface) or "\\" in iface:
            raise FilterError(f"{path}.interface", "pattern holds characters BIRD cannot quote")
        conds.append(f'((defined(ifname))&&(ifname ~ "{iface}"))')
    if rule.communities is not None:
        if not rule.communities.values:
            raise FilterError(f"{path}.communities.values", "expected a list of communities")
        for i, val in enumerate(rule.communities.values):
            parts = community(val, f"{path}.communities.values[{i}]")
            attr = "bgp_community" if len(parts) == 2 else "bgp_large_community"
            conds.append(f"(({', '.join(map(str, parts))}) ~ {attr})")
    if rule.as_path_prefix:
        nums = [_uint(a, f"{path}.asPathPrefix[{i}]") for i, a in enumerate(rule.as_path_prefix)]
        conds.append(f"(bgp_path ~ [= {' '.join(map(str, nums))} * =])")
    if rule.priority is not None:
        p = _uint(rule.priority, f"{path}.priority", BIRD_INT_MAX)
        conds.append(f"(defined(bgp_local_pref)&&(bgp_local_pref = {BIRD_INT_MAX - p}))")
    ops: list[str] = []
    for i, op_ in enumerate(rule.operations):
        opath = f"{path}.operations[{i}]"
        if op_.add_community is not None:
            parts = community(op_.add_community.value, f"{opath}.addCommunity.value")
            attr = "bgp_community" if len(parts) == 2 else "bgp_large_community"
            ops.append(f"{attr}.add(({', '.join(map(str, parts))}));")
        elif op_.prepend_as_path is not None:
            prefix = op_.prepend_as_path.prefix
            if not prefix:
                raise FilterError(f"{opath}.prependASPath.prefix", "expected AS numbers")
            nums = [_uint(a, f"{opath}.prependASPath.prefix[{j}]") for j, a in enumerate(prefix)]
            ops.extend(f"bgp_path.prepend({n});" for n in reversed(nums))
        elif op_.set_priority is not None:
            p = _uint(op_.set_priority.value, f"{opath}.setPriority.value", BIRD_INT_MAX)
            ops.append(f"bgp_local_pref = {BIRD_INT_MAX - p};")
        else:
            raise FilterError(opath, "expected exactly one operation")
    body = " ".join([*ops, "accept;" if rule.action == FilterAction.ACCEPT else "reject;"])
    stmt = f"if ({'&&'.join(conds)}) then {{ {body} }}" if conds else body
    return str(rule.peer_type or ""), stmt


_FIELDS = {("export", 4): ("exportV4", "export_v4"), ("import", 4): ("importV4", "import_v4"),
           ("export", 6): ("exportV6", "export_v6"), ("import", 6): ("importV6", "import_v6")}


def _rules(spec: BGPFilterSpec, direction: str, version: int) -> list[tuple[str, str]]:
    json_name, attr = _FIELDS[(direction, version)]
    rules: tuple[BGPFilterRule, ...] = getattr(spec, attr)
    return [_statement(r, f"spec.{json_name}[{i}]", version) for i, r in enumerate(rules)]


def validate(spec: BGPFilterSpec) -> None:
    """Raise FilterError (naming the field) if any rule cannot be printed into BIRD."""
    for d in DIRECTIONS:
        for v in (4, 6):
            _rules(spec, d, v)


def functions(name: str, spec: BGPFilterSpec, version: int) -> list[FilterFunction]:
    out = []
    for d in DIRECTIONS:
        rules = _rules(spec, d, version)
        if not rules:
            continue
        aware = any(pt for pt, _ in rules)
        stmts: list[BirdText] = []
        for pt, stmt in rules:
            if pt == "iBGP":
                stmt = f"if (is_same_as) then {{ {stmt} }}"
            elif pt == "eBGP":
                stmt = f"if (!is_same_as) then {{ {stmt} }}"
            stmts.append(BirdText(stmt))
        out.append(FilterFunction(
            filter_name=name, direction=d,
            symbol=BirdText(f"'{function_name(name, d, version)}'"),
            peer_type_aware=aware, statements=tuple(stmts),
        ))
    return out


def calls(names: Sequence[str], all_functions: Mapping[tuple[str, str], FilterFunction],
          direction: str, same_as: bool) -> tuple[BirdText, ...]:
    """The calls a peer's import/export block makes, in the order of its `filters`."""
    out = []
    for n in names:
        fn = all_functions.get((n, direction))
        if fn is None:
            continue
        arg = ("true" if same_as else "false") if fn.peer_type_aware else ""
        out.append(BirdText(f"{fn.symbol}({arg});"))
    return tuple(out)
