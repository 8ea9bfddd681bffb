"""The IPAM allocation block: pure arithmetic over Calico's `AllocationBlock`.

A block covers one CIDR (a /26 by default) and records, per ordinal (offset from the block's
network address), the index of the attribute (handle + owner attributes) that holds it, or
None. `unallocated` is the FIFO of free ordinals: new blocks hand out 0, 1, 2, …; released
ordinals are appended at the tail so the address free for longest is reused first.

Blocks are immutable: every operation returns a new Block. `decode`/`encode` are Calico's JSON,
byte for byte (field order of the Go struct, `null` for free ordinals, map keys sorted).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from libcalico.errors import AlreadyExists, Conflict, ValidationError
from libcalico.ipam import gojson

PURE = True

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

WINDOWS_RESERVED_HANDLE = "windows-reserved-ipam-handle"


@dataclass(frozen=True, slots=True)
class Attribute:
    """One `attributes` entry: the handle holding the ordinals that point here, and the
    owner attributes (`secondary`: namespace, pod, node, timestamp)."""

    handle_id: str | None = None
    secondary: Mapping[str, str] | None = None
    alternate_owner_attrs: Mapping[str, str] | None = None
    released_at: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.handle_id is not None:
            out["handle_id"] = self.handle_id
        if self.secondary:
            out["secondary"] = dict(sorted(self.secondary.items()))
        if self.alternate_owner_attrs:
            out["alternateOwnerAttrs"] = dict(sorted(self.alternate_owner_attrs.items()))
        if self.released_at is not None:
            out["releasedAt"] = self.released_at
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Attribute:
        return cls(
            handle_id=doc.get("handle_id"),
            secondary=_str_map(doc.get("secondary"), "attributes.secondary"),
            alternate_owner_attrs=_str_map(doc.get("alternateOwnerAttrs"),
                                           "attributes.alternateOwnerAttrs"),
            released_at=doc.get("releasedAt"),
        )

    def same_owner(self, handle_id: str | None, secondary: Mapping[str, str] | None) -> bool:
        return (self.handle_id == handle_id and dict(self.secondary or {}) == dict(secondary or {})
                and not self.alternate_owner_attrs and self.released_at is None)


def sanitize_handle(handle_id: str | None) -> str | None:
    """Handles migrated from host-local carry `\\r\\n<ifname>`; compare only the part before."""
    return None if handle_id is None else handle_id.split("\r", 1)[0]


@dataclass(frozen=True, slots=True)
class Block:
    cidr: IPNetwork
    affinity: str | None
    allocations: tuple[int | None, ...]
    unallocated: tuple[int, ...]
    attributes: tuple[Attribute, ...] = ()
    sequence_number: int = 0
    sequence_number_for_allocation: Mapping[str, int] = field(default_factory=dict)
    affinity_claim_time: str | None = None
    deleted: bool = False
    host_affinity: str | None = None

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def new(cls, cidr: IPNetwork, affinity: str | None, *, claim_time: str | None,
            sequence_number: int) -> Block:
        n = cidr.num_addresses
        return cls(cidr=cidr, affinity=affinity, allocations=(None,) * n,
                   unallocated=tuple(range(n)), sequence_number=sequence_number,
                   affinity_claim_time=claim_time)

    # ---- queries -----------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self.allocations)

    def ordinal(self, ip: IPAddress) -> int:
        if ip not in self.cidr:
            raise ValidationError(f"IP {ip} is not in block {self.cidr}")
        return int(ip) - int(self.cidr.network_address)

    def address(self, ordinal: int) -> IPAddress:
        return self.cidr.network_address + ordinal

    def host(self) -> str | None:
        """The host named by a `host:<name>` affinity."""
        if self.affinity and self.affinity.startswith("host:"):
            return self.affinity[len("host:"):]
        return None

    def is_empty(self) -> bool:
        for idx in self.allocations:
            if idx is not None and self.attributes[idx].handle_id != WINDOWS_RESERVED_HANDLE:
                return False
        return True

    def free_ordinals(self, reserved: frozenset[int] = frozenset()) -> list[int]:
        return [o for o in self.unallocated if o not in reserved]

    def num_free(self, reserved: frozenset[int] = frozenset()) -> int:
        return sum(1 for o in self.unallocated if o not in reserved)

    def in_use(self) -> list[tuple[IPAddress, Attribute]]:
        return [(self.address(o), self.attributes[i])
                for o, i in enumerate(self.allocations) if i is not None]

    def ips_for_handle(self, handle_id: str) -> list[IPAddress]:
        want = sanitize_handle(handle_id)
        return [self.address(o) for o, i in enumerate(self.allocations)
                if i is not None and sanitize_handle(self.attributes[i].handle_id) == want]

    def attribute_for(self, ip: IPAddress) -> Attribute | None:
        i = self.allocations[self.ordinal(ip)]
        return None if i is None else self.attributes[i]

    # ---- mutations (each returns a new Block) -----------------------------------------
    def next_sequence(self) -> Block:
        """What every write does first (Calico increments before writing)."""
        return replace(self, sequence_number=self.sequence_number + 1)

    def auto_assign(self, num: int, handle_id: str | None, secondary: Mapping[str, str] | None,
                    reserved: frozenset[int] = frozenset()) -> tuple[Block, list[IPAddress]]:
        """Take up to `num` ordinals from the head of the free list, skipping reserved ones
        (they stay where they are)."""
        chosen: list[int] = []
        for o in self.unallocated:
            if len(chosen) == num:
                break
            if o not in reserved:
                chosen.append(o)
        if not chosen:
            return self, []
        return self._allocate(chosen, handle_id, secondary), [self.address(o) for o in chosen]

    def assign(self, ip: IPAddress, handle_id: str | None,
               secondary: Mapping[str, str] | None) -> Block:
        o = self.ordinal(ip)
        if self.allocations[o] is not None:
            raise AlreadyExists(f"Address already assigned in block: {ip}")
        return self._allocate([o], handle_id, secondary)

    def _allocate(self, ordinals: Sequence[int], handle_id: str | None,
                  secondary: Mapping[str, str] | None) -> Block:
        attrs = list(self.attributes)
        for idx, a in enumerate(attrs):
            if a.same_owner(handle_id, secondary):
                attr_index = idx
                break
        else:
            attrs.append(Attribute(handle_id, dict(secondary) if secondary else None))
            attr_index = len(attrs) - 1
        allocs = list(self.allocations)
        seqs = dict(self.sequence_number_for_allocation)
        taken = set(ordinals)
        for o in ordinals:
            allocs[o] = attr_index
            seqs[str(o)] = self.sequence_number
        return replace(self, allocations=tuple(allocs), attributes=tuple(attrs),
                       unallocated=tuple(o for o in self.unallocated if o not in taken),
                       sequence_number_for_allocation=seqs)

    def release(self, ips: Iterable[IPAddress], *, handle_id: str | None = None,
                sequence_number: int | None = None
                ) -> tuple[Block, list[IPAddress], dict[str, int]]:
        """Free `ips`. Returns (block, addresses that were not allocated, count released per
        handle). A given handle or sequence number that does not match raises Conflict (the
        ABA guard garbage collectors use)."""
        not_allocated: list[IPAddress] = []
        freed: list[int] = []
        counts: dict[str, int] = {}
        for ip in ips:
            o = self.ordinal(ip)
            idx = self.allocations[o]
            if idx is None or o in freed:
                not_allocated.append(ip)
                continue
            attr = self.attributes[idx]
            if handle_id is not None and sanitize_handle(attr.handle_id) != sanitize_handle(
                    handle_id):
                raise Conflict(f"{self.cidr}: {ip} is held by handle {attr.handle_id!r}, "
                               f"not {handle_id!r}")
            if sequence_number is not None and \
                    self.sequence_number_for_allocation.get(str(o)) != sequence_number:
                raise Conflict(f"{self.cidr}: sequence number of {ip} changed")
            freed.append(o)
            if attr.handle_id is not None:
                counts[attr.handle_id] = counts.get(attr.handle_id, 0) + 1
        if not freed:
            return self, not_allocated, counts
        allocs = list(self.allocations)
        seqs = dict(self.sequence_number_for_allocation)
        for o in freed:
            allocs[o] = None
            seqs.pop(str(o), None)
        blk = replace(self, allocations=tuple(allocs),
                      unallocated=self.unallocated + tuple(freed),
                      sequence_number_for_allocation=seqs)
        return blk._prune_attributes(), not_allocated, counts

    def release_handle(self, handle_id: str) -> tuple[Block, int]:
        ips = self.ips_for_handle(handle_id)
        if not ips:
            return self, 0
        blk, _, _ = self.release(ips)
        return blk, len(ips)

    def _prune_attributes(self) -> Block:
        """Drop attribute entries no ordinal points at, renumbering the rest."""
        used = sorted({i for i in self.allocations if i is not None})
        if len(used) == len(self.attributes):
            return self
        remap = {old: new for new, old in enumerate(used)}
        return replace(
            self,
            attributes=tuple(self.attributes[i] for i in used),
            allocations=tuple(None if i is None else remap[i] for i in self.allocations),
        )

    def with_affinity(self, affinity: str | None, claim_time: str | None) -> Block:
        return replace(self, affinity=affinity, affinity_claim_time=claim_time)

    # ---- invariants (for tests and `calicoctl ipam check`) -----------------------------
    def problems(self) -> list[str]:
        out: list[str] = []
        n = self.cidr.num_addresses
        if len(self.allocations) != n:
            out.append(f"{len(self.allocations)} allocations for {n} addresses")
        free = list(self.unallocated)
        if len(set(free)) != len(free):
            out.append("unallocated has duplicates")
        expect_free = {o for o, i in enumerate(self.allocations) if i is None}
        if set(free) != expect_free:
            out.append("unallocated is not the complement of allocations")
        for o, i in enumerate(self.allocations):
            if i is not None and not 0 <= i < len(self.attributes):
                out.append(f"ordinal {o} points at missing attribute {i}")
        seq_keys = {int(k) for k in self.sequence_number_for_allocation}
        if not seq_keys <= {o for o, i in enumerate(self.allocations) if i is not None}:
            out.append("sequence numbers recorded for free ordinals")
        return out


# ---- codec ---------------------------------------------------------------------------------

def _str_map(value: Any, path: str) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValidationError(f"{path}: expected a map of strings")
    return dict(value)


def has_free(text: str, reserved: frozenset[int] = frozenset()) -> bool:
    """Whether a stored block has a free, unreserved ordinal, without building the Block
    (the question asked of every affine block on every assignment)."""
    try:
        free = json.loads(text).get("unallocated") or []
    except (json.JSONDecodeError, AttributeError):
        return False
    return any(o not in reserved for o in free)


def encode(block: Block) -> str:
    doc: dict[str, Any] = {"cidr": str(block.cidr), "affinity": block.affinity}
    if block.affinity_claim_time is not None:
        doc["affinity_claim_time"] = block.affinity_claim_time
    doc["allocations"] = list(block.allocations)
    doc["unallocated"] = list(block.unallocated)
    doc["attributes"] = [a.to_json() for a in block.attributes]
    doc["sequenceNumber"] = block.sequence_number
    doc["sequenceNumberForAllocation"] = dict(
        sorted(block.sequence_number_for_allocation.items()))
    doc["deleted"] = block.deleted
    if block.host_affinity is not None:
        doc["hostAffinity"] = block.host_affinity
    return gojson.dumps(doc)


def json_object(text: str, where: str) -> dict[str, Any]:
    """A stored value that must be a JSON object; ValidationError naming `where` if not."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"not JSON: {exc}", where) from exc
    if not isinstance(doc, dict):
        raise ValidationError("expected a JSON object", where)
    return doc


def decode(text: str, key: str = "") -> Block:
    """Parse a stored block, checking its shape (datastore values are untrusted)."""
    where = key or "block"
    doc = json_object(text, where)
    try:
        cidr = ipaddress.ip_network(doc["cidr"])
        n = cidr.num_addresses
        allocs_raw = doc.get("allocations") or []
        attrs = tuple(Attribute.from_json(a) for a in (doc.get("attributes") or []))
        allocations = tuple(None if a is None else int(a) for a in allocs_raw)
        unallocated = tuple(int(o) for o in (doc.get("unallocated") or []))
        if len(allocations) != n:
            raise ValidationError(f"allocations: {len(allocations)} entries for {n} addresses",
                                  where)
        if any(not 0 <= o < n for o in unallocated):
            raise ValidationError("unallocated: ordinal out of range", where)
        if any(a is not None and not 0 <= a < len(attrs) for a in allocations):
            raise ValidationError("allocations: attribute index out of range", where)
        seqs = {str(k): int(v) for k, v in (doc.get("sequenceNumberForAllocation") or {}).items()}
        affinity = doc.get("affinity")
        if affinity is not None and not isinstance(affinity, str):
            raise ValidationError("affinity: expected a string", where)
        return Block(
            cidr=cidr, affinity=affinity, allocations=allocations, unallocated=unallocated,
            attributes=attrs, sequence_number=int(doc.get("sequenceNumber") or 0),
            sequence_number_for_allocation=seqs,
            affinity_claim_time=doc.get("affinity_claim_time"),
            deleted=bool(doc.get("deleted", False)), host_affinity=doc.get("hostAffinity"),
        )
    except ValidationError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise ValidationError(f"malformed block: {exc!r}", where) from exc
