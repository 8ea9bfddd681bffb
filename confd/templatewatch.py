"""Watching `conf.d/` and `templates/` for edits (watchdog), and loading them as one set.

    templates = load(confdir, node=..., dest_root=...)   # TemplateSet, or CalicoError saying why
    watcher = TemplateWatcher(confdir, sink=loop.queue.put)   # sink(TemplatesChanged(path))
    watcher.start(); ...; watcher.stop()

The watcher only reports that something changed (from watchdog's thread, through the sink);
the watch loop's owner thread waits for the edits to settle, loads the whole set again and
swaps it in only if it loads, renders and passes its checks (confd.watchloop.WatchLoop).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from watchdog.events import DirModifiedEvent, FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from confd import resource
from confd.render import Renderer
from confd.resource import TemplateResource
from confd.watchloop import TemplatesChanged


@dataclass(frozen=True)
class TemplateSet:
    """Template resources and the renderer holding their compiled templates."""

    resources: Sequence[TemplateResource]
    renderer: Renderer


def load(confdir: Path, *, node: str, dest_root: Path | None = None) -> TemplateSet:
    """Read every `conf.d/*.toml` and compile the templates they name, with their includes.
    Raises ConfigError (a TOML) or RenderError (a template) naming the file and the problem."""
    resources = resource.load_dir(confdir, node=node, dest_root=dest_root)
    renderer = Renderer(confdir / "templates")
    for r in resources:
        renderer.template(r.src)
    return TemplateSet(resources, renderer)


class _Handler(FileSystemEventHandler):
    def __init__(self, sink: Callable[[object], None]) -> None:
        self.sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, DirModifiedEvent) or event.event_type in ("opened", "closed_no_write"):
            return  # a directory's mtime, or a read: nothing a template depends on
        path = event.dest_path or event.src_path
        self.sink(TemplatesChanged(path if isinstance(path, str) else path.decode()))


class TemplateWatcher:
    """watchdog observer on `<confdir>/conf.d` and `<confdir>/templates` (recursive)."""

    def __init__(self, confdir: Path, sink: Callable[[object], None]) -> None:
        self.dirs = [d for d in (confdir / "conf.d", confdir / "templates") if d.is_dir()]
        self._observer = Observer()
        handler = _Handler(sink)
        for d in self.dirs:
            self._observer.schedule(handler, str(d.resolve()), recursive=True)
        self._observer.daemon = True

    def start(self) -> None:
        self._observer.start()

    def stop(self) -> None:
        self._observer.stop()
        self._observer.join(10)
