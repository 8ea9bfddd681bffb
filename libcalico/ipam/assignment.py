"""Assigning addresses: auto-assign per family (affine blocks, claim, borrow) and a
specific address, each block write a compare-and-swap (with the handle in the same
transaction when the backend batches)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from libcalico import logger
from libcalico.datastore.api import KVPair, Op
from libcalico.errors import Conflict, NotFound, ValidationError
from libcalico.ipam import block as blk
from libcalico.ipam.affinities import is_confirmed
from libcalico.ipam.block import Block, IPAddress, IPNetwork
from libcalico.ipam.claims import BlockClaims
from libcalico.ipam.records import (
    Handle,
    IPAMConfig,
    Pool,
    candidate_blocks,
    node_labels,
    reserved_cidrs,
    reserved_ordinals,
)
from libcalico.ipam.release import Releases
from libcalico.ipam.store import RETRIES, IPAMError, RetriesExhausted
from libcalico.model import keys

log = logger.get(__name__)



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



def _iface(ip: IPAddress, prefixlen: int) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    return ipaddress.ip_interface(f"{ip}/{prefixlen}")


class Assignments(BlockClaims, Releases):
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
        # The block this host last took an address from (the client's hints) is read in
        # the same transaction: while that block has room, the blocks need no second read.
        hint = self.hints.get(host, version) if self._batch is not None else []
        state_keys = [keys.IPAM_CONFIG_KEY, node_key, *hint]
        prefixes = [rsv_prefix, pool_prefix, aff_prefix]
        guess = self._speculation(host, version, num, args)
        if guess is not None and self._commit_read is not None:
            # the block must still hold exactly the value the hint remembers, whatever its
            # revision says (a rebuilt datastore could reuse a revision for other content);
            # the hinted blocks are read only when the speculation fails
            rev, got, lists = self._commit_read.commit_or_read(
                guess[0], state_keys[:2], prefixes, values={guess[1].key: guess[3]},
                failure_keys=hint)
        else:
            rev, (got, lists) = None, self._read(state_keys, prefixes)
        try:
            cfg = IPAMConfig.decode(got[keys.IPAM_CONFIG_KEY].value) \
                if keys.IPAM_CONFIG_KEY in got else IPAMConfig()
            reservations = [c for kv in lists[rsv_prefix]
                            for c in reserved_cidrs(kv.value, kv.key) if c.version == version]
            labels = node_labels(got[node_key].value) if node_key in got else None
            if labels is None and not requested:
                self._node_labels(host)  # raises the "create the Node" error
            all_pools = [Pool.decode(kv.value, kv.key) for kv in lists[pool_prefix]]
            pools = self.determine_pools(version, requested, host, args.intended_use,
                                         all_pools, labels or {})
        except BaseException:
            if rev is not None and guess is not None:
                self.release_ips([i.ip for i in guess[2]])
            raise
        limit = cfg.block_limit(args.max_blocks_per_host)
        held = self._settle_claims(host, lists[aff_prefix], all_pools)
        if rev is not None and guess is not None:
            _, written, taken, _ = guess
            if self._speculation_allowed(host, taken, pools, reservations, held):
                self.hints.put_block(host, version, KVPair(written.key, written.value, rev))
                log.debug("auto-assigned %s to %s", [str(i) for i in taken], args.handle_id)
                return Assignment(taken, num)
            self.release_ips([i.ip for i in taken])  # not allowed after all: as usual
            got, lists = self._read(state_keys, prefixes)
            held = self._settle_claims(host, lists[aff_prefix], all_pools)
        affine: list[tuple[IPNetwork, KVPair]] | None = self._affine_from(held, pools)
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
                                              affine, prefetched, len(held))
            affine = prefetched = None
            if found is None:
                claim_failed = True
                break
            self._written = None
            ips += self._assign_from_block(found, num - len(ips), args.handle_id, args.attrs,
                                           host, reservations, affinity_check=True)
            if self._written is not None and self._written.key == found.key:
                self.hints.put_block(host, version, self._written)
            else:
                self.hints.put(host, version, [found.key])
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

    def _speculation(self, host: str, version: int, num: int, args: AutoAssignArgs
                     ) -> tuple[list[Op], KVPair, tuple[ipaddress.IPv4Interface
                                                      | ipaddress.IPv6Interface, ...],
                                str] | None:
        """The writes that take `num` addresses from the block as this host last wrote it
        (block at that revision and value, a new handle), or None: (the writes, the block
        as written, the addresses, the value it must hold now). Committed with the read
        of the state, then checked against it (`_speculation_allowed`)."""
        kv = self.hints.block(host, version) if self._commit_read is not None else None
        if kv is None:
            return None
        try:
            b = blk.decode(kv.value, kv.key)  # not the cache: it is keyed by revision
        except ValidationError:
            return None
        if b.affinity != f"host:{host}" or b.cidr.version != version:
            return None
        nb, ips = b.auto_assign(num, args.handle_id, args.attrs, frozenset())
        if len(ips) < num:
            return None
        value = blk.encode(nb.next_sequence())
        ops: list[Op] = [("update", kv.key, value, kv.revision)]
        if args.handle_id is not None:
            ops.append(("create", keys.handle_key(args.handle_id),
                        Handle({str(b.cidr): len(ips)}).encode(), None))
        return ops, KVPair(kv.key, value, kv.revision), \
            tuple(_iface(ip, b.cidr.prefixlen) for ip in ips), kv.value

    @staticmethod
    def _speculation_allowed(host: str,
                             taken: Sequence[ipaddress.IPv4Interface | ipaddress.IPv6Interface],
                             pools: Sequence[Pool], reservations: Sequence[IPNetwork],
                             held: Sequence[KVPair]) -> bool:
        """What the usual path would have checked: the block is in a pool this request may
        use, the host holds a confirmed affinity for it, no address taken is reserved. (The
        block's own compare-and-swap proved it unchanged, so still the host's.)"""
        cidr = taken[0].network
        if not any(p.cidr.version == cidr.version and cidr.subnet_of(p.cidr)  # type: ignore[arg-type]
                   for p in pools):
            return False
        akey = keys.affinity_key(host, cidr)
        if not any(kv.key == akey and is_confirmed(kv) for kv in held):
            return False
        return not any(i.ip in r for i in taken for r in reservations)

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
        ops: list[Op] = [
            ("update", kv.key, blk.encode(nb.next_sequence()), kv.revision)]
        hkey = keys.handle_key(handle_id) if handle_id is not None else ""
        if handle_id is not None:
            h = Handle.decode(hkv.value, hkey) if hkv is not None else Handle({})
            ops.append(("create", hkey, h.adjusted(cidr, n).encode(), None) if hkv is None
                       else ("update", hkey, h.adjusted(cidr, n).encode(), hkv.revision))
        try:
            rev = self._batch.commit(ops)
            self._written = KVPair(kv.key, ops[0][2] or "", rev)
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

