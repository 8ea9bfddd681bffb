"""Reading Felix's endpoint-status files into confd's snapshot (see confd.epstatus).

    read(directory) -> {"/calico/endpointstatus/<file>": text, ...}
    EndpointStatusWatcher(directory, sink).start()   # watch mode: changes as syncer Updates

The directory is read once before the first render (Calico's confd waits for its local BGP
peer watcher to be in sync too); in watch mode a thread then looks at it every `interval`
seconds (Calico polls every 30 s besides fsnotify) and puts an `Updates` of what changed on
the owner's queue. A missing directory is an empty one.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path

from confd import epstatus
from libcalico.datastore.snapshot import Update, Updates

log = logging.getLogger(__name__)

INTERVAL = 1.0


def read(directory: str | Path) -> dict[str, str]:
    """Key -> text of each regular file in `directory` (unreadable or oversized files are
    left out; the decoder refuses a malformed one with a warning)."""
    out: dict[str, str] = {}
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return out
    for e in entries:
        try:
            if not e.is_file(follow_symlinks=False) or e.name.startswith("."):
                continue
            with open(e.path, "rb") as f:
                data = f.read(epstatus.MAX_BYTES + 1)
        except OSError:
            continue
        out[epstatus.PREFIX + e.name] = data.decode("utf-8", "replace")
    return out


class EndpointStatusWatcher:
    """Polls the directory in a daemon thread; `sink(Updates(...))` for each change."""

    def __init__(self, directory: str | Path, sink: Callable[[object], None],
                 initial: dict[str, str] | None = None, interval: float = INTERVAL) -> None:
        self.directory = directory
        self.sink = sink
        self.interval = interval
        self._known = dict(initial) if initial is not None else read(directory)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="confd-epstatus", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            now = read(self.directory)
            updates = [Update(k, v, "") for k, v in sorted(now.items())
                       if self._known.get(k) != v]
            updates += [Update(k, None, "") for k in sorted(self._known.keys() - now.keys())]
            self._known = now
            if updates:
                log.debug("endpoint status: %d change(s) in %s", len(updates), self.directory)
                self.sink(Updates(tuple(updates)))
