"""/proc/sys writes: desired values vs what was last read or written."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Protocol

from felix.drivers.deltatracker import DeltaTracker

log = logging.getLogger(__name__)


class SysctlFS(Protocol):
    def read(self, path: str) -> str | None: ...
    def write(self, path: str, value: str) -> None: ...


class ProcSys:
    def __init__(self, root: str = "/proc/sys") -> None:
        self.root = Path(root)
        self._prefix = str(self.root) + "/"

    def read(self, path: str) -> str | None:
        # os-level read: a refresh reads thousands of these (~5x cheaper than pathlib).
        try:
            fd = os.open(self._prefix + path, os.O_RDONLY)
        except OSError:
            return None
        try:
            return os.read(fd, 4096).decode(errors="replace").strip()
        except OSError:
            return None
        finally:
            os.close(fd)

    def write(self, path: str, value: str) -> None:
        (self.root / path).write_text(value + "\n")


class SysctlDriver:
    def __init__(self, fs: SysctlFS) -> None:
        self.fs = fs
        self.tracker: DeltaTracker[str, str] = DeltaTracker()
        self.last_errors: list[str] = []

    def set_desired(self, values: dict[str, str]) -> None:
        self.tracker.set_desired(values)

    def resync(self) -> None:
        current = {}
        for path in self.tracker.desired():
            v = self.fs.read(path)
            if v is not None:
                current[path] = v
        self.tracker.replace_dataplane(current.items())

    def pending(self) -> bool:
        return bool(self.tracker.pending_updates())

    def apply(self) -> tuple[int, int]:
        """Write differing values; returns (values written, writes failed). We never
        "remove" a sysctl: values of deleted interfaces vanish with them, so the believed
        state is simply forgotten."""
        for k in self.tracker.pending_deletions():
            self.tracker.applied_delete(k)
        todo = self.tracker.pending_updates()
        # Read before writing: values already right (restart, or set by someone else)
        # are not rewritten.
        failed = written = 0
        self.last_errors = []
        for path, value in todo.items():
            cur = self.fs.read(path)
            if cur == value:
                self.tracker.applied_update(path, value)
                continue
            try:
                self.fs.write(path, value)
            except OSError as exc:
                failed += 1
                self.last_errors.append(f"{path}: {exc.strerror or exc}")
                continue
            written += 1
            self.tracker.applied_update(path, value)
        if failed:
            log.warning("%d sysctl writes failed (will retry): %s", failed,
                        "; ".join(self.last_errors[:3]))
        return written, failed
