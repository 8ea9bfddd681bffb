"""Settling a host's unfinished claims at its next assignment, atomic claims and releases
with a batching backend, and block hints (memory backend; the crash proof is in
tests/integration/ipam/test_crash_points.py)."""

from __future__ import annotations

import contextlib
import ipaddress
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from libcalico.datastore.api import KVPair, Op
from libcalico.datastore.memory import MemoryBackend
from libcalico.errors import AlreadyExists, Conflict, NotFound
from libcalico.ipam import block as blk
from libcalico.ipam.block import Block, IPNetwork
from libcalico.ipam.check import check
from libcalico.ipam.client import AutoAssignArgs, IPAMClient
from libcalico.ipam.hints import HintFile
from libcalico.ipam.records import Affinity
from libcalico.model import keys

B1 = ipaddress.ip_network("10.1.0.0/30")
B2 = ipaddress.ip_network("10.1.0.4/30")


class BatchMemory(MemoryBackend):
    """The memory backend with the batch capabilities (conditions checked, then applied)."""

    def __init__(self) -> None:
        super().__init__()
        self.commits: list[list[Op]] = []
        self.reads = 0
        """read_many calls (commit_or_read's read included)."""

    def read_many(self, keys_: Sequence[str], prefixes: Sequence[str] = ()
                  ) -> tuple[dict[str, KVPair], dict[str, tuple[KVPair, ...]]]:
        self.reads += 1
        got = {}
        for k in keys_:
            with contextlib.suppress(NotFound):
                got[k] = self.get(k)
        return got, {p: self.list(p).kvs for p in prefixes}

    def commit(self, ops: Sequence[Op]) -> str:
        for kind, key, _, rev in ops:
            try:
                current = self.get(key).revision
            except NotFound:
                current = None
            if (kind == "create") != (current is None) or (kind != "create" and current != rev):
                raise Conflict(key)
        self.commits.append(list(ops))
        revs = [(self.delete(key) if kind == "delete" else self.apply(key, value or "")).revision
                for kind, key, value, _ in ops]
        # etcd gives every key of a transaction one revision; here each write has its own,
        # so answer the first op's (the block, in IPAM's commits)
        return revs[0] if ops[0][0] != "delete" else revs[-1]


class CommitReadMemory(BatchMemory):
    """…with commit_or_read too (the gateway backend's one-round-trip assignment)."""

    def __init__(self) -> None:
        super().__init__()
        self.speculations: list[bool] = []

    def commit_or_read(self, ops: Sequence[Op], keys_: Sequence[str],
                       prefixes: Sequence[str] = (), *,
                       values: Mapping[str, str] | None = None,
                       failure_keys: Sequence[str] = ()
                       ) -> tuple[str | None, dict[str, KVPair], dict[str, tuple[KVPair, ...]]]:
        rev: str | None = None
        if all(k in self._data and self.get(k).value == v for k, v in (values or {}).items()):
            with contextlib.suppress(Conflict):
                rev = self.commit(ops)
        self.speculations.append(rev is not None)
        got, lists = self.read_many([*keys_, *(failure_keys if rev is None else ())], prefixes)
        return rev, got, lists


def seed(be: MemoryBackend) -> None:
    be.create(keys.resource_key("IPPool", "p"), json.dumps(
        {"kind": "IPPool", "metadata": {"name": "p"},
         "spec": {"cidr": "10.1.0.0/28", "blockSize": 30}}))
    be.create(keys.resource_key("Node", "n1"), json.dumps(
        {"kind": "Node", "metadata": {"name": "n1"}, "spec": {}}))


@pytest.fixture(params=["plain", "batch"])
def be(request: pytest.FixtureRequest) -> MemoryBackend:
    b = MemoryBackend() if request.param == "plain" else BatchMemory()
    seed(b)
    return b


def put_block(be: MemoryBackend, cidr: IPNetwork, owner: str | None,
              used: int = 0) -> None:
    b = Block.new(cidr, f"host:{owner}" if owner else None, claim_time=None, sequence_number=1)
    if used:
        b, _ = b.auto_assign(used, "other", {})
    be.create(keys.block_key(cidr), blk.encode(b))


def put_aff(be: MemoryBackend, cidr: IPNetwork, state: str,
            host: str = "n1") -> None:
    be.create(keys.affinity_key(host, cidr), Affinity(state).encode())


def aff_state(be: MemoryBackend, cidr: IPNetwork) -> str | None:
    try:
        return Affinity.decode(be.get(keys.affinity_key("n1", cidr)).value).state
    except NotFound:
        return None


def assign(be: MemoryBackend, handle: str = "h") -> list[ipaddress.IPv4Interface]:
    v4, _ = IPAMClient(be).auto_assign(AutoAssignArgs("n1", handle_id=handle))
    return list(v4.ips)  # type: ignore[arg-type]


def test_pending_claim_of_own_block_confirmed_though_another_block_serves(
        be: MemoryBackend) -> None:
    put_block(be, B1, "n1")
    put_aff(be, B1, "confirmed")
    put_block(be, B2, "n1")  # a claim stopped after the block write
    put_aff(be, B2, "pending")
    got = assign(be)
    assert got[0].network == B1  # served from the first block...
    assert aff_state(be, B2) == "confirmed"  # ...and the unfinished claim is settled
    assert check(be).affinity_problems == []


def test_pending_claim_lost_to_another_host_dropped(be: MemoryBackend) -> None:
    put_block(be, B1, "n1")
    put_aff(be, B1, "confirmed")
    put_block(be, B2, "n2")
    put_aff(be, B2, "confirmed", host="n2")
    put_aff(be, B2, "pending")
    assign(be)
    assert aff_state(be, B2) is None
    assert blk.decode(be.get(keys.block_key(B2)).value).affinity == "host:n2"


def test_pending_claim_without_block_finished(be: MemoryBackend) -> None:
    put_block(be, B1, "n1")
    put_aff(be, B1, "confirmed")
    put_aff(be, B2, "pending")  # stopped before the block write
    got = assign(be)
    assert got[0].network == B1
    assert aff_state(be, B2) == "confirmed"
    assert blk.decode(be.get(keys.block_key(B2)).value).affinity == "host:n1"
    assert check(be).affinity_problems == []


def test_pending_claim_outside_every_pool_dropped(be: MemoryBackend) -> None:
    outside = ipaddress.ip_network("10.9.0.0/30")
    put_aff(be, outside, "pending")
    assign(be)
    assert aff_state(be, outside) is None


def test_unfinished_releases(be: MemoryBackend) -> None:
    b3, b4 = ipaddress.ip_network("10.1.0.8/30"), ipaddress.ip_network("10.1.0.12/30")
    put_block(be, B1, "n1")
    put_aff(be, B1, "confirmed")
    put_aff(be, B2, "pendingDeletion")  # its block is already deleted
    put_block(be, b3, "n1")  # empty: the release is finished
    put_aff(be, b3, "pendingDeletion")
    put_block(be, b4, "n1", used=1)  # holds an address: left to its releaser
    put_aff(be, b4, "pendingDeletion")
    assert assign(be)[0].network == B1
    assert aff_state(be, B2) is None and aff_state(be, b3) is None
    with pytest.raises(NotFound):
        be.get(keys.block_key(b3))
    assert aff_state(be, b4) == "pendingDeletion"


def test_lost_swap_leaves_the_claim_to_the_next_assignment() -> None:
    be = MemoryBackend()
    seed(be)
    put_block(be, B1, "n1")
    put_aff(be, B1, "confirmed")
    put_block(be, B2, "n1")
    put_aff(be, B2, "pending")
    real_update = be.update
    raced: list[str] = []

    def racing_update(key: str, value: str, revision: str) -> KVPair:
        if key == keys.affinity_key("n1", B2) and not raced:
            raced.append(key)  # another claimer of n1 confirms it first
            real_update(key, Affinity("confirmed").encode(), revision)
        return real_update(key, value, revision)

    be.update = racing_update  # type: ignore[method-assign]
    assign(be)
    assert raced and aff_state(be, B2) == "confirmed"


def test_claim_with_a_batching_backend_is_one_transaction() -> None:
    be = BatchMemory()
    seed(be)
    assign(be)
    (k1, block_key, _, _), (k2, aff_key, aff_value, _) = be.commits[0]
    assert (k1, k2) == ("create", "create")
    assert block_key.startswith(keys.block_prefix(4))
    assert aff_key.startswith(keys.affinity_prefix("n1", 4))
    assert aff_value == Affinity("confirmed").encode()
    assert check(be).clean is False  # an address without a workload endpoint...
    assert check(be).affinity_problems == []  # ...but no claim was ever pending


def test_release_with_a_batching_backend_is_one_transaction() -> None:
    be = BatchMemory()
    seed(be)
    c = IPAMClient(be)
    c.auto_assign(AutoAssignArgs("n1", handle_id="h"))
    c.release_by_handle("h")
    be.commits.clear()
    assert c.release_host_affinities("n1") == 1
    assert [k for k, *_ in be.commits[0]] == ["delete", "delete"]
    assert be.list(keys.IPAM_ROOT).kvs == ()


def test_release_requiring_empty_puts_its_mark_back_when_an_address_arrives() -> None:
    be = MemoryBackend()
    seed(be)
    c = IPAMClient(be)
    c.auto_assign(AutoAssignArgs("n1", handle_id="h"))
    c.release_by_handle("h")
    cidr = keys.parse_block_key(be.list(keys.block_prefix()).kvs[0].key)
    assert cidr is not None
    real_delete = be.delete

    def racing_delete(key: str, revision: str | None = None) -> KVPair:
        if key == keys.block_key(cidr):
            be.delete = real_delete  # type: ignore[method-assign]
            IPAMClient(be).auto_assign(AutoAssignArgs("n1", handle_id="late"))
        return real_delete(key, revision)

    be.delete = racing_delete  # type: ignore[method-assign]
    assert c.release_affinity(cidr, "n1", must_be_empty=True) is False
    assert aff_state(be, cidr) == "confirmed"


def test_hint_file(tmp_path: Path) -> None:
    path = tmp_path / "hints.json"
    h = HintFile(path)
    assert h.get("n1", 4) == []
    h.put("n1", 4, ["k1"])
    assert HintFile(path).get("n1", 4) == ["k1"]
    mtime = path.stat().st_mtime_ns
    h.put("n1", 4, ["k1"])  # unchanged: not rewritten
    assert path.stat().st_mtime_ns == mtime
    path.write_text("{not json")
    assert HintFile(path).get("n1", 4) == []
    HintFile(tmp_path / "missing-dir" / "h.json").put("n1", 4, ["k"])  # never raises


def test_hints_let_a_fresh_client_read_once_before_its_commit(tmp_path: Path) -> None:
    be = BatchMemory()
    seed(be)
    hints = HintFile(tmp_path / "hints.json")
    IPAMClient(be, hints=hints).auto_assign(AutoAssignArgs("n1", handle_id="a"))
    be.reads = 0
    fresh = IPAMClient(be, hints=HintFile(tmp_path / "hints.json"))
    v4, _ = fresh.auto_assign(AutoAssignArgs("n1", handle_id="b"))
    assert len(v4.ips) == 1 and be.reads == 1


def test_claim_race_on_the_same_host_confirms_once() -> None:
    be = MemoryBackend()
    seed(be)
    c = IPAMClient(be)
    real_create = be.create

    def racing_create(key: str, value: str) -> KVPair:
        if key == keys.block_key(B1) and not raced:
            raced.append(key)  # another claimer of n1 creates the block first
            real_create(key, value)
            raise AlreadyExists(key)
        return real_create(key, value)

    raced: list[str] = []
    be.create = racing_create  # type: ignore[method-assign]
    got = c._claim_block("n1", B1)
    assert got is not None and raced
    assert aff_state(be, B1) == "confirmed"


def test_release_by_handle_with_a_batching_backend_is_one_transaction() -> None:
    be = BatchMemory()
    seed(be)
    c = IPAMClient(be)
    v4, _ = c.auto_assign(AutoAssignArgs("n1", handle_id="h", num4=2))
    c.auto_assign(AutoAssignArgs("n1", handle_id="other"))
    be.commits.clear()
    assert c.release_by_handle("h") == 2
    assert [(k, key.startswith(keys.block_prefix())) for k, key, _, _ in be.commits[0]] == [
        ("update", True), ("delete", False)]
    with pytest.raises(NotFound):
        be.get(keys.handle_key("h"))
    b = blk.decode(be.get(keys.block_key(v4.ips[0].network)).value)
    assert [str(ip) for ip, _ in b.in_use()] == [str(v4.ips[1].ip + 1)]
    with pytest.raises(NotFound):
        c.release_by_handle("h")


def test_unfinished_claim_settled_with_pools_of_both_families(be: MemoryBackend) -> None:
    be.create(keys.resource_key("IPPool", "a6"), json.dumps(  # listed before the IPv4 pool
        {"kind": "IPPool", "metadata": {"name": "a6"}, "spec": {"cidr": "fd00::/120"}}))
    put_block(be, B1, "n1")
    put_aff(be, B1, "confirmed")
    put_aff(be, B2, "pending")  # stopped before the block write
    v4, v6 = IPAMClient(be).auto_assign(AutoAssignArgs("n1", handle_id="h", num6=1))
    assert v4.ips[0].network == B1 and len(v6.ips) == 1
    assert aff_state(be, B2) == "confirmed"


def test_speculative_assignment_is_one_transaction(tmp_path: Path) -> None:
    be = CommitReadMemory()
    seed(be)
    IPAMClient(be, hints=HintFile(tmp_path / "h")).auto_assign(AutoAssignArgs("n1", handle_id="a"))
    be.commits.clear()
    be.reads = 0
    fresh = IPAMClient(be, hints=HintFile(tmp_path / "h"))
    v4, _ = fresh.auto_assign(AutoAssignArgs("n1", handle_id="b"))
    assert be.speculations == [True] and be.reads == 1  # the read inside commit_or_read
    assert fresh.ips_by_handle("b") == [v4.ips[0].ip]
    assert check(be).handle_problems == []


def test_speculation_refused_by_a_new_reservation_is_undone(tmp_path: Path) -> None:
    be = CommitReadMemory()
    seed(be)
    c = IPAMClient(be, hints=HintFile(tmp_path / "h"))
    first = c.auto_assign(AutoAssignArgs("n1", handle_id="a"))[0].ips[0]
    nxt = first.ip + 1
    be.create(keys.resource_key("IPReservation", "r"), json.dumps(
        {"kind": "IPReservation", "metadata": {"name": "r"},
         "spec": {"reservedCIDRs": [f"{nxt}/32"]}}))
    v4, _ = IPAMClient(be, hints=HintFile(tmp_path / "h")).auto_assign(
        AutoAssignArgs("n1", handle_id="b"))
    assert be.speculations[-1] is True  # it went through, was checked, and undone
    assert v4.ips[0].ip != nxt
    b = blk.decode(be.get(keys.block_key(first.network)).value)
    assert nxt not in [ip for ip, _ in b.in_use()]
    assert check(be).handle_problems == []


def test_speculation_needs_the_exact_block_value(tmp_path: Path) -> None:
    be = CommitReadMemory()
    seed(be)
    hints = HintFile(tmp_path / "h")
    IPAMClient(be, hints=hints).auto_assign(AutoAssignArgs("n1", handle_id="a"))
    kv = hints.block("n1", 4)
    assert kv is not None
    # same key and revision, other content (a rebuilt datastore): never written from it
    other = kv.value.replace('"host:n1"', '"host:n1" ')
    hints.put_block("n1", 4, KVPair(kv.key, other, kv.revision))
    v4, _ = IPAMClient(be, hints=HintFile(tmp_path / "h")).auto_assign(
        AutoAssignArgs("n1", handle_id="b"))
    assert be.speculations[-1] is False and len(v4.ips) == 1
    assert check(be).handle_problems == [] and check(be).block_problems == []
