"""Watch mode: the owner thread that follows the datastore (and template edits) and runs passes.

A `libcalico.datastore.syncer.Syncer` feeds a queue; `WatchLoop.run()` (the caller's thread) is
the one owner of the snapshot and the engine: it drains the queue into the snapshot and runs a
pass when `confd.schedule.Coalescer` says so (at once when idle, coalesced under a burst, retry
backoff). Edits under conf.d/ and templates/ arrive on the same queue (`TemplatesChanged`, from
confd.templatewatch); once they settle the whole set is loaded again and kept only if it loads,
renders and passes its checks.

Safety rules (ARCHITECTURE "Safety"): nothing is rendered before the datastore is in sync; a
snapshot without this node's Node resource is never rendered; failed templates never replace
working ones.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from confd import schedule
from confd.metrics import Metrics
from confd.processor import Engine, PassResult, RenderFn
from confd.resource import TemplateResource
from libcalico.datastore import syncer as syncer_mod
from libcalico.errors import CalicoError

log = logging.getLogger(__name__)

_STOP = object()


class SyncerLike(Protocol):
    def start(self) -> None: ...

    def stop(self) -> None: ...


SyncerFactory = Callable[[Callable[[object], None]], SyncerLike]
"""Makes a syncer that delivers its events to the given sink."""

TemplateLoader = Callable[[], tuple[Sequence[TemplateResource], RenderFn]]
"""Loads conf.d/ and templates/ again (raises CalicoError saying why it cannot)."""

TEMPLATE_SETTLE = 0.2
"""Seconds without a further edit before edited templates are loaded (an editor's save is
several file events)."""


@dataclass(frozen=True, slots=True)
class TemplatesChanged:
    """An edit under conf.d/ or templates/ (`path`, for the log)."""

    path: str


class WatchLoop:
    """Watch mode. `run()` is the owner thread: it alone touches the snapshot and the engine.

    The syncer thread only puts events on the queue; `stop()` (from any thread or a signal
    handler) puts a sentinel that ends `run()`.
    """

    def __init__(
        self,
        engine: Engine,
        make_syncer: SyncerFactory,
        timing: schedule.Timing = schedule.DEFAULT_TIMING,
        clock: Callable[[], float] = time.monotonic,
        on_pass: Callable[[PassResult], None] | None = None,
        load_templates: TemplateLoader | None = None,
        metrics: Metrics | None = None,
        on_templates: Callable[[str], None] | None = None,
        template_settle: float = TEMPLATE_SETTLE,
    ) -> None:
        self.engine = engine
        self.make_syncer = make_syncer
        self.clock = clock
        self.coalescer = schedule.Coalescer(timing)
        self.queue: queue.Queue[object] = queue.Queue()
        self.snapshot: dict[str, str] = {}
        self.revision = ""
        """The revision of the last update taken in (opaque: only logged)."""
        self.rendered = False
        """A pass has succeeded since start."""
        self.on_pass = on_pass
        self.load_templates = load_templates
        self.metrics = metrics
        self.on_templates = on_templates
        """Called after each template load with why it failed ("" when it succeeded)."""
        self.template_settle = template_settle
        self.templates_at: float | None = None
        """When edited templates are to be loaded (None: no edit pending)."""
        self.template_error = ""
        """Why the last template load failed ("" when it succeeded)."""
        self._unverified: tuple[tuple[Sequence[TemplateResource], RenderFn],
                                Sequence[TemplateResource]] | None = None
        """(the templates to go back to, the new resources) while templates loaded out of
        sync wait for their first pass."""
        self._was_in_sync = False

    def stop(self) -> None:
        self.queue.put(_STOP)

    def run(self) -> None:
        syncer = self.make_syncer(self.queue.put)
        syncer.start()
        try:
            self._loop()
        finally:
            syncer.stop()

    def _loop(self) -> None:
        while True:
            deadline = self.coalescer.deadline()
            if self.templates_at is not None:
                deadline = self.templates_at if deadline is None else min(deadline,
                                                                          self.templates_at)
            timeout = None if deadline is None else max(0.0, deadline - self.clock())
            try:
                item = self.queue.get(timeout=timeout)
            except queue.Empty:
                item = None
            while item is not None:
                if item is _STOP:
                    return
                self._handle(item)
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    item = None
            now = self.clock()
            if self.templates_at is not None and now >= self.templates_at:
                self._reload_templates(now)
            elif self.coalescer.due(now):
                result = self._pass(now)
                if self._unverified is not None:
                    self._verify_templates(result, now)

    def _handle(self, event: object) -> None:
        if isinstance(event, TemplatesChanged):
            if self.load_templates is not None:
                log.debug("template change: %s", event.path)
                self.templates_at = self.clock() + self.template_settle
            return
        if isinstance(event, syncer_mod.Updates):
            changed = False
            for u in event.updates:
                self.revision = str(u.revision)
                if u.value is None:
                    changed |= self.snapshot.pop(u.key, None) is not None
                elif self.snapshot.get(u.key) != u.value:
                    self.snapshot[u.key] = u.value
                    changed = True
            if changed:
                self.coalescer.changed(self.clock())
        elif isinstance(event, syncer_mod.StatusChanged):
            in_sync = event.status == syncer_mod.SyncStatus.IN_SYNC
            if in_sync and not self._was_in_sync:
                log.info("datastore in sync: %d keys at revision %s", len(self.snapshot),
                         self.revision)
                if not self.rendered or self.coalescer.dirty:
                    self.coalescer.changed(self.clock())
            elif not in_sync and self._was_in_sync:
                log.warning("datastore %s: holding the current configuration",
                            event.status.name.lower())
            self._was_in_sync = in_sync
            self.coalescer.in_sync = in_sync

    def _reload_templates(self, now: float) -> None:
        """Load the edited templates; keep them only if they load, render and pass their
        checks, else go on with the running ones and say why (log, metrics)."""
        assert self.load_templates is not None
        self.templates_at = None
        if self._unverified is not None:  # an edit on top of unverified ones: from the last good
            self.engine.swap(*self._unverified[0])
            self._unverified = None
        try:
            resources, render = self.load_templates()
        except CalicoError as exc:
            self._templates_failed(str(exc))
            return
        old = self.engine.swap(resources, render)
        if not self.coalescer.in_sync or not self.snapshot:
            # Nothing to render them from yet: the next pass checks them (_verify_templates).
            log.info("templates loaded; the next pass renders and checks them")
            self._unverified = (old, resources)
            return
        try:
            self.engine.trial(self.snapshot)
        except CalicoError as exc:
            self.engine.swap(*old)
            self._templates_failed(str(exc))
            return
        result = self._pass(now, edit=True, retry=False)
        if result.ok or result.blocked:
            self._templates_loaded(resources, "rendered")
            return
        self.engine.swap(*old)
        self._templates_failed("; ".join(why for _, why in sorted(result.failed.items())))
        self._pass(now, edit=True)  # what the new templates changed, the old render again

    def _verify_templates(self, result: PassResult, now: float) -> None:
        """The first pass with templates loaded while out of sync: keep them if it worked."""
        assert self._unverified is not None
        old, resources = self._unverified
        if result.blocked:
            return  # not rendered yet: still to be verified
        self._unverified = None
        if result.ok:
            self._templates_loaded(resources, "rendered")
            return
        self.engine.swap(*old)
        self._templates_failed("; ".join(why for _, why in sorted(result.failed.items())))
        self._pass(now, edit=True)

    def _templates_loaded(self, resources: Sequence[TemplateResource], how: str) -> None:
        self.template_error = ""
        log.info("templates reloaded (%s): %s", how, ",".join(r.name for r in resources))
        if self.metrics is not None:
            self.metrics.templates_loaded()
        if self.on_templates is not None:
            self.on_templates("")

    def _templates_failed(self, why: str) -> None:
        self.template_error = why
        log.error("template reload failed, keeping the running templates and configuration: "
                  "%s", why)
        if self.metrics is not None:
            self.metrics.templates_failed()
        if self.on_templates is not None:
            self.on_templates(why)

    def _pass(self, now: float, *, edit: bool = False, retry: bool = True) -> PassResult:
        """One pass. `edit`: run for a template edit (not a datastore flood); `retry`: schedule
        a retry if it fails."""
        retrying = not self.coalescer.dirty and not edit
        self.coalescer.started(now, quiet=edit)
        if retrying:
            log.info("retrying the failed resources")
        try:
            result = self.engine.apply(self.snapshot, self.revision)
        except CalicoError as exc:  # defensive: a pass never kills the daemon
            log.error("pass failed: %s", exc)
            result = PassResult(failed={"*": str(exc)})
        if result.ok:
            self.rendered = True
            self.coalescer.succeeded()
        elif result.blocked:
            # Only new data can help: wait for the next change, no retry loop.
            self.coalescer.succeeded()
        elif retry:
            delay = self.coalescer.failed(self.clock())
            log.warning("%d resource(s) failed, retrying in %.2fs", len(result.failed), delay)
        if self.metrics is not None:
            self.metrics.passes.inc()
            if result.failed:
                self.metrics.pass_failures.inc()
        if self.on_pass is not None:
            self.on_pass(result)
        return result
