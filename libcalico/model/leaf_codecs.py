"""Leaf decoders and encoders of JSON values: strings, numbers, booleans, enums, CIDRs,
addresses, RFC 3339 times, Go durations, custom codecs, and lists and maps of them.

A decoder is `dec(raw, path, errs) -> value`: the decoded value, or `BAD` after appending a
`FieldError(path, reason)` to `errs`. An encoder turns a value back into its JSON form. Which
decoder a field gets is decided by `libcalico.model.schema` from the field's type.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from libcalico.errors import FieldError
from libcalico.model import types as vt
from libcalico.model.fields import Codec, Encoder

PURE = True

Decoder = Callable[[object, str, list[FieldError]], object]


class _Bad:
    """Marker returned by a decoder that has appended an error."""


BAD: Any = _Bad()


def custom(codec: Codec) -> tuple[Decoder, Encoder]:
    def dec(raw: object, path: str, errs: list[FieldError]) -> object:
        try:
            return codec.decode(raw)
        except ValueError as exc:
            errs.append(FieldError(path, str(exc)))
            return BAD

    return dec, codec.encode


def dec_str(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):  # YAML 1.1 yes/no/true read into a string field, as Go's yaml
        return "true" if raw else "false"
    if isinstance(raw, int):
        return str(raw)
    errs.append(FieldError(path, f"expected a string, got {what(raw)}"))
    return BAD


def dec_int(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    errs.append(FieldError(path, f"expected an integer, got {what(raw)}"))
    return BAD


def dec_bool(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, bool):
        return raw
    errs.append(FieldError(path, f"expected true or false, got {what(raw)}"))
    return BAD


def dec_float(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return float(raw)
    errs.append(FieldError(path, f"expected a number, got {what(raw)}"))
    return BAD


def go_float(v: float) -> object:
    """Go writes float64 100 as `100`, not `100.0`."""
    if v.is_integer() and abs(v) < 1e21:
        return int(v)
    return v


def what(raw: object) -> str:
    """A JSON value described for a message ("the string 'x'", "a list", …)."""
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


def ident(v: Any) -> object:
    return v


def text(v: Any) -> object:
    return str(v)


def network_text(v: Any) -> object:
    return vt.network_text(v)


def enum_codec(cls: type[enum.Enum]) -> tuple[Decoder, Encoder]:
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


def network(strict: bool, canonical: bool = False) -> Decoder:
    """A CIDR (or a bare address, as Calico's ParseCIDROrIP reads it). Kept as written unless
    `canonical`; host bits refused when `strict`, else kept in the written text."""
    exact = ip_network if canonical else exact_network

    def dec(raw: object, path: str, errs: list[FieldError]) -> object:
        if not isinstance(raw, str):
            errs.append(FieldError(path, f"expected a CIDR string, got {what(raw)}"))
            return BAD
        try:
            return exact(raw)
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
        return net if canonical else vt.as_written(raw)

    return dec


ip_network = functools.lru_cache(maxsize=16384)(ipaddress.ip_network)
"""Cached `ipaddress.ip_network` (strict): the objects of a cluster share few CIDRs."""
ip_address = functools.lru_cache(maxsize=16384)(ipaddress.ip_address)


@functools.lru_cache(maxsize=16384)
def exact_network(text: str) -> vt.IPNetwork:
    """A network without host bits, remembering its text when that is not canonical
    (`9000::0/64`); ValueError otherwise. Cached, like ip_network."""
    net = ip_network(text)
    return net if str(net) == text else vt.as_written(text)


def address(raw: object, path: str, errs: list[FieldError]) -> object:
    try:
        if isinstance(raw, str):
            return ip_address(raw)
    except ValueError:
        pass
    errs.append(FieldError(path, f"invalid IP address {raw!r}"))
    return BAD


def interface(raw: object, path: str, errs: list[FieldError]) -> object:
    try:
        if isinstance(raw, str):
            return ipaddress.ip_interface(raw)
    except ValueError:
        pass
    errs.append(FieldError(path, f"invalid IP address or CIDR {raw!r}"))
    return BAD


def address_or_interface(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, str) and "/" not in raw:
        return address(raw, path, errs)
    return interface(raw, path, errs)


@functools.lru_cache(maxsize=4096)
def parse_time(text: str) -> datetime:
    """RFC 3339 text -> aware datetime (UTC when no offset is given); ValueError if invalid.
    Cached: the objects of a cluster share few distinct timestamps (datetime is immutable)."""
    dt = datetime.fromisoformat(text)
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def dec_datetime(raw: object, path: str, errs: list[FieldError]) -> object:
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


def duration(raw: object, path: str, errs: list[FieldError]) -> object:
    if isinstance(raw, str):
        try:
            return vt.parse_duration(raw)
        except ValueError as exc:
            errs.append(FieldError(path, str(exc)))
            return BAD
    errs.append(FieldError(path, f"expected a duration string such as \"10s\", got {what(raw)}"))
    return BAD


def list_of(inner: tuple[Decoder, Encoder]) -> tuple[Decoder, Encoder]:
    """A JSON list of `inner` values, as a tuple."""
    idec, ienc = inner

    def dec(raw: object, path: str, errs: list[FieldError]) -> object:
        if not isinstance(raw, list | tuple):
            errs.append(FieldError(path, f"expected a list, got {what(raw)}"))
            return BAD
        out = []
        bad = False
        for i, item in enumerate(raw):
            v = idec(item, f"{path}[{i}]", errs)
            bad = bad or v is BAD
            out.append(v)
        return BAD if bad else tuple(out)

    return dec, lambda v: [ienc(x) for x in v]


def map_of(inner: tuple[Decoder, Encoder]) -> tuple[Decoder, Encoder]:
    """A JSON object of string keys to `inner` values, as a dict (encoded with sorted keys)."""
    idec, ienc = inner

    def dec(raw: object, path: str, errs: list[FieldError]) -> object:
        if not isinstance(raw, dict):
            errs.append(FieldError(path, f"expected a map, got {what(raw)}"))
            return BAD
        out: dict[str, object] = {}
        bad = False
        for k, item in raw.items():
            key = dec_str(k, path, errs)
            if key is BAD:
                bad = True
                continue
            v = idec(item, f"{path}.{key}", errs)
            bad = bad or v is BAD
            out[str(key)] = v
        return BAD if bad else out

    return dec, lambda v: {k: ienc(v[k]) for k in sorted(v)}
