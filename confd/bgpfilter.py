"""BGPFilter resources → BIRD filter functions (what Calico's bgpFilterBIRDFuncs renders).

Every piece that reaches BIRD is checked here: CIDRs parse as networks of the rule's family,
communities are `a:b` or `a:b:c` with 32-bit parts, AS numbers and priorities are bounded
integers, interface patterns are BIRD-string safe. A filter with any bad rule is rejected as a
whole (DecodeError naming the field), so a half-applied filter never reaches BIRD.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confd.functions import BirdText, is_bird_string_safe

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


def _community(value: Any, path: str) -> tuple[int, ...]:
    m = _COMMUNITY.match(value) if isinstance(value, str) else None
    if not m:
        raise FilterError(path, f"bad community {str(value)[:40]!r}")
    parts = tuple(int(x) for x in m.groups() if x is not None)
    limit = 0xFFFF if len(parts) == 2 else 0xFFFFFFFF
    if any(p > limit for p in parts):
        raise FilterError(path, f"community part out of range in {value!r}")
    return parts


def _uint(v: Any, path: str, hi: int = 0xFFFFFFFF) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi:
        raise FilterError(path, f"expected an integer in [0, {hi}]")
    return v


def _rule(rule: Any, path: str, version: int) -> tuple[str, str]:
    """(peer type, statement text) for one rule, validated."""
    if not isinstance(rule, dict):
        raise FilterError(path, "expected an object")
    action = rule.get("action")
    if action not in ("Accept", "Reject"):
        raise FilterError(f"{path}.action", "must be Accept or Reject")
    conds: list[str] = []
    cidr = rule.get("cidr") or ""
    if cidr:
        if not isinstance(cidr, str):
            raise FilterError(f"{path}.cidr", "expected a string")
        try:
            net = ipaddress.ip_network(cidr, strict=False)
        except ValueError as exc:
            raise FilterError(f"{path}.cidr", f"bad CIDR {cidr[:60]!r}") from exc
        if net.version != version:
            raise FilterError(f"{path}.cidr", f"not an IPv{version} CIDR")
        op = _OPERATORS.get(rule.get("matchOperator") or "")
        if op is None:
            raise FilterError(f"{path}.matchOperator", "must be Equal, NotEqual, In or NotIn")
        plen = rule.get("prefixLength")
        if plen and op in ("~", "!~"):
            if not isinstance(plen, dict):
                raise FilterError(f"{path}.prefixLength", "expected an object")
            lo = _uint(plen.get("min", net.prefixlen), f"{path}.prefixLength.min",
                       net.max_prefixlen)
            hi = _uint(plen.get("max", net.max_prefixlen), f"{path}.prefixLength.max",
                       net.max_prefixlen)
            conds.append(f"(net {op} [ {cidr}{{{lo},{hi}}} ])")
        else:
            conds.append(f"(net {op} {cidr})")
    source = rule.get("source") or ""
    if source:
        if source != "RemotePeers":
            raise FilterError(f"{path}.source", "must be RemotePeers")
        conds.append("((defined(source))&&(source ~ [ RTS_BGP ]))")
    iface = rule.get("interface") or ""
    if iface:
        if not isinstance(iface, str) or not is_bird_string_safe(iface) or "\\" in iface:
            raise FilterError(f"{path}.interface", "pattern holds characters BIRD cannot quote")
        conds.append(f'((defined(ifname))&&(ifname ~ "{iface}"))')
    comms = rule.get("communities") or {}
    if comms:
        values = comms.get("values") if isinstance(comms, dict) else None
        if not isinstance(values, list) or not values:
            raise FilterError(f"{path}.communities.values", "expected a list of communities")
        for i, val in enumerate(values):
            parts = _community(val, f"{path}.communities.values[{i}]")
            attr = "bgp_community" if len(parts) == 2 else "bgp_large_community"
            conds.append(f"(({', '.join(map(str, parts))}) ~ {attr})")
    aspath = rule.get("asPathPrefix") or []
    if aspath:
        if not isinstance(aspath, list):
            raise FilterError(f"{path}.asPathPrefix", "expected a list of AS numbers")
        nums = [_uint(a, f"{path}.asPathPrefix[{i}]") for i, a in enumerate(aspath)]
        conds.append(f"(bgp_path ~ [= {' '.join(map(str, nums))} * =])")
    prio = rule.get("priority")
    if prio is not None:
        p = _uint(prio, f"{path}.priority", BIRD_INT_MAX)
        conds.append(f"(defined(bgp_local_pref)&&(bgp_local_pref = {BIRD_INT_MAX - p}))")
    ops: list[str] = []
    for i, op_ in enumerate(rule.get("operations") or []):
        opath = f"{path}.operations[{i}]"
        if not isinstance(op_, dict) or len(op_) != 1:
            raise FilterError(opath, "expected exactly one operation")
        if "addCommunity" in op_:
            parts = _community((op_["addCommunity"] or {}).get("value"),
                               f"{opath}.addCommunity.value")
            attr = "bgp_community" if len(parts) == 2 else "bgp_large_community"
            ops.append(f"{attr}.add(({', '.join(map(str, parts))}));")
        elif "prependASPath" in op_:
            prefix = (op_["prependASPath"] or {}).get("prefix")
            if not isinstance(prefix, list) or not prefix:
                raise FilterError(f"{opath}.prependASPath.prefix", "expected AS numbers")
            nums = [_uint(a, f"{opath}.prependASPath.prefix[{j}]") for j, a in enumerate(prefix)]
            ops.extend(f"bgp_path.prepend({n});" for n in reversed(nums))
        elif "setPriority" in op_:
            p = _uint((op_["setPriority"] or {}).get("value"), f"{opath}.setPriority.value",
                      BIRD_INT_MAX)
            ops.append(f"bgp_local_pref = {BIRD_INT_MAX - p};")
        else:
            raise FilterError(opath, "unknown operation")
    body = " ".join([*ops, "accept;" if action == "Accept" else "reject;"])
    stmt = f"if ({'&&'.join(conds)}) then {{ {body} }}" if conds else body
    peer_type = rule.get("peerType") or ""
    if peer_type not in ("", "eBGP", "iBGP"):
        raise FilterError(f"{path}.peerType", "must be eBGP or iBGP")
    return peer_type, stmt


def _rules(spec: Mapping[str, Any], direction: str, version: int) -> list[tuple[str, str]]:
    field = f"{direction}V{version}"
    rules = spec.get(field) or []
    if not isinstance(rules, list):
        raise FilterError(f"spec.{field}", "expected a list of rules")
    return [_rule(r, f"spec.{field}[{i}]", version) for i, r in enumerate(rules)]


def validate(spec: Mapping[str, Any]) -> None:
    for d in DIRECTIONS:
        for v in (4, 6):
            _rules(spec, d, v)


def functions(name: str, spec: Mapping[str, Any], version: int) -> list[FilterFunction]:
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
