"""JSON text as Go's encoding/json writes it, and Go's time formats.

Calico stores IPAM objects as compact Go JSON: no spaces, map keys sorted, and the HTML
characters `<`, `>`, `&` (and U+2028/U+2029) escaped as `\\u003c`-style sequences. Since those
characters can only occur inside JSON strings, escaping them after `json.dumps` is exact.
"""

from __future__ import annotations

import json
import time
from typing import Any

PURE = True

_GO_ESCAPES = (
    ("<", "\\u003c"),
    (">", "\\u003e"),
    ("&", "\\u0026"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
)


def dumps(obj: Any) -> str:
    """Compact JSON in Go's style. Dict key order is kept: callers order struct fields and
    sort map keys themselves (Go sorts map keys; struct fields follow declaration order)."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    for raw, esc in _GO_ESCAPES:
        if raw in text:
            text = text.replace(raw, esc)
    return text


def go_time_string(ns: int) -> str:
    """Go's `time.Now().UTC().String()`: `2006-01-02 15:04:05.999999999 +0000 UTC`
    (fraction trimmed of trailing zeros, omitted when zero)."""
    secs, frac = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(secs))
    if frac:
        base += "." + f"{frac:09d}".rstrip("0")
    return base + " +0000 UTC"


def rfc3339(ns: int) -> str:
    """metav1.Time JSON form: RFC3339 in UTC to the second (`2026-08-22T10:00:00Z`)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 1_000_000_000))


def parse_rfc3339(text: str) -> int:
    """Seconds since the epoch of an RFC3339 time (datetime is imported only here)."""
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp())
