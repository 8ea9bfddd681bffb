"""Template functions: a memkv-like read-only view of the key space, string helpers, and the
BIRD quoting filters that stand between datastore values and the rendered configuration.

Key functions (`getv`, `gets`, `getvs`, `get`, `ls`, `lsdir`, `exists`) see the keys one template
resource sees in Calico's confd: every key of the key space that starts with one of the
resource's expanded `keys`, with the resource `prefix` trimmed (`/calico/bgp/v1/host/n/ip_addr_v4`
is `/bgp/v1/host/n/ip_addr_v4` for prefix `/calico/`). Listings are sorted byte-wise as memkv
sorts them. One deliberate difference from memkv: `ls`/`lsdir` match whole path components
(`ls "/host/node1"` never lists the children of `/host/node10`).

Safety: every `{{ value }}` goes through `finalize`, which lets through only plain BIRD tokens
(addresses, numbers, names of `[A-Za-z0-9_.:/-]`), booleans and numbers, and `BirdText` built by
the filters below. Anything else (a value holding a quote, brace, semicolon, newline, `#`, space)
fails the render with a RenderError instead of reaching BIRD. Templates quote strings with
`bird_string` and symbols with `bird_symbol`; both reject what BIRD cannot represent (BIRD 1.6
strings have no escape for `"` or newline).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2

from libcalico.errors import CalicoError

PURE = True


class TemplateValueError(CalicoError):
    """A value cannot be written into BIRD configuration safely (or a key function failed)."""


class BirdText(str):
    """Text already made safe for BIRD by this module (or by the view builder): emitted as is."""

    __slots__ = ()


_PLAIN = re.compile(r"[A-Za-z0-9_.:/\-]*\Z")
_SYMBOL = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")
_BAD_IN_STRING = re.compile(r'["\x00-\x08\x0a-\x1f\x7f]')


def finalize(value: object) -> object:
    """Jinja2 `finalize`: the gate every `{{ expression }}` passes through."""
    if type(value) is str:  # the common case first: addresses, names, numbers as text
        if _PLAIN.match(value):
            return value
    elif type(value) is int or type(value) is BirdText:
        return value
    if isinstance(value, BirdText):
        return value
    if isinstance(value, jinja2.Undefined):
        return str(value)  # StrictUndefined raises, naming the missing field
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        if _PLAIN.match(value):
            return value
        raise TemplateValueError(
            f"refusing to write {value[:60]!r} into BIRD configuration: it is not a plain "
            "token; quote it with bird_string or bird_symbol, or mark template text safe"
        )
    raise TemplateValueError(
        f"refusing to write a {type(value).__name__} into BIRD configuration"
    )


def bird_string(value: object) -> BirdText:
    """`"value"` as a BIRD string literal; rejects `"`, newline and control characters."""
    text = str(value)
    if _BAD_IN_STRING.search(text):
        raise TemplateValueError(
            "value cannot be a BIRD string: it holds a double quote, newline or control character"
        )
    return BirdText(f'"{text}"')


def bird_symbol(value: object) -> BirdText:
    """`'value'` as a BIRD quoted symbol (letters, digits, `_ . -`, at most 64)."""
    text = str(value)
    if not _SYMBOL.match(text):
        raise TemplateValueError(f"value cannot be a BIRD symbol: {text[:60]!r}")
    return BirdText(f"'{text}'")


def is_bird_string_safe(text: str) -> bool:
    return not _BAD_IN_STRING.search(text)


def safe(value: object) -> BirdText:
    """Mark text as safe BIRD (for template authors who built it from safe parts)."""
    return BirdText(str(value))


# ----------------------------------------------------------------------------------------------
# Paths (Go's path.Clean / path.Join semantics)
# ----------------------------------------------------------------------------------------------


def clean_path(p: str) -> str:
    if p == "":
        return "."
    rooted = p.startswith("/")
    out: list[str] = []
    for part in p.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    joined = "/".join(out)
    if rooted:
        return "/" + joined
    return joined or "."


def join_path(*parts: str) -> str:
    nonempty = [p for p in parts if p]
    return clean_path("/".join(nonempty)) if nonempty else ""


def base(p: str) -> str:
    if p == "":
        return "."
    p = p.rstrip("/")
    if p == "":
        return "/"
    return p.rsplit("/", 1)[-1]


def dirname(p: str) -> str:
    head = p.rsplit("/", 1)[0] if "/" in p else ""
    if p.startswith("/") and head == "":
        return "/"
    return clean_path(head) if head else "."


# ----------------------------------------------------------------------------------------------
# The key view
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KVPair:
    key: str
    value: str

    # memkv's KVPair fields are Key/Value: templates ported from Go use either spelling.
    @property
    def Key(self) -> str:
        return self.key

    @property
    def Value(self) -> str:
        return self.value


def expand_keys(prefix: str, keys: Iterable[str], node: str) -> tuple[str, ...]:
    """Calico's expandKeys: join each key to the prefix, `//NODENAME` → `/<node>` once."""
    return tuple(join_path(prefix, k.replace("//NODENAME", "/" + node, 1)) for k in keys)


@functools.lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    """Go path.Match: `*` and `?` never match `/`; `[...]` classes; `\\` escapes."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j < 0:
                raise TemplateValueError(f"bad pattern {pattern!r}: unclosed [")
            body = pattern[i + 1 : j]
            neg = body.startswith("^")
            if neg:
                body = body[1:]
            body = body.replace("\\", "\\\\")
            out.append(f"[^/{body}]" if neg else f"[{body}]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


class KeyView:
    """memkv's Store over one template resource's slice of the key space (read-only).

    `sorted_keys` (all keys of `values`, sorted) lets listings bisect instead of scanning; it
    is shared by every resource rendered from the same key space."""

    def __init__(self, values: Mapping[str, str], prefix: str, keys: Sequence[str],
                 node: str, sorted_keys: Sequence[str] | None = None) -> None:
        self._values = values
        self._prefix = prefix
        self._trim = prefix.rstrip("/")
        self._expanded = expand_keys(prefix, keys, node)
        self._all = sorted_keys if sorted_keys is not None else sorted(values)

    def _full(self, rel: str) -> str:
        return self._trim + clean_path("/" + rel)

    def _visible(self, full: str) -> bool:
        return any(full.startswith(e) for e in self._expanded)

    def _rel(self, full: str) -> str:
        rest = full[len(self._prefix):] if full.startswith(self._prefix) else full
        return rest if rest.startswith("/") else "/" + rest

    def _range(self, rel_start: str) -> Iterable[str]:
        """Relative keys (visible to this resource) that start with `rel_start`, sorted."""
        start = self._trim + rel_start
        keys = self._all
        i = bisect.bisect_left(keys, start)
        while i < len(keys) and keys[i].startswith(start):
            if self._visible(keys[i]):
                yield self._rel(keys[i])
            i += 1

    # -- memkv functions -----------------------------------------------------------------------

    def exists(self, key: str) -> bool:
        full = self._full(key)
        return full in self._values and self._visible(full)

    def get(self, key: str) -> KVPair:
        full = self._full(key)
        if full not in self._values or not self._visible(full):
            raise TemplateValueError(f"key does not exist: {key}")
        return KVPair(clean_path("/" + key), self._values[full])

    def getv(self, key: str, default: str | None = None) -> str:
        full = self._full(key)
        if full in self._values and self._visible(full):
            return self._values[full]
        if default is not None:
            return default
        raise TemplateValueError(f"key does not exist: {key}")

    def gets(self, pattern: str) -> list[KVPair]:
        if not pattern.startswith("/"):
            pattern = "/" + pattern
        rx = _glob(pattern)
        lit = re.split(r"[*?\[\\]", pattern, maxsplit=1)[0]
        return [KVPair(k, self._values[self._full(k)]) for k in self._range(lit) if rx.match(k)]

    def getvs(self, pattern: str) -> list[str]:
        return sorted(kv.value for kv in self.gets(pattern))

    def ls(self, path: str) -> list[str]:
        p = clean_path("/" + path)
        found: set[str] = set()
        if self.exists(p):
            found.add(base(p))
        start = p if p.endswith("/") else p + "/"
        for k in self._range(start):
            found.add(k[len(start):].split("/", 1)[0])
        return sorted(found)

    def lsdir(self, path: str) -> list[str]:
        p = clean_path("/" + path)
        start = p if p.endswith("/") else p + "/"
        found: set[str] = set()
        for k in self._range(start):
            rest = k[len(start):]
            if "/" in rest:
                found.add(rest.split("/", 1)[0])
        return sorted(found)

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "exists": self.exists,
            "get": self.get,
            "gets": self.gets,
            "getv": self.getv,
            "getvs": self.getvs,
            "ls": self.ls,
            "lsdir": self.lsdir,
        }


# ----------------------------------------------------------------------------------------------
# Plain helpers (confd's function map, minus time, DNS and file access: rendering is pure)
# ----------------------------------------------------------------------------------------------


def _json_of(text: str, fn: str, kind: type, what: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise TemplateValueError(f"{fn}: not JSON: {exc}") from exc
    if not isinstance(value, kind):
        raise TemplateValueError(f"{fn}: value is not a JSON {what}")
    return value


def to_json(text: str) -> Any:
    return _json_of(text, "json", dict, "object")


def to_json_array(text: str) -> list[Any]:
    value: list[Any] = _json_of(text, "jsonArray", list, "array")
    return value


def make_map(*args: Any) -> dict[str, Any]:
    if len(args) % 2:
        raise TemplateValueError("map: odd number of arguments")
    out: dict[str, Any] = {}
    for k, v in zip(args[::2], args[1::2], strict=True):
        if not isinstance(k, str):
            raise TemplateValueError("map: keys must be strings")
        out[k] = v
    return out


def b64decode(text: str) -> str:
    try:
        return base64.b64decode(text.encode(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise TemplateValueError(f"base64Decode: {exc}") from exc


def helper_functions(environ: Mapping[str, str]) -> dict[str, Callable[..., Any]]:
    def getenv(key: str, default: str = "") -> str:
        return environ.get(key, default)

    return {
        "base": base,
        "dir": dirname,
        "split": lambda s, sep: s.split(sep),
        "join": lambda items, sep: sep.join(items),
        "json": to_json,
        "jsonArray": to_json_array,
        "map": make_map,
        "toUpper": str.upper,
        "toLower": str.lower,
        "contains": lambda s, sub: sub in s,
        "replace": lambda s, old, new, n=-1: s.replace(old, new, n),
        "hasSuffix": lambda s, suf: s.endswith(suf),
        "hasPrefix": lambda s, pre: s.startswith(pre),
        "trimSuffix": lambda s, suf: s[: -len(suf)] if suf and s.endswith(suf) else s,
        "base64Encode": lambda s: base64.b64encode(s.encode()).decode(),
        "base64Decode": b64decode,
        "getenv": getenv,
        "bird_string": bird_string,
        "bird_symbol": bird_symbol,
        "safe": safe,
    }


FILTERS: dict[str, Callable[..., Any]] = {
    "bird_string": bird_string,
    "bird_symbol": bird_symbol,
    "safe_bird": safe,
    # The pure helpers also work as filters: `getvs("/v1/ipam/v4/pool/*") | map("json")`.
    "json": to_json,
    "jsonArray": to_json_array,
    "base": base,
    "dir": dirname,
    "toUpper": str.upper,
    "toLower": str.lower,
    "base64Decode": b64decode,
}
