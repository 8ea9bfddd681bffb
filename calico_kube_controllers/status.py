"""Readiness as Calico's kube-controllers reports it: a JSON status file (default
`/status/status.json`, `{"Readiness": {"<controller>": {"Ready": bool, "Reason": str}}}`)
rewritten whenever a condition changes, and read by `calico-kube-controllers check-status
-r` / `-l` (Calico's `check-status`): ready when there is at least one condition and all are
ready; otherwise the reasons of those that are not, joined by "; "."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path

from libcalico import atomicfile

log = logging.getLogger(__name__)

DEFAULT_STATUS_FILE = Path("/status/status.json")


class Status:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.readiness: dict[str, tuple[bool, str]] = {}

    def set_ready(self, key: str, ready: bool, reason: str = "") -> None:
        with self._lock:
            if self.readiness.get(key) == (ready, reason):
                return
            self.readiness[key] = (ready, reason)
            doc = {"Readiness": {k: {"Ready": r, "Reason": why}
                                 for k, (r, why) in sorted(self.readiness.items())}}
            if self.path is None:
                return
            try:  # under the lock: an older snapshot must not replace a newer one
                atomicfile.write_text(self.path, json.dumps(doc, separators=(",", ":")),
                                      prefix=".status-")
            except OSError as exc:
                log.warning("cannot write status file %s: %s", self.path, exc)

    def ready(self) -> bool:
        with self._lock:
            return bool(self.readiness) and all(r for r, _ in self.readiness.values())


def check(path: Path) -> tuple[bool, str]:
    """(ready, message) from a status file, as Calico's check-status prints it."""
    try:
        doc = json.loads(path.read_text())
        conds = doc.get("Readiness") or {}
        states = [(bool(c.get("Ready")), str(c.get("Reason") or "")) for c in conds.values()]
    except (OSError, ValueError, AttributeError) as exc:
        return False, f"Failed to read status file {path}: {exc}"
    if states and all(r for r, _ in states):
        return True, "Ready"
    return False, "; ".join(why for r, why in states if not r)
