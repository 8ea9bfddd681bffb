"""Typed iptables rules and chains, rendered late; Calico's rule hashes and chain names.

A rule is a match and an action as iptables argument fragments plus optional comments. Every
rendered rule starts with `-m comment --comment "cali:<hash>"`. The hash, as Calico computes
it, chains the previous rule's digest so that it depends on position:
`h0 = sha224(chain)`, `h_i = sha224(h_{i-1} ‖ "-A <chain> HASH <comments> <match> <action>")`,
shown as the first 16 characters of unpadded URL-safe base64.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass

PURE = True

HASH_LENGTH = 16
MAX_CHAIN_NAME = 28
OUR_CHAIN_RE = re.compile(r"^(cali-|califw-|calitw-|califh-|calith-|calipi-|calipo-|felix-)")
_COMMENT_SAFE = re.compile(r"^[A-Za-z0-9 _.,:/=()+*<>'-]*$")


@dataclass(frozen=True, slots=True)
class Rule:
    match: str = ""
    action: str = ""
    comment: str = ""

    def __post_init__(self) -> None:
        if not _COMMENT_SAFE.match(self.comment) or len(self.comment) > 200:
            raise ValueError(f"unsafe iptables comment {self.comment!r}")

    def body(self) -> str:
        parts = []
        if self.comment:
            parts.append(f'-m comment --comment "{self.comment}"')
        if self.match:
            parts.append(self.match)
        if self.action:
            parts.append(self.action)
        return " ".join(parts)


def rule_hashes(chain: str, rules: tuple[Rule, ...] | list[Rule]) -> list[str]:
    digest = hashlib.sha224(chain.encode()).digest()
    out = []
    for r in rules:
        text = f"-A {chain} HASH {r.body()}".rstrip()
        digest = hashlib.sha224(digest + text.encode()).digest()
        out.append(base64.urlsafe_b64encode(digest).decode().rstrip("=")[:HASH_LENGTH])
    return out


def render_rule(op: str, chain: str, hash_: str, rule: Rule) -> str:
    """`-A chain -m comment --comment "cali:<hash>" …` (op is -A, -I or -D)."""
    body = rule.body()
    return f'{op} {chain} -m comment --comment "cali:{hash_}"' + (f" {body}" if body else "")


def length_limited(prefix: str, suffix: str, limit: int = MAX_CHAIN_NAME) -> str:
    """Calico's GetLengthLimitedID: keep short names, else prefix + '_' + hash of suffix."""
    if len(prefix + suffix) < limit or (len(prefix + suffix) == limit and
                                        not suffix.startswith("_")):
        return prefix + suffix
    h = base64.urlsafe_b64encode(hashlib.sha256(suffix.encode()).digest()).decode()
    return prefix + "_" + h[: limit - 1 - len(prefix)]


@functools.lru_cache(maxsize=65536)
def is_ours(chain: str) -> bool:
    return bool(OUR_CHAIN_RE.match(chain))
