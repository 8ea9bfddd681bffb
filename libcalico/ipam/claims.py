"""Block claims and affinities: finding a host's blocks, claiming a new block through a
pending affinity confirmed once the block names the host, reclaiming empty foreign blocks,
and releasing affinities (a host's, or one block's)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from types import EllipsisType

from libcalico.datastore.api import KVPair
from libcalico.errors import AlreadyExists, Conflict, NotFound
from libcalico.ipam import block as blk
from libcalico.ipam import gojson
from libcalico.ipam.block import Block, IPNetwork
from libcalico.ipam.records import (
    Affinity,
    AffinityState,
    IPAMConfig,
    Pool,
    candidate_blocks,
    reserved_ordinals,
)
from libcalico.ipam.store import RETRIES, BlockLimitError, IPAMStore, RetriesExhausted
from libcalico.model import keys

log = logging.getLogger(__name__)

EMPTY_BLOCK_MIN_RECLAIM_AGE_S = 60


class BlockClaims(IPAMStore):
    def _affine_blocks(self, host: str, version: int,
                       pools: Sequence[Pool] | None = None) -> list[tuple[IPNetwork, KVPair]]:
        return self._affine_from(self.backend.list(keys.affinity_prefix(host, version)).kvs,
                                 pools)

    @staticmethod
    def _affine_from(kvs: Iterable[KVPair], pools: Sequence[Pool] | None
                     ) -> list[tuple[IPNetwork, KVPair]]:
        out = []
        for kv in kvs:
            parsed = keys.parse_affinity_key(kv.key)
            if parsed is None:
                continue
            cidr = parsed[2]
            if pools is None or any(cidr.subnet_of(p.cidr) for p in pools):  # type: ignore[arg-type]
                out.append((cidr, kv))
        return out

    def _find_or_claim_block(self, host: str, version: int, pools: Sequence[Pool],
                             reservations: list[IPNetwork], cfg: IPAMConfig, limit: int,
                             affine: list[tuple[IPNetwork, KVPair]] | None = None,
                             prefetched: dict[str, KVPair] | None = None
                             ) -> KVPair | None:
        """A block affine to `host` with a free, unreserved address; claims a new one when
        none has room. None when no block can be had (the caller may borrow). Raises
        BlockLimitError when the host holds its limit of blocks."""
        if affine is None:
            affine = self._affine_blocks(host, version, pools)
        usable = [(c, a, rsv) for c, a in affine
                  if len(rsv := reserved_ordinals(c, reservations)) < c.num_addresses]
        if prefetched:
            # the hinted block (read with the rest of the state) first
            for cidr, aff_kv, rsv in usable:
                pre = prefetched.get(keys.block_key(cidr))
                if pre is None or not blk.has_free(pre.value, rsv):
                    continue
                kv = self._block_from_affinity(host, cidr, aff_kv, pre)
                if kv is not None and self._decode(kv).num_free(rsv) > 0:
                    return kv
            prefetched = None
        if self._batch is not None and usable:
            # every affine block in one round trip instead of one read per block
            prefetched = self._batch.read_many([keys.block_key(c) for c, _, _ in usable])[0]
        for cidr, aff_kv, rsv in usable:
            if prefetched is not None:
                pre = prefetched.get(keys.block_key(cidr))
                if pre is not None and not blk.has_free(pre.value, rsv):
                    continue  # full: no need to decode or verify it
            kv = self._block_from_affinity(
                host, cidr, aff_kv,
                prefetched.get(keys.block_key(cidr)) if prefetched is not None else ...)
            if kv is not None and self._decode(kv).num_free(rsv) > 0:
                return kv
        if len(self._affine_blocks(host, version)) >= limit:
            raise BlockLimitError()
        if not cfg.auto_allocate_blocks:
            return None
        for _ in range(RETRIES):
            found = self._find_usable_block(host, version, pools, reservations)
            if found is None:
                return None
            claimed = self._claim_block(host, found)
            if claimed is not None:
                return claimed
        raise RetriesExhausted()

    def _block_from_affinity(self, host: str, cidr: IPNetwork, aff_kv: KVPair,
                             block_kv: KVPair | EllipsisType | None = ...) -> KVPair | None:
        """The block an affinity points at: created if missing, the affinity confirmed if
        pending, and a stale affinity (block owned by another host) deleted (→ None).
        `block_kv`: the block as already read (None: absent), or ... to read it here."""
        aff = Affinity.decode(aff_kv.value, aff_kv.key)
        if aff.state == AffinityState.PENDING_DELETION:
            return None
        if block_kv is ...:
            try:
                block_kv = self.backend.get(keys.block_key(cidr))
            except NotFound:
                block_kv = None
        if block_kv is None:
            return self._claim_block(host, cidr)
        kv = block_kv
        b = self._decode(kv)
        if b.affinity != f"host:{host}":
            self._delete_quietly(aff_kv.key, aff_kv.revision)
            return None
        if not aff.confirmed:
            self._set_affinity(host, cidr, AffinityState.CONFIRMED)
        return kv

    def _find_usable_block(self, host: str, version: int, pools: Sequence[Pool],
                           reservations: list[IPNetwork]) -> IPNetwork | None:
        existing = {}
        for kv in self.backend.list(keys.block_prefix(version)).kvs:
            c = keys.parse_block_key(kv.key)
            if c is not None:
                existing[c] = kv
        empty_foreign: list[tuple[IPNetwork, KVPair]] = []
        for pool in pools:
            for cidr in candidate_blocks(pool, host, seed=self.clock_ns()):
                rsv = reserved_ordinals(cidr, reservations)
                if len(rsv) >= cidr.num_addresses:
                    continue
                bkv = existing.get(cidr)
                if bkv is None:
                    return cidr
                b = self._decode(bkv)
                if b.affinity == f"host:{host}" and b.num_free(rsv) > 0:
                    return cidr
                if b.affinity is not None and b.is_empty():
                    empty_foreign.append((cidr, bkv))
        now = self.clock_ns() // 1_000_000_000
        for cidr, kv in empty_foreign:
            b = self._decode(kv)
            claimed = b.affinity_claim_time
            if claimed is None:
                continue
            age = now - gojson.parse_rfc3339(claimed)
            if age < EMPTY_BLOCK_MIN_RECLAIM_AGE_S:
                continue
            owner = b.host()
            if owner and self._release_affinity(owner, cidr, require_empty=True,
                                                require_sequence=b.sequence_number):
                log.info("reclaimed empty block %s from host %s", cidr, owner)
                return cidr
        return None

    def _set_affinity(self, host: str, cidr: IPNetwork, state: str) -> KVPair:
        """Create the affinity in `state`, or CAS an existing one to it."""
        key = keys.affinity_key(host, cidr)
        value = Affinity(state=state).encode()
        for _ in range(RETRIES):
            try:
                return self.backend.create(key, value)
            except AlreadyExists:
                pass
            try:
                kv = self.backend.get(key)
            except NotFound:
                continue
            if kv.value == value:
                return kv
            try:
                return self.backend.update(key, value, kv.revision)
            except (Conflict, NotFound):
                continue
        raise RetriesExhausted()

    def _claim_block(self, host: str, cidr: IPNetwork) -> KVPair | None:
        """pending affinity → create the block naming us → confirmed affinity. None when
        another host owns the block (our pending affinity is removed)."""
        key = keys.affinity_key(host, cidr)
        try:
            pending = self.backend.get(key)
        except NotFound:
            pending = self._set_affinity(host, cidr, AffinityState.PENDING)
        else:
            if not Affinity.decode(pending.value, key).confirmed:
                pending = self._set_affinity(host, cidr, AffinityState.PENDING)
        now = self.clock_ns()
        new = Block.new(cidr, f"host:{host}", claim_time=gojson.rfc3339(now),
                        sequence_number=now)
        try:
            kv = self.backend.create(keys.block_key(cidr), blk.encode(new))
        except AlreadyExists:
            kv = self.backend.get(keys.block_key(cidr))
            if self._decode(kv).affinity != f"host:{host}":
                self._delete_quietly(key, None)
                return None
        else:
            log.info("claimed block %s for host %s", cidr, host)
        if not Affinity.decode(pending.value, key).confirmed:
            self._set_affinity(host, cidr, AffinityState.CONFIRMED)
        return kv

    # ---- affinities and hosts ----------------------------------------------------------
    def _release_affinity(self, host: str, cidr: IPNetwork, *, require_empty: bool,
                          require_sequence: int | None = None) -> bool:
        """pendingDeletion → block deleted (empty) or made unaffine → affinity deleted.
        False when the block is not empty (with `require_empty`) or changed."""
        akey = keys.affinity_key(host, cidr)
        for _ in range(RETRIES):
            try:
                akv = self.backend.get(akey)
            except NotFound:
                return True
            try:
                bkv = self.backend.get(keys.block_key(cidr))
            except NotFound:
                self._delete_quietly(akey, akv.revision)
                return True
            b = self._decode(bkv)
            if require_sequence is not None and b.sequence_number != require_sequence:
                return False
            if b.affinity != f"host:{host}":
                self._delete_quietly(akey, akv.revision)
                return True
            if require_empty and not b.is_empty():
                return False
            try:
                self.backend.update(akey, Affinity(AffinityState.PENDING_DELETION).encode(),
                                    akv.revision)
            except (Conflict, NotFound):
                continue
            try:
                if b.is_empty():
                    self.backend.delete(bkv.key, bkv.revision)
                else:
                    self.backend.update(bkv.key, blk.encode(
                        b.with_affinity(None, None).next_sequence()), bkv.revision)
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

