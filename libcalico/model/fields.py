"""How a model class declares its JSON fields: `fld(...)` / `opt(...)` and the shared codecs.

A model class is a frozen dataclass whose fields are declared with `fld(...)` (or `opt(...)`
for an optional one, default None); the attribute order is the JSON field order (Calico's Go
struct order, so that encoded values match Calico's byte for byte). The field's Python type
drives parsing (`libcalico.model.leaf_codecs`, dispatched by `libcalico.model.schema`):

    str, int, bool, float, StrEnum, datetime (RFC 3339), timedelta (Go duration),
    ipaddress networks / addresses / interfaces (and their unions), tuple[X, ...],
    dict[str, X], nested dataclasses, `X | None`.

Go semantics, as declared here:
- `omitempty` on a value type (the default): a zero value ("", 0, false, empty list/map) is
  not encoded, and a zero read from a document means "unset" (None for optional fields).
- `ptr=True` (a Go pointer): only None is omitted; false / 0 / "" are real values.
- `omitempty=False`: always encoded (None as null).
- a non-optional nested dataclass is a Go struct: always encoded, even when empty ({}).
- networks are kept as written (`9000::0/64`, `10.0.0.1`: Calico stores and renders the
  text); `strict=True` refuses host bits (Calico's `net`), else they are accepted (`cidr`);
  `canonical=True` stores the canonical form instead (IPPool `cidr`, normalised by Calico).
- `check=`: a `validate.Check` run on the decoded value (`[]` = fine).
- `codec=`: a custom leaf codec (AS numbers, ports, protocols) instead of the type's.
- `hidden=True`: no JSON key of its own; the class's `_json_in`/`_json_out` hooks fill it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from libcalico.model import types as vt
from libcalico.model.validate import Check

PURE = True

META_KEY = "calico"
"""The key of a field's `Meta` in its dataclass field metadata."""

Encoder = Callable[[Any], object]


@dataclass(frozen=True, slots=True)
class Codec:
    """A custom leaf codec (AS numbers, ports, protocols…)."""

    decode: Callable[[object], object]
    """Raises ValueError with the reason."""
    encode: Encoder


@dataclass(frozen=True, slots=True)
class Meta:
    json: str | None
    codec: Codec | None
    check: Check | None
    ptr: bool
    omitempty: bool
    strict: bool
    """For networks: reject host bits (True) or mask them (False)."""
    hidden: bool = False
    """Not a JSON key of its own: the class's `_json_in`/`_json_out` hooks fill it."""
    canonical: bool = False
    """For networks: stored in canonical form (IPPool cidr, as Calico's client normalises
    it) instead of as written."""


PLAIN = Meta(None, None, None, False, True, False)
"""The meta of a field declared without `fld` (a plain dataclass field)."""


def fld(
    json: str | None = None,
    *,
    default: Any = dataclasses.MISSING,
    factory: Callable[[], Any] | None = None,
    codec: Codec | None = None,
    check: Check | None = None,
    ptr: bool = False,
    omitempty: bool = True,
    strict: bool = False,
    hidden: bool = False,
    canonical: bool = False,
) -> Any:
    """A field; `json` is its JSON name when it is not the camelCase of the attribute."""
    meta = {META_KEY: Meta(json, codec, check, ptr, omitempty, strict, hidden, canonical)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def opt(json: str | None = None, **kw: Any) -> Any:
    """An optional field (default None)."""
    return fld(json, default=None, **kw)


def camel(name: str) -> str:
    """The JSON name of an attribute: `ipip_mode` -> `ipipMode`."""
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _ident(v: Any) -> object:
    return v


AS_NUMBER = Codec(vt.parse_as_number, _ident)
"""numorstring.ASNumber: read from a number, "64512" or dotted "1.10"; written as a number."""
PORT = Codec(vt.parse_port, lambda p: p.to_json())
PROTOCOL = Codec(vt.parse_protocol, _ident)
