"""BIRD's control-socket protocol: `show protocols` replies and the BGP peer table.

Reply lines are `NNNN-text` (more follows), `NNNN text` (last line of that code), or
` text` (continuation of the previous code). Protocol names Calico's templates give BGP
sessions are `Mesh_<ip>`, `Node_<ip>` and `Global_<ip>`, the IP with `_` for `.` or `:`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

from libcalico.errors import ValidationError

PURE = True

HEADER = ("name", "proto", "table", "state", "since", "info")
_PEER_NAME = re.compile(r"^(Global|Node|Mesh)_(.+)$")
_CODE = re.compile(r"^(\d{4})([- ]?)(.*)$")
PEER_TYPES = {"Mesh": "node-to-node mesh", "Node": "node specific", "Global": "global"}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Protocol:
    name: str
    proto: str
    table: str
    state: str
    since: str
    info: str


@dataclass(frozen=True, slots=True)
class Peer:
    address: IPAddress
    peer_type: str
    state: str
    since: str
    info: str

    @property
    def established(self) -> bool:
        return self.info.split(" ", 1)[0] == "Established"


def reply_complete(text: str) -> bool:
    """True once `text` holds a whole reply (a final `NNNN ` or bare `NNNN` line)."""
    for line in text.splitlines():
        m = _CODE.match(line)
        if m and m.group(2) != "-" and m.group(1) != "0001":
            return True
    return False


def parse_protocols(reply: str) -> tuple[Protocol, ...]:
    """Parse a `show protocols` reply (the greeting line may be included)."""
    rows: list[Protocol] = []
    header_seen = False
    code = ""
    for raw in reply.splitlines():
        m = _CODE.match(raw)
        if m:
            code, text = m.group(1), m.group(3)
        elif raw.startswith(" "):
            text = raw[1:]
        else:
            continue
        if code in ("0001", "0000"):
            continue
        if code == "2002":
            if tuple(text.split()) != HEADER:
                raise ValidationError(f"unexpected BIRD header: {text!r}", "birdc show protocols")
            header_seen = True
            continue
        if code == "1002":
            cols = text.split()
            if len(cols) < 5:
                continue
            rows.append(Protocol(cols[0], cols[1], cols[2], cols[3], cols[4],
                                 " ".join(cols[5:])))
            continue
        if code.startswith(("8", "9")):
            raise ValidationError(f"BIRD error {code}: {text}", "birdc show protocols")
    if rows and not header_seen:
        raise ValidationError("reply has rows but no header", "birdc show protocols")
    return tuple(rows)


def peers(protocols: Sequence[Protocol], version: int = 4) -> tuple[Peer, ...]:
    """The BGP sessions among `protocols` that Calico's templates name."""
    out: list[Peer] = []
    sep = "." if version == 4 else ":"
    for p in protocols:
        if p.proto != "BGP" or not p.info:
            continue
        m = _PEER_NAME.match(p.name)
        if not m:
            continue
        try:
            addr = ipaddress.ip_address(m.group(2).replace("_", sep))
        except ValueError:
            continue
        out.append(Peer(addr, PEER_TYPES[m.group(1)], p.state, p.since, p.info))
    return tuple(out)


def format_table(rows: Sequence[Peer]) -> str:
    """Calico's `calicoctl node status` table (header centred, cells left-aligned)."""
    header = ("PEER ADDRESS", "PEER TYPE", "STATE", "SINCE", "INFO")
    cells = [(str(p.address), p.peer_type, p.state, p.since, p.info) for p in rows]
    widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]
    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"

    def centred(text: str, width: int) -> str:
        pad = width - len(text)
        return " " * (pad // 2) + text + " " * (pad - pad // 2)

    lines = [rule, "| " + " | ".join(centred(h, w) for h, w in zip(header, widths, strict=True))
             + " |", rule]
    for r in cells:
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True))
                     + " |")
    lines.append(rule)
    return "\n".join(lines)


def graceful_restart_in_progress(status_reply: str) -> bool:
    """`show status` reports a graceful restart in progress on a `0024` line."""
    return any(line.startswith("0024") for line in status_reply.splitlines())
