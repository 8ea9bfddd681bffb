"""iptables-save parsing and iptables-restore input building. Pure."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

PURE = True

HASH_RE = re.compile(r'--comment "?cali:([a-zA-Z0-9_-]+)"?')


@dataclass
class KernelChain:
    name: str
    hashes: list[str | None] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    """The rule lines as iptables-save printed them (`-A chain …`)."""


def parse_save(text: str, table: str) -> dict[str, KernelChain]:
    chains: dict[str, KernelChain] = {}
    in_table = False
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("*"):
            in_table = line[1:] == table
            continue
        if not in_table:
            continue
        if line.startswith(":"):
            name = line[1:].split(" ", 1)[0]
            chains.setdefault(name, KernelChain(name))
        elif line.startswith("-A "):
            name = line.split(" ", 2)[1]
            ch = chains.setdefault(name, KernelChain(name))
            m = HASH_RE.search(line)
            ch.hashes.append(m.group(1) if m else None)
            ch.lines.append(line)
    return chains


class RestoreBuilder:
    """One `*table … COMMIT` transaction; empty when nothing was added."""

    def __init__(self, table: str) -> None:
        self.table = table
        self.decls: list[str] = []
        self.rules: list[str] = []
        self.deletes: list[str] = []

    def declare(self, chain: str) -> None:
        self.decls.append(f":{chain} - [0:0]")

    def add(self, line: str) -> None:
        self.rules.append(line)

    def delete_chain(self, chain: str) -> None:
        self.deletes.append(f"-X {chain}")

    def empty(self) -> bool:
        return not (self.decls or self.rules or self.deletes)

    def text(self) -> str:
        return "\n".join([f"*{self.table}", *self.decls, *self.rules, *self.deletes,
                          "COMMIT"]) + "\n"

    def line_count(self) -> int:
        return len(self.decls) + len(self.rules) + len(self.deletes)
