"""Declarative JSON schema for frozen dataclasses: field names, Go omitempty rules, checks.

A model class declares its fields with `fld(...)`; the attribute order is the JSON field order
(Calico's Go struct order, so that encoded values match Calico's byte for byte). The field's
Python type drives parsing:

    str, int, bool, float, StrEnum, datetime (RFC 3339), timedelta (Go duration),
    ipaddress networks / addresses / interfaces (and their unions), tuple[X, ...],
    dict[str, X], nested dataclasses, `X | None`.

Go semantics kept here:
- `omitempty` on a value type (the default): a zero value ("", 0, false, empty list/map) is
  not encoded, and a zero read from a document means "unset" (None for optional fields).
- `ptr=True` (a Go pointer): only None is omitted; false / 0 / "" are real values.
- `omitempty=False`: always encoded (None as null).
- a non-optional nested dataclass is a Go struct: always encoded, even when empty ({}).
- map keys are encoded sorted.
Unknown fields are rejected, naming the field.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import functools
import ipaddress
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from libcalico.errors import FieldError
from libcalico.model import types as vt
from libcalico.model.validate import Check

PURE = True

META_KEY = "calico"

Decoder = Callable[[object, str, list[FieldError]], object]
Encoder = Callable[[Any], object]


class _Bad:
    """Marker returned by a decoder that has appended an error."""


BAD: Any = _Bad()


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
) -> Any:
    meta = {META_KEY: Meta(json, codec, check, ptr, omitempty, strict, hidden)}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def opt(json: str | None = None, **kw: Any) -> Any:
    """An optional field (default None)."""
    return fld(json, default=None, **kw)


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


# ---------------------------------------------------------------------------------------------
# Plans: one per dataclass, built once.


@dataclass(slots=True)
class _Field:
    attr: str
    json: str
    decode: Decoder
    encode: Encoder
    check: Check | None
    ptr: bool
    omitempty: bool
    optional: bool
    required: bool
    zero_is_unset: bool
    hidden: bool


@dataclass(slots=True)
class _Plan:
    cls: type
    fields: list[_Field]
    by_json: dict[str, _Field]
    hook_in: Callable[[dict[str, object], str, list[FieldError]], dict[str, object]] | None
    hook_out: Callable[[Any, dict[str, object]], None] | None
    all_by_json: dict[str, _Field]
    """Including hidden fields (filled by hook_in)."""
    by_lower: dict[str, _Field]
    required: list[_Field]


_PLANS: dict[type, _Plan] = {}


def plan(cls: type) -> _Plan:
    p = _PLANS.get(cls)
    if p is None:
        p = _build(cls)
        _PLANS[cls] = p
    return p


def _build(cls: type) -> _Plan:
    hints = typing.get_type_hints(cls)
    fields: list[_Field] = []
    for f in dataclasses.fields(cls):
        meta: Meta = f.metadata.get(META_KEY) or Meta(None, None, None, False, True, False)
        tp = hints[f.name]
        optional, inner = _unwrap_optional(tp)
        if meta.codec and typing.get_origin(inner) is tuple:
            dec, enc = _tuple(_custom(meta.codec))
        elif meta.codec:
            dec, enc = _custom(meta.codec)
        else:
            dec, enc = _for_type(inner, meta.strict)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        is_struct = dataclasses.is_dataclass(inner) and not optional
        scalar_zero = inner in (str, int) or (
            isinstance(inner, type) and issubclass(inner, enum.Enum)
        )
        fields.append(
            _Field(
                attr=f.name,
                json=meta.json or camel(f.name),
                decode=dec,
                encode=enc,
                check=meta.check,
                ptr=meta.ptr or is_struct,
                omitempty=meta.omitempty,
                optional=optional,
                required=required,
                zero_is_unset=optional and not meta.ptr and meta.omitempty and scalar_zero,
                hidden=meta.hidden,
            )
        )
    return _Plan(
        cls, fields, {f.json: f for f in fields if not f.hidden},
        getattr(cls, "_json_in", None), getattr(cls, "_json_out", None),
        {f.json: f for f in fields}, {f.json.lower(): f for f in fields if not f.hidden},
        [f for f in fields if f.required],
    )


def _unwrap_optional(tp: Any) -> tuple[bool, Any]:
    args = typing.get_args(tp)
    if _is_union(tp) and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        if len(rest) == 1:
            return True, rest[0]
        return True, typing.Union[rest]  # noqa: UP007 - rebuilding a union at runtime
    return False, tp


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


# ---------------------------------------------------------------------------------------------
# Leaf codecs


def _custom(codec: Codec) -> tuple[Decoder, Encoder]:
    def dec(raw: object, path: str, errs: list[FieldError]) -> object:
        try:
            return codec.decode(raw)
        except ValueError as exc:
            errs.append(FieldError(path, str(exc)))
            return BAD

    return dec, codec.encode


def _dec_str(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):  # YAML 1.1 yes/no/true read into a string field, as Go's yaml
        return "true" if raw else "false"
    if isinstance(raw, int):
        return str(raw)
    errs.append(FieldError(path, f"expected a string, got {_what(raw)}"))
    return BAD


def _dec_int(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    errs.append(FieldError(path, f"expected an integer, got {_what(raw)}"))
    return BAD


def _dec_bool(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, bool):
        return raw
    errs.append(FieldError(path, f"expected true or false, got {_what(raw)}"))
    return BAD


def _dec_float(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    errs.append(FieldError(path, f"expected a number, got {_what(raw)}"))
    return BAD


def _go_float(v: float) -> object:
    """Go writes float64 100 as `100`, not `100.0`."""
    if v.is_integer() and abs(v) < 1e21:
        return int(v)
    return v


def _what(raw: object) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, bool):
        return "a boolean"
    if isinstance(raw, int | float):
        return f"the number {raw}"
    if isinstance(raw, str):
        return f"the string {raw!r}"
    if isinstance(raw, list):
        return "a list"
    if isinstance(raw, dict):
        return "an object"
    return type(raw).__name__


def _ident(v: Any) -> object:
    return v


def _text(v: Any) -> object:
    return str(v)


def _enum(cls: type[enum.Enum]) -> tuple[Decoder, Encoder]:
    values = {m.value: m for m in cls}
    choices = ", ".join(str(v) for v in values)

    def dec(raw: object, path: str, errs: list[FieldError]) -> object:
        if isinstance(raw, str) and raw in values:
            return values[raw]
        if isinstance(raw, str) and raw == "":
            return ""
        errs.append(FieldError(path, f"invalid value {raw!r}: must be one of {choices}"))
        return BAD

    return dec, lambda v: v.value


def _network(strict: bool) -> Decoder:
    def dec(raw: object, path: str, errs: list[FieldError]) -> object:
        if not isinstance(raw, str):
            errs.append(FieldError(path, f"expected a CIDR string, got {_what(raw)}"))
            return BAD
        try:
            return _ip_network(raw)
        except ValueError:
            pass
        try:
            net = ipaddress.ip_network(raw, strict=False)
        except ValueError:
            errs.append(FieldError(path, f"invalid CIDR {raw!r}"))
            return BAD
        if strict:
            errs.append(
                FieldError(path, f"CIDR {raw!r} has host bits set (the network is {net})")
            )
            return BAD
        return net

    return dec


_ip_network = functools.lru_cache(maxsize=16384)(ipaddress.ip_network)
_ip_address = functools.lru_cache(maxsize=16384)(ipaddress.ip_address)


def _address(raw: object, path: str, errs: list[FieldError]) -> object:
    try:
        if isinstance(raw, str):
            return _ip_address(raw)
    except ValueError:
        pass
    errs.append(FieldError(path, f"invalid IP address {raw!r}"))
    return BAD


def _interface(raw: object, path: str, errs: list[FieldError]) -> object:
    try:
        if isinstance(raw, str):
            return ipaddress.ip_interface(raw)
    except ValueError:
        pass
    errs.append(FieldError(path, f"invalid IP address or CIDR {raw!r}"))
    return BAD


def _address_or_interface(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, str) and "/" not in raw:
        return _address(raw, path, errs)
    return _interface(raw, path, errs)


@functools.lru_cache(maxsize=4096)
def parse_time(text: str) -> datetime:
    """RFC 3339 text -> aware datetime (UTC when no offset is given); ValueError if invalid.
    Cached: the objects of a cluster share few distinct timestamps (datetime is immutable)."""
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def _datetime(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, datetime):  # YAML timestamps
        return raw if raw.tzinfo else raw.replace(tzinfo=UTC)
    if isinstance(raw, str):
        try:
            return parse_time(raw)
        except ValueError:
            pass
    errs.append(FieldError(path, f"invalid timestamp {raw!r}: expected RFC 3339"))
    return BAD


def format_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _duration(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, str):
        try:
            return vt.parse_duration(raw)
        except ValueError as exc:
            errs.append(FieldError(path, str(exc)))
            return BAD
    errs.append(FieldError(path, f"expected a duration string such as \"10s\", got {_what(raw)}"))
    return BAD


def _tuple(inner: tuple[Decoder, Encoder]) -> tuple[Decoder, Encoder]:
    idec, ienc = inner

    def dec(raw: object, path: str, errs: list[FieldError]) -> object:
        if not isinstance(raw, list | tuple):
            errs.append(FieldError(path, f"expected a list, got {_what(raw)}"))
            return BAD
        out = []
        bad = False
        for i, item in enumerate(raw):
            v = idec(item, f"{path}[{i}]", errs)
            bad = bad or v is BAD
            out.append(v)
        return BAD if bad else tuple(out)

    return dec, lambda v: [ienc(x) for x in v]


def _dict(inner: tuple[Decoder, Encoder]) -> tuple[Decoder, Encoder]:
    idec, ienc = inner

    def dec(raw: object, path: str, errs: list[FieldError]) -> object:
        if not isinstance(raw, dict):
            errs.append(FieldError(path, f"expected a map, got {_what(raw)}"))
            return BAD
        out: dict[str, object] = {}
        bad = False
        for k, item in raw.items():
            key = _dec_str(k, path, errs)
            if key is BAD:
                bad = True
                continue
            v = idec(item, f"{path}.{key}", errs)
            bad = bad or v is BAD
            out[str(key)] = v
        return BAD if bad else out

    return dec, lambda v: {k: ienc(v[k]) for k in sorted(v)}


def _struct(cls: type) -> tuple[Decoder, Encoder]:
    def dec(raw: object, path: str, errs: list[FieldError]) -> object:
        return decode_struct(cls, raw, path, errs)

    return dec, encode_struct


_NET = frozenset({ipaddress.IPv4Network, ipaddress.IPv6Network})
_ADDR = frozenset({ipaddress.IPv4Address, ipaddress.IPv6Address})
_IFACE = frozenset({ipaddress.IPv4Interface, ipaddress.IPv6Interface})


def _for_type(tp: Any, strict: bool) -> tuple[Decoder, Encoder]:
    origin = typing.get_origin(tp)
    if _is_union(tp):
        members = frozenset(typing.get_args(tp))
        if members <= _NET:
            return _network(strict), _text
        if members <= _ADDR:
            return _address, _text
        if members <= _IFACE:
            return _interface, _text
        if members <= _ADDR | _IFACE:
            return _address_or_interface, _text
        raise TypeError(f"unsupported union {tp}")
    if origin is tuple:
        return _tuple(_for_type(typing.get_args(tp)[0], strict))
    if origin is dict:
        return _dict(_for_type(typing.get_args(tp)[1], strict))
    if tp is str:
        return _dec_str, _ident
    if tp is bool:
        return _dec_bool, _ident
    if tp is int:
        return _dec_int, _ident
    if tp is float:
        return _dec_float, _go_float
    if tp is datetime:
        return _datetime, format_time
    if tp is timedelta:
        return _duration, vt.format_duration
    if tp in _NET:
        return _network(strict), _text
    if tp in _ADDR:
        return _address, _text
    if tp in _IFACE:
        return _interface, _text
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return _enum(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _struct(tp)
    raise TypeError(f"unsupported field type {tp!r}")


# ---------------------------------------------------------------------------------------------
# Structs


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _is_zero(v: object) -> bool:
    """Go's zero value test for omitempty. By type: comparing an ipaddress value with "" or
    () raises and catches internally, which is slow."""
    t = type(v)
    if t is str or t is tuple or t is dict:
        return not v
    if t is bool:
        return v is False
    if t is int:
        return v == 0
    return isinstance(v, str) and v == ""


def decode_struct(cls: type, raw: object, path: str, errs: list[FieldError]) -> object:
    if not isinstance(raw, dict):
        errs.append(FieldError(path, f"expected an object, got {_what(raw)}"))
        return BAD
    p = plan(cls)
    start = len(errs)
    by_json = p.by_json
    if any(k not in by_json for k in raw):
        raw = _canonical_keys(raw, p, path, errs)
    if p.hook_in is not None:
        raw = p.hook_in(raw, path, errs)
        by_json = p.all_by_json
    kwargs: dict[str, object] = {}
    prefix = f"{path}." if path else ""
    for k, value in raw.items():
        f = by_json.get(k)
        if f is None:
            continue
        if value is None:
            continue
        fpath = prefix + k
        v = f.decode(value, fpath, errs)
        if v is BAD:
            kwargs[f.attr] = BAD
            continue
        if f.zero_is_unset and _is_zero(v):
            if f.required:
                errs.append(FieldError(fpath, "required field is empty"))
                kwargs[f.attr] = BAD
            continue
        if f.required and not f.optional and v == "":
            errs.append(FieldError(fpath, "required field is empty"))
            kwargs[f.attr] = BAD
            continue
        if f.check is not None:
            errs.extend(f.check(v, fpath))
        kwargs[f.attr] = v
    for f in p.required:
        if f.attr not in kwargs:
            errs.append(FieldError(prefix + f.json, "required field is missing"))
    if len(errs) > start:
        return BAD
    return cls(**kwargs)


def _canonical_keys(raw: dict[Any, object], p: _Plan, path: str, errs: list[FieldError]
                    ) -> dict[Any, object]:
    """Go's encoding/json matches field names case-insensitively when there is no exact
    match (so Calico accepts `ipipmode`); anything else is an unknown field."""
    out: dict[Any, object] = {}
    for k, value in raw.items():
        if k in p.by_json:
            out[k] = value
            continue
        f = p.by_lower.get(k.lower()) if isinstance(k, str) else None
        if f is not None:
            out.setdefault(f.json, value)
            continue
        hint = difflib.get_close_matches(str(k), list(p.by_json), n=1)
        errs.append(FieldError(_join(path, str(k)), f"unknown field {str(k)!r}"
                               + (f" (did you mean {hint[0]!r}?)" if hint else "")))
    return out


def encode_struct(obj: Any) -> dict[str, object]:
    p = plan(type(obj))
    out: dict[str, object] = {}
    for f in p.fields:
        v = getattr(obj, f.attr)
        if v is None or f.hidden:
            if v is None and not f.omitempty:
                out[f.json] = None
            continue
        if f.omitempty and not f.ptr and _is_zero(v):
            continue
        out[f.json] = f.encode(v)
    if p.hook_out is not None:
        p.hook_out(obj, out)
    return out


def check_struct(obj: Any, path: str) -> list[FieldError]:
    """Re-run field checks on a constructed value (for objects built in code)."""
    errs: list[FieldError] = []
    p = plan(type(obj))
    for f in p.fields:
        v = getattr(obj, f.attr)
        if v is None:
            continue
        fpath = _join(path, f.json)
        if f.check is not None:
            errs.extend(f.check(v, fpath))
        if dataclasses.is_dataclass(v):
            errs.extend(check_struct(v, fpath))
        elif isinstance(v, tuple):
            for i, item in enumerate(v):
                if dataclasses.is_dataclass(item):
                    errs.extend(check_struct(item, f"{fpath}[{i}]"))
    return errs


# ---------------------------------------------------------------------------------------------
# Shared custom codecs

AS_NUMBER = Codec(vt.parse_as_number, _ident)
"""numorstring.ASNumber: read from a number, "64512" or dotted "1.10"; written as a number."""
PORT = Codec(vt.parse_port, lambda p: p.to_json())
PROTOCOL = Codec(vt.parse_protocol, _ident)
