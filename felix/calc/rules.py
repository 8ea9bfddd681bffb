"""Mark bits and set names the chain skeleton shares with the policy calculation. Pure.

Calico rules (Profiles and policies) are rendered in one place, `felix/calc/policy_rules.py`
(Calico's match spelling, match blocks, marks, IP set ids); this module keeps only what the
static `cali-*` skeleton in `chains.py` needs.
"""

from __future__ import annotations

from felix.calc.rule_matches import MARK_ACCEPT, MARK_PASS

PURE = True

ACCEPT_MARK = MARK_ACCEPT
PASS_MARK = MARK_PASS
M_ACCEPT = f"-m mark --mark {ACCEPT_MARK:#x}/{ACCEPT_MARK:#x}"
J_SET_ACCEPT = f"-j MARK --set-xmark {ACCEPT_MARK:#x}/{ACCEPT_MARK:#x}"


def set_name(version: int, ident: str) -> str:
    """`cali40<ident>` / `cali60<ident>`, at most 31 characters (Felix's main-set names)."""
    return f"cali{version}0{ident}"[:31]


__all__ = ["ACCEPT_MARK", "J_SET_ACCEPT", "M_ACCEPT", "PASS_MARK", "set_name"]
