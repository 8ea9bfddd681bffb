"""Debounce, minimum interval and retry backoff (confd.schedule), on a fake clock."""

from __future__ import annotations

import itertools

from confd.schedule import Coalescer, Timing

T = Timing(debounce=0.02, min_interval=1.0, max_delay=1.0, retry_initial=0.25, retry_max=5.0)


def test_nothing_is_due_before_in_sync() -> None:
    c = Coalescer(T)
    c.changed(0.0)
    assert c.deadline() is None
    c.in_sync = True
    assert c.deadline() == 0.02


def test_lone_change_runs_after_debounce() -> None:
    c = Coalescer(T)
    c.in_sync = True
    c.changed(10.0)
    assert not c.due(10.01)
    assert c.due(10.02)


def test_flood_gives_one_pass_per_min_interval() -> None:
    c = Coalescer(T)
    c.in_sync = True
    passes = []
    now = 0.0
    while now < 3.0:  # a change every 5 ms for 3 s
        c.changed(now)
        if c.due(now):
            c.started(now)
            c.succeeded()
            passes.append(now)
        now = round(now + 0.005, 3)
    while c.deadline() is not None:  # drain the tail
        now = max(now, c.deadline() or now)
        c.started(now)
        passes.append(now)
    # 600 changes over 3 s: a pass at 1 s, 2 s and one covering the tail, no more.
    assert len(passes) == 3
    assert passes[-1] >= 2.995
    assert all(b - a >= 1.0 for a, b in itertools.pairwise(passes))


def test_no_pass_sooner_than_min_interval_after_the_last() -> None:
    c = Coalescer(T)
    c.in_sync = True
    c.changed(0.0)
    c.started(0.02)
    c.changed(0.1)
    assert not c.due(0.5)
    assert c.deadline() == 1.02


def test_retry_backoff_doubles_to_cap_and_resets() -> None:
    c = Coalescer(T)
    c.in_sync = True
    delays = []
    now = 0.0
    for _ in range(7):
        c.started(now)
        delays.append(c.failed(now))
        assert c.deadline() == now + delays[-1]
        now += delays[-1]
    assert delays == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]
    c.started(now)
    c.succeeded()
    assert c.deadline() is None
    assert c.failed(now) == 0.25
