"""Value types shared by the resource model: Go durations, AS numbers, ports, protocols.

Each parser raises `ValueError` with a reason a user can act on; the schema turns that into a
`FieldError` with the field's path.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation

PURE = True

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPInterface = ipaddress.IPv4Interface | ipaddress.IPv6Interface
AddressOrInterface = (
    ipaddress.IPv4Address | ipaddress.IPv6Address | ipaddress.IPv4Interface
    | ipaddress.IPv6Interface
)
"""An address written with or without a prefix length (Node `ipv4Address`): kept as written."""

ProtocolValue = str | int
"""numorstring.Protocol: a name (`TCP`, `UDP`, …) or a number 1–255, kept as written."""


class WrittenIPv4Network(ipaddress.IPv4Network):
    """An IPv4 network that remembers the text it was written as (`written`), for the fields
    Calico stores and renders verbatim (`10.0.0.1/24`, `10.0.0.1`). Compares, hashes and
    prints (`str`) as the network itself; the codec writes `written` back."""

    written: str

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return as_written, (self.written,)


class WrittenIPv6Network(ipaddress.IPv6Network):
    """The IPv6 twin of WrittenIPv4Network (`9000::0/64` kept as written)."""

    written: str

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return as_written, (self.written,)


def as_written(text: str) -> IPNetwork:
    """The network of `text` (host bits masked off), remembering `text` when it is not the
    network's canonical form; ValueError if `text` is neither a CIDR nor an address."""
    net = ipaddress.ip_network(text, strict=False)
    if str(net) == text:
        return net
    out: WrittenIPv4Network | WrittenIPv6Network = (
        WrittenIPv4Network(str(net)) if net.version == 4 else WrittenIPv6Network(str(net)))
    out.written = text
    return out


def network_text(net: IPNetwork) -> str:
    """The text a network is stored as: as written when it was read so, else canonical."""
    written = getattr(net, "written", None)
    return written if isinstance(written, str) else str(net)


# ---------------------------------------------------------------------------------------------
# Go time.Duration text ("10s", "1m30s", "1.5h", "250ms") <-> timedelta.

_UNIT_NS = {
    "ns": Decimal(1), "us": Decimal(1000), "µs": Decimal(1000), "μs": Decimal(1000),
    "ms": Decimal(10**6), "s": Decimal(10**9), "m": Decimal(60 * 10**9),
    "h": Decimal(3600 * 10**9),
}
_DURATION_PART = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_duration(text: str) -> timedelta:
    """Parse Go's duration syntax (time.ParseDuration)."""
    s = text.strip()
    sign = 1
    if s[:1] in "+-" and s:
        sign = -1 if s[0] == "-" else 1
        s = s[1:]
    if s == "0":
        return timedelta(0)
    if not s:
        raise ValueError(f"invalid duration {text!r}")
    total = Decimal(0)
    pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            raise ValueError(
                f"invalid duration {text!r} (expected a number and a unit: ns, us, ms, s, m, h;"
                " e.g. 10s, 1m30s)"
            )
        try:
            total += Decimal(m.group(1)) * _UNIT_NS[m.group(2)]
        except InvalidOperation as exc:  # pragma: no cover - regex already guards
            raise ValueError(f"invalid duration {text!r}") from exc
        pos = m.end()
    if total > Decimal(2**63 - 1):
        raise ValueError(f"duration {text!r} is out of range")
    ns = int(total) * sign
    return timedelta(microseconds=ns // 1000 if ns >= 0 else -((-ns) // 1000))


def format_duration(value: timedelta) -> str:
    """Format as Go's Duration.String() does ("10s", "2m0s", "1h0m0s", "1.5ms")."""
    ns = ((value.days * 86400 + value.seconds) * 10**6 + value.microseconds) * 1000
    neg = ns < 0
    u = -ns if neg else ns
    if u == 0:
        return "0s"
    if u < 10**9:
        if u < 1000:
            text = f"{u}ns"
        elif u < 10**6:
            text = _fraction(u, 3) + "µs"
        else:
            text = _fraction(u, 6) + "ms"
    else:
        secs, frac = divmod(u, 10**9)
        hours, rem = divmod(secs, 3600)
        minutes, seconds = divmod(rem, 60)
        sec_text = str(seconds) + (("." + f"{frac:09d}".rstrip("0")) if frac else "") + "s"
        text = (f"{hours}h" if hours else "") + (f"{minutes}m" if hours or minutes else "")
        text += sec_text
    return "-" + text if neg else text


def _fraction(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    return str(whole) + (("." + f"{frac:0{digits}d}".rstrip("0")) if frac else "")


# ---------------------------------------------------------------------------------------------
# AS numbers: plain ("64512", 64512) or dotted ("1.10" = 1*65536 + 10 = 65546).

AS_MAX = 2**32 - 1


def parse_as_number(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("AS number must be a number or a string such as 64512 or \"1.10\"")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d+", text):
            n = int(text)
        elif m := re.fullmatch(r"(\d+)\.(\d+)", text):
            high, low = int(m.group(1)), int(m.group(2))
            if high > 65535 or low > 65535:
                raise ValueError(
                    f"invalid AS number {value!r}: each half of a dotted AS number must be"
                    " 0-65535"
                )
            n = high * 65536 + low
        else:
            raise ValueError(
                f"invalid AS number {value!r}: expected 0-4294967295 or dotted form such as"
                " \"1.10\""
            )
    else:
        raise ValueError("AS number must be a number or a string such as 64512 or \"1.10\"")
    if not 0 <= n <= AS_MAX:
        raise ValueError(f"AS number {n} is out of range 0-{AS_MAX}")
    return n


def format_as_dotted(n: int) -> str:
    """The asdot form ("1.10"), for display."""
    return f"{n >> 16}.{n & 0xFFFF}" if n > 65535 else str(n)


# ---------------------------------------------------------------------------------------------
# numorstring.Port: a number, a range "min:max", or a named port.

_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


@dataclass(frozen=True, slots=True)
class Port:
    """A port, a port range (`min_port` < `max_port`), or a named port (`name`)."""

    min_port: int = 0
    max_port: int = 0
    name: str = ""

    def __str__(self) -> str:
        if self.name:
            return self.name
        if self.min_port == self.max_port:
            return str(self.min_port)
        return f"{self.min_port}:{self.max_port}"

    def to_json(self) -> int | str:
        if not self.name and self.min_port == self.max_port:
            return self.min_port
        return str(self)

    @staticmethod
    def single(port: int) -> Port:
        return Port(port, port)


def parse_port(value: object) -> Port:
    if isinstance(value, bool):
        raise ValueError("port must be a number, a range \"min:max\" or a port name")
    if isinstance(value, int):
        if not 1 <= value <= 65535:
            raise ValueError(f"port {value} is out of range 1-65535")
        return Port(value, value)
    if not isinstance(value, str):
        raise ValueError("port must be a number, a range \"min:max\" or a port name")
    text = value
    if re.fullmatch(r"\d+", text):
        return parse_port(int(text))
    if m := re.fullmatch(r"(\d+):(\d+)", text):
        lo, hi = int(m.group(1)), int(m.group(2))
        if hi > 65535 or lo < 1:
            raise ValueError(f"port range {text!r} is out of range 1-65535")
        if lo > hi:
            raise ValueError(f"port range {text!r}: minimum is greater than maximum")
        return Port(lo, hi)
    if len(text) <= 15 and _PORT_NAME.match(text) and re.search(r"[a-z]", text):
        return Port(name=text)
    raise ValueError(
        f"invalid port {text!r}: expected a number, a range such as \"8000:8080\", or a name"
        " (lower-case letters, digits and '-', at most 15 characters)"
    )


PROTOCOL_NAMES = ("TCP", "UDP", "ICMP", "ICMPv6", "SCTP", "UDPLite")


def parse_protocol(value: object) -> ProtocolValue:
    if isinstance(value, bool):
        raise ValueError("protocol must be a name or a number 1-255")
    if isinstance(value, int):
        if not 1 <= value <= 255:
            raise ValueError(f"protocol number {value} is out of range 1-255")
        return value
    if isinstance(value, str):
        if value in PROTOCOL_NAMES:
            return value
        if re.fullmatch(r"\d+", value) and 1 <= int(value) <= 255:
            return value
        raise ValueError(
            f"invalid protocol {value!r}: must be one of {', '.join(PROTOCOL_NAMES)} or a"
            " number 1-255"
        )
    raise ValueError("protocol must be a name or a number 1-255")
