"""At once when idle, coalesced under a burst (debounce, spacing), retry backoff
(confd.schedule), on a fake clock."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from confd.schedule import Coalescer, Timing

T = Timing(debounce=0.02, min_interval=1.0, max_delay=1.0, max_spacing=4.0,
           retry_initial=0.25, retry_max=5.0)


def test_nothing_is_due_before_in_sync() -> None:
    c = Coalescer(T)
    c.changed(0.0)
    assert c.deadline() is None
    c.in_sync = True
    assert c.deadline() == 0.0


def test_lone_change_runs_at_once() -> None:
    c = Coalescer(T)
    c.in_sync = True
    c.changed(10.0)
    assert c.due(10.0)
    c.started(10.0)
    assert c.deadline() is None
    c.changed(11.0)  # a spacing later: idle again
    assert c.due(11.0)


def test_changes_after_a_pass_are_held_until_the_spacing() -> None:
    c = Coalescer(T)
    c.in_sync = True
    c.changed(10.0)
    c.started(10.0)
    c.changed(10.3)
    c.changed(10.31)
    assert c.deadline() == 11.0, "held until a spacing after the pass"
    c.started(11.0)
    assert c.spacing() == 1.0, "the burst was over: no doubling"
    c.changed(11.5)
    assert c.deadline() == 12.0
    c.started(12.0)
    c.changed(13.2)
    assert c.due(13.2), "idle again"


def test_a_pass_that_ran_at_once_does_not_count_as_cutting_into_a_flood() -> None:
    c = Coalescer(T)
    c.in_sync = True
    c.changed(0.0)
    c.changed(0.0)
    c.started(0.0)
    assert c.spacing() == 1.0


def flood(seconds: float, every: float = 0.005) -> list[float]:
    """Pass times for a change every `every` s during `seconds`, then until all is done."""
    c = Coalescer(T)
    c.in_sync = True
    passes = []
    now = 0.0
    while now < seconds:
        c.changed(now)
        if c.due(now):
            c.started(now)
            c.succeeded()
            passes.append(now)
        now = round(now + every, 3)
    while (at := c.deadline()) is not None:  # drain the tail
        now = max(now, at)
        c.started(now)
        passes.append(now)
    return passes


@pytest.mark.parametrize(("seconds", "most"), [(0.5, 2), (1.5, 3), (3.0, 3), (6.0, 4), (20, 8)])
def test_floods_give_logarithmically_few_passes(seconds: float, most: int) -> None:
    passes = flood(seconds)
    assert 1 <= len(passes) <= most, passes
    assert passes[0] == 0.0, "the first change of a flood runs at once"
    assert passes[-1] >= seconds - 0.005, "the last change is always rendered"
    gaps = [b - a for a, b in itertools.pairwise(passes)]
    assert all(g >= 1.0 for g in gaps)
    assert all(g <= 4.0 + 0.02 for g in gaps), "spacing is capped"


def test_quiet_pass_resets_the_spacing() -> None:
    c = Coalescer(T)
    c.in_sync = True
    for i in range(400):  # 2 s flood
        now = i * 0.005
        c.changed(now)
        if c.due(now):
            c.started(now)
    assert c.spacing() > 1.0
    at = c.deadline()
    assert at is not None
    c.started(at + 1)  # the datastore has been quiet since
    assert c.spacing() == 1.0
    c.changed(at + 10)
    assert c.deadline() == at + 10, "a lone change after the flood: at once"


def test_no_pass_sooner_than_min_interval_after_the_last() -> None:
    c = Coalescer(T)
    c.in_sync = True
    c.changed(0.0)
    c.started(0.02)
    c.changed(0.1)
    assert not c.due(0.5)
    assert c.deadline() == 1.02
    c.started(1.02)
    c.changed(1.5)
    c.changed(1.51)
    assert c.deadline() == 2.02


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


@given(st.lists(st.floats(min_value=0.0, max_value=0.5, allow_nan=False), min_size=1,
                max_size=300))
def test_every_change_is_rendered_and_passes_are_spaced(gaps: list[float]) -> None:
    """For any arrival pattern: every change is covered by a pass that starts after it,
    passes are at least min_interval apart, and a flood never gives more passes than
    one per min_interval of its length plus one."""
    c = Coalescer(T)
    c.in_sync = True
    changes: list[float] = []
    passes: list[float] = []
    now = 0.0
    for g in gaps:
        nxt = now + g
        while (at := c.deadline()) is not None and at <= nxt:  # passes due before it
            now = max(now, at)
            c.started(now)
            passes.append(now)
        now = nxt
        c.changed(now)
        changes.append(now)
    while (at := c.deadline()) is not None:
        now = max(now, at)
        c.started(now)
        passes.append(now)
    assert passes and passes[-1] >= changes[-1]
    for ch in changes:
        assert any(p >= ch for p in passes)
    assert all(b - a >= T.min_interval - 1e-9 for a, b in itertools.pairwise(passes))
    span = changes[-1] - changes[0]
    assert len(passes) <= span / T.min_interval + 2
