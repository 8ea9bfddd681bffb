"""IPAMClient logic over the in-memory backend (pure logic; the proof is in integration)."""

from __future__ import annotations

import ipaddress
import json

import pytest

from libcalico.datastore.memory import MemoryBackend
from libcalico.errors import AlreadyExists, NotFound
from libcalico.ipam import block as blk
from libcalico.ipam.client import AutoAssignArgs, BlockLimitError, IPAMClient, IPAMError
from libcalico.ipam.records import Affinity, Handle, IPAMConfig, Pool, candidate_blocks
from libcalico.model import keys


def pool(be: MemoryBackend, name: str, cidr: str, **spec: object) -> None:
    be.create(keys.resource_key("IPPool", name), json.dumps(
        {"kind": "IPPool", "apiVersion": "projectcalico.org/v3", "metadata": {"name": name},
         "spec": {"cidr": cidr, **spec}}))


def node(be: MemoryBackend, name: str, **labels: str) -> None:
    be.create(keys.resource_key("Node", name), json.dumps(
        {"kind": "Node", "metadata": {"name": name, "labels": labels}, "spec": {}}))


@pytest.fixture
def be() -> MemoryBackend:
    b = MemoryBackend()
    for n in ("n1", "n2"):
        node(b, n, zone="a" if n == "n1" else "b")
    return b


def ips(result: tuple[object, ...]) -> list[str]:
    return [str(i) for a in result for i in a.ips]  # type: ignore[attr-defined]


def test_first_assignment_claims_block_with_confirmed_affinity(be: MemoryBackend) -> None:
    pool(be, "p", "10.1.0.0/24", blockSize=28)
    c = IPAMClient(be)
    v4, v6 = c.auto_assign(AutoAssignArgs("n1", handle_id="net.c1", attrs={"node": "n1"}))
    assert len(v4.ips) == 1 and v6.ips == ()
    iface = v4.ips[0]
    assert iface.network.prefixlen == 28 and iface.ip == iface.network.network_address
    aff = be.get(keys.affinity_key("n1", iface.network))
    assert Affinity.decode(aff.value).state == "confirmed"
    h = Handle.decode(be.get(keys.handle_key("net.c1")).value)
    assert h.block == {str(iface.network): 1}
    # the next address comes from the same block
    v4b, _ = c.auto_assign(AutoAssignArgs("n1", handle_id="net.c2"))
    assert v4b.ips[0].ip == iface.ip + 1


def test_block_start_is_hostname_seeded(be: MemoryBackend) -> None:
    p = Pool("p", ipaddress.ip_network("10.1.0.0/24"), 28)
    a = list(candidate_blocks(p, "n1"))
    assert a == list(candidate_blocks(p, "n1"))
    assert sorted(a) == [p.nth_block(i) for i in range(16)]
    # sequential with wrap-around from the start
    start = a[0]
    i0 = (int(start.network_address) - int(p.cidr.network_address)) // 16
    assert a == [p.nth_block((i0 + k) % 16) for k in range(16)]


def test_borrow_when_no_block_left_unless_strict(be: MemoryBackend) -> None:
    pool(be, "p", "10.1.0.0/29", blockSize=30)  # two blocks of 4
    c = IPAMClient(be)
    for i in range(4):
        c.auto_assign(AutoAssignArgs("n1", handle_id=f"a{i}"))
    v4, _ = c.auto_assign(AutoAssignArgs("n2", handle_id="b0", num4=3))
    # n2 claimed the other block: 3 from it
    assert len(v4.ips) == 3
    v4, _ = c.auto_assign(AutoAssignArgs("n1", handle_id="a5", num4=2))
    # n1's block is full and none left to claim: it borrows n2's last address
    assert len(v4.ips) == 1 and v4.shortfall_message("IPv4") is not None
    assert "No IPs available in pools" in (v4.shortfall_message("IPv4") or "")
    c.set_config(IPAMConfig(strict_affinity=True, auto_allocate_blocks=True))
    c.release_by_handle("a5")
    v4, _ = c.auto_assign(AutoAssignArgs("n1", handle_id="a6"))
    assert v4.ips == () and "strict affinity" in (v4.shortfall_message("IPv4") or "")


def test_block_limit(be: MemoryBackend) -> None:
    pool(be, "p", "10.1.0.0/24", blockSize=30)
    c = IPAMClient(be)
    c.set_config(IPAMConfig(strict_affinity=True, max_blocks_per_host=2))
    for i in range(8):
        c.auto_assign(AutoAssignArgs("n1", handle_id=f"a{i}"))
    with pytest.raises(BlockLimitError, match="per host block limit"):
        c.auto_assign(AutoAssignArgs("n1", handle_id="x"))


def test_auto_allocate_off_never_claims(be: MemoryBackend) -> None:
    pool(be, "p", "10.1.0.0/24", blockSize=28)
    c = IPAMClient(be)
    c.set_config(IPAMConfig(strict_affinity=True, auto_allocate_blocks=False))
    v4, _ = c.auto_assign(AutoAssignArgs("n1", handle_id="x"))
    assert v4.ips == ()
    assert be.list(keys.block_prefix()).kvs == ()


def test_pool_selection(be: MemoryBackend) -> None:
    pool(be, "a-zone", "10.1.0.0/24", nodeSelector="zone == 'a'")
    pool(be, "b-zone", "10.2.0.0/24", nodeSelector="zone == 'b'")
    pool(be, "c-off", "10.3.0.0/24", disabled=True)
    pool(be, "d-tunnel", "10.4.0.0/24", allowedUses=["Tunnel"])
    c = IPAMClient(be)
    v4, _ = c.auto_assign(AutoAssignArgs("n2", handle_id="h"))
    assert v4.ips[0] in ipaddress.ip_network("10.2.0.0/24")
    # a requested pool is used regardless of selectors
    v4, _ = c.auto_assign(AutoAssignArgs("n2", handle_id="h2",
                                         ipv4_pools=[ipaddress.ip_network("10.1.0.0/24")]))
    assert v4.ips[0] in ipaddress.ip_network("10.1.0.0/24")
    with pytest.raises(IPAMError, match=r"the given pool \(10.3.0.0/24\) does not exist"):
        c.auto_assign(AutoAssignArgs("n2", ipv4_pools=[ipaddress.ip_network("10.3.0.0/24")]))
    with pytest.raises(IPAMError, match="no pools match the required use"):
        c.auto_assign(AutoAssignArgs("n2", ipv4_pools=[ipaddress.ip_network("10.4.0.0/24")]))
    with pytest.raises(IPAMError, match="could not find Calico Node 'n9'"):
        c.auto_assign(AutoAssignArgs("n9"))


def test_reservations_skip_addresses_and_whole_blocks(be: MemoryBackend) -> None:
    pool(be, "p", "10.1.0.0/24", blockSize=30)
    be.create(keys.resource_key("IPReservation", "r"), json.dumps(
        {"kind": "IPReservation", "metadata": {"name": "r"},
         "spec": {"reservedCIDRs": ["10.1.0.0/25", "10.1.0.128"]}}))
    c = IPAMClient(be)
    got = []
    for i in range(6):
        v4, _ = c.auto_assign(AutoAssignArgs("n1", handle_id=f"h{i}"))
        got += [i.ip for i in v4.ips]
    assert all(ip >= ipaddress.ip_address("10.1.0.129") for ip in got)
    # AssignIP ignores reservations (as Calico does)
    c.assign_ip(ipaddress.ip_address("10.1.0.5"), handle_id="x", attrs={}, hostname="n1")


def test_assign_ip_and_release(be: MemoryBackend) -> None:
    pool(be, "p", "10.1.0.0/24", blockSize=28)
    c = IPAMClient(be)
    ip = ipaddress.ip_address("10.1.0.77")
    r = c.assign_ip(ip, handle_id="h", attrs={"node": "n1"}, hostname="n1")
    assert str(r) == "10.1.0.77/28"
    with pytest.raises(AlreadyExists, match="already assigned"):
        c.assign_ip(ip, handle_id="h2", attrs={}, hostname="n1")
    with pytest.raises(IPAMError, match="not in a configured pool"):
        c.assign_ip(ipaddress.ip_address("192.0.2.1"), handle_id="h", attrs={}, hostname="n1")
    assert c.ips_by_handle("h") == [ip]
    assert c.release_ips([ip]) == []
    assert c.release_ips([ip]) == [ip]
    with pytest.raises(NotFound):
        be.get(keys.handle_key("h"))


def test_empty_unaffine_block_removed_on_release(be: MemoryBackend) -> None:
    pool(be, "p", "10.1.0.0/24", blockSize=28)
    c = IPAMClient(be)
    v4, _ = c.auto_assign(AutoAssignArgs("n1", handle_id="h", num4=2))
    cidr = v4.ips[0].network
    c.remove_ipam_host("n1")
    b = blk.decode(be.get(keys.block_key(cidr)).value)
    assert b.affinity is None and len(b.in_use()) == 2  # addresses survive, borrowed
    assert be.list(keys.affinity_prefix("n1")).kvs == ()
    assert c.release_by_handle("h") == 2
    with pytest.raises(NotFound):
        be.get(keys.block_key(cidr))
    with pytest.raises(NotFound):
        c.release_by_handle("h")


def test_host_removal_deletes_empty_affine_blocks(be: MemoryBackend) -> None:
    pool(be, "p", "10.1.0.0/24", blockSize=28)
    c = IPAMClient(be)
    c.auto_assign(AutoAssignArgs("n1", handle_id="h"))
    c.release_by_handle("h")
    assert len(be.list(keys.block_prefix()).kvs) == 1  # affine blocks are kept
    c.remove_ipam_host("n1")
    assert be.list(keys.block_prefix()).kvs == ()


def test_stale_cas_is_retried_not_overwritten(be: MemoryBackend) -> None:
    pool(be, "p", "10.1.0.0/24", blockSize=28)
    c = IPAMClient(be)
    c.auto_assign(AutoAssignArgs("n1", handle_id="h0"))
    real_update = be.update
    raced = []

    def racing_update(key: str, value: str, revision: int):  # type: ignore[no-untyped-def]
        if "/block/" in key and not raced:
            raced.append(key)
            # another writer takes the next address first
            other = IPAMClient(be)
            other.auto_assign(AutoAssignArgs("n1", handle_id="other"))
        return real_update(key, value, revision)

    be.update = racing_update  # type: ignore[method-assign]
    v4, _ = c.auto_assign(AutoAssignArgs("n1", handle_id="h1"))
    be.update = real_update  # type: ignore[method-assign]
    assert raced
    mine = v4.ips[0].ip
    assert c.ips_by_handle("other") != [mine]
    assert c.ips_by_handle("h1") == [mine]
    assert Handle.decode(be.get(keys.handle_key("h1")).value).block == {str(v4.ips[0].network): 1}


def test_ipam_config_codec() -> None:
    assert IPAMConfig().encode() == '{"auto_allocate_blocks":true}'
    assert IPAMConfig.decode("{}") == IPAMConfig(False, False, 0)
    with pytest.raises(Exception, match="same time"):
        IPAMConfig(False, False).validate()
    with pytest.raises(Exception, match="strict"):
        IPAMConfig(False, True, 3).validate()
    assert IPAMConfig().block_limit() == 20
    assert Affinity.decode("").confirmed and not Affinity.decode('{"state":"pending"}').confirmed
    assert Handle({"b": 1, "a": 2}).encode() == '{"block":{"a":2,"b":1},"deleted":false}'


def test_empty_foreign_block_reclaimed_only_after_a_minute(be: MemoryBackend) -> None:
    pool(be, "p", "10.1.0.0/30", blockSize=30)  # a single block
    now = [1_800_000_000 * 10**9]
    c = IPAMClient(be, clock_ns=lambda: now[0])
    c.auto_assign(AutoAssignArgs("n1", handle_id="a"))
    c.release_by_handle("a")  # n1's block is empty but still affine to n1
    v4, _ = c.auto_assign(AutoAssignArgs("n2", handle_id="b"))
    # too young to reclaim; borrowing takes an address from n1's block instead
    b = blk.decode(be.get(keys.block_key(ipaddress.ip_network("10.1.0.0/30"))).value)
    assert b.affinity == "host:n1" and len(v4.ips) == 1
    c.release_by_handle("b")
    now[0] += 61 * 10**9
    v4, _ = c.auto_assign(AutoAssignArgs("n2", handle_id="c"))
    b = blk.decode(be.get(keys.block_key(ipaddress.ip_network("10.1.0.0/30"))).value)
    assert b.affinity == "host:n2", "an empty block claimed over a minute ago is reclaimed"
    assert be.list(keys.affinity_prefix("n1")).kvs == ()
    assert Affinity.decode(be.get(keys.affinity_key(
        "n2", ipaddress.ip_network("10.1.0.0/30"))).value).confirmed


def test_claim_race_lost_removes_pending_affinity(be: MemoryBackend) -> None:
    pool(be, "p", "10.1.0.0/29", blockSize=30)
    c = IPAMClient(be)
    cidr = ipaddress.ip_network("10.1.0.0/30")
    # n2 created the block first; n1's claim of the same CIDR must back off cleanly
    c._claim_block("n2", cidr)
    assert c._claim_block("n1", cidr) is None
    with pytest.raises(NotFound):
        be.get(keys.affinity_key("n1", cidr))
    assert blk.decode(be.get(keys.block_key(cidr)).value).affinity == "host:n2"


def test_strict_affinity_refuses_foreign_block_for_assign_ip(be: MemoryBackend) -> None:
    pool(be, "p", "10.1.0.0/24", blockSize=28)
    c = IPAMClient(be)
    c.set_config(IPAMConfig(strict_affinity=True))
    c.assign_ip(ipaddress.ip_address("10.1.0.1"), handle_id="h", attrs={}, hostname="n1")
    with pytest.raises(IPAMError, match="strict affinity"):
        c.assign_ip(ipaddress.ip_address("10.1.0.2"), handle_id="h2", attrs={}, hostname="n2")
