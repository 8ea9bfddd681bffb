"""In-memory kernels for Felix's unit tests: FakeIptables (a Runner that interprets
iptables-restore input, produces iptables-save output and runs `ipset`), FakeNetlink and
FakeSysctl."""

from __future__ import annotations

import copy
import ipaddress
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from felix.calc.desired import IPAddr, Route
from felix.drivers.netlink import BatchResult, Link, Op
from libcalico.errors import CommandFailed
from libcalico.proc import Completed

BUILTIN = {
    "raw": ["PREROUTING", "OUTPUT"],
    "mangle": ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
    "filter": ["INPUT", "FORWARD", "OUTPUT"],
    "nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
}


@dataclass
class FakeIptables:
    """Tables keyed (ip version, table) → chain → rule bodies (text after `-A chain `)."""

    tables: dict[tuple[int, str], dict[str, list[str]]] = field(default_factory=dict)
    legacy: dict[tuple[int, str], dict[str, list[str]]] = field(default_factory=dict)
    """The iptables-legacy backend's tables (separate kernel state, as on a real host)."""
    ipsets: dict[str, set[str]] = field(default_factory=dict)
    calls: list[tuple[tuple[str, ...], str | None]] = field(default_factory=list)
    fail_restores: int = 0

    def table(self, v: int, name: str) -> dict[str, list[str]]:
        return self.tables.setdefault((v, name), {c: [] for c in BUILTIN[name]})

    def restores(self) -> list[tuple[tuple[str, ...], str | None]]:
        return [c for c in self.calls if "restore" in c[0][0] and "ipset" not in c[0][0]]

    def __call__(self, argv: Sequence[str], *, timeout: float, input: str | None = None,
                 check: bool = True, env: Mapping[str, str] | None = None) -> Completed:
        args = tuple(argv)
        self.calls.append((args, input))
        prog = args[0]
        v = 6 if prog.startswith("ip6") else 4
        if "-legacy-" in prog:
            self.tables, self.legacy = self.legacy, self.tables
            try:
                return self._dispatch(args, prog, v, input, check)
            finally:
                self.tables, self.legacy = self.legacy, self.tables
        return self._dispatch(args, prog, v, input, check)

    def _dispatch(self, args: tuple[str, ...], prog: str, v: int, input: str | None,
                  check: bool) -> Completed:
        try:
            if prog.endswith("-save"):
                if "-t" in args:
                    out = self._save(v, args[args.index("-t") + 1])
                else:
                    out = "".join(self._save(v, t) for t in BUILTIN)
            elif prog.endswith("-restore") and prog != "ipset":
                if self.fail_restores:
                    self.fail_restores -= 1
                    raise ValueError("iptables-restore: line 2 failed")
                self._restore(v, input or "")
                out = ""
            elif prog == "ipset":
                out = self._ipset(args[1:], input or "")
            else:
                raise ValueError(f"unknown command {prog}")
        except ValueError as exc:
            if check:
                raise CommandFailed(args, 1, "", str(exc), input) from exc
            return Completed(args, 1, "", str(exc))
        return Completed(args, 0, out, "")

    def _save(self, v: int, name: str) -> str:
        chains = self.table(v, name)
        lines = [f"*{name}"]
        for c in chains:
            lines.append(f":{c} {'ACCEPT' if c in BUILTIN[name] else '-'} [0:0]")
        for c, rules in chains.items():
            lines += [f"-A {c} {r}".rstrip() for r in rules]
        lines.append("COMMIT")
        return "\n".join(lines) + "\n"

    def _restore(self, v: int, text: str) -> None:
        work = copy.deepcopy(self.tables)
        cur: dict[str, list[str]] | None = None
        for n, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("*"):
                cur = work.setdefault((v, line[1:]),
                                      {c: [] for c in BUILTIN[line[1:]]})
                continue
            if line == "COMMIT":
                cur = None
                continue
            if cur is None:
                raise ValueError(f"line {n}: outside a table")
            if line.startswith(":"):
                cur[line[1:].split()[0]] = []
                continue
            op, chain, *rest = line.split(" ", 2)
            body = rest[0] if rest else ""
            if op == "-X":
                if chain not in cur or cur[chain]:
                    raise ValueError(f"line {n}: cannot delete chain {chain}")
                for rules in cur.values():
                    if any(f"-j {chain}" in r.split(" --comment")[-1] or
                           f"-g {chain}" in r for r in rules):
                        raise ValueError(f"line {n}: chain {chain} is referenced")
                del cur[chain]
                continue
            if chain not in cur:
                raise ValueError(f"line {n}: no chain {chain}")
            for target in (t for t in ("-j", "-g") if f" {t} " in f" {body} "):
                tgt = body.split(f"{target} ")[-1].split()[0]
                if tgt.startswith("cali") and tgt not in cur:
                    raise ValueError(f"line {n}: jump to missing chain {tgt}")
            if op == "-A":
                cur[chain].append(body)
            elif op == "-I":
                parts = body.split(" ", 1)
                if parts[0].isdigit():
                    cur[chain].insert(int(parts[0]) - 1, parts[1] if len(parts) > 1 else "")
                else:
                    cur[chain].insert(0, body)
            elif op == "-D":
                if body not in cur[chain]:
                    raise ValueError(f"line {n}: no such rule in {chain}: {body}")
                cur[chain].remove(body)
            elif op == "-F":
                cur[chain] = []
            else:
                raise ValueError(f"line {n}: unknown op {op}")
        self.tables = work

    def _ipset(self, args: tuple[str, ...], text: str) -> str:
        if args[0] == "save":
            out = []
            for name, members in sorted(self.ipsets.items()):
                out.append(f"create {name} hash:net family inet hashsize 1024 maxelem 1048576")
                out += [f"add {name} {m}" for m in sorted(members)]
            return "\n".join(out) + "\n"
        if args[0] == "restore":
            for line in text.splitlines():
                p = shlex.split(line)
                if not p:
                    continue
                if p[0] == "create":
                    self.ipsets.setdefault(p[1], set())
                elif p[0] == "add":
                    self.ipsets[p[1]].add(p[2])
                elif p[0] == "del":
                    self.ipsets[p[1]].discard(p[2])
                elif p[0] == "destroy":
                    self.ipsets.pop(p[1], None)
            return ""
        raise ValueError(f"ipset {args}")


class RouteTable(dict[tuple[int, object, int], Route]):
    """The kernel's routes by (table, dst, metric), as the kernel keys them. A two-part key
    (table, dst) means "the one route to dst, whatever its metric" (more than one is an
    error), so tests that do not care about metrics read naturally."""

    def _find(self, key: tuple[Any, ...]) -> tuple[int, object, int] | None:
        if len(key) == 3:
            return key if dict.__contains__(self, key) else None  # type: ignore[return-value]
        found = [k for k in self.keys() if k[:2] == key]
        assert len(found) <= 1, f"several routes to {key}: {found}"
        return found[0] if found else None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and self._find(key) is not None

    def __getitem__(self, key: tuple[Any, ...]) -> Route:  # type: ignore[override]
        k = self._find(key)
        if k is None:
            raise KeyError(key)
        return dict.__getitem__(self, k)

    def __delitem__(self, key: tuple[Any, ...]) -> None:  # type: ignore[override]
        k = self._find(key)
        if k is None:
            raise KeyError(key)
        dict.__delitem__(self, k)

    def __setitem__(self, key: tuple[Any, ...], r: Route) -> None:  # type: ignore[override]
        # Stored as the kernel would list it (an IPv6 metric 0 reads back as 1024).
        dict.__setitem__(self, r.key, replace(r, metric=r.key[2]))

    def metrics(self, dst: object) -> list[int]:
        return sorted(k[2] for k in self.keys() if k[1] == dst)


@dataclass
class FakeNetlink:
    routes: RouteTable = field(default_factory=RouteTable)
    neigh: dict[tuple[str, IPAddr], str] = field(default_factory=dict)
    fdb: dict[tuple[str, str], IPAddr] = field(default_factory=dict)
    links: dict[str, Link] = field(default_factory=dict)
    has_ipip: bool = True
    fail_kinds: dict[str, int] = field(default_factory=dict)
    applied: list[Op] = field(default_factory=list)

    def add_link(self, name: str, up: bool = True, mtu: int = 1500,
                 addrs: tuple[str, ...] = ()) -> None:
        self.links[name] = Link(name, up, mtu,
                                addrs=tuple(ipaddress.ip_interface(a) for a in addrs))

    def list_routes(self) -> list[Route]:
        return list(self.routes.values())

    def list_neighbours(self) -> dict[tuple[str, IPAddr], str]:
        return dict(self.neigh)

    def list_fdb(self, dev: str) -> dict[tuple[str, str], IPAddr]:
        return {k: v for k, v in self.fdb.items() if k[0] == dev}

    def list_links(self, name: str | None = None) -> dict[str, Link]:
        if name is not None:
            return {name: self.links[name]} if name in self.links else {}
        return dict(self.links)

    def apply(self, ops: Sequence[Op]) -> BatchResult:
        res = BatchResult()
        for op in ops:
            if self.fail_kinds.get(op.kind, 0) > 0:
                self.fail_kinds[op.kind] -= 1
                res.failed.append((op, "injected failure"))
                continue
            err = self._one(op)
            if err:
                res.failed.append((op, err))
            else:
                self.applied.append(op)
        return res

    def _one(self, op: Op) -> str:
        if op.kind == "route-replace":
            assert op.route is not None
            if op.route.dev and op.route.dev not in self.links:
                return "Cannot find device"
            # Replace matches (table, dst, metric): another metric is another route.
            self.routes[op.route.key] = op.route
        elif op.kind == "route-del":
            assert op.route is not None
            if dict.pop(self.routes, op.route.key, None) is None:
                return "No such process"
        elif op.kind == "neigh-replace":
            assert op.ip is not None
            self.neigh[(op.dev, op.ip)] = op.mac
        elif op.kind == "neigh-del":
            assert op.ip is not None
            self.neigh.pop((op.dev, op.ip), None)
        elif op.kind == "fdb-replace":
            assert op.ip is not None
            self.fdb[(op.dev, op.mac)] = op.ip
        elif op.kind == "fdb-del":
            self.fdb.pop((op.dev, op.mac), None)
        elif op.kind == "link-cmd":
            return self._link(op.line.split())
        return ""

    def _link(self, w: list[str]) -> str:
        if w[:2] == ["link", "add"]:
            name, kind = w[2], w[4]
            if kind == "ipip" and not self.has_ipip:
                return "Error: Unknown device type."
            link = Link(name, False, 1500, kind=kind)
            if kind == "vxlan":
                link = replace(link, vxlan_id=int(w[w.index("id") + 1]),
                               vxlan_port=int(w[w.index("dstport") + 1]),
                               vxlan_local=w[w.index("local") + 1])
            self.links[name] = link
            return ""
        if w[:2] == ["link", "del"]:
            self.links.pop(w[2], None)
            for k in [k for k, r in self.routes.items() if r.dev == w[2]]:
                dict.__delitem__(self.routes, k)
            return ""
        if w[:2] == ["link", "set"]:
            name = w[2]
            if name not in self.links:
                return "Cannot find device"
            link = self.links[name]
            if w[3] == "address":
                link = replace(link, mac=w[4])
            elif w[3] == "mtu":
                link = replace(link, mtu=int(w[4]))
            elif w[3] == "up":
                link = replace(link, up=True)
            self.links[name] = link
            return ""
        if w[0] == "addr":
            name = w[w.index("dev") + 1]
            if name not in self.links:
                return "Cannot find device"
            link = self.links[name]
            a = ipaddress.ip_interface(w[2])
            addrs = tuple(x for x in link.addrs if x != a)
            if w[1] == "replace":
                addrs += (a,)
            self.links[name] = replace(link, addrs=addrs)
            return ""
        return f"unknown {w}"


class FakeSysctl:
    def __init__(self, values: dict[str, str] | None = None) -> None:
        self.values = dict(values or {})
        self.writes: list[tuple[str, str]] = []

    def read(self, path: str) -> str | None:
        return self.values.get(path)

    def write(self, path: str, value: str) -> None:
        iface = path.split("/")[3] if path.count("/") >= 4 else ""
        if iface.startswith("missing"):
            raise FileNotFoundError(2, "No such file or directory")
        self.values[path] = value
        self.writes.append((path, value))
