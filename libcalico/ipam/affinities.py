"""Block affinities: listing a host's, setting and confirming one, and releasing them.

Every change of a block's `affinity` goes through the host's affinity record first: a claim
creates the affinity (pending) before the block, a release marks it `pendingDeletion` before
the block is deleted or made unaffine. So an affinity unchanged since a read in which the
block named its host means the block still names it; the settling of unfinished claims
(`claims.py`) relies on that. With a batching backend a release is one transaction (the
affinity and the block together), so it never leaves a `pendingDeletion` record behind.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Sequence

from libcalico.datastore.api import KVPair
from libcalico.errors import AlreadyExists, Conflict, NotFound
from libcalico.ipam import block as blk
from libcalico.ipam.block import IPNetwork
from libcalico.ipam.records import Affinity, AffinityState, Pool
from libcalico.ipam.store import RETRIES, IPAMStore, RetriesExhausted
from libcalico.model import keys

CONFIRMED = Affinity(AffinityState.CONFIRMED).encode()
PENDING = Affinity(AffinityState.PENDING).encode()
PENDING_DELETION = Affinity(AffinityState.PENDING_DELETION).encode()


@functools.lru_cache(maxsize=1024)
def affinity_cidr(key: str) -> IPNetwork | None:
    """The block CIDR of an affinity key (None: not one); keys repeat, so parsed once."""
    parsed = keys.parse_affinity_key(key)
    return parsed[2] if parsed is not None else None


def affinity_state(kv: KVPair) -> str:
    """The record's state ("" for the empty value of old data, which counts as confirmed)."""
    if kv.value == CONFIRMED:  # nearly always: no need to decode it
        return AffinityState.CONFIRMED
    return Affinity.decode(kv.value, kv.key).state


def is_confirmed(kv: KVPair) -> bool:
    return affinity_state(kv) in (AffinityState.CONFIRMED, "")


class AffinityOps(IPAMStore):
    def _affine_blocks(self, host: str, version: int,
                       pools: Sequence[Pool] | None = None) -> list[tuple[IPNetwork, KVPair]]:
        return self._affine_from(self.backend.list(keys.affinity_prefix(host, version)).kvs,
                                 pools)

    @staticmethod
    def _affine_from(kvs: Iterable[KVPair], pools: Sequence[Pool] | None
                     ) -> list[tuple[IPNetwork, KVPair]]:
        out = []
        for kv in kvs:
            cidr = affinity_cidr(kv.key)
            if cidr is None:
                continue
            if pools is None or any(cidr.subnet_of(p.cidr) for p in pools):  # type: ignore[arg-type]
                out.append((cidr, kv))
        return out

    def _set_affinity(self, host: str, cidr: IPNetwork, state: str) -> KVPair:
        """Create the affinity in `state`, or CAS an existing one to it."""
        key = keys.affinity_key(host, cidr)
        value = Affinity(state=state).encode()
        for _ in range(RETRIES):
            try:
                return self.backend.create(key, value)
            except AlreadyExists:
                pass
            kv = self._get(key)
            if kv is None:
                continue
            if kv.value == value:
                return kv
            try:
                return self.backend.update(key, value, kv.revision)
            except (Conflict, NotFound):
                continue
        raise RetriesExhausted()

    def _confirm(self, host: str, cidr: IPNetwork, aff: KVPair) -> KVPair:
        """Confirm `aff` (as read) by compare-and-swap; if it changed meanwhile, set it."""
        if is_confirmed(aff):
            return aff
        try:
            return self.backend.update(aff.key, CONFIRMED, aff.revision)
        except (Conflict, NotFound):
            return self._set_affinity(host, cidr, AffinityState.CONFIRMED)

    def _release_affinity(self, host: str, cidr: IPNetwork, *, require_empty: bool,
                          require_sequence: int | None = None) -> bool:
        """The block deleted (empty) or made unaffine, then the affinity deleted: in one
        transaction with a batching backend, else through `pendingDeletion`. False when the
        block is not empty (with `require_empty`) or its sequence changed."""
        akey, bkey = keys.affinity_key(host, cidr), keys.block_key(cidr)
        marked: KVPair | None = None  # our pendingDeletion mark, to undo if we give up
        for _ in range(RETRIES):
            got = self._read([akey, bkey])[0]
            akv, bkv = got.get(akey), got.get(bkey)
            if akv is None:
                return True
            if bkv is None:
                self._delete_quietly(akey, akv.revision)
                return True
            b = self._decode(bkv)
            if b.affinity != f"host:{host}":
                self._delete_quietly(akey, akv.revision)
                return True
            if (require_sequence is not None and b.sequence_number != require_sequence) or \
                    (require_empty and not b.is_empty()):
                if marked is not None and marked.revision == akv.revision:
                    # we marked it and then lost the block to a writer: put it back
                    with contextlib.suppress(Conflict, NotFound):
                        self.backend.update(akey, CONFIRMED, akv.revision)
                return False
            new_block = None if b.is_empty() else \
                blk.encode(b.with_affinity(None, None).next_sequence())
            if self._batch is not None:
                try:
                    self._batch.commit([
                        ("delete", akey, None, akv.revision),
                        ("delete", bkey, None, bkv.revision) if new_block is None
                        else ("update", bkey, new_block, bkv.revision)])
                    return True
                except Conflict:
                    continue
            try:
                marked = self.backend.update(akey, PENDING_DELETION, akv.revision)
            except (Conflict, NotFound):
                continue
            try:
                if new_block is None:
                    self.backend.delete(bkey, bkv.revision)
                else:
                    self.backend.update(bkey, new_block, bkv.revision)
            except (Conflict, NotFound):
                continue
            self._delete_quietly(akey, None)
            return True
        raise RetriesExhausted()

    def release_affinity(self, cidr: IPNetwork, host: str, must_be_empty: bool = False) -> bool:
        return self._release_affinity(host, cidr, require_empty=must_be_empty)

    def release_host_affinities(self, host: str, must_be_empty: bool = False) -> int:
        n = 0
        for version in (4, 6):
            for cidr, _ in self._affine_blocks(host, version):
                if self._release_affinity(host, cidr, require_empty=must_be_empty):
                    n += 1
        return n

    def remove_ipam_host(self, host: str) -> None:
        """Release every affinity of `host` (its addresses stay allocated, now borrowed)."""
        self.release_host_affinities(host)
        self._delete_quietly(keys.ipam_host_key(host), None)
