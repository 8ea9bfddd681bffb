"""Calico's label restriction index, in small: selectors filed under a label (key, value)
every match must carry, so that an endpoint's labels name the few selectors that can match it
(policies against local endpoints, IP set selectors against every endpoint). Pure."""

from __future__ import annotations

from collections.abc import Mapping

from felix.calc.policy_selectors import LABEL_NAMESPACE
from libcalico.model import selector as sel

PURE = True


def required_label(selector: sel.Selector) -> tuple[str, str] | None:
    """A label (key, value) every endpoint the selector matches must carry: an `==` at its top
    or in its top-level `&&` (nested ones included), the namespace one preferred (the most
    selective in practice). None when there is none (`all()`, `||`, `has()` only, ...)."""
    found: list[tuple[str, str]] = []

    def walk(s: sel.Selector) -> None:
        if isinstance(s, sel.Eq):
            found.append((s.key, s.value))
        elif isinstance(s, sel.And):
            for op in s.operands:
                walk(op)
    walk(selector)
    for k, v in found:
        if k == LABEL_NAMESPACE:
            return (k, v)
    return found[0] if found else None


class LabelRestriction:
    """Calico's label restriction index, in small: selectors filed under a label they require,
    so that an endpoint's labels name the few selectors that can match it."""

    def __init__(self) -> None:
        self.by_label: dict[tuple[str, str], set[object]] = {}
        self.unrestricted: set[object] = set()
        self.filed: dict[object, tuple[str, str] | None] = {}

    def add(self, item: object, selector: sel.Selector) -> None:
        self.remove(item)
        req = required_label(selector)
        self.filed[item] = req
        if req is None:
            self.unrestricted.add(item)
        else:
            self.by_label.setdefault(req, set()).add(item)

    def remove(self, item: object) -> None:
        if item not in self.filed:
            return
        req = self.filed.pop(item)
        if req is None:
            self.unrestricted.discard(item)
        else:
            bucket = self.by_label[req]
            bucket.discard(item)
            if not bucket:
                del self.by_label[req]

    def candidates(self, labels: Mapping[str, str]) -> set[object]:
        out = set(self.unrestricted)
        for kv in labels.items():
            got = self.by_label.get(kv)
            if got:
                out |= got
        return out
