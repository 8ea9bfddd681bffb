"""Edited templates in watch mode (confd.watchloop.WatchLoop): swapped in only when they load,
render and pass their checks; otherwise the running templates and files stay, and the log and
the metrics say why."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from confd import processor, resource, schedule, watchloop
from confd.metrics import Metrics
from confd.render import RenderJob
from confd.watchloop import TemplatesChanged
from libcalico.datastore.syncer import StatusChanged, SyncStatus, Update, Updates
from libcalico.errors import ConfigError
from libcalico.model import keys
from tests.unit.confd_engine.test_engine import FakeRender, Shell

NODE_KEY = keys.resource_key("Node", "n1")
FAST = schedule.Timing(debounce=0.0, min_interval=0.0, max_delay=0.0)


class Render(FakeRender):
    """Renders `<src> <tag>`; `broken` sources raise, as a template error would."""

    def __init__(self, tag: str) -> None:
        super().__init__()
        self.tag = tag

    def __call__(self, snapshot: Mapping[str, str], node: str, environ: Mapping[str, str],
                 jobs: Sequence[RenderJob]) -> dict[str, str]:
        out = super().__call__(snapshot, node, environ, jobs)
        return {k: f"{v.strip()} {self.tag}\n" for k, v in out.items()}


def toml(tmp_path: Path, check: str = "") -> list[resource.TemplateResource]:
    text = (f'[template]\nsrc = "bird.t"\ndest = "/cfg/bird.cfg"\nreload_cmd = "reload"\n'
            f'check_cmd = "{check}"\n')
    return [resource.parse(text, name="bird.toml", node="n1", dest_root=tmp_path,
                           default_uid=os.geteuid(), default_gid=os.getegid())]


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.shell = Shell()
        self.next: object = (toml(tmp_path), Render("v1"))
        engine = processor.Engine(toml(tmp_path), Render("v1"), "n1", {}, shell=self.shell)
        self.metrics = Metrics()
        self.passes: queue.Queue[processor.PassResult] = queue.Queue()
        self.loads: queue.Queue[str] = queue.Queue()
        self.loop = watchloop.WatchLoop(
            engine, lambda sink: _NoSyncer(), FAST, on_pass=self.passes.put,
            load_templates=self._load, metrics=self.metrics, on_templates=self.loads.put,
            template_settle=0.0)
        self.thread = threading.Thread(target=self.loop.run, daemon=True)
        self.thread.start()
        self.dest = tmp_path / "cfg/bird.cfg"

    def _load(self) -> tuple[Sequence[resource.TemplateResource], processor.RenderFn]:
        if isinstance(self.next, Exception):
            raise self.next
        return self.next  # type: ignore[return-value]

    def edit(self, next_load: object) -> str:
        self.next = next_load
        self.loop.queue.put(TemplatesChanged("templates/bird.t"))
        return self.loads.get(timeout=10)

    def metric(self, name: str) -> float:
        value = self.metrics.registry.get_sample_value(name)
        assert value is not None, name
        return value

    def close(self) -> None:
        self.loop.stop()
        self.thread.join(10)


class _NoSyncer:
    def start(self) -> None: ...

    def stop(self) -> None: ...


def started(tmp_path: Path) -> Harness:
    h = Harness(tmp_path)
    h.loop.queue.put(Updates((Update(NODE_KEY, "{}", "5"),)))
    h.loop.queue.put(StatusChanged(SyncStatus.IN_SYNC))
    assert h.passes.get(timeout=10).ok
    assert h.dest.read_text() == "bird.t rev=0 v1\n"
    return h


def test_an_edited_template_is_rendered_and_swapped_in(tmp_path: Path) -> None:
    h = started(tmp_path)
    try:
        assert h.edit((toml(tmp_path), Render("v2"))) == ""
        assert h.dest.read_text() == "bird.t rev=0 v2\n"
        assert h.shell.calls.count("reload") == 2
        assert h.metric("confd_template_load_success") == 1
        assert h.metric("confd_template_loads_total") == 1
        # later datastore changes render with the new templates
        h.loop.queue.put(Updates((Update("rev", "7", "6"),)))
        while h.dest.read_text() != "bird.t rev=7 v2\n":
            h.passes.get(timeout=10)
    finally:
        h.close()


def test_a_template_set_that_fails_to_load_keeps_the_running_one(tmp_path: Path) -> None:
    h = started(tmp_path)
    try:
        why = h.edit(ConfigError("bird.toml: unknown key 'owner' in [template]"))
        assert "unknown key 'owner'" in why
        assert h.loop.template_error == why
        assert h.metric("confd_template_load_success") == 0
        assert h.metric("confd_template_errors_total") == 1
        assert h.dest.read_text() == "bird.t rev=0 v1\n"
        h.loop.queue.put(Updates((Update("rev", "8", "6"),)))
        while h.dest.read_text() != "bird.t rev=8 v1\n":  # still the old templates
            h.passes.get(timeout=10)
        assert h.edit((toml(tmp_path), Render("v3"))) == ""  # a fixed edit is taken
        assert h.metric("confd_template_load_success") == 1
        assert h.dest.read_text() == "bird.t rev=8 v3\n"
    finally:
        h.close()


def test_a_template_that_fails_to_render_changes_nothing(tmp_path: Path) -> None:
    h = started(tmp_path)
    try:
        bad = Render("v2")
        bad.broken.add("bird.t")
        why = h.edit((toml(tmp_path), bad))
        assert "'view' is undefined" in why
        assert h.dest.read_text() == "bird.t rev=0 v1\n"
        assert h.shell.calls.count("reload") == 1
        assert h.metric("confd_template_load_success") == 0
    finally:
        h.close()


def test_a_template_whose_output_fails_its_check_leaves_dest_and_old_templates(
        tmp_path: Path) -> None:
    h = started(tmp_path)
    try:
        h.shell.fail.add("check-v2")
        why = h.edit((toml(tmp_path, check="check-v2 {{.src}}"), Render("v2")))
        assert "bird.toml" in why and "boom" in why
        assert h.dest.read_text() == "bird.t rev=0 v1\n"
        assert h.shell.calls.count("reload") == 1
        assert h.metric("confd_template_load_success") == 0
        assert h.metric("confd_template_errors_total") == 1
        h.loop.queue.put(Updates((Update("rev", "9", "6"),)))
        while h.dest.read_text() != "bird.t rev=9 v1\n":
            h.passes.get(timeout=10)
    finally:
        h.close()


def send_edit(h: Harness, next_load: object) -> None:
    h.next = next_load
    h.loop.queue.put(TemplatesChanged("templates/bird.t"))


def test_edits_before_the_datastore_is_in_sync_are_checked_by_the_first_pass(
        tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        send_edit(h, (toml(tmp_path), Render("v2")))
        h.loop.queue.put(Updates((Update(NODE_KEY, "{}", "5"),)))
        h.loop.queue.put(StatusChanged(SyncStatus.IN_SYNC))
        assert h.loads.get(timeout=10) == ""
        assert h.dest.read_text() == "bird.t rev=0 v2\n"
        assert h.metric("confd_template_load_success") == 1
    finally:
        h.close()


def test_edits_before_in_sync_that_fail_their_first_pass_are_dropped(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    try:
        h.shell.fail.add("check-v2")
        send_edit(h, (toml(tmp_path, check="check-v2 {{.src}}"), Render("v2")))
        h.loop.queue.put(Updates((Update(NODE_KEY, "{}", "5"),)))
        h.loop.queue.put(StatusChanged(SyncStatus.IN_SYNC))
        why = h.loads.get(timeout=10)
        assert "boom" in why
        assert h.metric("confd_template_load_success") == 0
        while not h.dest.exists() or h.dest.read_text() != "bird.t rev=0 v1\n":
            h.passes.get(timeout=10)  # rendered by the templates it started with
    finally:
        h.close()
