"""Field checks as Calico's validator applies them. Each returns a list of FieldError.

Checks take the already-typed value (the schema parsed it) and the dotted path of the field.
They reject anything that would be unsafe to pass on to BIRD or iptables: names, interface
patterns and communities are limited to the characters Calico allows.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from libcalico.errors import FieldError, ValidationError

PURE = True

Check = Callable[[Any, str], list[FieldError]]

_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
)
_LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_INTERFACE_NAME = re.compile(r"^[a-zA-Z0-9_.\-]{1,15}$")
_INTERFACE_PATTERN = re.compile(r"^[a-zA-Z0-9_.\-*]{1,64}$")
_IFACE_FILTER = re.compile(r"^[a-zA-Z0-9:._+\-]{1,15}$")
_IFACE_15 = re.compile(r"^[a-zA-Z0-9_.*\-]{1,15}$")
_COMMUNITY_STD = re.compile(r"^(\d+):(\d+)$")
_COMMUNITY_LARGE = re.compile(r"^(\d+):(\d+):(\d+)$")
_MAC = re.compile(r"^([0-9A-Fa-f]{2}[:-]){5}[0-9A-Fa-f]{2}$")
_CONTAINER_ID = re.compile(r"^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$")
_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def _err(path: str, reason: str) -> list[FieldError]:
    return [FieldError(path, reason)]


def dns1123_subdomain(value: str, path: str) -> list[FieldError]:
    reason = _subdomain_problem(value)
    return [FieldError(path, reason)] if reason else []


@functools.lru_cache(maxsize=16384)
def _subdomain_problem(value: str) -> str:
    """Cached by name: the objects of a cluster repeat node, namespace and profile names."""
    if len(value) > 253:
        return f"name {value!r} is longer than 253 characters"
    if not _DNS1123_SUBDOMAIN.match(value):
        return (f"invalid name {value!r}: must consist of lower case alphanumeric characters,"
                " '-' or '.', and must start and end with an alphanumeric character")
    return ""


def dns1123_label(value: str, path: str) -> list[FieldError]:
    if len(value) > 63 or not _DNS1123_LABEL.match(value):
        return _err(
            path,
            f"invalid name {value!r}: must be at most 63 lower case alphanumeric characters or"
            " '-', starting and ending with an alphanumeric character",
        )
    return []


def label_key(key: str, path: str) -> list[FieldError]:
    return [FieldError(path, reason) for reason in _label_key_problems(key)]


@functools.lru_cache(maxsize=4096)
def _label_key_problems(key: str) -> tuple[str, ...]:
    """Cached by key: the objects of a cluster share a few label keys."""
    prefix, slash, name = key.rpartition("/")
    reasons: list[str] = []
    if slash and (not prefix or dns1123_subdomain(prefix, "")):
        reasons.append(f"invalid key {key!r}: prefix must be a DNS subdomain")
    if not name or len(name) > 63 or not _LABEL_NAME.match(name):
        reasons.append(
            f"invalid key {key!r}: name part must be at most 63 alphanumeric characters,"
            " '-', '_' or '.', starting and ending with an alphanumeric character"
        )
    return tuple(reasons)


@functools.lru_cache(maxsize=4096)
def _label_value_ok(value: str) -> bool:
    return len(value) <= 63 and _LABEL_VALUE.match(value) is not None


def label_map(value: Mapping[str, str], path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    for k, v in value.items():
        if _label_key_problems(k):
            errs += label_key(k, f"{path}.{k}")
        if not _label_value_ok(v):
            errs.append(
                FieldError(
                    f"{path}.{k}",
                    f"invalid label value {v!r}: must be at most 63 alphanumeric characters,"
                    " '-', '_' or '.', starting and ending with an alphanumeric character",
                )
            )
    return errs


def annotation_map(value: Mapping[str, str], path: str) -> list[FieldError]:
    """Keys are checked lower-cased, as Calico does (`Example.com/Key` is a valid key)."""
    errs: list[FieldError] = []
    for k in value:
        if _label_key_problems(k.lower()):
            errs += label_key(k.lower(), f"{path}.{k}")
    if sum(len(k) + len(v) for k, v in value.items()) > 256 * 1024:
        errs.append(FieldError(path, "annotations are larger than 256 KiB"))
    return errs


def selector(value: str, path: str) -> list[FieldError]:
    """Parse with libcalico.model.selector (Calico's selector language)."""
    return [FieldError(path, reason) for reason in _selector_problems(value)]


@functools.lru_cache(maxsize=4096)
def _selector_problems(value: str) -> tuple[str, ...]:
    return tuple(e.reason for e in _parse_selector(value, ""))


def _parse_selector(value: str, path: str) -> list[FieldError]:
    try:
        from libcalico.model import selector as selector_mod
    except ImportError:  # pragma: no cover - until the selector module lands
        return _fallback_selector(value, path)
    try:
        selector_mod.parse(value)
    except ValidationError as exc:
        at = getattr(exc, "at", None)
        if callable(at):  # SelectorError: the reason and the position of the problem
            return [FieldError(path, e.reason) for e in at(path).errors]
        return _err(path, f"invalid selector {value!r}: {_reason(exc)}")
    return []


def _reason(exc: ValidationError) -> str:
    return "; ".join(e.reason or str(e) for e in exc.errors) or str(exc)


def _fallback_selector(value: str, path: str) -> list[FieldError]:
    depth = 0
    quote = ""
    for ch in value:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                break
    if depth != 0 or quote:
        return _err(path, f"invalid selector {value!r}: unbalanced parentheses or quotes")
    return []


def interface_name(value: str, path: str) -> list[FieldError]:
    if not _INTERFACE_NAME.match(value):
        return _err(
            path,
            f"invalid interface name {value!r}: 1-15 letters, digits, '_', '.' or '-'",
        )
    return []


def interface_pattern(value: str, path: str) -> list[FieldError]:
    if not _INTERFACE_PATTERN.match(value):
        return _err(
            path,
            f"invalid interface pattern {value!r}: only letters, digits, '_', '.', '-' and the"
            " wildcard '*' are allowed",
        )
    return []


def ignored_interface(value: str, path: str) -> list[FieldError]:
    """Calico's `ignoredInterface`: 1-15 letters, digits, '_', '.', '-' or '*', not just '*'."""
    if value == "*" or not _IFACE_15.match(value):
        return _err(path, f"invalid interface pattern {value!r}: 1-15 letters, digits, '_',"
                    " '.', '-' or the wildcard '*' (and not '*' alone)")
    return []


def iface_filter(value: str, path: str) -> list[FieldError]:
    """Calico's `ifaceFilter`: 1-15 letters, digits, ':', '.', '_', '+' or '-' (iptables'
    wildcard is '+')."""
    if not _IFACE_FILTER.match(value):
        return _err(path, f"invalid interface filter {value!r}: 1-15 letters, digits, ':',"
                    " '.', '_', '+' or '-'")
    return []


def bgp_filter_interface(value: str, path: str) -> list[FieldError]:
    """Calico's `bgpFilterInterface`: '*' or 1-15 letters, digits, '_', '.', '-' or '*'."""
    if not _IFACE_15.match(value):
        return _err(path, f"invalid interface pattern {value!r}: 1-15 letters, digits, '_',"
                    " '.', '-' or the wildcard '*'")
    return []


def with_prefix(value: Any, path: str) -> list[FieldError]:
    """A CIDR written with its prefix length (`10.0.0.0/8`, not a bare address)."""
    if "/" not in getattr(value, "written", "/"):
        return _err(path, f"invalid CIDR {value.written!r}: the prefix length is missing")
    return []


def single_addresses(values: Iterable[Any], path: str) -> list[FieldError]:
    """Networks of one address each, /32 or /128 (Calico: an endpoint's networks)."""
    errs: list[FieldError] = []
    for i, n in enumerate(values):
        if n.prefixlen != n.max_prefixlen:
            errs.append(FieldError(f"{path}[{i}]", f"{getattr(n, 'written', n)} contains more"
                                   f" than one address: expected a /{n.max_prefixlen}"))
    return errs


_KEY_VALUE = re.compile(r"^\s*(\w+)=(.*)$")
_PROMETHEUS_HOST = re.compile(r"^[a-zA-Z0-9:._+-]{1,64}$")


def key_value_list(value: str, path: str) -> list[FieldError]:
    """Calico's `keyValueList`: comma-separated `key=value` items (empty items allowed)."""
    if all(not item or _KEY_VALUE.match(item) for item in value.split(",")):
        return []
    return _err(path, f"invalid list {value!r}: expected comma-separated key=value items")


def regexp(value: str, path: str) -> list[FieldError]:
    """Calico's `regexp`: a regular expression that compiles (Python's re stands in for Go's
    RE2)."""
    try:
        re.compile(value)
    except re.error as exc:
        return _err(path, f"invalid regular expression {value!r}: {exc}")
    return []


def prometheus_host(value: str, path: str) -> list[FieldError]:
    """Calico's `prometheusHost`: an address or host name, 1-64 of [a-zA-Z0-9:._+-]."""
    if not _PROMETHEUS_HOST.match(value):
        return _err(path, f"invalid host {value!r}: 1-64 letters, digits, ':', '.', '_', '+'"
                    " or '-'")
    return []


def cidrs(values: Iterable[str], path: str) -> list[FieldError]:
    """Calico's `cidrs`: each a CIDR or an address (host bits allowed)."""
    errs: list[FieldError] = []
    for i, text in enumerate(values):
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError:
            errs.append(FieldError(f"{path}[{i}]", f"invalid CIDR {text!r}"))
    return errs


def community_value(value: str, path: str) -> list[FieldError]:
    """Standard "aa:nn" (16-bit halves) or large "aa:nn:mm" (32-bit parts) community."""
    if m := _COMMUNITY_STD.match(value):
        if all(int(p) <= 0xFFFF for p in m.groups()):
            return []
        return _err(path, f"invalid community {value!r}: standard community parts are 0-65535")
    if m := _COMMUNITY_LARGE.match(value):
        if all(int(p) <= 0xFFFFFFFF for p in m.groups()):
            return []
        return _err(path, f"invalid community {value!r}: large community parts are 0-4294967295")
    return _err(
        path,
        f"invalid community {value!r}: expected \"aa:nn\" (standard) or \"aa:nn:mm\" (large)",
    )


def port_name(value: str, path: str) -> list[FieldError]:
    """An IANA service name (Kubernetes IsValidPortName): 1-15 lower-case letters, digits and
    '-', with a letter, no '-' at either end nor '--'."""
    if (len(value) > 15 or not _PORT_NAME.match(value) or "--" in value
            or not re.search(r"[a-z]", value)):
        return _err(path, f"invalid port name {value!r}: 1-15 lower-case letters, digits and"
                    " '-' (at least one letter, no '-' at either end, no '--')")
    return []


def mac(value: str, path: str) -> list[FieldError]:
    if not _MAC.match(value):
        return _err(path, f"invalid MAC address {value!r}")
    return []


def container_id(value: str, path: str) -> list[FieldError]:
    if not _CONTAINER_ID.match(value):
        return _err(path, f"invalid container ID {value!r}")
    return []


def int_range(lo: int, hi: int) -> Check:
    def check(value: int, path: str) -> list[FieldError]:
        if not lo <= value <= hi:
            return _err(path, f"{value} is out of range {lo}-{hi}")
        return []

    check.bounds = (lo, hi)  # type: ignore[attr-defined]  # for schema-driven generators
    return check


def version(v: int) -> Check:
    """An address, interface or network of IP version `v`."""

    def check(value: Any, path: str) -> list[FieldError]:
        if getattr(value, "version", v) != v:
            return _err(path, f"{value} is not an IPv{v} value")
        return []

    check.ip_version = v  # type: ignore[attr-defined]  # for schema-driven generators
    return check


def names(values: Iterable[str], path: str) -> list[FieldError]:
    """Each a DNS-1123 subdomain (Calico's `dive,name`)."""
    errs: list[FieldError] = []
    for i, value in enumerate(values):
        reason = _subdomain_problem(value)
        if reason:
            errs.append(FieldError(f"{path}[{i}]", reason))
    return errs


def each(check: Check) -> Check:
    def run(values: Iterable[Any], path: str) -> list[FieldError]:
        errs: list[FieldError] = []
        for i, item in enumerate(values):
            errs += check(item, f"{path}[{i}]")
        return errs

    run.item_check = check  # type: ignore[attr-defined]  # for schema-driven generators
    return run


def one_of(*choices: str) -> Check:
    def check(value: str, path: str) -> list[FieldError]:
        if value not in choices:
            return _err(path, f"invalid value {value!r}: must be one of {', '.join(choices)}")
        return []

    check.choices = choices  # type: ignore[attr-defined]  # for schema-driven generators
    return check


def one_of_ci(*choices: str) -> Check:
    """One of `choices` in any letter case (a CRD `(?i)` pattern), or empty."""
    folded = frozenset(c.lower() for c in choices)

    def check(value: str, path: str) -> list[FieldError]:
        if value.lower() not in folded:
            return _err(path, f"invalid value {value!r}: must be one of {', '.join(choices)}"
                        " (any case)")
        return []

    check.choices = choices  # type: ignore[attr-defined]  # for schema-driven generators
    return check


def all_of(*checks: Check) -> Check:
    def run(value: Any, path: str) -> list[FieldError]:
        errs: list[FieldError] = []
        for c in checks:
            errs += c(value, path)
        return errs

    return run


_LINK_LOCAL_V4 = ipaddress.IPv4Network("169.254.0.0/16")
_LINK_LOCAL_V6 = ipaddress.IPv6Network("fe80::/10")


def overlaps_link_local(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> bool:
    if isinstance(net, ipaddress.IPv4Network):
        return net.overlaps(_LINK_LOCAL_V4)
    return net.overlaps(_LINK_LOCAL_V6)
