"""The IPAM GC decisions (calico_kube_controllers.gc), state in / state out."""

from __future__ import annotations

import ipaddress

from calico_kube_controllers import gc
from libcalico.ipam.block import WINDOWS_RESERVED_HANDLE, Block

NET = ipaddress.ip_network("10.9.0.0/29")
GRACE = 900.0


def alloc(last: int, *, node: str = "n1", pod: str | None = "p", handle: str | None = None,
          kind: str | None = None) -> gc.Allocation:
    attrs = {"node": node}
    if pod is not None:
        attrs |= {"namespace": "ns", "pod": pod}
    if kind is not None:
        attrs["type"] = kind
    return gc.Allocation(ip=NET.network_address + last, handle=handle or f"h-{pod}-{last}",
                         attrs=attrs, sequence=1, block=NET)


def info(node: str = "n1", ips: tuple[int, ...] = (), reported: bool = True,
         evicted: bool = False) -> gc.PodInfo:
    return gc.PodInfo(node=node, reported_ip=reported, evicted=evicted,
                      ips=frozenset(NET.network_address + i for i in ips))


def test_validity_rules() -> None:
    a = alloc(1)
    assert not gc.allocation_valid(a, "n1", None)                    # pod gone
    assert gc.allocation_valid(a, "n1", gc.UNKNOWN)                  # lookup failed
    assert gc.allocation_valid(a, "n1", info(ips=(1,)))              # pod has the address
    assert not gc.allocation_valid(a, "n1", info(ips=(2,)))          # another address
    assert gc.allocation_valid(a, "n1", info(reported=False))        # no IP reported yet
    assert not gc.allocation_valid(a, "n1", info(ips=(1,), evicted=True))
    assert not gc.allocation_valid(a, "n1", info(node="n2", ips=(1,)))  # rescheduled
    assert gc.allocation_valid(alloc(2, pod=None), "", None)         # no pod attributes
    tunnel = alloc(3, pod=None, kind="vxlanTunnelAddress")
    assert gc.allocation_valid(tunnel, "n1", None)
    assert not gc.allocation_valid(tunnel, "", None)


def test_leak_on_a_live_node_waits_for_the_grace_period_and_heals() -> None:
    t = gc.LeakTracker()
    a = alloc(1)
    nodes = {"n1": gc.NodeView("n1", True)}
    assert gc.check_allocations({"n1": [a]}, nodes, {}, t, 0.0, GRACE) == []
    assert a.id in t.leaked_at and not t.confirmed
    gc.check_allocations({"n1": [a]}, nodes, {}, t, GRACE, GRACE)
    assert not t.confirmed  # not *more* than the grace period yet
    gc.check_allocations({"n1": [a]}, nodes, {("ns", "p"): info(ips=(1,))}, t,
                         GRACE + 1, GRACE)
    assert not t.leaked_at and not t.confirmed  # the pod came back: timer cleared
    gc.check_allocations({"n1": [a]}, nodes, {}, t, GRACE + 2, GRACE)
    gc.check_allocations({"n1": [a]}, nodes, {}, t, 2 * GRACE + 3, GRACE)
    assert set(t.confirmed) == {a.id}


def test_zero_grace_period_never_confirms_on_a_live_node() -> None:
    t = gc.LeakTracker()
    a = alloc(1)
    nodes = {"n1": gc.NodeView("n1", True)}
    for now in (0.0, 1e6):
        gc.check_allocations({"n1": [a]}, nodes, {}, t, now, 0.0)
    assert a.id in t.leaked_at and not t.confirmed


def test_deleted_node_confirms_at_once_and_is_released_with_its_tunnel() -> None:
    t = gc.LeakTracker()
    pod_ip, tunnel = alloc(1), alloc(2, pod=None, kind="ipipTunnelAddress")
    out = gc.check_allocations({"n1": [pod_ip, tunnel]}, {"n1": gc.NodeView("", False)}, {},
                               t, 0.0, GRACE)
    assert out == ["n1"] and set(t.confirmed) == {pod_ip.id, tunnel.id}


def test_deleted_node_with_a_live_pod_or_unknown_allocation_is_kept() -> None:
    for allocs, pods in (([alloc(1), alloc(2, pod="q")], {("ns", "q"): info(reported=False)}),
                         ([alloc(1), alloc(2, pod=None)], {})):
        t = gc.LeakTracker()
        out = gc.check_allocations({"n1": allocs}, {"n1": gc.NodeView("", False)}, pods, t,
                                   0.0, GRACE)
        assert out == [] and set(t.confirmed) == {allocs[0].id}


def test_not_kubernetes_nodes_and_windows_reserved_are_skipped() -> None:
    t = gc.LeakTracker()
    out = gc.check_allocations({"vm": [alloc(1, node="vm")]}, {"vm": gc.NodeView(None, False)},
                               {}, t, 0.0, GRACE)
    assert out == [] and not t.confirmed and not t.leaked_at
    w = alloc(1, handle=WINDOWS_RESERVED_HANDLE)
    out = gc.check_allocations({"n1": [w]}, {"n1": gc.NodeView("", False)}, {}, t, 0.0, GRACE)
    assert out == ["n1"] and not t.confirmed


def test_handle_is_released_all_or_none() -> None:
    t = gc.LeakTracker()
    a, b = alloc(1, handle="h"), alloc(2, handle="h")
    by_handle: dict[str | None, list[gc.Allocation]] = {"h": [a, b]}
    t.mark_confirmed(a)
    assert not gc.handle_confirmed("h", by_handle, t)
    t.mark_confirmed(b)
    assert gc.handle_confirmed("h", by_handle, t)
    assert not gc.handle_confirmed("other", by_handle, t)


def test_forget_missing_drops_state_of_released_allocations() -> None:
    t = gc.LeakTracker()
    a, b = alloc(1), alloc(2)
    t.mark_leak(a, 0.0, GRACE)
    t.mark_confirmed(b)
    t.forget_missing([a.id])
    assert set(t.leaked_at) == {a.id} and not t.confirmed


def _block(cidr: str, host: str, used: bool) -> Block:
    b = Block.new(ipaddress.ip_network(cidr), f"host:{host}", claim_time=None,
                  sequence_number=0)
    return b.auto_assign(1, "h", {"node": host})[0] if used else b


def test_empty_block_released_after_two_observations_keeping_one_per_node() -> None:
    t = gc.LeakTracker()
    blocks = [_block("10.1.0.0/30", "n1", False), _block("10.1.0.4/30", "n1", False),
              _block("10.1.0.8/30", "n2", False), _block("10.1.0.12/30", "n3", True),
              _block("10.1.0.16/30", "n3", False)]
    assert gc.empty_blocks_to_release(blocks, t, 0.0, GRACE) == []
    out = gc.empty_blocks_to_release(blocks, t, GRACE + 1, GRACE)
    assert out == [(ipaddress.ip_network("10.1.0.0/30"), "n1"),
                   (ipaddress.ip_network("10.1.0.16/30"), "n3")]
    # a block used meanwhile starts again
    blocks[4] = _block("10.1.0.16/30", "n3", True)
    gc.empty_blocks_to_release(blocks, t, GRACE + 2, GRACE)
    assert ipaddress.ip_network("10.1.0.16/30") not in t.empty_since
    assert gc.empty_blocks_to_release(blocks, t, 1e9, 0.0) == []  # no grace: never


def test_pod_info_from_a_pod_object() -> None:
    pod = {"metadata": {"name": "p", "namespace": "ns"}, "spec": {"nodeName": "n1"},
           "status": {"podIP": "10.9.0.1", "podIPs": [{"ip": "10.9.0.1"}]}}
    got = gc.pod_info(pod)
    assert isinstance(got, gc.PodInfo)
    assert got.node == "n1" and got.reported_ip and got.ips == {NET.network_address + 1}
    done = {**pod, "status": {**pod["status"], "phase": "Succeeded"}}
    assert gc.pod_info(done) == gc.PodInfo("n1", True, False, frozenset())
    bad = {**pod, "status": {"podIP": "nonsense", "podIPs": [{"ip": "nonsense"}]}}
    assert gc.pod_info(bad) is gc.UNKNOWN
