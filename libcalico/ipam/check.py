"""IPAM consistency check (what `calicoctl ipam check` reports), over one snapshot.

Reads every block, affinity, handle and WorkloadEndpoint and reports:
- leaked addresses: allocated in a block, but no WorkloadEndpoint uses them (tunnel
  addresses, which carry `type` in their attributes, are not workload addresses);
- addresses in use without an allocation: a WorkloadEndpoint's address no block holds;
- handles without addresses, and handle counts that disagree with the blocks;
- block problems: broken invariants, a block key that does not match its CIDR, overlaps;
- affinity problems: pending (a claim that never finished), no block, owned by another host.
"""

from __future__ import annotations

import ipaddress
import itertools
import json
from collections import Counter
from dataclasses import dataclass, field

from libcalico.datastore.api import Backend
from libcalico.errors import ValidationError
from libcalico.ipam import block as blk
from libcalico.ipam.block import Block, IPAddress, IPNetwork
from libcalico.ipam.records import Affinity, Handle
from libcalico.model import keys


@dataclass
class Report:
    blocks: dict[IPNetwork, Block] = field(default_factory=dict)
    allocations: dict[IPAddress, tuple[str | None, dict[str, str]]] = field(default_factory=dict)
    workload_ips: dict[IPAddress, str] = field(default_factory=dict)
    leaked: list[tuple[IPAddress, str | None]] = field(default_factory=list)
    in_use_unallocated: list[tuple[IPAddress, str]] = field(default_factory=list)
    handle_problems: list[str] = field(default_factory=list)
    block_problems: list[str] = field(default_factory=list)
    affinity_problems: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not (self.leaked or self.in_use_unallocated or self.handle_problems
                    or self.block_problems or self.affinity_problems or self.duplicates)

    def lines(self) -> list[str]:
        out = [f"Found {len(self.blocks)} IPAM blocks, {len(self.allocations)} allocated "
               f"addresses, {len(self.workload_ips)} workload addresses."]
        out += [f"leaked address (allocated, no workload): {ip} handle {h}"
                for ip, h in self.leaked]
        out += [f"address in use without an allocation: {ip} ({who})"
                for ip, who in self.in_use_unallocated]
        out += [f"handle: {p}" for p in self.handle_problems]
        out += [f"block: {p}" for p in self.block_problems]
        out += [f"affinity: {p}" for p in self.affinity_problems]
        out += [f"duplicate: {p}" for p in self.duplicates]
        out.append("IPAM state is consistent." if self.clean else
                   "IPAM state has problems (see above).")
        return out


def check(backend: Backend) -> Report:
    r = Report()
    counts: Counter[tuple[str, str]] = Counter()
    for kv in backend.list(keys.block_prefix()).kvs:
        try:
            b = blk.decode(kv.value, kv.key)
        except ValidationError as exc:
            r.block_problems.append(f"{kv.key}: {exc}")
            continue
        if keys.parse_block_key(kv.key) != b.cidr:
            r.block_problems.append(f"{kv.key}: key does not match cidr {b.cidr}")
        r.block_problems += [f"{b.cidr}: {p}" for p in b.problems()]
        r.blocks[b.cidr] = b
        for ip, attr in b.in_use():
            r.allocations[ip] = (attr.handle_id, dict(attr.secondary or {}))
            if attr.handle_id is not None:
                counts[(attr.handle_id, str(b.cidr))] += 1
    cidrs = sorted(r.blocks, key=lambda c: (c.version, int(c.network_address)))
    for a, b2 in itertools.pairwise(cidrs):
        if a.version == b2.version and a.overlaps(b2):
            r.block_problems.append(f"blocks {a} and {b2} overlap")

    owners: dict[IPNetwork, list[str]] = {}
    for kv in backend.list(keys.IPAM_ROOT + "host/").kvs:
        parsed = keys.parse_affinity_key(kv.key)
        if parsed is None:
            continue
        _, host, cidr = parsed
        try:
            aff = Affinity.decode(kv.value, kv.key)
        except ValidationError as exc:
            r.affinity_problems.append(str(exc))
            continue
        held = r.blocks.get(cidr)
        if not aff.confirmed:
            r.affinity_problems.append(f"{host} {cidr}: affinity is {aff.state} (an "
                                       "unfinished claim or release)")
        elif held is None:
            r.affinity_problems.append(f"{host} {cidr}: confirmed affinity without a block")
        elif held.affinity != f"host:{host}":
            r.affinity_problems.append(f"{host} {cidr}: block is affine to {held.affinity}")
        else:
            owners.setdefault(cidr, []).append(host)
    for cidr, blk_ in r.blocks.items():
        owner = blk_.host()
        if owner is not None and owner not in owners.get(cidr, []):
            r.affinity_problems.append(f"{cidr}: block names host {owner} which has no "
                                       "confirmed affinity for it")

    handles: dict[str, Handle] = {}
    for kv in backend.list(keys.HANDLE_PREFIX).kvs:
        hid = kv.key[len(keys.HANDLE_PREFIX):]
        try:
            handles[hid] = Handle.decode(kv.value, kv.key)
        except ValidationError as exc:
            r.handle_problems.append(str(exc))
    for hid, h in handles.items():
        if not any(counts[(hid, c)] for c in h.block):
            r.handle_problems.append(f"{hid} holds no addresses")
            continue
        for c, n in h.block.items():
            if counts[(hid, c)] != n:
                r.handle_problems.append(f"{hid} records {n} in {c}, block has "
                                         f"{counts[(hid, c)]}")
    for (hid, c), n in counts.items():
        if hid not in handles:
            r.handle_problems.append(f"{n} address(es) in {c} under missing handle {hid}")

    for kv in backend.list(keys.resource_prefix("WorkloadEndpoint")).kvs:
        try:
            doc = json.loads(kv.value)
        except json.JSONDecodeError:
            continue
        name = f"{(doc.get('metadata') or {}).get('namespace')}/" \
               f"{(doc.get('metadata') or {}).get('name')}"
        for net in (doc.get("spec") or {}).get("ipNetworks") or []:
            try:
                ip = ipaddress.ip_interface(net).ip
            except ValueError:
                continue
            if ip in r.workload_ips:
                r.duplicates.append(f"{ip} used by {r.workload_ips[ip]} and {name}")
            r.workload_ips[ip] = name
    for ip, (holder, attrs) in sorted(r.allocations.items(),
                                      key=lambda x: (x[0].version, int(x[0]))):
        if ip not in r.workload_ips and "type" not in attrs \
                and holder != blk.WINDOWS_RESERVED_HANDLE:
            r.leaked.append((ip, holder))
    pools: list[IPNetwork] = []
    for kv in backend.list(keys.resource_prefix("IPPool")).kvs:
        try:
            pools.append(ipaddress.ip_network(json.loads(kv.value)["spec"]["cidr"]))
        except (KeyError, ValueError, TypeError):
            continue
    for ip, who in r.workload_ips.items():
        if ip not in r.allocations and any(ip in n for n in [*pools, *r.blocks]):
            r.in_use_unallocated.append((ip, who))
    return r
