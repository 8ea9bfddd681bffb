"""IP sets (cali40*/cali60*) through `ipset restore`: creates and member changes before
iptables, deletions of sets we no longer want after it."""

from __future__ import annotations

import logging

from felix.calc.desired import IPSet
from felix.drivers.deltatracker import DeltaTracker
from libcalico import proc

log = logging.getLogger(__name__)
TIMEOUT = 30.0
MAXELEM = 1048576


def parse_save(text: str) -> dict[str, IPSet]:
    sets: dict[str, tuple[str, set[str], str]] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "create" and parts[1].startswith(("cali4", "cali6")):
            fam = "inet6" if "inet6" in parts else "inet"
            sets[parts[1]] = (fam, set(), parts[2])
        elif len(parts) >= 3 and parts[0] == "add" and parts[1] in sets:
            sets[parts[1]][1].add(parts[2])
    return {k: IPSet(f, frozenset(m), t) for k, (f, m, t) in sets.items()}


def _norm(member: str) -> str:
    return member[:-3] if member.endswith("/32") else (
        member[:-4] if member.endswith("/128") else member)


class IPSetDriver:
    def __init__(self, runner: proc.Runner = proc.run) -> None:
        self.run = runner
        self.tracker: DeltaTracker[str, IPSet] = DeltaTracker()

    def set_desired(self, sets: dict[str, IPSet]) -> None:
        self.tracker.set_desired({k: IPSet(v.family, frozenset(_norm(m) for m in v.members),
                                           v.set_type) for k, v in sets.items()})

    def resync(self) -> None:
        out = self.run(["ipset", "save"], timeout=TIMEOUT).stdout
        self.tracker.replace_dataplane(parse_save(out).items())

    def pending(self) -> bool:
        return not self.tracker.in_sync()

    def apply_updates(self) -> int:
        if not self.tracker.dataplane_known:
            self.resync()
        todo = self.tracker.pending_updates()
        if not todo:
            return 0
        lines = []
        for name, s in sorted(todo.items()):
            old = self.tracker.dataplane().get(name)
            if old is not None and (old.family, old.set_type) != (s.family, s.set_type):
                lines.append(f"destroy {name}")
                old = None
            lines.append(f"create {name} {s.set_type} family {s.family} maxelem {MAXELEM}"
                         " -exist")
            have = old.members if old else frozenset()
            lines += [f"add {name} {m} -exist" for m in sorted(s.members - have)]
            lines += [f"del {name} {m} -exist" for m in sorted(have - s.members)]
        try:
            self.run(["ipset", "restore"], input="\n".join(lines) + "\n", timeout=TIMEOUT)
        except Exception:
            self.tracker.dataplane_known = False
            raise
        for name, s in todo.items():
            self.tracker.applied_update(name, s)
        return 1

    def apply_deletions(self) -> int:
        gone = self.tracker.pending_deletions()
        if not gone:
            return 0
        lines = [f"destroy {n}" for n in sorted(gone)]
        done = self.run(["ipset", "restore", "-exist"], input="\n".join(lines) + "\n",
                        timeout=TIMEOUT, check=False)
        if done.returncode != 0:
            log.warning("ipset destroy failed (in use?), will retry: %s", done.stderr.strip())
            self.tracker.dataplane_known = False
            return 1
        for n in gone:
            self.tracker.applied_delete(n)
        return 1
