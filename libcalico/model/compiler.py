"""Straight-line decoders compiled once per dataclass from its schema plan: the fast path of
`schema.decode_struct` for values that are valid.

`decoder(cls)` returns `fast(raw) -> object`: the same value `decode_struct(cls, raw, ...)`
builds, or `BAD` as soon as anything is not plainly valid (an unknown or case-folded key, a
value of the wrong type, a zero in a required field, a failed check, a hook error). A `BAD`
from the fast path says nothing about the input: the caller then runs `decode_struct`, which
finds and names every problem. So the fast path may be conservative anywhere, but it must
never accept what `decode_struct` rejects; it runs the very same leaf decoders and checks, and
only skips the work of naming paths and collecting errors.

What makes it fast:
- one generated function per class (`exec` of source built from the plan, once): a loop over
  the keys present (usually a few of many fields) that finds the field's code through a
  binary tree of index comparisons; every value starts as its default; no path strings,
  no error lists, no kwargs dict;
- str / bool / int / enum values accepted inline by an exact type test (any other value goes
  through the field's own decoder, e.g. YAML's `yes` read into a string field);
- values built without the frozen dataclass `__init__` (one `object.__setattr__` call per
  field): a mutable twin class with the same `__slots__` is filled with plain stores and then
  given the frozen class, which yields an object identical to `cls(**kwargs)` (same type,
  same slots). Classes where that is not possible (other bases, `__post_init__`) are built by
  calling the class.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Callable
from typing import Any

from libcalico.model.schema import (
    BAD,
    _dec_str,
    _Field,
    _is_zero,
    _Plan,
    _unwrap_optional,
    plan,
)

PURE = True

Fast = Callable[[object], object]

_COMPILED: dict[type, Fast] = {}


def decoder(cls: type) -> Fast:
    """The compiled fast decoder of dataclass `cls` (built on first use)."""
    fast = _COMPILED.get(cls)
    if fast is None:
        # Registered before compiling so that recursive types resolve to a forwarder.
        cell: list[Fast] = []
        _COMPILED[cls] = lambda raw: cell[0](raw)
        try:
            fast = _compile(plan(cls))
        except BaseException:
            del _COMPILED[cls]
            raise
        cell.append(fast)
        _COMPILED[cls] = fast
    return fast


def _twin(cls: type) -> type | None:
    """A plain class with `cls`'s slot layout, or None when `cls` cannot be built that way."""
    slots = cls.__dict__.get("__slots__")
    if (not isinstance(slots, tuple) or cls.__bases__ != (object,)
            or hasattr(cls, "__post_init__") or "__dict__" in slots):
        return None
    twin = type(f"_{cls.__name__}Builder", (), {"__slots__": slots})
    probe = twin()
    try:
        probe.__class__ = cls
    except TypeError:
        return None
    return twin


class _Source:
    """Python source being generated, with the objects it refers to."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.env: dict[str, object] = {"BAD": BAD, "_is_zero": _is_zero}

    def ref(self, prefix: str, obj: object) -> str:
        name = f"{prefix}{len(self.env)}"
        self.env[name] = obj
        return name

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


def _compile(p: _Plan) -> Fast:
    cls = p.cls
    src = _Source()
    src.env["cls"] = cls
    src.env["MISSING"] = _MISSING
    dc_fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    # Hidden fields have no JSON key of their own: only a hook can fill them.
    read = p.fields if p.hook_in is not None else [f for f in p.fields if not f.hidden]
    index = src.ref("index", {f.json: i for i, f in enumerate(read)})
    src.add(0, "def fast(raw):")
    src.add(1, "if type(raw) is not dict:")
    src.add(2, "return BAD")
    if p.hook_in is not None:
        # A key of a hidden field is unknown in a document (only the hook may add it); any
        # other key the hook leaves in place is looked up in the loop below.
        hook = src.ref("hook", p.hook_in)
        for f in p.fields:
            if f.hidden:
                src.add(1, f"if {f.json!r} in raw:")
                src.add(2, "return BAD")
        src.add(1, "errs = []")
        src.add(1, f"raw = {hook}(raw, '', errs)")
        src.add(1, "if errs:")
        src.add(2, "return BAD")
    # Every value starts as its default; the JSON keys present overwrite theirs.
    after: list[str] = []
    values = {}
    for i, f in enumerate(p.fields):
        var = values[f.attr] = f"v{i}"
        dcf = dc_fields[f.attr]
        if dcf.default is not dataclasses.MISSING:
            d = dcf.default
            const = repr(d) if d is None or isinstance(d, bool) else src.ref("default", d)
            src.add(1, f"{var} = {const}")
        else:
            src.add(1, f"{var} = MISSING")
            if dcf.default_factory is not dataclasses.MISSING:
                factory = src.ref("factory", dcf.default_factory)
                after += [f"if {var} is MISSING:", f"    {var} = {factory}()"]
            else:
                after += [f"if {var} is MISSING:", "    return BAD"]
    src.add(1, "for k, x in raw.items():")
    src.add(2, f"i = {index}.get(k)")
    src.add(2, "if i is None:")
    src.add(3, "return BAD")
    src.add(2, "if x is None:")
    src.add(3, "continue")
    _dispatch(src, 2, list(enumerate(read)), values, hints, dc_fields)
    _lines(src, 1, after)
    twin = _twin(cls)
    if twin is not None:
        src.env["Twin"] = twin
        src.add(1, "o = Twin()")
        for f in p.fields:
            src.add(1, f"o.{f.attr} = {values[f.attr]}")
        src.add(1, "o.__class__ = cls")
        src.add(1, "return o")
    else:
        args = ", ".join(f"{f.attr}={values[f.attr]}" for f in p.fields)
        src.add(1, f"return cls({args})")
    code = "\n".join(src.lines)
    exec(compile(code, f"<compiled decoder {cls.__qualname__}>", "exec"), src.env)
    return typing.cast(Fast, src.env["fast"])


class _Missing:
    """Marks a value not given (yet): the default factory fills it, or it is required."""


_MISSING = _Missing()


def _dispatch(src: _Source, ind: int, fields: list[tuple[int, _Field]], values: dict[str, str],
              hints: dict[str, Any], dc_fields: dict[str, dataclasses.Field[Any]]) -> None:
    """A binary tree of `if i < n` over the field indexes, each leaf one field's code."""
    if len(fields) == 1:
        f = fields[0][1]
        _field(src, ind, f, values[f.attr], hints[f.attr], dc_fields[f.attr])
        return
    mid = len(fields) // 2
    src.add(ind, f"if i < {fields[mid][0]}:")
    _dispatch(src, ind + 1, fields[:mid], values, hints, dc_fields)
    src.add(ind, "else:")
    _dispatch(src, ind + 1, fields[mid:], values, hints, dc_fields)


def _field(src: _Source, ind: int, f: _Field, var: str, hint: Any,
           dc_field: dataclasses.Field[Any]) -> None:
    """Code storing raw `x` (not None) into `var`, as decode_struct's loop body does; a zero
    that means "unset" leaves the default in place."""
    _value(src, ind, f, hint, dc_field)
    if f.zero_is_unset:
        src.add(ind, "if not x:" if _str_like(f, hint, dc_field) else "if _is_zero(x):")
        src.add(ind + 1, "continue" if not f.required else "return BAD")
    if f.required and not f.optional:
        src.add(ind, "if x == '':")
        src.add(ind + 1, "return BAD")
    if f.check is not None:
        check = src.ref("check", f.check)
        src.add(ind, f"if {check}(x, ''):")
        src.add(ind + 1, "return BAD")
    src.add(ind, f"{var} = x")


def _str_like(f: _Field, hint: Any, dc_field: dataclasses.Field[Any]) -> bool:
    """Whether every decoded value of the field is a str (so `not x` is Go's zero test)."""
    meta = dc_field.metadata.get("calico")
    if meta is not None and meta.codec is not None:
        return False
    inner = _unwrap_optional(hint)[1]
    return inner is str or (isinstance(inner, type) and issubclass(inner, enum.StrEnum))


def _value(src: _Source, ind: int, f: _Field, hint: Any,
           dc_field: dataclasses.Field[Any]) -> None:
    """Code turning raw `x` into the field's value (or returning BAD)."""
    meta = dc_field.metadata.get("calico")
    inner = _unwrap_optional(hint)[1]
    dec = src.ref("dec", f.decode)
    slow = [f"x = {dec}(x, '', [])", "if x is BAD:", "    return BAD"]
    if meta is not None and meta.codec is not None:
        _lines(src, ind, slow)
        return
    if inner is str:
        src.add(ind, "if type(x) is not str:")
        _lines(src, ind + 1, slow)
    elif inner is bool:
        src.add(ind, "if type(x) is not bool:")
        src.add(ind + 1, "return BAD")
    elif inner is int:
        src.add(ind, "if type(x) is not int:")
        _lines(src, ind + 1, slow)
    elif isinstance(inner, type) and issubclass(inner, enum.Enum):
        members = src.ref("members", {m.value: m for m in inner})
        src.add(ind, f"y = {members}.get(x) if type(x) is str else None")
        src.add(ind, "if y is None:")
        _lines(src, ind + 1, slow)
        src.add(ind, "else:")
        src.add(ind + 1, "x = y")
    else:
        fast = _fast_for(inner)
        if fast is None:
            _lines(src, ind, slow)
        else:
            name = src.ref("fast", fast)
            _lines(src, ind, [f"x = {name}(x)", "if x is BAD:", "    return BAD"])


def _lines(src: _Source, indent: int, lines: list[str]) -> None:
    for line in lines:
        src.add(indent, line)


def _fast_for(tp: Any) -> Fast | None:
    """A fast decoder for a container or struct type (None: use the field's own decoder)."""
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return decoder(tp)
    if origin is tuple:
        item = typing.get_args(tp)[0]
        if item is str:
            return _str_tuple
        inner = _fast_for(item)
        return _tuple_of(inner) if inner is not None else None
    if origin is dict and typing.get_args(tp)[1] is str:
        return _str_dict
    return None


def _str_tuple(raw: object) -> object:
    if type(raw) is not list and type(raw) is not tuple:
        return BAD
    for item in raw:
        if type(item) is not str:
            return _tuple_of(_as_str)(raw)
    return tuple(raw)


def _str_dict(raw: object) -> object:
    if type(raw) is not dict:
        return BAD
    for k, v in raw.items():
        if type(k) is not str or type(v) is not str:
            out: dict[str, object] = {}
            for k, v in raw.items():
                key, value = _as_str(k), _as_str(v)
                if key is BAD or value is BAD:
                    return BAD
                out[str(key)] = value
            return out
    return dict(raw)


def _as_str(raw: object) -> object:
    """A YAML boolean or number read into a string, as the field decoder does."""
    return _dec_str(raw, "", [])


def _tuple_of(inner: Fast) -> Fast:
    def dec(raw: object) -> object:
        if type(raw) is not list and type(raw) is not tuple:
            return BAD
        out = []
        for item in raw:
            v = inner(item)
            if v is BAD:
                return BAD
            out.append(v)
        return tuple(out)

    return dec
