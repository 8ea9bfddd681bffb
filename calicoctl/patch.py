"""JSON merge patch (RFC 7386), the patch `calicoctl patch -p` applies (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PURE = True


def merge_patch(target: object, patch: object) -> Any:
    """The result of applying `patch` to `target`; neither argument is modified."""
    if not isinstance(patch, Mapping):
        return patch
    out: dict[str, Any] = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out
