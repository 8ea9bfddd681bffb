from __future__ import annotations

import signal

from calico_node.supervisor import Component, Supervisor


class FakeProc:
    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rc: int | None = None
        self.signals: list[int] = []
        self.ignore_term = False

    def poll(self) -> int | None:
        return self.rc

    def send_signal(self, sig: int) -> None:
        self.signals.append(sig)
        if sig == signal.SIGKILL or not self.ignore_term:
            self.rc = -sig

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class World:
    def __init__(self) -> None:
        self.now = 100.0
        self.procs: list[tuple[str, FakeProc]] = []
        self.files: set[str] = set()

    def spawn(self, c: Component) -> FakeProc:
        p = FakeProc(1000 + len(self.procs))
        self.procs.append((c.name, p))
        return p

    def started(self, name: str) -> list[FakeProc]:
        return [p for n, p in self.procs if n == name]


def make(world: World, *comps: Component) -> Supervisor:
    return Supervisor(list(comps), world.spawn, clock=lambda: world.now,
                      exists=lambda f: f in world.files, backoff_initial=1.0, backoff_max=8.0,
                      stable_after=10.0)


def test_starts_all_and_restarts_a_dead_one_with_doubling_backoff() -> None:
    w = World()
    sup = make(w, Component("felix", ("felix",)), Component("confd", ("confd",)))
    sup.step()
    assert len(w.started("felix")) == 1 and len(w.started("confd")) == 1
    delays = []
    for _ in range(5):
        w.started("felix")[-1].rc = 1
        w.now += 0.5
        sup.step()
        died_at = w.now
        n = len(w.started("felix"))
        while len(w.started("felix")) == n:
            w.now += 0.25
            sup.step()
        delays.append(w.now - died_at)
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert len(w.started("confd")) == 1
    assert {s.name: s.restarts for s in sup.status()} == {"felix": 5, "confd": 0}


def test_backoff_resets_after_a_stable_run() -> None:
    w = World()
    sup = make(w, Component("bird", ("bird",)))
    sup.step()
    for _ in range(3):
        w.started("bird")[-1].rc = 1
        sup.step()
        w.now += 10
        sup.step()
    w.now += 60
    sup.step()
    w.started("bird")[-1].rc = 1
    sup.step()
    w.now += 1.0
    n = len(w.started("bird"))
    sup.step()
    assert len(w.started("bird")) == n + 1


def test_waits_for_required_file() -> None:
    w = World()
    sup = make(w, Component("bird", ("bird",), requires=("/cfg/bird.cfg",)))
    sup.step()
    assert w.started("bird") == []
    w.files.add("/cfg/bird.cfg")
    sup.step()
    assert len(w.started("bird")) == 1


def test_stop_terms_then_kills_stragglers() -> None:
    w = World()
    sup = make(w, Component("a", ("a",)), Component("b", ("b",)))
    sup.step()
    a, b = w.started("a")[0], w.started("b")[0]
    b.ignore_term = True

    def sleep(s: float) -> None:
        w.now += s

    sup.stop(timeout=1.0, sleep=sleep)
    assert a.signals == [signal.SIGTERM]
    assert b.signals == [signal.SIGTERM, signal.SIGKILL]
    assert all(s.pid is None for s in sup.status())
