"""Block hints: which block a host last took an address from, per IP version.

An assignment reads the hinted block in the same transaction as the host's affinities, so
while that block has room an assignment needs no second read. A hint is only a guess: the
hinted block is used only when the host's confirmed affinity for it is in the same read.

`MemoryHints` lives as long as its IPAMClient; `HintFile` keeps the hints in a small JSON
file so that a new process (a CNI call) starts with them. Losing or corrupting the file
costs one read, nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Protocol

from libcalico import logger

log = logger.get(__name__)


class BlockHints(Protocol):
    def get(self, host: str, version: int) -> list[str]:
        """Block keys to read first (most likely first); [] when none."""
        ...

    def put(self, host: str, version: int, block_keys: list[str]) -> None: ...


class MemoryHints:
    def __init__(self) -> None:
        self._hints: dict[tuple[str, int], list[str]] = {}

    def get(self, host: str, version: int) -> list[str]:
        return self._hints.get((host, version), [])

    def put(self, host: str, version: int, block_keys: list[str]) -> None:
        self._hints[(host, version)] = list(block_keys)


class HintFile:
    """Hints in `path` (`{"<host>/<version>": [block key, …]}`), read once, rewritten
    (atomically: a temporary file renamed over it) only when a hint changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._doc: dict[str, list[str]] | None = None

    def _load(self) -> dict[str, list[str]]:
        if self._doc is None:
            self._doc = {}
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(self.path.read_text())
                if isinstance(doc, dict):
                    self._doc = {str(k): [str(x) for x in v] for k, v in doc.items()
                                 if isinstance(v, list)}
        return self._doc

    def get(self, host: str, version: int) -> list[str]:
        return list(self._load().get(f"{host}/{version}", []))

    def put(self, host: str, version: int, block_keys: list[str]) -> None:
        doc = self._load()
        name = f"{host}/{version}"
        if doc.get(name) == block_keys:
            return
        doc[name] = list(block_keys)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        try:
            tmp.write_text(json.dumps(doc, sort_keys=True))
            os.replace(tmp, self.path)
        except OSError as exc:  # a hint is an optimisation: never fail an assignment for it
            log.debug("could not write IPAM hints to %s: %s", self.path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()
