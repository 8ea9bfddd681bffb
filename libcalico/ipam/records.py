"""The small IPAM records beside blocks, with Calico's JSON, and the pool view IPAM needs.

- block affinity  `/calico/ipam/v2/host/<host>/ipv4/block/<cidr>`
                  `{"state":"confirmed","deleted":false}`
- handle          `/calico/ipam/v2/handle/<id>`  `{"block":{"10.0.0.0/26":1},"deleted":false}`
- IPAM config     `/calico/ipam/v2/config`                        every field omitempty
- IPPool / IPReservation / Node: only the fields IPAM reads, with Calico's defaults.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from libcalico.errors import ValidationError
from libcalico.ipam import gojson
from libcalico.ipam.block import IPAddress, IPNetwork, json_object

PURE = True


def _load(text: str, where: str) -> dict[str, Any]:
    return json_object(text, where) if text.strip() else {}


class AffinityState(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    PENDING_DELETION = "pendingDeletion"


@dataclass(frozen=True, slots=True)
class Affinity:
    state: str = AffinityState.CONFIRMED
    deleted: bool = False

    @property
    def confirmed(self) -> bool:
        # Very old data has an empty value; Calico treats an empty state as confirmed.
        return self.state in (AffinityState.CONFIRMED, "")

    def encode(self) -> str:
        return gojson.dumps({"state": str(self.state), "deleted": self.deleted})

    @classmethod
    def decode(cls, text: str, key: str = "affinity") -> Affinity:
        doc = _load(text, key)
        state = doc.get("state", "")
        if state not in ("", *(s.value for s in AffinityState)):
            raise ValidationError(f"state: unknown affinity state {state!r}", key)
        return cls(state=state, deleted=bool(doc.get("deleted", False)))


@dataclass(frozen=True, slots=True)
class Handle:
    block: Mapping[str, int]
    deleted: bool = False

    def encode(self) -> str:
        return gojson.dumps({"block": dict(sorted(self.block.items())), "deleted": self.deleted})

    @classmethod
    def decode(cls, text: str, key: str = "handle") -> Handle:
        doc = _load(text, key)
        blocks = doc.get("block") or {}
        if not isinstance(blocks, dict):
            raise ValidationError("block: expected a map", key)
        try:
            return cls(block={str(k): int(v) for k, v in blocks.items()},
                       deleted=bool(doc.get("deleted", False)))
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"block: {exc}", key) from exc

    def total(self) -> int:
        return sum(self.block.values())

    def adjusted(self, cidr: str, delta: int) -> Handle:
        blocks = dict(self.block)
        n = blocks.get(cidr, 0) + delta
        if n > 0:
            blocks[cidr] = n
        else:
            blocks.pop(cidr, None)
        return Handle(blocks, self.deleted)


DEFAULT_MAX_BLOCKS_PER_HOST = 20


@dataclass(frozen=True, slots=True)
class IPAMConfig:
    strict_affinity: bool = False
    auto_allocate_blocks: bool = True
    max_blocks_per_host: int = 0

    def encode(self) -> str:
        doc: dict[str, Any] = {}
        if self.strict_affinity:
            doc["strict_affinity"] = True
        if self.auto_allocate_blocks:
            doc["auto_allocate_blocks"] = True
        if self.max_blocks_per_host:
            doc["maxBlocksPerHost"] = self.max_blocks_per_host
        return gojson.dumps(doc)

    @classmethod
    def decode(cls, text: str) -> IPAMConfig:
        # A present key means Go zero values for missing fields (so `{}` disables
        # auto-allocation): only an absent key gives the defaults.
        doc = _load(text, "ipam config")
        return cls(strict_affinity=bool(doc.get("strict_affinity", False)),
                   auto_allocate_blocks=bool(doc.get("auto_allocate_blocks", False)),
                   max_blocks_per_host=int(doc.get("maxBlocksPerHost", 0) or 0))

    def validate(self) -> None:
        if not self.strict_affinity and not self.auto_allocate_blocks:
            raise ValidationError("cannot disable 'StrictAffinity' and 'AutoAllocateBlocks' "
                                  "at the same time")
        if self.max_blocks_per_host < 0:
            raise ValidationError("maxBlocksPerHost: must not be negative")
        if self.max_blocks_per_host > 0 and not self.strict_affinity:
            raise ValidationError("maxBlocksPerHost: requires strict affinity")

    def block_limit(self, requested: int = 0) -> int:
        limits = [x for x in (self.max_blocks_per_host, requested) if x > 0]
        return min(limits) if limits else DEFAULT_MAX_BLOCKS_PER_HOST


@dataclass(frozen=True, slots=True)
class Pool:
    """What IPAM reads from an IPPool resource (Calico's defaults applied)."""

    name: str
    cidr: IPNetwork
    block_size: int
    node_selector: str = "all()"
    disabled: bool = False
    allowed_uses: tuple[str, ...] = ("Workload", "Tunnel")
    assignment_mode: str = "Automatic"
    deleting: bool = False

    @classmethod
    def decode(cls, text: str, key: str = "ippool") -> Pool:
        doc = _load(text, key)
        spec = doc.get("spec") or {}
        meta = doc.get("metadata") or {}
        try:
            cidr = ipaddress.ip_network(spec["cidr"], strict=False)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValidationError(f"spec.cidr: {exc}", key) from exc
        default_bs = 26 if cidr.version == 4 else 122
        bs = int(spec.get("blockSize") or default_bs)
        lo, hi = (20, 32) if cidr.version == 4 else (116, 128)
        if not lo <= bs <= hi:
            raise ValidationError(f"spec.blockSize: {bs} is outside {lo}-{hi}", key)
        uses = spec.get("allowedUses") or ["Workload", "Tunnel"]
        return cls(name=str(meta.get("name", "")), cidr=cidr, block_size=bs,
                   node_selector=str(spec.get("nodeSelector") or "all()"),
                   disabled=bool(spec.get("disabled", False)),
                   allowed_uses=tuple(str(u) for u in uses),
                   assignment_mode=str(spec.get("assignmentMode") or "Automatic"),
                   deleting=bool(meta.get("deletionTimestamp")))

    def usable(self) -> bool:
        return not self.disabled and not self.deleting

    def block_for(self, ip: IPAddress) -> IPNetwork:
        return ipaddress.ip_network(f"{ip}/{self.block_size}", strict=False)

    def num_blocks(self) -> int:
        return 1 << (self.block_size - self.cidr.prefixlen)

    def nth_block(self, i: int) -> IPNetwork:
        size = 1 << (self.cidr.max_prefixlen - self.block_size)
        base = self.cidr.network_address + i * size
        return ipaddress.ip_network(f"{base}/{self.block_size}")


def fnv1_32(data: bytes) -> int:
    """FNV-1 32-bit (Go's hash/fnv New32), Calico's hostname seed."""
    h = 0x811C9DC5
    for b in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= b
    return h


def candidate_blocks(pool: Pool, host: str, seed: int | None = None) -> Iterator[IPNetwork]:
    """Every block of `pool` once: a start chosen at random from a hostname-seeded source,
    then sequentially with wrap-around (Calico's randomBlockGenerator). /32 and /128 blocks
    use `seed` (time based in Calico) since a per-host start would collide constantly."""
    import random  # only block claims need it

    n = pool.num_blocks()
    if pool.block_size == pool.cidr.max_prefixlen and seed is not None:
        rnd = random.Random(seed)
    else:
        rnd = random.Random(fnv1_32(host.encode()))
    start = rnd.randrange(n)
    for k in range(n):
        yield pool.nth_block((start + k) % n)


def node_labels(text: str) -> dict[str, str]:
    meta = _load(text, "node").get("metadata") or {}
    labels = meta.get("labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def reserved_cidrs(text: str, key: str = "ipreservation") -> list[IPNetwork]:
    spec = _load(text, key).get("spec") or {}
    out: list[IPNetwork] = []
    for c in spec.get("reservedCIDRs") or []:
        try:
            out.append(ipaddress.ip_network(c, strict=False))
        except ValueError as exc:
            raise ValidationError(f"spec.reservedCIDRs: {exc}", key) from exc
    return out


def reserved_ordinals(block: IPNetwork, reservations: list[IPNetwork]) -> frozenset[int]:
    base = int(block.network_address)
    out: set[int] = set()
    for r in reservations:
        if r.version != block.version or not r.overlaps(block):
            continue
        lo = max(int(r.network_address), base)
        hi = min(int(r.broadcast_address), int(block.broadcast_address))
        out.update(range(lo - base, hi - base + 1))
    return frozenset(out)
