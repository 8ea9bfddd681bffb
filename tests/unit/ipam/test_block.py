"""Block arithmetic, codec and invariants (hypothesis)."""

from __future__ import annotations

import ipaddress
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from libcalico.errors import AlreadyExists, Conflict, ValidationError
from libcalico.ipam import block as blk
from libcalico.ipam.block import Block
from libcalico.ipam.gojson import go_time_string, rfc3339

NET = ipaddress.ip_network("10.244.0.0/26")

# A block as Calico writes it after two pods (from the reference, generated from Go structs).
GO_BLOCK = (
    '{"cidr":"10.244.0.0/26","affinity":"host:node1","affinity_claim_time":"2026-08-22T10:00:00Z",'
    '"allocations":[0,1' + ",null" * 62 + '],"unallocated":['
    + ",".join(str(i) for i in range(2, 64))
    + '],"attributes":[{"handle_id":"k8s-pod-network.6f1c","secondary":{"namespace":"default",'
    '"node":"node1","pod":"nginx-7d8b49557c-x2k4j","timestamp":"2026-08-22 10:00:00.123456789 '
    '+0000 UTC"}},{"handle_id":"k8s-pod-network.0a1b","secondary":{"namespace":"kube-system",'
    '"node":"node1","pod":"coredns-5d78c9869d-abcde","timestamp":"2026-08-22 10:00:01.5 +0000 UTC"'
    '}}],"sequenceNumber":1755856800000000002,"sequenceNumberForAllocation":{"0":1755856800000000000'
    ',"1":1755856800000000001},"deleted":false}'
)


def test_go_written_block_round_trips_byte_for_byte() -> None:
    b = blk.decode(GO_BLOCK)
    assert b.affinity == "host:node1"
    assert [str(ip) for ip, _ in b.in_use()] == ["10.244.0.0", "10.244.0.1"]
    assert blk.encode(b) == GO_BLOCK


def test_new_block_json_shape() -> None:
    b = Block.new(NET, "host:n1", claim_time="2026-08-22T10:00:00Z", sequence_number=7)
    doc = json.loads(blk.encode(b))
    assert list(doc) == ["cidr", "affinity", "affinity_claim_time", "allocations", "unallocated",
                         "attributes", "sequenceNumber", "sequenceNumberForAllocation", "deleted"]
    assert doc["allocations"] == [None] * 64 and doc["unallocated"] == list(range(64))
    assert doc["attributes"] == [] and doc["sequenceNumberForAllocation"] == {}
    unaffine = Block.new(NET, None, claim_time=None, sequence_number=1)
    assert blk.encode(unaffine).startswith('{"cidr":"10.244.0.0/26","affinity":null,"allocations"')


def test_go_html_escaping_and_sorted_maps() -> None:
    b = Block.new(NET, "host:n1", claim_time=None, sequence_number=1)
    b, _ = b.auto_assign(1, "h<1>&", {"z": "1", "a": "<b>"})
    text = blk.encode(b)
    assert '"handle_id":"h\\u003c1\\u003e\\u0026"' in text
    assert '"secondary":{"a":"\\u003cb\\u003e","z":"1"}' in text
    assert blk.decode(text).attributes[0].handle_id == "h<1>&"


def test_sequence_number_map_sorted_as_strings_like_go() -> None:
    b = Block.new(NET, "host:n1", claim_time=None, sequence_number=5)
    b, _ = b.auto_assign(12, "h", {})
    text = blk.encode(b)
    assert '"sequenceNumberForAllocation":{"0":5,"1":5,"10":5,"11":5,"2":5' in text


def test_ordinals_in_order_and_released_reused_last() -> None:
    b = Block.new(NET, "host:n1", claim_time=None, sequence_number=1)
    b, ips = b.auto_assign(3, "h1", {})
    assert [str(i) for i in ips] == ["10.244.0.0", "10.244.0.1", "10.244.0.2"]
    b, unalloc, counts = b.release([ipaddress.ip_address("10.244.0.1")])
    assert unalloc == [] and counts == {"h1": 1}
    assert b.unallocated[-1] == 1 and b.unallocated[0] == 3
    b, ips = b.auto_assign(1, "h2", {})
    assert str(ips[0]) == "10.244.0.3"


def test_reserved_ordinals_skipped_and_kept_in_place() -> None:
    b = Block.new(NET, "host:n1", claim_time=None, sequence_number=1)
    b, ips = b.auto_assign(2, "h", {}, reserved=frozenset({0, 1}))
    assert [b.ordinal(i) for i in ips] == [2, 3]
    assert b.unallocated[:2] == (0, 1)


def test_assign_specific_and_collision() -> None:
    b = Block.new(NET, "host:n1", claim_time=None, sequence_number=1)
    ip = ipaddress.ip_address("10.244.0.9")
    b = b.assign(ip, "h", {"node": "n1"})
    assert 9 not in b.unallocated and b.attribute_for(ip) is not None
    with pytest.raises(AlreadyExists, match="Address already assigned in block"):
        b.assign(ip, "h2", {})
    with pytest.raises(ValidationError, match="not in block"):
        b.assign(ipaddress.ip_address("10.0.0.1"), "h", {})


def test_release_guards_handle_and_sequence() -> None:
    b = Block.new(NET, "host:n1", claim_time=None, sequence_number=40)
    b, ips = b.auto_assign(1, "h1", {})
    with pytest.raises(Conflict):
        b.release(ips, handle_id="other")
    with pytest.raises(Conflict):
        b.release(ips, sequence_number=41)
    b2, _, _ = b.release(ips, handle_id="h1", sequence_number=40)
    assert b2.is_empty()
    # releasing again is not an error: the address comes back as "not allocated"
    b3, unalloc, counts = b2.release(ips)
    assert unalloc == ips and counts == {} and b3 is b2


def test_handle_sanitized_for_host_local_migration() -> None:
    b = Block.new(NET, "host:n1", claim_time=None, sequence_number=1)
    b, _ = b.auto_assign(2, "net.abc\r\neth0", {})
    assert len(b.ips_for_handle("net.abc")) == 2
    b, n = b.release_handle("net.abc")
    assert n == 2 and b.is_empty()


def test_identical_owner_reuses_attribute_and_unused_are_pruned() -> None:
    b = Block.new(NET, "host:n1", claim_time=None, sequence_number=1)
    b, a = b.auto_assign(1, "h1", {"pod": "p"})
    b, _ = b.auto_assign(1, "h1", {"pod": "p"})
    b, c = b.auto_assign(1, "h2", {"pod": "q"})
    assert len(b.attributes) == 2
    b, _, _ = b.release(a + b.ips_for_handle("h1"))
    assert [x.handle_id for x in b.attributes] == ["h2"]
    assert b.allocations[b.ordinal(c[0])] == 0


def test_decode_rejects_malformed_values() -> None:
    with pytest.raises(ValidationError, match="allocations"):
        blk.decode('{"cidr":"10.0.0.0/30","allocations":[null],"unallocated":[]}')
    with pytest.raises(ValidationError, match="attribute index"):
        blk.decode('{"cidr":"10.0.0.0/31","allocations":[3,null],"unallocated":[1]}')
    with pytest.raises(ValidationError, match="not JSON"):
        blk.decode("{")
    with pytest.raises(ValidationError, match="malformed"):
        blk.decode('{"allocations":[]}')


def test_v6_block() -> None:
    net = ipaddress.ip_network("fd00:10:244::/122")
    b = Block.new(net, "host:n1", claim_time=None, sequence_number=1)
    b, ips = b.auto_assign(2, "h", {})
    assert [str(i) for i in ips] == ["fd00:10:244::", "fd00:10:244::1"]
    assert blk.decode(blk.encode(b)) == b


def test_go_time_formats() -> None:
    assert go_time_string(1755856800_123456789) == "2025-08-22 10:00:00.123456789 +0000 UTC"
    assert go_time_string(1755856801_500000000) == "2025-08-22 10:00:01.5 +0000 UTC"
    assert go_time_string(1755856800_000000000) == "2025-08-22 10:00:00 +0000 UTC"
    assert rfc3339(1755856800_999999999) == "2025-08-22T10:00:00Z"


# ---- hypothesis: any sequence of operations keeps the invariants -------------------------

ops = st.lists(
    st.one_of(
        st.tuples(st.just("auto"), st.integers(1, 5), st.sampled_from(["a", "b", "c"])),
        st.tuples(st.just("assign"), st.integers(0, 15), st.sampled_from(["a", "b", "c"])),
        st.tuples(st.just("release"), st.integers(0, 15), st.just("")),
        st.tuples(st.just("release_handle"), st.integers(0, 0), st.sampled_from(["a", "b", "c"])),
    ),
    max_size=60,
)


@settings(max_examples=300, deadline=None)
@given(ops, st.frozensets(st.integers(0, 15), max_size=4))
def test_invariants_under_random_operations(
        seq: list[tuple[str, int, str]], reserved: frozenset[int]) -> None:
    net = ipaddress.ip_network("10.0.0.0/28")
    b = Block.new(net, "host:n", claim_time=None, sequence_number=1)
    model: dict[int, str] = {}  # ordinal -> handle, the reference model
    for op, n, h in seq:
        if op == "auto":
            before = set(model)
            b, ips = b.auto_assign(n, h, {"pod": h}, reserved)
            ords = [b.ordinal(i) for i in ips]
            assert not set(ords) & before, "an address was handed out twice"
            assert not set(ords) & reserved
            free_unreserved = 16 - len(before) - len(reserved - before)
            assert len(ords) == min(n, free_unreserved)
            model.update(dict.fromkeys(ords, h))
        elif op == "assign":
            ip = b.address(n)
            if n in model:
                with pytest.raises(AlreadyExists):
                    b.assign(ip, h, {})
            else:
                b = b.assign(ip, h, {})
                model[n] = h
        elif op == "release":
            b, unalloc, counts = b.release([b.address(n)])
            if n in model:
                assert counts == {model.pop(n): 1} and not unalloc
                assert b.unallocated[-1] == n, "released ordinals go to the tail"
            else:
                assert unalloc == [b.address(n)]
        else:
            b, cnt = b.release_handle(h)
            assert cnt == sum(1 for v in model.values() if v == h)
            model = {k: v for k, v in model.items() if v != h}
        assert b.problems() == []
        assert {o for o, i in enumerate(b.allocations) if i is not None} == set(model)
        for o, hh in model.items():
            idx = b.allocations[o]
            assert idx is not None and b.attributes[idx].handle_id == hh
        # every attribute referenced; per-handle counts match the model
        assert {i for i in b.allocations if i is not None} == set(range(len(b.attributes)))
        for hh in "abc":
            assert len(b.ips_for_handle(hh)) == sum(1 for v in model.values() if v == hh)
        assert blk.decode(blk.encode(b)) == b
