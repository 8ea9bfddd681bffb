"""One iptables table (of one IP version): our desired chains and kernel-chain rules against
what `iptables-save` shows, written with one `iptables-restore --noflush --wait` per apply
containing only what changed.

- Our chains (`cali-…`) whose rule hashes differ are rewritten whole (`:chain - [0:0]` then
  `-A` lines), as Calico does in nft mode.
- In kernel chains (INPUT, FORWARD, …) our rules are the ones with a `cali:` hash comment.
  They must be first (inserts, in order) and, among ours, followed by the appends. If not,
  all of ours are deleted by full rule text and re-added; other rules are never touched.
- Our chains that are no longer wanted, and our rules in other chains, are removed only when
  deletions are allowed (after the first in-sync).
- The kernel is read once and then believed; it is re-read after a failure and at every
  refresh interval (drift repair), so a steady host costs no iptables-save per apply.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from felix.calc.chains import TableDesired
from felix.drivers.iptables.restore import KernelChain, RestoreBuilder, parse_save
from felix.drivers.iptables.rules import Rule, is_ours, render_rule, rule_hashes
from libcalico import proc
from libcalico.errors import CommandFailed

log = logging.getLogger(__name__)
TIMEOUT = 30.0
KERNEL_CHAINS = {"PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"}


@dataclass(frozen=True, slots=True)
class Commands:
    save: str
    restore: str


def commands(version: int, backend: str) -> Commands:
    base = "iptables" if version == 4 else "ip6tables"
    return Commands(f"{base}-{backend}-save", f"{base}-{backend}-restore")


def _count_rules(runner: proc.Runner, argv: list[str]) -> tuple[int, bool]:
    try:
        out = runner(argv, timeout=TIMEOUT).stdout
    except CommandFailed:
        return 0, False
    hint = "KUBE-IPTABLES-HINT" in out or "KUBE-KUBELET-CANARY" in out
    return sum(1 for line in out.splitlines() if line.startswith("-")), hint


def detect_backend(setting: str, runner: proc.Runner = proc.run,
                   legacy_loaded: bool | None = None) -> str:
    """Calico's detection: kube-proxy's canary chains in mangle decide, else whichever
    backend has more rules (legacy only looked at when its module is already loaded)."""
    if setting in ("nft", "legacy"):
        return setting
    _nft_n, nft_hint = _count_rules(runner, ["iptables-nft-save", "-t", "mangle"])
    if nft_hint:
        return "nft"
    if legacy_loaded is None:
        legacy_loaded = os.path.exists("/proc/net/ip_tables_names")
    if not legacy_loaded:
        return "nft"
    _leg_n, leg_hint = _count_rules(runner, ["iptables-legacy-save", "-t", "mangle"])
    if leg_hint:
        return "legacy"
    nft_all, _ = _count_rules(runner, ["iptables-nft-save"])
    leg_all, _ = _count_rules(runner, ["iptables-legacy-save"])
    return "legacy" if leg_all > nft_all else "nft"


class Table:
    def __init__(self, version: int, name: str, cmds: Commands,
                 runner: proc.Runner = proc.run) -> None:
        self.version = version
        self.name = name
        self.cmds = cmds
        self.run = runner
        self.desired = TableDesired()
        self.kernel: dict[str, KernelChain] | None = None
        self._hash_cache: dict[str, tuple[tuple[Rule, ...], list[str]]] = {}
        self.restores = 0
        self.saves = 0
        self.lines_written = 0
        self.last_input = ""
        self._written: list[str] = []

    def _hashes(self, chain: str, rules: tuple[Rule, ...]) -> list[str]:
        # Keyed by chain; the rules tuples come from memoised builders, so the identity check
        # almost always answers without comparing rules.
        hit = self._hash_cache.get(chain)
        if hit is not None and (hit[0] is rules or hit[0] == rules):
            return hit[1]
        h = rule_hashes(chain, rules)
        if len(self._hash_cache) > 50000:
            self._hash_cache.clear()
        self._hash_cache[chain] = (rules, h)
        return h

    def set_desired(self, desired: TableDesired) -> None:
        self.desired = desired

    def invalidate(self) -> None:
        self.kernel = None

    def read(self) -> None:
        out = self.run([self.cmds.save, "-t", self.name], timeout=TIMEOUT).stdout
        self.saves += 1
        self.kernel = parse_save(out, self.name)

    def plan(self, allow_deletes: bool) -> RestoreBuilder:
        if self.kernel is None:
            self.read()
        assert self.kernel is not None
        b = RestoreBuilder(self.name)
        d = self.desired
        self._written = []
        for chain, rules in d.chains.items():
            hashes = self._hashes(chain, rules)
            k = self.kernel.get(chain)
            if k is not None and k.hashes == hashes:
                continue
            self._written.append(chain)
            b.declare(chain)
            for h, r in zip(hashes, rules, strict=True):
                b.add(render_rule("-A", chain, h, r))
        # Kernel (and foreign) chains holding our rules.
        names = set(d.inserts) | set(d.appends)
        names |= {c for c, k in self.kernel.items()
                  if not is_ours(c) and any(h is not None for h in k.hashes)}
        for chain in sorted(names):
            ins = d.inserts.get(chain, ())
            app = d.appends.get(chain, ())
            ins_h = self._hashes(chain, ins)
            app_h = self._hashes(chain + "*appends*", app)
            k = self.kernel.get(chain) or KernelChain(chain)
            ours = [(h, line) for h, line in zip(k.hashes, k.lines, strict=True)
                    if h is not None]
            ok = ([h for h, _ in ours] == ins_h + app_h
                  and k.hashes[: len(ins_h)] == ins_h)
            if ok:
                continue
            if not (ins or app) and not allow_deletes:
                continue
            for _h, line in ours:
                b.add("-D" + line[2:])
            for i in range(len(ins) - 1, -1, -1):
                b.add(render_rule("-I", chain, ins_h[i], ins[i]).replace(
                    f"-I {chain} ", f"-I {chain} 1 ", 1))
            for h, r in zip(app_h, app, strict=True):
                b.add(render_rule("-A", chain, h, r))
        if allow_deletes:
            stale = sorted(c for c in self.kernel if is_ours(c) and c not in d.chains)
            for c in stale:
                b.declare(c)          # flushes it (removes its references first)
            for c in stale:
                b.delete_chain(c)
        return b

    def apply(self, allow_deletes: bool) -> int:
        """Returns the number of restore lines written (0: nothing to do, no exec)."""
        b = self.plan(allow_deletes)
        if b.empty():
            return 0
        text = b.text()
        self.last_input = text
        try:
            self.run([self.cmds.restore, "--noflush", "--wait", "10",
                      "--wait-interval", "50000"], input=text, timeout=TIMEOUT)
        except CommandFailed:
            self.kernel = None
            raise
        finally:
            self.restores += 1
        self._believe_written(allow_deletes)
        self.lines_written += b.line_count()
        return b.line_count()

    def _believe_written(self, allow_deletes: bool) -> None:
        assert self.kernel is not None
        d = self.desired
        for chain in self._written:
            # Our chains are only ever compared by hash: no need to keep their text.
            self.kernel[chain] = KernelChain(chain, list(self._hashes(chain, d.chains[chain])),
                                             [])
        names = set(d.inserts) | set(d.appends)
        names |= {c for c, k in self.kernel.items()
                  if not is_ours(c) and any(h is not None for h in k.hashes)}
        for chain in names:
            ins = d.inserts.get(chain, ())
            app = d.appends.get(chain, ())
            ins_h = self._hashes(chain, ins)
            app_h = self._hashes(chain + "*appends*", app)
            k = self.kernel.get(chain) or KernelChain(chain)
            ours = [h for h in k.hashes if h is not None]
            if ours == ins_h + app_h and k.hashes[: len(ins_h)] == ins_h:
                continue
            if not (ins or app) and not allow_deletes:
                continue
            others = [(h, line) for h, line in zip(k.hashes, k.lines, strict=True)
                      if h is None]
            new: list[tuple[str | None, str]] = [
                (h, render_rule("-A", chain, h, r)) for h, r in zip(ins_h, ins, strict=True)]
            new += others
            new += [(h, render_rule("-A", chain, h, r)) for h, r in zip(app_h, app, strict=True)]
            self.kernel[chain] = KernelChain(chain, [h for h, _ in new], [ln for _, ln in new])
        if allow_deletes:
            for c in [c for c in self.kernel if is_ours(c) and c not in d.chains]:
                del self.kernel[c]

    def rule_count(self) -> int:
        return sum(len(r) for r in self.desired.chains.values())


def read_together(tables: list[Table]) -> None:
    """Read the tables of one IP version and backend that need it with one save of all
    tables: iptables-nft-save fetches the whole ruleset whichever table is asked for, so
    four saves cost four times one (at 17,000 rules ~60 ms of CPU each). On failure the
    tables stay unread and each reads itself, reporting its own error."""
    todo = [t for t in tables if t.kernel is None]
    if len(todo) < 2:
        return
    try:
        out = todo[0].run([todo[0].cmds.save], timeout=TIMEOUT).stdout
    except CommandFailed as exc:
        log.info("reading all %s tables failed, reading one by one: %s", todo[0].cmds.save,
                 exc)
        return
    todo[0].saves += 1
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in out.splitlines():
        if line.startswith("*"):
            current = sections.setdefault(line[1:].strip(), [])
        if current is not None:
            current.append(line)
    for t in todo:
        t.kernel = parse_save("\n".join(sections.get(t.name, [])), t.name)
