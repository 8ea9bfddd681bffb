from __future__ import annotations

import pytest

from felix.calc.chains import TableDesired
from felix.drivers.iptables.rules import Rule
from felix.drivers.iptables.table import Table, commands, detect_backend
from libcalico.errors import CommandFailed
from tests.unit.felix.fakes import FakeIptables


def desired(extra: int = 0) -> TableDesired:
    return TableDesired(
        chains={"cali-INPUT": tuple(Rule(f"-s 10.0.0.{i}/32", "-j ACCEPT")
                                    for i in range(2 + extra)),
                "cali-wl-to-host": (Rule(action="-j DROP"),)},
        inserts={"INPUT": (Rule(action="-j cali-INPUT"),)},
        appends={"FORWARD": (Rule("-m mark --mark 0x10000/0x10000", "-j ACCEPT"),)})


def make(fake: FakeIptables) -> Table:
    return Table(4, "filter", commands(4, "nft"), fake)


def test_first_apply_writes_and_second_writes_nothing() -> None:
    fake = FakeIptables()
    t = make(fake)
    t.set_desired(desired())
    assert t.apply(True) > 0
    assert len(fake.restores()) == 1
    argv = fake.restores()[0][0]
    assert argv[:2] == ("iptables-nft-restore", "--noflush") and "--wait" in argv
    assert t.apply(True) == 0
    assert len(fake.restores()) == 1
    assert fake.table(4, "filter")["INPUT"][0].endswith("-j cali-INPUT")


def test_only_changed_chains_are_written() -> None:
    fake = FakeIptables()
    t = make(fake)
    t.set_desired(desired())
    t.apply(True)
    t.set_desired(desired(extra=1))
    t.apply(True)
    text = fake.restores()[-1][1] or ""
    assert ":cali-INPUT - [0:0]" in text and "cali-wl-to-host" not in text
    assert "INPUT -m comment" not in text.replace("cali-INPUT -m", "")


def test_restart_over_programmed_table_issues_no_restore() -> None:
    fake = FakeIptables()
    t = make(fake)
    t.set_desired(desired())
    t.apply(True)
    again = make(fake)                 # a new process: no memory, reads iptables-save
    again.set_desired(desired())
    assert again.apply(True) == 0
    assert len(fake.restores()) == 1


def test_foreign_rules_survive_and_our_insert_moves_back_to_top() -> None:
    fake = FakeIptables()
    fake.table(4, "filter")["INPUT"] = ["-s 1.2.3.4/32 -j DROP"]
    fake.table(4, "filter")["other-chain"] = ["-j ACCEPT"]
    t = make(fake)
    t.set_desired(desired())
    t.apply(True)
    inp = fake.table(4, "filter")["INPUT"]
    assert inp[0].endswith("-j cali-INPUT") and inp[1] == "-s 1.2.3.4/32 -j DROP"
    # Another tool inserts above us; at the next refresh we move back to the top.
    inp.insert(0, "-s 5.6.7.8/32 -j DROP")
    t.invalidate()
    t.apply(True)
    inp = fake.table(4, "filter")["INPUT"]
    assert inp[0].endswith("-j cali-INPUT")
    assert set(inp[1:]) == {"-s 1.2.3.4/32 -j DROP", "-s 5.6.7.8/32 -j DROP"}
    assert fake.table(4, "filter")["other-chain"] == ["-j ACCEPT"]


def test_drift_is_repaired_after_refresh() -> None:
    fake = FakeIptables()
    t = make(fake)
    t.set_desired(desired())
    t.apply(True)
    fake.table(4, "filter")["cali-INPUT"].pop()          # someone deletes one of our rules
    assert t.apply(True) == 0                           # believed state: nothing to do
    t.invalidate()                                      # refresh interval
    assert t.apply(True) > 0
    assert len(fake.table(4, "filter")["cali-INPUT"]) == 2


def test_stale_chains_and_rules_removed_only_when_deletes_allowed() -> None:
    fake = FakeIptables()
    t = make(fake)
    t.set_desired(TableDesired(chains={"cali-old": (Rule(action="-j ACCEPT"),)},
                               inserts={"OUTPUT": (Rule(action="-j cali-old"),)}))
    t.apply(True)
    t2 = make(fake)
    t2.set_desired(desired())
    t2.apply(False)
    assert "cali-old" in fake.table(4, "filter")
    assert any("cali-old" in r for r in fake.table(4, "filter")["OUTPUT"])
    t2.apply(True)
    assert "cali-old" not in fake.table(4, "filter")
    assert fake.table(4, "filter")["OUTPUT"] == []


def test_failed_restore_forgets_belief_and_raises() -> None:
    fake = FakeIptables(fail_restores=1)
    t = make(fake)
    t.set_desired(desired())
    with pytest.raises(CommandFailed):
        t.apply(True)
    assert t.kernel is None
    assert t.apply(True) > 0


def test_backend_detection() -> None:
    class R(FakeIptables):
        def __init__(self, nft: str, legacy: str) -> None:
            super().__init__()
            self.out = {"iptables-nft-save": nft, "iptables-legacy-save": legacy}

        def __call__(self, argv, **kw):  # type: ignore[no-untyped-def,override]
            from libcalico.proc import Completed
            return Completed(tuple(argv), 0, self.out[argv[0]], "")

    assert detect_backend("legacy", R("", "")) == "legacy"
    assert detect_backend("auto", R(":KUBE-IPTABLES-HINT - [0:0]\n", "")) == "nft"
    assert detect_backend("auto", R("", ":KUBE-KUBELET-CANARY - [0:0]\n"),
                          legacy_loaded=True) == "legacy"
    assert detect_backend("auto", R("", "-A X -j ACCEPT\n"), legacy_loaded=True) == "legacy"
    assert detect_backend("auto", R("", "-A X -j ACCEPT\n"), legacy_loaded=False) == "nft"
