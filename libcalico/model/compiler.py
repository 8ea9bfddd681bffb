"""Decoders compiled from each dataclass's schema plan: the fast path of
`schema.decode_struct` for values that are valid.

`decoder(cls)` returns `fast(raw) -> object`: the same value `decode_struct(cls, raw, ...)`
builds, or `BAD` as soon as anything is not plainly valid (an unknown or case-folded key, a
value of the wrong type, a zero in a required field, a failed check, a hook error). A `BAD`
from the fast path says nothing about the input: the caller then runs `decode_struct`, which
finds and names every problem. So the fast path may be conservative anywhere, but it must
never accept what `decode_struct` rejects; it runs the very same leaf decoders and checks, and
only skips the work of naming paths and collecting errors (tests/unit/model/test_compiler.py
compares both on thousands of documents).

What makes it fast:
- Python source generated from the plan and `exec`'d once per class: a general decoder (a
  loop over the keys present, finding each field's code through a binary tree of index
  comparisons, every value starting as its default), and, for each key sequence ("shape")
  seen `SHAPE_AFTER` times, a straight-line decoder that unpacks `raw.values()` in order and
  writes the defaults of absent fields as constants. Stored values of a kind come in a
  handful of shapes (Calico writes its fields in a fixed order). No path strings, no error
  lists, no kwargs dicts.
- str / bool / int / enum values accepted inline by an exact type test (any other value goes
  through the field's own decoder, e.g. YAML's `yes` read into a string field); CIDRs,
  addresses and times through the cached parsers the field decoders try first.
- values built without the frozen dataclass `__init__` (one `object.__setattr__` call per
  field): a mutable twin class with the same `__slots__` is filled with plain stores and then
  given the frozen class, which yields an object identical to `cls(**kwargs)` (same type,
  same slots). Classes where that is not possible (other bases, `__post_init__`) are built by
  calling the class.
"""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import typing
from collections.abc import Callable
from datetime import datetime
from typing import Any

from libcalico.errors import FieldError
from libcalico.model.fields import META_KEY
from libcalico.model.leaf_codecs import (
    BAD,
    dec_str,
    exact_network,
    ip_address,
    ip_network,
    parse_time,
)
from libcalico.model.schema import FieldPlan, Plan, is_union, is_zero, plan, unwrap_optional

PURE = True

Fast = Callable[[object], object]

_COMPILED: dict[tuple[type, tuple[str, ...]], Fast] = {}


def decoder(cls: type, ignore: tuple[str, ...] = ()) -> Fast:
    """The compiled fast decoder of dataclass `cls` (built on first use). Keys in `ignore`
    are skipped (a resource's `kind` and `apiVersion`, which the caller checks)."""
    fast = _COMPILED.get((cls, ignore))
    if fast is None:
        # Registered before compiling so that recursive types resolve to a forwarder.
        cell: list[Fast] = []
        _COMPILED[cls, ignore] = lambda raw: cell[0](raw)
        try:
            fast = _compile(plan(cls), ignore)
        except BaseException:
            del _COMPILED[cls, ignore]
            raise
        cell.append(fast)
        _COMPILED[cls, ignore] = fast
    return fast


_CLASSES: dict[tuple[type, tuple[str, ...]], _Class] = {}


def shapes(cls: type, ignore: tuple[str, ...] = ()) -> tuple[dict[tuple[object, ...], Fast],
                                                             Callable[[Any], object]] | None:
    """For a class without a hook: its shape decoders (keyed by `tuple(raw)`) and the
    decoder of any other shape, so that a hot caller can skip the entry point's frame:
    `f = shapes.get(tuple(raw)); value = f(raw) if f else other(raw)` (raw a dict)."""
    decoder(cls, ignore)
    c = _CLASSES.get((cls, ignore))
    if c is None or c.p.hook_in is not None or not c.ready:
        return None
    return c.shapes, c.miss


def _class_of(cls: type) -> _Class | None:
    """The compiled `_Class` of a nested class (None while it is still being compiled, i.e.
    for a recursive type)."""
    decoder(cls)
    c = _CLASSES.get((cls, ()))
    return c if c is not None and c.ready else None


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
        self.env: dict[str, object] = {"BAD": BAD, "is_zero": is_zero}

    def ref(self, prefix: str, obj: object) -> str:
        name = f"{prefix}{len(self.env)}"
        self.env[name] = obj
        return name

    def add(self, indent: int, line: str) -> None:
        self.lines.append("    " * indent + line)


SHAPE_AFTER = 2
"""A key sequence (shape) gets its own straight-line decoder the second time it is seen."""
MAX_SHAPES = 64
"""Shapes compiled per class at most; values of other shapes take the general decoder."""


def _compile(p: Plan, ignore: tuple[str, ...]) -> Fast:
    """The entry point: hook (if any), then the decoder of the value's shape (its keys in
    order), else the general decoder. Stored values of a kind come in a handful of shapes
    (Calico writes its fields in a fixed order), so nearly every value hits a shape."""
    c = _CLASSES[p.cls, ignore] = _Class(p, ignore)
    shapes, miss = c.shapes, c.miss
    hook = p.hook_in
    if hook is None:
        def fast(raw: object) -> object:
            if type(raw) is not dict:
                return BAD
            f = shapes.get(tuple(raw))
            if f is None:
                return miss(raw)
            return f(raw)
        return fast

    # A key of a hidden field is unknown in a document (only the hook may add it).
    hidden = tuple(f.json for f in p.fields if f.hidden)

    def fast_hooked(raw: object) -> object:
        if type(raw) is not dict:
            return BAD
        for k in hidden:
            if k in raw:
                return BAD
        errs: list[FieldError] = []
        raw = hook(raw, "", errs)
        if errs:
            return BAD
        f = shapes.get(tuple(raw))
        if f is None:
            return miss(raw)
        return f(raw)
    return fast_hooked


class _Class:
    """What the decoders of one class are generated from, and its shape decoders."""

    def __init__(self, p: Plan, ignore: tuple[str, ...]) -> None:
        self.p = p
        self.ignore = ignore
        self.dc_fields = {f.name: f for f in dataclasses.fields(p.cls)}
        self.hints = typing.get_type_hints(p.cls)
        # Hidden fields have no JSON key of their own: only a hook can fill them.
        self.read = p.fields if p.hook_in is not None else [f for f in p.fields if not f.hidden]
        self.by_json = {f.json: f for f in self.read}
        self.twin = _twin(p.cls)
        self.shapes: dict[tuple[object, ...], Fast] = {}
        self.seen: dict[tuple[object, ...], int] = {}
        self.ready = False
        self.general = self._general()
        self.ready = True

    def miss(self, raw: dict[Any, object]) -> object:
        shape = tuple(raw)
        n = self.seen.get(shape, 0) + 1
        if n < SHAPE_AFTER or len(self.shapes) >= MAX_SHAPES:
            if len(self.seen) > 4 * MAX_SHAPES:
                self.seen.clear()
            self.seen[shape] = n
            return self.general(raw)
        self.seen.pop(shape, None)
        fast = self.shapes[shape] = self._shape(shape)
        return fast(raw)

    def _source(self) -> _Source:
        src = _Source()
        src.env["cls"] = self.p.cls
        src.env["MISSING"] = _MISSING
        return src

    def _default(self, src: _Source, f: FieldPlan) -> str | None:
        """An expression for the field's dataclass default (None: the field is required)."""
        dcf = self.dc_fields[f.attr]
        if dcf.default is not dataclasses.MISSING:
            d = dcf.default
            return repr(d) if d is None or isinstance(d, bool) else src.ref("default", d)
        if dcf.default_factory is dict:
            return "{}"  # a fresh dict, as dict() makes it, without the call
        if dcf.default_factory is not dataclasses.MISSING:
            return src.ref("factory", dcf.default_factory) + "()"
        return None

    def _field(self, src: _Source, ind: int, f: FieldPlan, var: str, unset: str) -> None:
        """Code storing raw `x` (not None) into `var`, as decode_struct's loop body does;
        `unset` is the statement for a zero that means "unset"."""
        hint, dcf = self.hints[f.attr], self.dc_fields[f.attr]
        _value(src, ind, f, hint, dcf)
        if f.zero_is_unset:
            src.add(ind, "if not x:" if _str_like(f, hint, dcf)
                    else "if (x == 0 if type(x) is int else is_zero(x)):")
            src.add(ind + 1, unset if not f.required else "return BAD")
            src.add(ind, "else:")
            ind += 1
        if f.required and not f.optional:
            src.add(ind, "if x == '':")
            src.add(ind + 1, "return BAD")
        if f.check is not None:
            check = src.ref("check", f.check)
            src.add(ind, f"if {check}(x, ''):")
            src.add(ind + 1, "return BAD")
        src.add(ind, f"{var} = x")

    def _construct(self, src: _Source, values: dict[str, str]) -> None:
        fields = self.p.fields
        if self.twin is not None:
            src.env["Twin"] = self.twin
            src.add(1, "o = Twin()")
            for f in fields:
                src.add(1, f"o.{f.attr} = {values[f.attr]}")
            src.add(1, "o.__class__ = cls")
            src.add(1, "return o")
        else:
            args = ", ".join(f"{f.attr}={values[f.attr]}" for f in fields)
            src.add(1, f"return cls({args})")

    def _finish(self, src: _Source, what: str) -> Fast:
        code = "\n".join(src.lines)
        name = f"<compiled decoder {self.p.cls.__qualname__} {what}>"
        exec(compile(code, name, "exec"), src.env)
        return typing.cast(Fast, src.env["fast"])

    def _general(self) -> Fast:
        """Any shape: a loop over the keys present that finds the field's code through a
        binary tree of index comparisons; every value starts as its default."""
        src = self._source()
        index = src.ref("index", {f.json: i for i, f in enumerate(self.read)}
                        | {k: -1 for k in self.ignore if k not in self.p.all_by_json})
        src.add(0, "def fast(raw):")
        after: list[str] = []
        values = {}
        for i, f in enumerate(self.p.fields):
            var = values[f.attr] = f"v{i}"
            default = self._default(src, f)
            if default is not None and not default.endswith(("()", "{}")):
                src.add(1, f"{var} = {default}")
            else:
                src.add(1, f"{var} = MISSING")
                after += [f"if {var} is MISSING:",
                          f"    {var} = {default}" if default else "    return BAD"]
        src.add(1, "for k, x in raw.items():")
        src.add(2, f"i = {index}.get(k)")
        src.add(2, "if i is None:")
        src.add(3, "return BAD")
        src.add(2, "if x is None or i < 0:" if self.ignore else "if x is None:")
        src.add(3, "continue")
        self._dispatch(src, 2, list(enumerate(self.read)), values)
        _lines(src, 1, after)
        self._construct(src, values)
        return self._finish(src, "(any shape)")

    def _dispatch(self, src: _Source, ind: int, fields: list[tuple[int, FieldPlan]],
                  values: dict[str, str]) -> None:
        """A binary tree of `if i < n` over the field indexes, each leaf one field's code."""
        if len(fields) == 1:
            f = fields[0][1]
            self._field(src, ind, f, values[f.attr], "continue")
            return
        mid = len(fields) // 2
        src.add(ind, f"if i < {fields[mid][0]}:")
        self._dispatch(src, ind + 1, fields[:mid], values)
        src.add(ind, "else:")
        self._dispatch(src, ind + 1, fields[mid:], values)

    def _shape(self, shape: tuple[object, ...]) -> Fast:
        """Straight-line code for values with exactly these keys in this order."""
        if any(k not in self.by_json and k not in self.ignore for k in shape):
            return _reject  # an unknown key: the full decode names it
        src = self._source()
        src.add(0, "def fast(raw):")
        if shape:
            src.add(1, "".join(f"x{j}, " for j in range(len(shape))) + "= raw.values()")
        values: dict[str, str] = {}
        for j, k in enumerate(shape):
            f = self.by_json.get(k)  # type: ignore[call-overload]
            if f is None:
                continue  # an ignored key
            var = values[f.attr] = f"v{j}"
            default = self._default(src, f)
            unset = f"{var} = {default}" if default is not None else "return BAD"
            src.add(1, f"x = x{j}")
            src.add(1, "if x is None:")
            src.add(2, unset)
            src.add(1, "else:")
            self._field(src, 2, f, var, unset)
        for f in self.p.fields:
            if f.attr not in values:
                default = self._default(src, f)
                if default is None:
                    return _reject  # a required field is missing
                values[f.attr] = default
        self._construct(src, values)
        return self._finish(src, repr(shape))


def _reject(raw: object) -> object:
    return BAD


class _Missing:
    """Marks a value not given (yet): the default factory fills it, or it is required."""


_MISSING = _Missing()


def _str_like(f: FieldPlan, hint: Any, dc_field: dataclasses.Field[Any]) -> bool:
    """Whether every decoded value of the field is a str (so `not x` is Go's zero test)."""
    meta = dc_field.metadata.get(META_KEY)
    if meta is not None and meta.codec is not None:
        return False
    inner = unwrap_optional(hint)[1]
    return inner is str or (isinstance(inner, type) and issubclass(inner, enum.StrEnum))


def _value(src: _Source, ind: int, f: FieldPlan, hint: Any,
           dc_field: dataclasses.Field[Any]) -> None:
    """Code turning raw `x` into the field's value (or returning BAD)."""
    meta = dc_field.metadata.get(META_KEY)
    inner = unwrap_optional(hint)[1]
    dec = src.ref("dec", f.decode)
    slow = [f"x = {dec}(x, '', [])", "if x is BAD:", "    return BAD"]
    if meta is not None and meta.codec is not None:
        if typing.get_origin(inner) is tuple:
            _lines(src, ind, slow)
            return
        # Codec.decode raises ValueError for a bad value (anything else propagates, as in
        # the full decode).
        parse = src.ref("codec", meta.codec.decode)
        _lines(src, ind, ["try:", f"    x = {parse}(x)", "except ValueError:",
                          "    return BAD"])
        return
    leaf = _text_leaf(inner, meta)
    if leaf is not None:
        # Text parsed by the cached parser the field decoder uses first; anything else (or
        # a ValueError) goes through the field decoder, which decides.
        parse = src.ref("parse", leaf)
        src.add(ind, "if type(x) is str:")
        _lines(src, ind + 1, ["try:", f"    x = {parse}(x)", "except ValueError:"])
        _lines(src, ind + 2, slow)
        src.add(ind, "else:")
        _lines(src, ind + 1, slow)
    elif inner is str:
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
    elif (dataclasses.is_dataclass(inner) and isinstance(inner, type)
          and (child := _class_of(inner)) is not None):
        # The nested class's entry point, inlined: its hook run and its shape decoders
        # looked up here.
        shapes, miss = src.ref("shapes", child.shapes), src.ref("miss", child.miss)
        _lines(src, ind, ["if type(x) is not dict:", "    return BAD"])
        if child.p.hook_in is not None:
            hook = src.ref("hook", child.p.hook_in)
            for hf in child.p.fields:
                if hf.hidden:
                    _lines(src, ind, [f"if {hf.json!r} in x:", "    return BAD"])
            _lines(src, ind, ["e = []", f"x = {hook}(x, '', e)", "if e:", "    return BAD"])
        _lines(src, ind, [f"f = {shapes}.get(tuple(x))",
                          f"x = f(x) if f is not None else {miss}(x)",
                          "if x is BAD:", "    return BAD"])
    else:
        fast = _fast_for(inner)
        if fast is None:
            _lines(src, ind, slow)
        else:
            name = src.ref("fast", fast)
            _lines(src, ind, [f"x = {name}(x)", "if x is BAD:", "    return BAD"])


_NETWORKS = frozenset({ipaddress.IPv4Network, ipaddress.IPv6Network})
_ADDRESSES = frozenset({ipaddress.IPv4Address, ipaddress.IPv6Address})


def _text_leaf(tp: Any, meta: Any) -> Callable[[str], object] | None:
    """The cached text parser that the field's decoder tries first, if it has one."""
    members = frozenset(typing.get_args(tp)) if is_union(tp) else frozenset({tp})
    if members <= _NETWORKS:
        # exact networks; host bits go through the decoder
        return ip_network if meta is not None and meta.canonical else exact_network
    if members <= _ADDRESSES:
        return ip_address
    if tp is datetime:
        return parse_time
    return None


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
    return dec_str(raw, "", [])


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
