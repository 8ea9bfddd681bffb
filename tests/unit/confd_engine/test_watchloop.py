"""The watch loop's owner thread (confd.watchloop.WatchLoop) fed by a scripted syncer."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path

from confd import processor, resource, schedule, watchloop
from libcalico.datastore.syncer import StatusChanged, SyncStatus, Update, Updates
from libcalico.model import keys
from tests.unit.confd_engine.test_engine import FakeRender, Shell

NODE_KEY = keys.resource_key("Node", "n1")
FAST = schedule.Timing(debounce=0.0, min_interval=0.0, max_delay=0.0)


class ScriptedSyncer:
    def __init__(self, sink: Callable[[object], None]) -> None:
        self.sink = sink
        self.started = self.stopped = False

    def start(self) -> None:
        self.started = True

    def stop(self) -> None:
        self.stopped = True


Started = tuple[watchloop.WatchLoop, FakeRender, "queue.Queue[processor.PassResult]",
                threading.Thread, list[ScriptedSyncer]]


def start(tmp_path: Path) -> Started:
    text = '[template]\nsrc = "bird.t"\ndest = "/cfg/bird.cfg"\nreload_cmd = "reload"\n'
    res = [resource.parse(text, name="bird.toml", node="n1", dest_root=tmp_path,
                          default_uid=os.geteuid(), default_gid=os.getegid())]
    render = FakeRender()
    engine = processor.Engine(res, render, "n1", {}, shell=Shell())
    results: queue.Queue[processor.PassResult] = queue.Queue()
    syncers: list[ScriptedSyncer] = []

    def make(sink: Callable[[object], None]) -> ScriptedSyncer:
        syncers.append(ScriptedSyncer(sink))
        return syncers[-1]

    loop = watchloop.WatchLoop(engine, make, FAST, on_pass=results.put)
    t = threading.Thread(target=loop.run, daemon=True)
    t.start()
    return loop, render, results, t, syncers


def test_nothing_renders_before_in_sync_and_unchanged_values_render_nothing(
        tmp_path: Path) -> None:
    loop, render, results, t, syncers = start(tmp_path)
    dest = tmp_path / "cfg/bird.cfg"
    try:
        loop.queue.put(StatusChanged(SyncStatus.WAIT_FOR_DATASTORE))
        loop.queue.put(Updates((Update(NODE_KEY, "{}", "5"), Update("rev", "1", "5"))))
        loop.queue.put(StatusChanged(SyncStatus.RESYNC_IN_PROGRESS))
        assert results.empty() and render.calls == 0
        loop.queue.put(StatusChanged(SyncStatus.IN_SYNC))
        first = results.get(timeout=10)
        assert first.ok and first.changed == ("bird.toml",)
        assert dest.read_text() == "bird.t rev=1\n"
        # the same value again is not a change; a new value is one pass
        loop.queue.put(Updates((Update("rev", "1", "6"),)))
        loop.queue.put(Updates((Update("rev", "2", "7"),)))
        second = results.get(timeout=10)
        assert second.changed == ("bird.toml",)
        assert render.calls == 2
        assert dest.read_text() == "bird.t rev=2\n"
        # datastore lost: changes are held until it is back in sync
        loop.queue.put(StatusChanged(SyncStatus.WAIT_FOR_DATASTORE))
        loop.queue.put(Updates((Update("rev", "3", "8"),)))
        loop.queue.put(StatusChanged(SyncStatus.IN_SYNC))
        third = results.get(timeout=10)
        assert third.changed == ("bird.toml",) and dest.read_text() == "bird.t rev=3\n"
        assert render.calls == 3
    finally:
        loop.stop()
        t.join(10)
    assert not t.is_alive()
    assert syncers[0].started and syncers[0].stopped


def test_failed_pass_is_retried_without_new_data(tmp_path: Path) -> None:
    loop, render, results, t, _ = start(tmp_path)
    loop.coalescer.timing = schedule.Timing(debounce=0.0, min_interval=0.0, max_delay=0.0,
                                            retry_initial=0.01, retry_max=0.02)
    render.broken.add("bird.t")
    try:
        loop.queue.put(Updates((Update(NODE_KEY, "{}", "5"),)))
        loop.queue.put(StatusChanged(SyncStatus.IN_SYNC))
        assert not results.get(timeout=10).ok
        assert not results.get(timeout=10).ok  # retried on its own
        render.broken.clear()
        while not results.get(timeout=10).ok:
            pass
        assert (tmp_path / "cfg/bird.cfg").exists()
    finally:
        loop.stop()
        t.join(10)


def test_deleted_node_blocks_without_retry_loop(tmp_path: Path) -> None:
    loop, _, results, t, _ = start(tmp_path)
    try:
        loop.queue.put(Updates((Update(NODE_KEY, "{}", "5"),)))
        loop.queue.put(StatusChanged(SyncStatus.IN_SYNC))
        assert results.get(timeout=10).ok
        loop.queue.put(Updates((Update(NODE_KEY, None, "6"),)))
        blocked = results.get(timeout=10)
        assert blocked.blocked
        assert loop.coalescer.deadline() is None, "no retry timer: only new data can help"
        assert (tmp_path / "cfg/bird.cfg").read_text() == "bird.t rev=0\n"
    finally:
        loop.stop()
        t.join(10)
