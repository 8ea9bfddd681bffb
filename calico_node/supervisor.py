"""Runs calico-node's components (bird, bird6, confd, felix) and keeps them running.

One owner thread (the caller of `run`) starts every component, reaps the ones that exit and
restarts them after a backoff that starts at `backoff_initial` seconds (runsv waits 1 s),
doubles up to `backoff_max` and resets once a process has stayed up for `stable_after`
seconds. A component may wait for a file (BIRD waits for the config confd renders).
`stop()` sends SIGTERM to every child, waits, then SIGKILLs what is left.
Processes, the clock and the wait are injected so that the logic is tested without them.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Component:
    name: str
    argv: tuple[str, ...]
    env: Mapping[str, str] | None = None
    requires: tuple[str, ...] = ()
    """Files that must exist before the component is started (BIRD's config)."""


class Process(Protocol):
    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def send_signal(self, sig: int) -> None: ...

    def kill(self) -> None: ...


Spawner = Callable[[Component], Process]
Clock = Callable[[], float]
Exists = Callable[[str], bool]


def popen_spawner(log_dir: str | None = None) -> Spawner:
    """Start a component as a child process in its own process group."""

    def spawn(c: Component) -> Process:
        out: int | None = None
        if log_dir:
            os.makedirs(log_dir, exist_ok=True)
            out = os.open(os.path.join(log_dir, f"{c.name}.log"),
                          os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            return _GroupProcess(subprocess.Popen(
                list(c.argv), env=dict(c.env) if c.env is not None else None,
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT if out else None,
                start_new_session=True,
            ))
        finally:
            if out is not None:
                os.close(out)

    return spawn


class _GroupProcess:
    """A child started in its own session: signals go to its whole process group."""

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen = popen

    @property
    def pid(self) -> int:
        return self._popen.pid

    def poll(self) -> int | None:
        return self._popen.poll()

    def send_signal(self, sig: int) -> None:
        try:
            os.killpg(self._popen.pid, sig)
        except (ProcessLookupError, PermissionError):
            if self._popen.poll() is None:
                self._popen.send_signal(sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


@dataclass
class _State:
    component: Component
    proc: Process | None = None
    started_at: float = 0.0
    next_start: float = 0.0
    delay: float = 0.0
    restarts: int = 0
    waiting_logged: bool = False


@dataclass(frozen=True, slots=True)
class Status:
    name: str
    pid: int | None
    restarts: int


@dataclass
class Supervisor:
    components: Sequence[Component]
    spawner: Spawner
    clock: Clock = time.monotonic
    exists: Exists = os.path.exists
    backoff_initial: float = 1.0
    backoff_max: float = 30.0
    stable_after: float = 10.0
    _states: list[_State] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        self._states = [_State(c, delay=self.backoff_initial) for c in self.components]

    def step(self) -> float:
        """Reap, restart what is due; returns how long to wait before the next step."""
        now = self.clock()
        wait = 1.0
        for st in self._states:
            if st.proc is not None:
                rc = st.proc.poll()
                if rc is None:
                    if now - st.started_at >= self.stable_after:
                        st.delay = self.backoff_initial
                    continue
                ran = now - st.started_at
                if ran >= self.stable_after:
                    st.delay = self.backoff_initial
                log.warning("component exited name=%s pid=%d rc=%s ran=%.1fs restart_in=%.1fs",
                            st.component.name, st.proc.pid, rc, ran, st.delay)
                st.proc = None
                st.next_start = now + st.delay
                st.delay = min(st.delay * 2, self.backoff_max)
                st.restarts += 1
            if now < st.next_start:
                wait = min(wait, st.next_start - now)
                continue
            missing = [f for f in st.component.requires if not self.exists(f)]
            if missing:
                if not st.waiting_logged:
                    log.info("component waiting name=%s for=%s", st.component.name, missing[0])
                    st.waiting_logged = True
                wait = min(wait, 0.2)
                continue
            try:
                st.proc = self.spawner(st.component)
            except OSError as exc:
                log.error("component failed to start name=%s error=%s", st.component.name, exc)
                st.next_start = now + st.delay
                st.delay = min(st.delay * 2, self.backoff_max)
                continue
            st.started_at = now
            st.waiting_logged = False
            log.info("component started name=%s pid=%d", st.component.name, st.proc.pid)
        return max(wait, 0.05)

    def run(self, stop: threading.Event, poll: float = 0.2) -> None:
        """Step until `stop` is set, then stop every component."""
        try:
            while not stop.is_set():
                stop.wait(min(self.step(), poll))
        finally:
            self.stop()

    def stop(self, timeout: float = 10.0, sleep: Callable[[float], None] = time.sleep) -> None:
        live = [st for st in self._states if st.proc is not None and st.proc.poll() is None]
        for st in live:
            assert st.proc is not None
            _signal(st.proc, signal.SIGTERM)
        deadline = self.clock() + timeout
        while any(st.proc is not None and st.proc.poll() is None for st in live):
            if self.clock() >= deadline:
                for st in live:
                    if st.proc is not None and st.proc.poll() is None:
                        log.warning("component did not stop, killing name=%s",
                                    st.component.name)
                        _signal(st.proc, signal.SIGKILL)
                break
            sleep(0.05)
        stopped = [st.component.name for st in live]
        for st in self._states:
            st.proc = None
        log.info("components stopped names=%s", ",".join(stopped) or "-")

    def status(self) -> tuple[Status, ...]:
        return tuple(
            Status(st.component.name, st.proc.pid if st.proc is not None else None, st.restarts)
            for st in self._states
        )


def _signal(proc: Process, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
