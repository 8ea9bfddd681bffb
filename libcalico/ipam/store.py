"""The IPAM store: the backend with its decode cache and batched reads, the IPAM config,
pools and node labels, and IPAM's errors. The other IPAM modules build on `IPAMStore`."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from libcalico.datastore.api import Backend, BatchBackend, KVPair, Op, Revision
from libcalico.errors import CalicoError, Conflict, NotFound
from libcalico.ipam import block as blk
from libcalico.ipam.block import Block, IPNetwork
from libcalico.ipam.hints import BlockHints, MemoryHints
from libcalico.ipam.records import IPAMConfig, Pool, node_labels, reserved_cidrs
from libcalico.model import keys

RETRIES = 100

__all__ = ["RETRIES", "BatchBackend", "BlockLimitError", "CommitReadBackend", "IPAMError",
           "IPAMStore", "RetriesExhausted"]


class IPAMError(CalicoError):
    """IPAM could not do what was asked (the message says why)."""


class BlockLimitError(IPAMError):
    def __init__(self) -> None:
        super().__init__("cannot allocate new block due to per host block limit")


class RetriesExhausted(IPAMError):
    def __init__(self) -> None:
        super().__init__("Max retries hit - excessive concurrent IPAM requests")


@runtime_checkable
class CommitReadBackend(Protocol):
    """A further optional capability (the gateway backend has it): a commit and reads in one
    transaction; the reads see the store after the writes when they succeeded, as it is when
    a condition failed (the revision is then None; `failure_keys` are then read too).
    `values` adds conditions on keys' exact current values."""

    def commit_or_read(self, ops: Sequence[Op], keys: Sequence[str],
                       prefixes: Sequence[str] = (), *,
                       values: Mapping[str, str] | None = None,
                       failure_keys: Sequence[str] = ()
                       ) -> tuple[Revision | None, dict[str, KVPair],
                                  dict[str, tuple[KVPair, ...]]]: ...


class IPAMStore:
    def __init__(self, backend: Backend, *, clock_ns: Callable[[], int] = time.time_ns,
                 hints: BlockHints | None = None) -> None:
        self.backend = backend
        self.clock_ns = clock_ns
        self._batch = backend if isinstance(backend, BatchBackend) else None
        self._commit_read = backend if self._batch is not None \
            and isinstance(backend, CommitReadBackend) else None
        self._blocks: dict[tuple[str, Revision], Block] = {}
        self.hints: BlockHints = hints if hints is not None else MemoryHints()
        self._written: KVPair | None = None  # the block as the last batched commit wrote it

    def _decode(self, kv: KVPair) -> Block:
        """Decode a stored block once per (key, revision): an assignment looks at the same
        block value several times (affinity check, free space, allocation)."""
        b = self._blocks.get((kv.key, kv.revision))
        if b is None:
            if len(self._blocks) > 256:
                self._blocks.clear()
            b = self._blocks[(kv.key, kv.revision)] = blk.decode(kv.value, kv.key)
        return b

    def _read(self, keys_: Sequence[str], prefixes: Sequence[str] = ()
              ) -> tuple[dict[str, KVPair], dict[str, tuple[KVPair, ...]]]:
        if self._batch is not None:
            return self._batch.read_many(keys_, prefixes)
        got: dict[str, KVPair] = {}
        for k in keys_:
            with contextlib.suppress(NotFound):
                got[k] = self.backend.get(k)
        return got, {p: self.backend.list(p).kvs for p in prefixes}

    # ---- configuration and pools --------------------------------------------------------
    def get_config(self) -> IPAMConfig:
        try:
            return IPAMConfig.decode(self.backend.get(keys.IPAM_CONFIG_KEY).value)
        except NotFound:
            return IPAMConfig()

    def set_config(self, cfg: IPAMConfig) -> None:
        cfg.validate()
        self.backend.apply(keys.IPAM_CONFIG_KEY, cfg.encode())

    def pools(self) -> list[Pool]:
        """All pools, in name order (the order Calico lists them)."""
        listing = self.backend.list(keys.resource_prefix("IPPool"))
        return [Pool.decode(kv.value, kv.key) for kv in listing.kvs]

    def _node_labels(self, host: str) -> dict[str, str]:
        try:
            return node_labels(self.backend.get(keys.resource_key("Node", host)).value)
        except NotFound:
            raise IPAMError(f"could not find Calico Node {host!r}: create the Node resource "
                            "(calico-node does at startup) or set the right nodename") from None

    def _reservations(self, version: int) -> list[IPNetwork]:
        out: list[IPNetwork] = []
        for kv in self.backend.list(keys.resource_prefix("IPReservation")).kvs:
            out += [c for c in reserved_cidrs(kv.value, kv.key) if c.version == version]
        return out

    def determine_pools(self, version: int, requested: Sequence[IPNetwork], host: str,
                        intended_use: str, all_pools: list[Pool] | None = None,
                        labels: Mapping[str, str] | None = None) -> list[Pool]:
        pools = [p for p in (all_pools if all_pools is not None else self.pools())
                 if p.cidr.version == version and p.usable()]
        if requested:
            by_cidr = {p.cidr: p for p in pools}
            chosen = []
            for cidr in requested:
                if cidr not in by_cidr:
                    raise IPAMError(f"the given pool ({cidr}) does not exist, or is not enabled")
                chosen.append(by_cidr[cidr])
        else:
            if labels is None:
                labels = self._node_labels(host)
            chosen = [p for p in pools if p.assignment_mode == "Automatic"
                      and _selects(p.node_selector, labels)]
            if not chosen:
                raise IPAMError(f"no configured Calico pools for node {host}")
        chosen = [p for p in chosen if intended_use in p.allowed_uses]
        if not chosen:
            raise IPAMError("cannot find a qualified ippool, no pools match the required use "
                            f"({intended_use})")
        return chosen

    def _get(self, key: str) -> KVPair | None:
        try:
            return self.backend.get(key)
        except NotFound:
            return None

    def _delete_quietly(self, key: str, revision: Revision | None) -> None:
        with contextlib.suppress(NotFound, Conflict):
            self.backend.delete(key, revision)


def _selects(selector: str, labels: Mapping[str, str]) -> bool:
    text = selector.strip()
    if text in ("", "all()"):
        return True
    from libcalico.model import selector as sel  # only when a pool has a real selector

    return sel.parse(text).evaluate(labels)
