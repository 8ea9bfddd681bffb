"""The schema of a model class (its `Plan`, built once from the dataclass fields and their
`fields.fld` declarations) and decoding, encoding and checking a struct by it.

`decode_struct(cls, raw, path, errs)` is the full decode: it names every problem as a
`FieldError` (unknown fields with the closest known name, wrong types, empty required fields,
failed checks) and returns the value or `BAD`. `encode_struct(obj)` writes Calico's JSON
shape with Go's omitempty rules; `check_struct(obj, path)` re-runs the field checks of a value
built in code. `libcalico.model.compiler` compiles the same plans into the fast path.
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import ipaddress
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from libcalico.errors import FieldError
from libcalico.model import leaf_codecs as lc
from libcalico.model import types as vt
from libcalico.model.fields import META_KEY, PLAIN, Encoder, Meta, camel
from libcalico.model.leaf_codecs import BAD, Decoder
from libcalico.model.validate import Check

PURE = True

# ---------------------------------------------------------------------------------------------
# Plans: one per dataclass, built once.


@dataclass(slots=True)
class FieldPlan:
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
class Plan:
    cls: type
    fields: list[FieldPlan]
    by_json: dict[str, FieldPlan]
    hook_in: Callable[[dict[str, object], str, list[FieldError]], dict[str, object]] | None
    hook_out: Callable[[Any, dict[str, object]], None] | None
    all_by_json: dict[str, FieldPlan]
    """Including hidden fields (filled by hook_in)."""
    by_lower: dict[str, FieldPlan]
    required: list[FieldPlan]


_PLANS: dict[type, Plan] = {}


def plan(cls: type) -> Plan:
    p = _PLANS.get(cls)
    if p is None:
        p = _build(cls)
        _PLANS[cls] = p
    return p


def _build(cls: type) -> Plan:
    hints = typing.get_type_hints(cls)
    fields: list[FieldPlan] = []
    for f in dataclasses.fields(cls):
        meta: Meta = f.metadata.get(META_KEY) or PLAIN
        tp = hints[f.name]
        optional, inner = unwrap_optional(tp)
        if meta.codec and typing.get_origin(inner) is tuple:
            dec, enc = lc.list_of(lc.custom(meta.codec))
        elif meta.codec:
            dec, enc = lc.custom(meta.codec)
        else:
            dec, enc = _for_type(inner, meta)
        required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        is_struct = dataclasses.is_dataclass(inner) and not optional
        scalar_zero = inner in (str, int) or (
            isinstance(inner, type) and issubclass(inner, enum.Enum)
        )
        fields.append(
            FieldPlan(
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
    return Plan(
        cls, fields, {f.json: f for f in fields if not f.hidden},
        getattr(cls, "_json_in", None), getattr(cls, "_json_out", None),
        {f.json: f for f in fields}, {f.json.lower(): f for f in fields if not f.hidden},
        [f for f in fields if f.required],
    )


def unwrap_optional(tp: Any) -> tuple[bool, Any]:
    args = typing.get_args(tp)
    if is_union(tp) and type(None) in args:
        rest = tuple(a for a in args if a is not type(None))
        if len(rest) == 1:
            return True, rest[0]
        return True, typing.Union[rest]  # noqa: UP007 - rebuilding a union at runtime
    return False, tp


def is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _struct(cls: type) -> tuple[Decoder, Encoder]:
    def dec(raw: object, path: str, errs: list[FieldError]) -> object:
        return decode_struct(cls, raw, path, errs)

    return dec, encode_struct


_NET = frozenset({ipaddress.IPv4Network, ipaddress.IPv6Network})
_ADDR = frozenset({ipaddress.IPv4Address, ipaddress.IPv6Address})
_IFACE = frozenset({ipaddress.IPv4Interface, ipaddress.IPv6Interface})


def _for_type(tp: Any, meta: Meta) -> tuple[Decoder, Encoder]:
    origin = typing.get_origin(tp)
    if is_union(tp):
        members = frozenset(typing.get_args(tp))
        if members <= _NET:
            return lc.network(meta.strict, meta.canonical), lc.network_text
        if members <= _ADDR:
            return lc.address, lc.text
        if members <= _IFACE:
            return lc.interface, lc.text
        if members <= _ADDR | _IFACE:
            return lc.address_or_interface, lc.text
        raise TypeError(f"unsupported union {tp}")
    if origin is tuple:
        return lc.list_of(_for_type(typing.get_args(tp)[0], meta))
    if origin is dict:
        return lc.map_of(_for_type(typing.get_args(tp)[1], meta))
    if tp is str:
        return lc.dec_str, lc.ident
    if tp is bool:
        return lc.dec_bool, lc.ident
    if tp is int:
        return lc.dec_int, lc.ident
    if tp is float:
        return lc.dec_float, lc.go_float
    if tp is datetime:
        return lc.dec_datetime, lc.format_time
    if tp is timedelta:
        return lc.duration, vt.format_duration
    if tp in _NET:
        return lc.network(meta.strict, meta.canonical), lc.network_text
    if tp in _ADDR:
        return lc.address, lc.text
    if tp in _IFACE:
        return lc.interface, lc.text
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return lc.enum_codec(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return _struct(tp)
    raise TypeError(f"unsupported field type {tp!r}")


# ---------------------------------------------------------------------------------------------
# Structs


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def is_zero(v: object) -> bool:
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
        errs.append(FieldError(path, f"expected an object, got {lc.what(raw)}"))
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
        if f.zero_is_unset and is_zero(v):
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


def _canonical_keys(raw: dict[Any, object], p: Plan, path: str, errs: list[FieldError]
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
        if f.omitempty and not f.ptr and is_zero(v):
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
