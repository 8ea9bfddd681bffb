"""The processing engine: snapshot -> render every resource -> stage/check/replace -> reload.

`Engine.apply(snapshot)` is one pass over every template resource. The three modes drive it:

- `onetime`: list the datastore once, one pass, return how many resources failed.
- `run_interval`: list and pass every `interval` seconds until stopped.
- `confd.watchloop.WatchLoop`: the default. A `libcalico.datastore.syncer.Syncer` follows the
  datastore and feeds a queue; one owner thread (the caller's) drains it into the snapshot and
  runs passes when `confd.schedule.Coalescer` says so.

Safety rules (ARCHITECTURE "Safety"): nothing is rendered before the datastore is in sync; a
snapshot without this node's Node resource is never rendered (the working config stays, an
error is logged); a resource that fails to render or check keeps its dest.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Protocol

import libcalico.datastore.kubernetes_service as kservice
from confd import render as render_mod
from confd import resource as resource_mod
from confd import stage
from confd.inputs import SECRETS_PREFIX
from confd.resource import TemplateResource
from libcalico.datastore.api import Backend
from libcalico.errors import CommandFailed, DatastoreError
from libcalico.model import keys

log = logging.getLogger(__name__)

WATCHED_KINDS = ("Node", "BGPPeer", "BGPConfiguration", "BGPFilter", "IPPool")


def prefixes(node: str, kubernetes: bool = False) -> tuple[str, ...]:
    """The datastore prefixes confd reads for `node` (the Renderer's snapshot contract): the
    BGP-related resources, this node's block affinities and the BGP password secrets; with
    `kubernetes` (KDD) also the Services and EndpointSlices (service IP advertisement) and
    the WorkloadEndpoints (pods: `localWorkloadSelector` peers)."""
    out = (*(keys.resource_prefix(k) for k in WATCHED_KINDS), keys.affinity_prefix(node),
           SECRETS_PREFIX)
    if kubernetes:
        out += (kservice.SERVICES_PREFIX, kservice.SLICES_PREFIX,
                keys.resource_prefix("WorkloadEndpoint"))
    return out


class RenderFn(Protocol):
    def __call__(self, snapshot: Mapping[str, str], node: str, environ: Mapping[str, str],
                 jobs: Sequence[render_mod.RenderJob]) -> dict[str, str]: ...


@dataclass(frozen=True, slots=True)
class PassResult:
    changed: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)
    """Resource name -> error message."""
    reloads: tuple[str, ...] = ()
    """reload_cmd lines run, in order."""
    blocked: str = ""
    """Why nothing was rendered at all (e.g. this node's Node resource is missing)."""

    @property
    def ok(self) -> bool:
        return not self.failed and not self.blocked


class Engine:
    """One pass = render all resources from one snapshot, then sync each, then reload."""

    def __init__(
        self,
        resources: Sequence[TemplateResource],
        render: RenderFn,
        node: str,
        environ: Mapping[str, str],
        options: stage.Options = stage.DEFAULT_OPTIONS,
        shell: stage.Shell = stage.run_shell,
        diff_out: IO[str] | None = None,
    ) -> None:
        self.resources = resource_mod.processing_order(resources)
        self.render = render
        self.node = node
        self.environ = dict(environ)
        self.options = options
        self.shell = shell
        self.diff_out = diff_out
        self.reload_count = 0
        self._pending_reloads: dict[str, list[str]] = {}
        """reload_cmd -> resource names whose reload failed: rerun on the next pass, since
        their dest is already up to date and will not change again."""

    def swap(self, resources: Sequence[TemplateResource],
             render: RenderFn) -> tuple[Sequence[TemplateResource], RenderFn]:
        """Use these template resources and renderer from the next pass on; returns the ones
        in use until now (to swap back)."""
        old = (self.resources, self.render)
        self.resources = resource_mod.processing_order(resources)
        self.render = render
        return old

    def trial(self, snapshot: Mapping[str, str]) -> None:
        """Render every resource from `snapshot` without writing anything; raises RenderError
        for the first that fails (nothing to try without this node's Node resource)."""
        if keys.resource_key("Node", self.node) not in snapshot:
            return
        for batch in _unique_src_batches(self.resources):
            self.render(snapshot, self.node, self.environ, [r.job() for r in batch])

    def apply(self, snapshot: Mapping[str, str], revision: object = "") -> PassResult:
        """One pass. `revision` is only logged (opaque: the datastore's, as last seen)."""
        started = time.monotonic()
        node_key = keys.resource_key("Node", self.node)
        if node_key not in snapshot:
            why = (f"no Node resource {self.node!r} in the datastore "
                   f"({len(snapshot)} keys): keeping the current configuration")
            log.error("confd pass rev=%s skipped: %s", revision, why)
            return PassResult(blocked=why)
        texts, failed = self._render_all(snapshot)
        changed: list[TemplateResource] = []
        previous: dict[str, stage.FileState | None] = {}
        for res in self.resources:
            if res.name in failed:
                continue
            try:
                outcome = stage.sync(res, texts[res.name], self.options, self.shell)
            except stage.SyncError as exc:
                failed[res.name] = str(exc)
                log.error("%s", exc)
                continue
            if outcome.changed:
                changed.append(res)
                previous[res.name] = outcome.previous
                if outcome.diff and self.diff_out is not None:
                    self.diff_out.write(outcome.diff)
                    self.diff_out.flush()
                if not self.options.noop:
                    log.info("%s: updated %s", res.name, res.dest)
        if not self.options.noop and not self.options.sync_only:
            rejected = self._check_groups(changed, previous, failed)
            changed = [r for r in changed if r.name not in rejected]
        reloads = self._reload(changed, failed)
        log.info(
            "confd pass rev=%s resources=%d changed=%d reloads=%d failed=%d took=%.3fs%s",
            revision, len(self.resources), len(changed), len(reloads), len(failed),
            time.monotonic() - started, " (noop)" if self.options.noop else "",
        )
        return PassResult(changed=tuple(r.name for r in changed), failed=failed,
                          reloads=tuple(reloads))

    def _render_all(self, snapshot: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
        """Resource name -> text, and resource name -> error for those that failed."""
        texts: dict[str, str] = {}
        batch_error = ""
        for batch in _unique_src_batches(self.resources):
            try:
                out = self.render(snapshot, self.node, self.environ, [r.job() for r in batch])
                texts.update((r.name, out[r.src]) for r in batch)
            except render_mod.RenderError as exc:
                batch_error = str(exc)
                break
        else:
            return texts, {}
        # Find out which resources fail, so that the others are still brought up to date.
        texts = {}
        failed: dict[str, str] = {}
        for res in self.resources:
            try:
                texts[res.name] = self.render(snapshot, self.node, self.environ,
                                              [res.job()])[res.src]
            except render_mod.RenderError as exc:
                failed[res.name] = f"{res.name}: render failed, {res.dest} left as it was: {exc}"
                log.error("%s", failed[res.name])
        if not failed:  # the batch failed but every job alone works: report the batch error
            for res in self.resources:
                failed[res.name] = f"{res.name}: render failed: {batch_error}"
            log.error("render failed: %s", batch_error)
        return texts, failed

    def _check_groups(self, changed: Sequence[TemplateResource],
                      previous: Mapping[str, stage.FileState | None],
                      failed: dict[str, str]) -> set[str]:
        """Check fragments through the file that includes them; put back rejected ones.

        A resource without a check_cmd (bird_aggr.cfg, bird_ipam.cfg) cannot be checked alone.
        Its group is the resources sharing its reload_cmd (the files one BIRD reads). When a
        fragment changed but the group's checked file did not (so it was not checked with the
        new fragment on its stage file), that file's check_cmd runs on its dest, which now
        includes the new fragment. If it fails, the group's changed fragments are put back as
        they were, so the files on disk always form a configuration BIRD accepts (BIRD must
        still be able to start from them after a restart), and nothing is reloaded for them.
        """
        changed_names = {r.name for r in changed}
        groups: dict[str, list[TemplateResource]] = {}
        for r in self.resources:
            if r.reload_cmd:
                groups.setdefault(r.reload_cmd, []).append(r)
        rejected: set[str] = set()
        for members in groups.values():
            fragments = [m for m in members if not m.check_cmd and m.name in changed_names]
            checkers = [m for m in members if m.check_cmd and m.name not in changed_names]
            if not fragments:
                continue
            problem = ""
            for chk in checkers:
                if not chk.dest.exists():
                    continue  # nothing installed yet that BIRD could load
                try:
                    stage.check(chk, chk.dest, self.shell)
                except CommandFailed as exc:
                    problem = f"rejected by {chk.name}'s check_cmd on {chk.dest}: " \
                              f"{stage.why(exc)}"
                    break
            if not problem:
                continue
            for frag in fragments:
                try:
                    stage.restore(frag, previous.get(frag.name))
                    back = "put back as it was"
                except (stage.SyncError, OSError) as exc:
                    back = f"could not be put back: {exc}"
                failed[frag.name] = f"{frag.name}: {problem}; {frag.dest} {back}"
                log.error("%s", failed[frag.name])
                rejected.add(frag.name)
        return rejected

    def _reload(self, changed: Sequence[TemplateResource], failed: dict[str, str]) -> list[str]:
        if self.options.noop or self.options.sync_only:
            return []
        commands, self._pending_reloads = self._pending_reloads, {}
        for res in changed:
            if res.reload_cmd:
                commands.setdefault(res.reload_cmd, []).append(res.name)
        done: list[str] = []
        for command, names in commands.items():
            label = ",".join(dict.fromkeys(names))
            try:
                stage.reload(label, command, self.shell)
                self.reload_count += 1
                done.append(command)
            except stage.SyncError as exc:
                log.error("%s", exc)
                self._pending_reloads[command] = names
                for n in names:
                    failed[n] = str(exc)
        return done


def _unique_src_batches(
        resources: Sequence[TemplateResource]) -> list[list[TemplateResource]]:
    """Split resources into render calls in which each template `src` appears once (the
    renderer answers by src; two resources may use one template with different keys)."""
    batches: list[list[TemplateResource]] = []
    for r in resources:
        for b in batches:
            if all(o.src != r.src for o in b):
                b.append(r)
                break
        else:
            batches.append([r])
    return batches


def load_snapshot(backend: Backend, node: str, kubernetes: bool = False
                  ) -> tuple[dict[str, str], str]:
    """List every prefix confd reads; returns (key -> value, the first listing's revision,
    for the log: revisions are opaque and belong to their prefix)."""
    snapshot: dict[str, str] = {}
    revision = ""
    for p in prefixes(node, kubernetes):
        listing = backend.list(p)
        revision = revision or str(listing.revision)
        snapshot.update((kv.key, kv.value) for kv in listing.kvs)
    return snapshot, revision


def onetime(engine: Engine, backend: Backend, kubernetes: bool = False,
            local: Callable[[], Mapping[str, str]] | None = None) -> PassResult:
    """One listing and one pass. `local`: keys read from this host (endpoint-status files)."""
    snapshot, revision = load_snapshot(backend, engine.node, kubernetes)
    if local is not None:
        snapshot.update(local())
    return engine.apply(snapshot, revision)


def run_interval(engine: Engine, backend: Backend, interval: float, stop: threading.Event,
                 kubernetes: bool = False,
                 local: Callable[[], Mapping[str, str]] | None = None) -> None:
    """Poll mode (kelseyhightower/confd's default): list and pass every `interval` seconds."""
    while not stop.is_set():
        try:
            onetime(engine, backend, kubernetes, local)
        except DatastoreError as exc:
            log.error("datastore read failed, keeping the current configuration: %s", exc)
        stop.wait(interval)
