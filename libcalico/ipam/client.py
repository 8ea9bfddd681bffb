"""IPAMClient: Calico's IPAM over the Backend protocol.

Every write is a compare-and-swap (create-if-absent, or update/delete at the revision read);
a lost swap (`Conflict`, or `AlreadyExists` on a create race) re-reads and retries, at most
`RETRIES` times; any other error surfaces at once. Blocks are claimed through a pending
affinity that is confirmed only once the block itself names this host, so a host never uses an
affinity it does not hold, and two hosts never own one block.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import EllipsisType
from typing import Protocol, runtime_checkable

from libcalico.datastore.api import Backend, KVPair
from libcalico.errors import (
    AlreadyExists,
    CalicoError,
    Conflict,
    NotFound,
    ValidationError,
)
from libcalico.ipam import block as blk
from libcalico.ipam import gojson
from libcalico.ipam.block import Block, IPAddress, IPNetwork
from libcalico.ipam.records import (
    Affinity,
    AffinityState,
    Handle,
    IPAMConfig,
    Pool,
    candidate_blocks,
    node_labels,
    reserved_cidrs,
    reserved_ordinals,
)
from libcalico.model import keys

log = logging.getLogger(__name__)

RETRIES = 100
EMPTY_BLOCK_MIN_RECLAIM_AGE_S = 60


class IPAMError(CalicoError):
    """IPAM could not do what was asked (the message says why)."""


class BlockLimitError(IPAMError):
    def __init__(self) -> None:
        super().__init__("cannot allocate new block due to per host block limit")


class RetriesExhausted(IPAMError):
    def __init__(self) -> None:
        super().__init__("Max retries hit - excessive concurrent IPAM requests")


@dataclass(frozen=True, slots=True)
class Assignment:
    """What one family got: addresses with their block's prefix length (10.0.0.5/26)."""

    ips: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...]
    requested: int
    msgs: tuple[str, ...] = ()

    def shortfall_message(self, family: str) -> str | None:
        if len(self.ips) >= self.requested:
            return None
        msg = f"Assigned {len(self.ips)} out of {self.requested} requested {family} addresses"
        return f"{msg}; {'; '.join(self.msgs)}" if self.msgs else msg


@dataclass(frozen=True, slots=True)
class AutoAssignArgs:
    hostname: str
    num4: int = 1
    num6: int = 0
    handle_id: str | None = None
    attrs: Mapping[str, str] = field(default_factory=dict)
    ipv4_pools: Sequence[IPNetwork] = ()
    ipv6_pools: Sequence[IPNetwork] = ()
    max_blocks_per_host: int = 0
    intended_use: str = "Workload"


@runtime_checkable
class BatchBackend(Protocol):
    """Optional capabilities of a Backend that save round trips (the CNI's gateway backend
    has them): several reads in one transaction, and several compare-and-swap writes that
    succeed or fail together. IPAMClient falls back to single operations without them."""

    def read_many(self, keys: Sequence[str], prefixes: Sequence[str] = ()
                  ) -> tuple[dict[str, KVPair], dict[str, tuple[KVPair, ...]]]: ...

    def commit(self, ops: Sequence[tuple[str, str, str | None, int | None]]) -> int: ...


def _iface(ip: IPAddress, prefixlen: int) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return ipaddress.ip_interface(f"{ip}/{prefixlen}")


class IPAMClient:
    def __init__(self, backend: Backend, *, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self.backend = backend
        self.clock_ns = clock_ns
        self._batch = backend if isinstance(backend, BatchBackend) else None
        self._blocks: dict[tuple[str, int], Block] = {}
        self._hints: dict[tuple[str, int], list[str]] = {}  # (host, version) -> block keys

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

    # ---- auto-assign ---------------------------------------------------------------------
    def auto_assign(self, args: AutoAssignArgs) -> tuple[Assignment, Assignment]:
        """IPv4 then IPv6. A short result is not an error here: the caller checks
        `shortfall_message` (an IPv4 failure raises before IPv6 is tried)."""
        if args.num4 < 0 or args.num6 < 0:
            raise ValidationError("cannot request a negative number of addresses")
        v4 = self._auto_assign_family(4, args.num4, args, args.ipv4_pools) if args.num4 \
            else Assignment((), 0)
        try:
            v6 = self._auto_assign_family(6, args.num6, args, args.ipv6_pools) if args.num6 \
                else Assignment((), 0)
        except BaseException:
            if v4.ips:  # do not leave the IPv4 half allocated
                self.release_ips([i.ip for i in v4.ips])
            raise
        return v4, v6

    def _auto_assign_family(self, version: int, num: int, args: AutoAssignArgs,
                            requested: Sequence[IPNetwork]) -> Assignment:
        host = args.hostname
        node_key = keys.resource_key("Node", host)
        rsv_prefix = keys.resource_prefix("IPReservation")
        pool_prefix = keys.resource_prefix("IPPool")
        aff_prefix = keys.affinity_prefix(host, version)
        # A client that assigned for this host before also reads the block it last took an
        # address from, in the same transaction: while that block has room, the blocks need
        # no second round trip.
        hint = self._hints.get((host, version), []) if self._batch is not None else []
        got, lists = self._read([keys.IPAM_CONFIG_KEY, node_key, *hint],
                                [rsv_prefix, pool_prefix, aff_prefix])
        cfg = IPAMConfig.decode(got[keys.IPAM_CONFIG_KEY].value) \
            if keys.IPAM_CONFIG_KEY in got else IPAMConfig()
        reservations = [c for kv in lists[rsv_prefix] for c in reserved_cidrs(kv.value, kv.key)
                        if c.version == version]
        labels = node_labels(got[node_key].value) if node_key in got else None
        if labels is None and not requested:
            self._node_labels(host)  # raises the "create the Node" error
        pools = self.determine_pools(version, requested, host, args.intended_use,
                                     [Pool.decode(kv.value, kv.key) for kv in lists[pool_prefix]],
                                     labels or {})
        limit = cfg.block_limit(args.max_blocks_per_host)
        affine: list[tuple[IPNetwork, KVPair]] | None = self._affine_from(lists[aff_prefix],
                                                                          pools)
        wanted = {keys.block_key(c) for c, _ in affine or []}
        prefetched: dict[str, KVPair] | None = {k: got[k] for k in hint
                                                 if k in wanted and k in got} or None
        msgs: list[str] = []
        claim_failed = False
        ips: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
        for _ in range(RETRIES):
            if len(ips) >= num:
                break
            found = self._find_or_claim_block(host, version, pools, reservations, cfg, limit,
                                              affine, prefetched)
            affine = prefetched = None
            if found is None:
                claim_failed = True
                break
            ips += self._assign_from_block(found, num - len(ips), args.handle_id, args.attrs,
                                           host, reservations, affinity_check=True)
            self._hints[(host, version)] = [found.key]
        else:
            if len(ips) < num:  # every round lost a race for the block it found
                raise RetriesExhausted()
        if len(ips) < num and claim_failed:
            if cfg.strict_affinity:
                msgs.append("No more free affine blocks and strict affinity enabled")
            else:
                ips += self._borrow(num - len(ips), pools, args, reservations)
                if len(ips) < num:
                    msgs.append(f"No IPs available in pools: {[str(p.cidr) for p in pools]}")
        log.debug("auto-assigned %s to %s", [str(i) for i in ips], args.handle_id)
        return Assignment(tuple(ips), num, tuple(msgs))

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

    def _assign_from_block(self, kv: KVPair, num: int, handle_id: str | None,
                           attrs: Mapping[str, str], host: str, reservations: list[IPNetwork],
                           *, affinity_check: bool
                           ) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        hkv: KVPair | None = None  # the handle as last read (None: absent, the CNI case)
        for _ in range(RETRIES):
            b = self._decode(kv)
            if affinity_check and b.affinity != f"host:{host}":
                return []
            rsv = reserved_ordinals(b.cidr, reservations)
            nb, ips = b.auto_assign(num, handle_id, attrs, rsv)
            if not ips:
                return []
            if self._batch is not None:
                fresh = self._commit_with_handle(kv, nb, handle_id, str(b.cidr), len(ips), hkv)
                if fresh is None:
                    return [_iface(ip, b.cidr.prefixlen) for ip in ips]
                if fresh[0] is None:
                    return []
                kv, hkv = fresh[0], fresh[1]
                continue
            if handle_id is not None:
                self._adjust_handle(handle_id, str(b.cidr), len(ips))
            try:
                self.backend.update(kv.key, blk.encode(nb.next_sequence()), kv.revision)
            except (Conflict, NotFound) as exc:
                if handle_id is not None:
                    self._adjust_handle(handle_id, str(b.cidr), -len(ips))
                if isinstance(exc, NotFound):
                    return []
                kv = self.backend.get(kv.key)
                continue
            return [_iface(ip, b.cidr.prefixlen) for ip in ips]
        raise RetriesExhausted()

    def _commit_with_handle(self, kv: KVPair, nb: Block, handle_id: str | None, cidr: str,
                            n: int, hkv: KVPair | None
                            ) -> tuple[KVPair | None, KVPair | None] | None:
        """Write the block and the handle's count in one transaction (no window where the
        handle over-counts). None on success; on a lost swap, the re-read (block, handle),
        block None when it is gone."""
        assert self._batch is not None
        ops: list[tuple[str, str, str | None, int | None]] = [
            ("update", kv.key, blk.encode(nb.next_sequence()), kv.revision)]
        hkey = keys.handle_key(handle_id) if handle_id is not None else ""
        if handle_id is not None:
            h = Handle.decode(hkv.value, hkey) if hkv is not None else Handle({})
            ops.append(("create", hkey, h.adjusted(cidr, n).encode(), None) if hkv is None
                       else ("update", hkey, h.adjusted(cidr, n).encode(), hkv.revision))
        try:
            self._batch.commit(ops)
            return None
        except Conflict:
            got, _ = self._batch.read_many([kv.key, hkey] if hkey else [kv.key])
            return got.get(kv.key), got.get(hkey)

    def _borrow(self, num: int, pools: Sequence[Pool], args: AutoAssignArgs,
                reservations: list[IPNetwork]
                ) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
        """Addresses from existing blocks of any host (StrictAffinity off, no block left to
        claim): blocks walked in the same hostname-seeded order."""
        got: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
        version = pools[0].cidr.version if pools else 4
        existing = {keys.parse_block_key(kv.key): kv
                    for kv in self.backend.list(keys.block_prefix(version)).kvs}
        for pool in pools:
            for cidr in candidate_blocks(pool, args.hostname, seed=self.clock_ns()):
                if len(got) >= num:
                    return got
                kv = existing.get(cidr)
                if kv is None:
                    continue
                got += self._assign_from_block(kv, num - len(got), args.handle_id, args.attrs,
                                               args.hostname, reservations,
                                               affinity_check=False)
        return got

    # ---- specific addresses --------------------------------------------------------------
    def assign_ip(self, ip: IPAddress, *, handle_id: str | None, attrs: Mapping[str, str],
                  hostname: str, intended_use: str = "Workload"
                  ) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
        """Assign exactly `ip`. IPReservations are not consulted (as in Calico)."""
        pool = next((p for p in self.pools() if p.usable() and ip in p.cidr), None)
        if pool is None:
            raise IPAMError(f"The provided IP address {ip} is not in a configured pool")
        if intended_use not in pool.allowed_uses:
            raise IPAMError(f"The provided IP address {ip} is in pool {pool.name} which does "
                            f"not allow use {intended_use}")
        cidr = pool.block_for(ip)
        cfg = self.get_config()
        for _ in range(RETRIES):
            try:
                kv = self.backend.get(keys.block_key(cidr))
            except NotFound:
                if self._claim_block(hostname, cidr) is None:
                    continue
                kv = self.backend.get(keys.block_key(cidr))
            b = self._decode(kv)
            if cfg.strict_affinity and b.affinity != f"host:{hostname}":
                raise IPAMError(f"block {cidr} is not affine to host {hostname} and strict "
                                "affinity is enabled")
            nb = b.assign(ip, handle_id, attrs)  # AlreadyExists when taken
            if self._batch is not None:
                hkv = None
                if handle_id is not None:
                    hkv = self._read([keys.handle_key(handle_id)])[0].get(
                        keys.handle_key(handle_id))
                if self._commit_with_handle(kv, nb, handle_id, str(cidr), 1, hkv) is None:
                    return _iface(ip, cidr.prefixlen)
                continue
            if handle_id is not None:
                self._adjust_handle(handle_id, str(cidr), 1)
            try:
                self.backend.update(kv.key, blk.encode(nb.next_sequence()), kv.revision)
            except (Conflict, NotFound):
                if handle_id is not None:
                    self._adjust_handle(handle_id, str(cidr), -1)
                continue
            return _iface(ip, cidr.prefixlen)
        raise RetriesExhausted()

    # ---- release ---------------------------------------------------------------------------
    def _block_cidr_for(self, ip: IPAddress, pools: list[Pool],
                        blocks: list[IPNetwork] | None) -> IPNetwork | None:
        for p in pools:
            if ip in p.cidr:
                return p.block_for(ip)
        for c in blocks or []:
            if ip in c:
                return c
        return None

    def release_ips(self, ips: Iterable[IPAddress], *, handle_id: str | None = None,
                    sequence_number: int | None = None) -> list[IPAddress]:
        """Free addresses; returns those that were not allocated (not an error)."""
        pools = self.pools()
        wanted = list(ips)
        blocks: list[IPNetwork] | None = None
        by_block: dict[IPNetwork, list[IPAddress]] = {}
        unallocated: list[IPAddress] = []
        for ip in wanted:
            cidr = self._block_cidr_for(ip, pools, blocks)
            if cidr is None and blocks is None:
                blocks = [c for kv in self.backend.list(keys.block_prefix(ip.version)).kvs
                          if (c := keys.parse_block_key(kv.key)) is not None]
                cidr = self._block_cidr_for(ip, [], blocks)
            if cidr is None:
                unallocated.append(ip)
            else:
                by_block.setdefault(cidr, []).append(ip)
        for cidr, group in by_block.items():
            unallocated += self._release_in_block(cidr, group, handle_id, sequence_number)
        return unallocated

    def _release_in_block(self, cidr: IPNetwork, ips: list[IPAddress], handle_id: str | None,
                          sequence_number: int | None) -> list[IPAddress]:
        for _ in range(RETRIES):
            try:
                kv = self.backend.get(keys.block_key(cidr))
            except NotFound:
                return ips
            b = self._decode(kv)
            nb, unalloc, counts = b.release(ips, handle_id=handle_id,
                                            sequence_number=sequence_number)
            if not counts and nb is b:
                return unalloc
            if not self._write_block(kv, nb):
                continue
            for h, n in counts.items():
                self._adjust_handle(h, str(cidr), -n)
            return unalloc
        raise RetriesExhausted()

    def _write_block(self, kv: KVPair, b: Block) -> bool:
        """CAS-write a changed block, deleting it when empty and unaffine. False on conflict."""
        try:
            if b.affinity is None and b.is_empty():
                self.backend.delete(kv.key, kv.revision)
            else:
                self.backend.update(kv.key, blk.encode(b.next_sequence()), kv.revision)
            return True
        except Conflict:
            return False
        except NotFound:
            return False

    def release_by_handle(self, handle_id: str) -> int:
        """Free every address held by the handle; returns how many. NotFound when the handle
        does not exist (the CNI treats that as already released)."""
        hkv = self.backend.get(keys.handle_key(handle_id))
        handle = Handle.decode(hkv.value, hkv.key)
        total = 0
        for cidr_text in handle.block:
            cidr = ipaddress.ip_network(cidr_text)
            for _ in range(RETRIES):
                try:
                    kv = self.backend.get(keys.block_key(cidr))
                except NotFound:
                    break
                b = self._decode(kv)
                nb, n = b.release_handle(handle_id)
                if n == 0 or self._write_block(kv, nb):
                    total += n
                    break
            else:
                raise RetriesExhausted()
            self._drop_handle_block(handle_id, cidr_text)
        return total

    def _adjust_handle(self, handle_id: str, cidr: str, delta: int) -> None:
        key = keys.handle_key(handle_id)
        for _ in range(RETRIES):
            try:
                kv = self.backend.get(key)
            except NotFound:
                if delta <= 0:
                    return
                try:
                    self.backend.create(key, Handle({cidr: delta}).encode())
                    return
                except AlreadyExists:
                    continue
            h = Handle.decode(kv.value, key).adjusted(cidr, delta)
            try:
                if h.block:
                    self.backend.update(key, h.encode(), kv.revision)
                else:
                    self.backend.delete(key, kv.revision)
                return
            except (Conflict, NotFound):
                continue
        raise RetriesExhausted()

    def _drop_handle_block(self, handle_id: str, cidr: str) -> None:
        key = keys.handle_key(handle_id)
        for _ in range(RETRIES):
            try:
                kv = self.backend.get(key)
            except NotFound:
                return
            h = Handle.decode(kv.value, key)
            if cidr not in h.block:
                return
            try:
                self._adjust_handle_at(kv, h.adjusted(cidr, -h.block[cidr]))
                return
            except (Conflict, NotFound):
                continue
        raise RetriesExhausted()

    def _adjust_handle_at(self, kv: KVPair, h: Handle) -> None:
        if h.block:
            self.backend.update(kv.key, h.encode(), kv.revision)
        else:
            self.backend.delete(kv.key, kv.revision)

    def ips_by_handle(self, handle_id: str) -> list[IPAddress]:
        hkv = self.backend.get(keys.handle_key(handle_id))
        out: list[IPAddress] = []
        for cidr_text in Handle.decode(hkv.value, hkv.key).block:
            try:
                kv = self.backend.get(keys.block_key(ipaddress.ip_network(cidr_text)))
            except NotFound:
                continue
            out += self._decode(kv).ips_for_handle(handle_id)
        return out

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

    def _delete_quietly(self, key: str, revision: int | None) -> None:
        with contextlib.suppress(NotFound, Conflict):
            self.backend.delete(key, revision)


def _selects(selector: str, labels: Mapping[str, str]) -> bool:
    text = selector.strip()
    if text in ("", "all()"):
        return True
    from libcalico.model import selector as sel  # only when a pool has a real selector

    return sel.parse(text).evaluate(labels)
