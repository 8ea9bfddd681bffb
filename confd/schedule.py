"""When to render: at once when idle, coalesced under a burst, capped retry backoff.

Pure bookkeeping driven by an injected clock value (`now`, seconds, monotonic). The watch
loop asks `deadline()` how long it may block on its queue and `due(now)` whether to run a
pass now.

Rules:
- **Idle: at once.** A change that finds the engine idle (no pass for at least the pass
  spacing, nothing pending) is due immediately: a lone change is rendered as soon as it
  arrives (with every change already queued behind it).
- **Burst: coalesced.** Changes arriving after that pass are held: the next pass runs once the
  datastore has been quiet for `debounce` seconds, or `max_delay` seconds after the first held
  change, whichever is first, but never sooner than the pass spacing after the previous pass.
- The spacing is `min_interval` after a pass that found the datastore quiet (or ran at once),
  and doubles (up to `max_spacing`) after each held pass that had to cut into a flood of
  changes still arriving: passes at about 0, 1, 3, 7, 11 ... s into a flood with the defaults,
  so a flood of 500 writes gives 2 passes (and as many reloads per BIRD) if it lasts under
  1 s, 3 if under 3 s, however fast or slow its writes come in.
- A failed pass is retried without new data after a backoff that starts at `retry_initial`
  and doubles up to `retry_max`; any success resets it (confd's 250 ms -> 5 s).
- Nothing runs before the datastore is in sync (`in_sync`).
"""

from __future__ import annotations

from dataclasses import dataclass

PURE = True


@dataclass(frozen=True, slots=True)
class Timing:
    debounce: float = 0.02
    min_interval: float = 1.0
    max_delay: float = 1.0
    max_spacing: float = 4.0
    retry_initial: float = 0.25
    retry_max: float = 5.0


DEFAULT_TIMING = Timing()


class Coalescer:
    def __init__(self, timing: Timing = DEFAULT_TIMING) -> None:
        self.timing = timing
        self.in_sync = False
        self._first_change: float | None = None
        self._last_change = 0.0
        self._last_pass: float | None = None
        self._retry_at: float | None = None
        self._backoff = timing.retry_initial
        self._flood = 0
        """Consecutive passes that ran while changes were still arriving."""
        self._at_once = False
        """The pending changes found the engine idle: they are due at once."""

    @property
    def dirty(self) -> bool:
        return self._first_change is not None

    def changed(self, now: float) -> None:
        """The datastore changed at `now`."""
        if self._first_change is None:
            # Idle (nothing pending, no pass for at least the spacing): due at once.
            self._at_once = self._last_pass is None or now >= self._last_pass + self.spacing()
            self._first_change = now
        self._last_change = now

    def deadline(self) -> float | None:
        """The earliest time a pass may be due, or None when nothing is pending."""
        if not self.in_sync:
            return None
        t = self.timing
        candidates: list[float] = []
        if self._first_change is not None:
            if self._at_once:
                at = self._first_change
            else:
                at = min(self._last_change + t.debounce, self._first_change + t.max_delay)
                if self._last_pass is not None:
                    at = max(at, self._last_pass + self.spacing())
            candidates.append(at)
        if self._retry_at is not None:
            candidates.append(self._retry_at)
        return min(candidates) if candidates else None

    def spacing(self) -> float:
        """The minimum time between the previous pass and the next one."""
        t = self.timing
        spacing: float = t.min_interval * 2.0 ** self._flood
        return min(spacing, max(t.max_spacing, t.min_interval))

    def due(self, now: float) -> bool:
        at = self.deadline()
        return at is not None and now >= at

    def started(self, now: float, quiet: bool = False) -> None:
        """A pass starts now and takes in every change seen so far (`quiet`: it was not
        caused by datastore changes, so it cannot be cutting into a flood of them)."""
        if self._first_change is not None or quiet:
            quiet = quiet or self._at_once or now - self._last_change >= self.timing.debounce
            self._flood = 0 if quiet else min(self._flood + 1, 16)
        self._first_change = None
        self._at_once = False
        self._last_pass = now
        self._retry_at = None

    def succeeded(self) -> None:
        self._backoff = self.timing.retry_initial

    def failed(self, now: float) -> float:
        """The pass failed: schedule a retry; returns the delay chosen."""
        delay = self._backoff
        self._retry_at = now + delay
        self._backoff = min(self._backoff * 2, self.timing.retry_max)
        return delay
