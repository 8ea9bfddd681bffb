"""IP autodetection as calico-node does it, over an injected list of interfaces.

Methods (`IP_AUTODETECTION_METHOD` / `IP6_AUTODETECTION_METHOD`):
`first-found` (default; Calico's default exclusions), `interface=<regex,...>`,
`skip-interface=<regex,...>`, `cidr=<cidr,...>`, `can-reach=<destination>` (a route lookup:
the source address the kernel would use towards the destination; no traffic is sent),
`kubernetes-internal-ip` (the Kubernetes Node's first InternalIP of the family, with the
prefix of the interface that has it; on KDD the Node's `spec.addresses` carry them).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from libcalico.errors import ConfigError

PURE = True

IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_INTERFACES_TO_EXCLUDE: tuple[str, ...] = (
    "^docker.*", "^cbr.*", "^dummy.*", "^podman.*", "^virbr.*", "^lxcbr.*", "^veth.*", "^lo",
    "^br-.*", "^cali.*", "^tunl.*", "^flannel.*", "^kube-ipvs.*", "^cni.*", r"^vxlan\.calico.*",
    r"^vxlan-v6\.calico.*", r"^wireguard\.cali.*", r"^wg-v6\.cali.*", "^nodelocaldns.*",
)


@dataclass(frozen=True, slots=True)
class Interface:
    """One host interface and its addresses (with prefix length)."""

    name: str
    addresses: tuple[IPInterface, ...]


@dataclass(frozen=True, slots=True)
class Method:
    """A parsed autodetection method: `kind` is first-found, interface, skip-interface,
    cidr or can-reach; `args` its comma-separated arguments."""

    kind: str
    args: tuple[str, ...] = ()


RouteLookup = Callable[[IPAddress], IPAddress | None]
"""Returns the source address the kernel would use to reach a destination (or None)."""

_KINDS = ("first-found", "interface", "skip-interface", "cidr", "can-reach")
K8S_INTERNAL_IP = "kubernetes-internal-ip"


def parse_method(text: str, var: str = "IP_AUTODETECTION_METHOD") -> Method:
    """Parse a method string; raises ConfigError naming the variable and what is wrong."""
    text = text.strip()
    if text in ("", "first-found"):
        return Method("first-found")
    if text == K8S_INTERNAL_IP:
        return Method(K8S_INTERNAL_IP)
    kind, sep, arg = text.partition("=")
    if kind not in _KINDS or kind == "first-found" or not sep:
        raise ConfigError(
            f"{var}={text!r}: unknown method (expected first-found, interface=REGEX, "
            "skip-interface=REGEX, cidr=CIDR, can-reach=DESTINATION or "
            "kubernetes-internal-ip)"
        )
    args = tuple(a.strip() for a in arg.split(",") if a.strip())
    if not args:
        raise ConfigError(f"{var}={text!r}: {kind}= needs a value")
    if kind in ("interface", "skip-interface"):
        for a in args:
            try:
                re.compile(a)
            except re.error as exc:
                raise ConfigError(f"{var}={text!r}: bad regular expression {a!r}: {exc}") from exc
    elif kind == "cidr":
        for a in args:
            try:
                ipaddress.ip_network(a, strict=False)
            except ValueError as exc:
                raise ConfigError(f"{var}={text!r}: bad CIDR {a!r}") from exc
    elif kind == "can-reach" and len(args) != 1:
        raise ConfigError(f"{var}={text!r}: can-reach= takes one destination")
    return Method(kind, args)


def _matches(name: str, patterns: Sequence[str]) -> bool:
    """Go's regexp.MatchString: a match anywhere in the name (anchor with ^ and $)."""
    return any(re.search(p, name) for p in patterns)


def _usable(addr: IPInterface, version: int) -> bool:
    ip = addr.ip
    return (
        ip.version == version
        and not ip.is_loopback
        and not ip.is_link_local
        and not ip.is_multicast
        and not ip.is_unspecified
    )


def _first(
    interfaces: Sequence[Interface], version: int, include: Callable[[Interface], bool],
    want: Callable[[IPInterface], bool] = lambda a: True,
) -> IPInterface | None:
    for iface in sorted(interfaces, key=lambda i: i.name):
        if not include(iface):
            continue
        for addr in iface.addresses:
            if _usable(addr, version) and want(addr):
                return addr
    return None


def _name_filter(pattern: str) -> Callable[[Interface], bool]:
    return lambda i: _matches(i.name, (pattern,))


def detect(
    method: Method,
    interfaces: Sequence[Interface],
    version: int,
    route_lookup: RouteLookup | None = None,
    internal_ips: Sequence[IPAddress] = (),
) -> IPInterface | None:
    """The address (with its subnet) that `method` picks, or None when nothing matches.
    `internal_ips`: the Kubernetes Node's InternalIP addresses, in order."""
    if method.kind == "first-found":
        return _first(interfaces, version,
                      lambda i: not _matches(i.name, DEFAULT_INTERFACES_TO_EXCLUDE))
    if method.kind == "interface":
        for pattern in method.args:
            found = _first(interfaces, version, _name_filter(pattern))
            if found is not None:
                return found
        return None
    if method.kind == "skip-interface":
        return _first(
            interfaces, version,
            lambda i: not _matches(i.name, DEFAULT_INTERFACES_TO_EXCLUDE)
            and not _matches(i.name, method.args),
        )
    if method.kind == "cidr":
        nets = [ipaddress.ip_network(a, strict=False) for a in method.args]
        return _first(interfaces, version, lambda i: True,
                      lambda a: any(n.version == a.version and a.ip in n for n in nets))
    if method.kind == "can-reach":
        dest = _resolve_destination(method.args[0], version)
        if route_lookup is None:
            raise ConfigError("can-reach= needs a route lookup")
        src = route_lookup(dest)
        if src is None:
            return None
        return _with_prefix(src, interfaces)
    if method.kind == K8S_INTERNAL_IP:
        ip = next((a for a in internal_ips if a.version == version), None)
        return None if ip is None else _with_prefix(ip, interfaces)
    raise ConfigError(f"unknown autodetection method {method.kind!r}")


def _with_prefix(ip: IPAddress, interfaces: Sequence[Interface]) -> IPInterface:
    """`ip` with the prefix length of the interface address that is it (else a host route)."""
    for iface in interfaces:
        for addr in iface.addresses:
            if addr.ip == ip:
                return addr
    return ipaddress.ip_interface(f"{ip}/{ip.max_prefixlen}")


def _resolve_destination(text: str, version: int) -> IPAddress:
    try:
        dest = ipaddress.ip_address(text)
    except ValueError as exc:
        raise ConfigError(
            f"can-reach={text!r}: give an IP address (names are not resolved here)"
        ) from exc
    if dest.version != version:
        raise ConfigError(f"can-reach={text!r}: not an IPv{version} address")
    return dest


def parse_given(text: str, version: int, var: str) -> IPInterface:
    """An explicit `IP`/`IP6` value: an address with optional prefix length."""
    try:
        addr = ipaddress.ip_interface(text.strip())
    except ValueError as exc:
        raise ConfigError(f"{var}={text!r}: not an IP address") from exc
    if addr.version != version:
        raise ConfigError(f"{var}={text!r}: not an IPv{version} address")
    if "/" not in text:
        addr = ipaddress.ip_interface(f"{addr.ip}/{addr.ip.max_prefixlen}")
    return addr
