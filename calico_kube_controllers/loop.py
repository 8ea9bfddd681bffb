"""One owner thread per controller, fed by a queue: producers (informer threads, the
periodic timer, tests) `kick(reason)`; the owner drains the queue, coalesces what it holds
into one reconcile and runs it. A failed reconcile is retried after `retry_s`."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

from calico_kube_controllers.status import Status

log = logging.getLogger(__name__)

_STOP = "\0stop"


class Loop:
    def __init__(self, name: str, reconcile: Callable[[], object], status: Status, *,
                 interval_s: float | None = None, retry_s: float = 5.0,
                 ready: Callable[[], bool] | None = None) -> None:
        self.name = name
        self.reconcile = reconcile
        self.status = status
        self.interval_s = interval_s
        self.retry_s = retry_s
        self.ready = ready or (lambda: True)
        self.queue: queue.Queue[str] = queue.Queue()
        self.passes = 0
        self.failures = 0
        self._done = threading.Condition()
        self._thread: threading.Thread | None = None

    def kick(self, reason: str = "kick") -> None:
        self.queue.put(reason)

    def start(self) -> None:
        self.status.set_ready(self.name, False, f"{self.name} controller is starting")
        self._thread = threading.Thread(target=self.run, name=f"{self.name} controller",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout=30)

    def wait_passes(self, n: int, timeout: float) -> bool:
        """Block until `n` reconciles have finished (tests and the daemon's start-up)."""
        with self._done:
            return self._done.wait_for(lambda: self.passes >= n, timeout)

    def run(self) -> None:
        timeout = self.interval_s
        while True:
            try:
                reasons = [self.queue.get(timeout=timeout)]
            except queue.Empty:
                reasons = ["periodic"]
            while True:
                try:
                    reasons.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            if _STOP in reasons:
                return
            if not self.ready():
                timeout = 0.1  # caches not synced yet: look again soon
                continue
            timeout = self.interval_s
            try:
                self.reconcile()
            except Exception as exc:
                self.failures += 1
                log.warning("%s reconcile failed (%s): %s; retrying in %.0fs", self.name,
                            ",".join(sorted(set(reasons))), exc, self.retry_s)
                self.status.set_ready(self.name, False, f"{self.name}: {exc}")
                timeout = self.retry_s
            else:
                self.status.set_ready(self.name, True)
            with self._done:
                self.passes += 1
                self._done.notify_all()
