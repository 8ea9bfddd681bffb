"""Block hints: which block a host last took an address from, per IP version, and that
block as the host's last assignment wrote it.

An assignment reads the hinted block in the same transaction as the host's affinities, so
while that block has room an assignment needs no second read. With the block as last
written (value and revision), a batching backend that can commit and read in one
transaction takes the next address speculatively: the block's compare-and-swap at that
revision succeeds only if nobody changed the block since, and the state read in the same
transaction checks that the assignment was allowed (see `assignment.py`). A hint is only a
guess: a stale one costs nothing but the speculation.

`MemoryHints` lives as long as its IPAMClient; `HintFile` keeps the hints in a small JSON
file so that a new process (a CNI call) starts with them. Losing or corrupting the file
costs one read, nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any, Protocol

from libcalico import logger
from libcalico.datastore.api import KVPair

log = logger.get(__name__)


class BlockHints(Protocol):
    def get(self, host: str, version: int) -> list[str]:
        """Block keys to read first (most likely first); [] when none."""
        ...

    def put(self, host: str, version: int, block_keys: list[str]) -> None: ...

    def block(self, host: str, version: int) -> KVPair | None:
        """The hinted block as this host's last assignment wrote it, if known."""
        ...

    def put_block(self, host: str, version: int, kv: KVPair) -> None:
        """Remember `kv` as written (its key becomes the hint)."""
        ...


class MemoryHints:
    def __init__(self) -> None:
        self._hints: dict[tuple[str, int], list[str]] = {}
        self._blocks: dict[tuple[str, int], KVPair] = {}

    def get(self, host: str, version: int) -> list[str]:
        return self._hints.get((host, version), [])

    def put(self, host: str, version: int, block_keys: list[str]) -> None:
        self._hints[(host, version)] = list(block_keys)
        kv = self._blocks.get((host, version))
        if kv is not None and kv.key not in block_keys:
            del self._blocks[(host, version)]

    def block(self, host: str, version: int) -> KVPair | None:
        return self._blocks.get((host, version))

    def put_block(self, host: str, version: int, kv: KVPair) -> None:
        self._hints[(host, version)] = [kv.key]
        self._blocks[(host, version)] = kv


class HintFile:
    """Hints in `path` (`{"<host>/<version>": {"keys": [...], "block": [key, value,
    revision]}}`), read once, rewritten when a hint changes."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._doc: dict[str, dict[str, Any]] | None = None

    def _load(self) -> dict[str, dict[str, Any]]:
        if self._doc is None:
            self._doc = {}
            with contextlib.suppress(OSError, ValueError):
                doc = json.loads(self.path.read_text())
                if isinstance(doc, dict):
                    self._doc = {str(k): v for k, v in doc.items() if isinstance(v, dict)}
        return self._doc

    def get(self, host: str, version: int) -> list[str]:
        keys = self._load().get(f"{host}/{version}", {}).get("keys")
        return [str(k) for k in keys] if isinstance(keys, list) else []

    def block(self, host: str, version: int) -> KVPair | None:
        got = self._load().get(f"{host}/{version}", {}).get("block")
        if isinstance(got, list) and len(got) == 3 and all(isinstance(x, str) for x in got):
            return KVPair(got[0], got[1], got[2])
        return None

    def put(self, host: str, version: int, block_keys: list[str]) -> None:
        entry = self._load().get(f"{host}/{version}", {})
        if entry.get("keys") == block_keys:
            return
        block = entry.get("block")
        keep = isinstance(block, list) and block and block[0] in block_keys
        self._save(host, version, {"keys": list(block_keys),
                                   **({"block": block} if keep else {})})

    def put_block(self, host: str, version: int, kv: KVPair) -> None:
        self._save(host, version, {"keys": [kv.key], "block": [kv.key, kv.value, kv.revision]})

    def _save(self, host: str, version: int, entry: dict[str, Any]) -> None:
        doc = self._load()
        doc[f"{host}/{version}"] = entry
        data = json.dumps(doc, sort_keys=True).encode()
        # Rewritten in place (a rename costs 50 times more on a journalled file system): a
        # torn or garbled file costs only the hint, since a block is written from a hint
        # only while the datastore holds exactly the hinted value.
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT, 0o600)
            try:
                os.write(fd, data)
                os.ftruncate(fd, len(data))
            finally:
                os.close(fd)
        except OSError as exc:  # a hint is an optimisation: never fail an assignment for it
            log.debug("could not write IPAM hints to %s: %s", self.path, exc)
