"""Block claims: finding a host's block with room, claiming a new block, reclaiming empty
blocks of other hosts, and settling the host's unfinished claims.

A claim is Calico's two phases (a `pending` affinity, the block created naming the host,
the affinity confirmed) with a plain Backend; with a batching backend the block and the
confirmed affinity are created in one transaction, so a claim leaves nothing half done.

Settling (beyond Calico, which confirms a pending affinity only when an assignment reaches
that block): every assignment first settles every unfinished affinity of its host, the way
Calico's claim would have finished it, each step a compare-and-swap at the revision read:
- `pending`, the block names the host: confirmed (any claimer of this host would confirm it);
- `pending`, the block belongs to another host or to none: deleted (the claim lost);
- `pending`, no block: the claim is finished (create-if-absent of the block naming the host,
  then confirm; a concurrent claimer of the same host does the same and one create wins);
  outside every pool, deleted;
- `pendingDeletion`, no block or not the host's: deleted (the release finished but for it);
- `pendingDeletion`, an empty block naming the host: the release is finished;
- `pendingDeletion` of a block that still holds addresses is left alone (a release in
  progress: whether its addresses stay affine is the releaser's decision).
A lost swap leaves the record to the next assignment. Because every change of a block's
affinity first changes the affinity record (see `affinities.py`), an affinity unchanged since
the snapshot that showed the block naming the host proves the block still does.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import EllipsisType

from libcalico import logger
from libcalico.datastore.api import KVPair
from libcalico.errors import AlreadyExists, Conflict, NotFound
from libcalico.ipam import block as blk
from libcalico.ipam import gojson
from libcalico.ipam.affinities import (
    CONFIRMED,
    PENDING,
    AffinityOps,
    affinity_cidr,
    affinity_state,
    is_confirmed,
)
from libcalico.ipam.block import Block, IPNetwork
from libcalico.ipam.records import (
    AffinityState,
    IPAMConfig,
    Pool,
    candidate_blocks,
    reserved_ordinals,
)
from libcalico.ipam.store import RETRIES, BlockLimitError, RetriesExhausted
from libcalico.model import keys

log = logger.get(__name__)

EMPTY_BLOCK_MIN_RECLAIM_AGE_S = 60


class BlockClaims(AffinityOps):
    # ---- settling unfinished claims -----------------------------------------------------
    def _settle_claims(self, host: str, affinities: Sequence[KVPair], pools: Sequence[Pool]
                       ) -> list[KVPair]:
        """Settle the unconfirmed ones of `affinities` (the host's, as listed); returns the
        host's affinities after it, in key order."""
        unsettled = [(cidr, kv) for kv in affinities
                     if not is_confirmed(kv) and (cidr := affinity_cidr(kv.key)) is not None]
        if not unsettled:
            return list(affinities)
        blocks = self._read([keys.block_key(c) for c, _ in unsettled])[0]
        out = {kv.key: kv for kv in affinities}
        for cidr, kv in unsettled:
            settled = self._settle_one(host, cidr, kv, blocks.get(keys.block_key(cidr)), pools)
            if settled is None:
                del out[kv.key]
            else:
                out[kv.key] = settled
        return [out[k] for k in sorted(out)]

    def _settle_one(self, host: str, cidr: IPNetwork, aff: KVPair, bkv: KVPair | None,
                    pools: Sequence[Pool]) -> KVPair | None:
        """The affinity after settling it (None: deleted)."""
        mine = bkv is not None and self._decode(bkv).affinity == f"host:{host}"
        try:
            if affinity_state(aff) == AffinityState.PENDING:
                if mine:
                    log.info("confirming the unfinished claim of block %s by %s", cidr, host)
                    return self.backend.update(aff.key, CONFIRMED, aff.revision)
                if bkv is None and any(p.usable() and p.cidr.version == cidr.version
                                       and cidr.subnet_of(p.cidr)  # type: ignore[arg-type]
                                       for p in pools):
                    log.info("finishing the unfinished claim of block %s by %s", cidr, host)
                    claimed = self._claim(host, cidr, aff)
                    return claimed[1] if claimed is not None else None
                log.info("dropping the lost claim of block %s by %s", cidr, host)
                self.backend.delete(aff.key, aff.revision)
                return None
            if bkv is None or not mine:
                self.backend.delete(aff.key, aff.revision)
                return None
            if self._decode(bkv).is_empty():
                log.info("finishing the unfinished release of block %s by %s", cidr, host)
                self._release_affinity(host, cidr, require_empty=True)
                return self._get(aff.key)
        except (Conflict, NotFound):
            pass  # changed meanwhile: left to the next assignment
        return aff

    # ---- finding a block ----------------------------------------------------------------
    def _find_or_claim_block(self, host: str, version: int, pools: Sequence[Pool],
                             reservations: list[IPNetwork], cfg: IPAMConfig, limit: int,
                             affine: list[tuple[IPNetwork, KVPair]] | None = None,
                             prefetched: dict[str, KVPair] | None = None,
                             held: int | None = None) -> KVPair | None:
        """A block affine to `host` with a free, unreserved address; claims a new one when
        none has room. None when no block can be had (the caller may borrow). Raises
        BlockLimitError when the host holds its limit of blocks (`held`: how many
        affinities it has, as already listed)."""
        if affine is None:
            all_affine = self._affine_blocks(host, version)
            held = len(all_affine)
            affine = [(c, a) for c, a in all_affine
                      if any(c.subnet_of(p.cidr) for p in pools)]  # type: ignore[arg-type]
        usable = [(c, a, rsv) for c, a in affine
                  if is_confirmed(a)
                  and len(rsv := reserved_ordinals(c, reservations)) < c.num_addresses]
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
        if (held if held is not None else len(self._affine_blocks(host, version))) >= limit:
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
        """The block a confirmed affinity points at: created if missing (as Calico does), a
        stale affinity (block owned by another host or none) deleted (→ None).
        `block_kv`: the block as already read (None: absent), or ... to read it here."""
        if block_kv is ...:
            block_kv = self._get(keys.block_key(cidr))
        if block_kv is None:
            claimed = self._claim(host, cidr, aff_kv)
            return claimed[0] if claimed is not None else None
        if self._decode(block_kv).affinity != f"host:{host}":
            self._delete_quietly(aff_kv.key, aff_kv.revision)
            return None
        return block_kv

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

    # ---- claiming ---------------------------------------------------------------------------
    def _claim_block(self, host: str, cidr: IPNetwork) -> KVPair | None:
        """Claim `cidr` for `host`: the block (naming the host), or None when another host
        owns it (our unfinished claim of it is removed)."""
        claimed = self._claim(host, cidr, None)  # an affinity already there shows up as a lost swap
        return claimed[0] if claimed is not None else None

    def _claim(self, host: str, cidr: IPNetwork, aff: KVPair | None
               ) -> tuple[KVPair, KVPair] | None:
        """(block, confirmed affinity), or None when another host owns the block.
        `aff`: the host's affinity for `cidr` as read (None: absent)."""
        akey, bkey, me = keys.affinity_key(host, cidr), keys.block_key(cidr), f"host:{host}"
        for _ in range(RETRIES):
            if aff is not None and affinity_state(aff) == AffinityState.PENDING_DELETION:
                return None  # being released: not to be claimed now
            now = self.clock_ns()
            value = blk.encode(Block.new(cidr, me, claim_time=gojson.rfc3339(now),
                                         sequence_number=now))
            if self._batch is not None:
                try:
                    rev = self._batch.commit([
                        ("create", bkey, value, None),
                        ("create", akey, CONFIRMED, None) if aff is None
                        else ("update", akey, CONFIRMED, aff.revision)])
                    log.info("claimed block %s for host %s", cidr, host)
                    return KVPair(bkey, value, rev), KVPair(akey, CONFIRMED, rev)
                except Conflict:
                    pass
            else:
                if aff is None:
                    try:
                        aff = self.backend.create(akey, PENDING)
                    except AlreadyExists:
                        aff = self._get(akey)
                        continue
                try:
                    bkv = self.backend.create(bkey, value)
                except AlreadyExists:
                    pass
                else:
                    log.info("claimed block %s for host %s", cidr, host)
                    return bkv, self._confirm(host, cidr, aff)
            # the block exists already, or our affinity changed: look at both again
            got = self._read([akey, bkey])[0]
            aff, found = got.get(akey), got.get(bkey)
            if found is None:
                continue
            if self._decode(found).affinity != me:
                if aff is not None and affinity_state(aff) != AffinityState.PENDING_DELETION:
                    self._delete_quietly(akey, aff.revision)  # the claim lost
                return None
            if aff is None:  # the block is ours (another claimer of this host made it)
                return found, self._set_affinity(host, cidr, AffinityState.CONFIRMED)
            if affinity_state(aff) == AffinityState.PENDING_DELETION:
                return None
            return found, self._confirm(host, cidr, aff)
        raise RetriesExhausted()
