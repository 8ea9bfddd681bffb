"""IPAM garbage collection decisions, as Calico's kube-controllers IPAM GC makes them
(`kube-controllers/pkg/controllers/node/ipam.go`, `ipam_allocation.go`; design/ipam/ipam-gc.md).

Pure: the controller (`node.py`) reads the IPAM blocks, the Kubernetes Nodes and Pods and the
Calico Nodes, and hands them here; this module says which allocations are leaks and which
nodes' affinities to release. The only state kept between scans is the `LeakTracker`
(when each allocation was first seen leaked; which empty blocks were seen empty, and when).

The rules:
- An allocation whose attributes name a pod (`namespace` and `pod`) is valid while that pod
  exists on the allocation's node with the address (a pod whose status has no IP yet is
  valid; an evicted pod is not). Without those attributes it is assumed valid (and its node
  is never cleaned up). A tunnel address (`type` ipip/vxlan/wireguard) is valid while its
  Kubernetes node exists. Windows-reserved addresses are skipped.
- An invalid allocation on a node whose Kubernetes Node is gone is a confirmed leak at once;
  on a node that still exists it is a candidate, confirmed once it stayed invalid for longer
  than the leak grace period (0 disables the GC of that class). A scan that finds it valid
  again clears it.
- A node whose Kubernetes Node is gone and which holds no valid allocation is released: its
  tunnel addresses become confirmed leaks and its affinities are released (must be empty).
- Releases are all-or-none per handle: a handle is released only when every allocation under
  it is a confirmed leak.
- An empty affine block is released only if its node holds another affine block and it was
  seen empty for longer than the grace period (two observations).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from libcalico.datastore.kubernetes_pod import PodError, finished, pod_ips
from libcalico.ipam.block import WINDOWS_RESERVED_HANDLE, Block, IPAddress, IPNetwork

PURE = True

DEFAULT_LEAK_GRACE_PERIOD_S = 15 * 60.0
TUNNEL_TYPES = frozenset({"ipipTunnelAddress", "vxlanTunnelAddress", "vxlanV6TunnelAddress",
                          "wireguardTunnelAddress", "wireguardV6TunnelAddress"})
ATTR_NODE, ATTR_NAMESPACE, ATTR_POD, ATTR_TYPE = "node", "namespace", "pod", "type"


@dataclass(frozen=True, slots=True)
class Allocation:
    ip: IPAddress
    handle: str | None
    attrs: Mapping[str, str]
    sequence: int | None
    block: IPNetwork

    @property
    def id(self) -> str:
        return f"{self.handle}/{self.ip}"

    @property
    def node(self) -> str:
        return self.attrs.get(ATTR_NODE, "")

    @property
    def is_pod(self) -> bool:
        return bool(self.attrs.get(ATTR_NAMESPACE)) and bool(self.attrs.get(ATTR_POD))

    @property
    def is_tunnel(self) -> bool:
        return self.attrs.get(ATTR_TYPE, "") in TUNNEL_TYPES

    @property
    def is_windows_reserved(self) -> bool:
        return self.handle == WINDOWS_RESERVED_HANDLE

    @property
    def pod_key(self) -> tuple[str, str]:
        return self.attrs.get(ATTR_NAMESPACE, ""), self.attrs.get(ATTR_POD, "")


def allocations_of(block: Block) -> list[Allocation]:
    out = []
    for ordinal, idx in enumerate(block.allocations):
        if idx is None:
            continue
        attr = block.attributes[idx]
        out.append(Allocation(
            ip=block.address(ordinal), handle=attr.handle_id, attrs=dict(attr.secondary or {}),
            sequence=block.sequence_number_for_allocation.get(str(ordinal)), block=block.cidr))
    return out


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What validity needs of a Pod: its node, whether kubelet reported an IP yet, whether
    it was evicted, and the addresses its WorkloadEndpoint would carry."""

    node: str
    reported_ip: bool
    evicted: bool
    ips: frozenset[IPAddress]


class Unknown:
    """The pod could not be looked up (not NotFound): assume the allocation valid."""


UNKNOWN = Unknown()
PodLookup = PodInfo | Unknown | None


def pod_info(pod: Mapping[str, Any]) -> PodInfo | Unknown:
    """The PodInfo of a Pod object; UNKNOWN when its addresses cannot be converted (Calico
    then assumes the allocation valid)."""
    spec: Mapping[str, Any] = pod.get("spec") or {}
    status: Mapping[str, Any] = pod.get("status") or {}
    try:
        ips = frozenset() if finished(pod) else frozenset(i.ip for i in pod_ips(pod))
    except PodError:
        return UNKNOWN
    return PodInfo(node=str(spec.get("nodeName") or ""),
                   reported_ip=bool(status.get("podIP")) and bool(status.get("podIPs")),
                   evicted=status.get("phase") == "Failed" and status.get("reason") == "Evicted",
                   ips=ips)


def allocation_valid(a: Allocation, knode: str, pod: PodLookup) -> bool:
    """Calico's allocationIsValid. `knode` is the allocation's Kubernetes node ("" when it
    is gone); `pod` the lookup of the pod its attributes name (None: not found)."""
    if a.is_tunnel:
        return knode != ""
    if not a.is_pod:
        return True
    if isinstance(pod, Unknown):
        return True
    if pod is None:
        return False
    if pod.node and knode and pod.node != knode:
        return False  # rescheduled elsewhere
    if not pod.reported_ip:
        return True
    if pod.evicted:
        return False
    return a.ip in pod.ips


@dataclass
class LeakTracker:
    """GC state kept across scans (the controller's only memory besides its caches)."""

    leaked_at: dict[str, float] = field(default_factory=dict)
    confirmed: dict[str, Allocation] = field(default_factory=dict)
    empty_since: dict[IPNetwork, float] = field(default_factory=dict)

    def mark_valid(self, a: Allocation) -> None:
        self.leaked_at.pop(a.id, None)
        self.confirmed.pop(a.id, None)

    def mark_confirmed(self, a: Allocation) -> None:
        self.confirmed[a.id] = a

    def mark_leak(self, a: Allocation, now: float, grace: float) -> None:
        first = self.leaked_at.setdefault(a.id, now)
        if grace > 0 and now - first > grace:
            self.confirmed[a.id] = a

    def forget_missing(self, present: Iterable[str]) -> None:
        keep = set(present)
        for d in (self.leaked_at, self.confirmed):
            for k in [k for k in d if k not in keep]:
                del d[k]


@dataclass(frozen=True, slots=True)
class NodeView:
    """Per Calico node (the IPAM host): its Kubernetes node name ("" when the Calico or
    Kubernetes node is gone) or None when it is not a Kubernetes node (skipped)."""

    knode: str | None
    exists: bool


def check_allocations(by_node: Mapping[str, list[Allocation]], nodes: Mapping[str, NodeView],
                      pods: Mapping[tuple[str, str], PodInfo | Unknown], tracker: LeakTracker,
                      now: float, grace: float) -> list[str]:
    """Classify every allocation of every node in `by_node` (updating `tracker`); returns the
    nodes whose affinities are to be released (Calico's checkAllocations)."""
    release: list[str] = []
    for cnode, allocs in sorted(by_node.items()):
        view = nodes.get(cnode, NodeView("", False))
        if view.knode is None:
            continue
        knode = view.knode if view.exists else ""
        can_delete = True
        tunnels: list[Allocation] = []
        for a in allocs:
            if a.is_windows_reserved:
                continue
            if not a.is_pod and not a.is_tunnel:
                can_delete = False
                continue
            if a.is_tunnel:
                tunnels.append(a)
                continue
            if allocation_valid(a, knode, pods.get(a.pod_key)):
                can_delete = False
                tracker.mark_valid(a)
                continue
            if not view.exists:
                tracker.mark_confirmed(a)
            else:
                tracker.mark_leak(a, now, grace)
        if not view.exists and can_delete:
            for a in tunnels:
                tracker.mark_confirmed(a)
            release.append(cnode)
    return release


def handle_confirmed(handle: str | None, by_handle: Mapping[str | None, list[Allocation]],
                     tracker: LeakTracker) -> bool:
    """All-or-none: every allocation under `handle` is a confirmed leak."""
    allocs = by_handle.get(handle) or []
    return bool(allocs) and all(a.id in tracker.confirmed for a in allocs)


def empty_blocks_to_release(blocks: Iterable[Block], tracker: LeakTracker, now: float,
                            grace: float) -> list[tuple[IPNetwork, str]]:
    """Affine empty blocks that may go: the node keeps another affine block, and the block
    was first seen empty more than `grace` ago (no grace: never). Updates `tracker`."""
    affine: dict[str, list[Block]] = {}
    for b in blocks:
        host = b.host()
        if host is not None:
            affine.setdefault(host, []).append(b)
    seen: set[IPNetwork] = set()
    out: list[tuple[IPNetwork, str]] = []
    for host, bs in sorted(affine.items()):
        remaining = len(bs)
        for b in sorted(bs, key=lambda x: (x.cidr.version, int(x.cidr.network_address))):
            seen.add(b.cidr)
            if not b.is_empty():
                tracker.empty_since.pop(b.cidr, None)
                continue
            if remaining <= 1 or grace <= 0:
                continue
            first = tracker.empty_since.setdefault(b.cidr, now)
            if now - first > grace:
                out.append((b.cidr, host))
                remaining -= 1
    for cidr in [c for c in tracker.empty_since if c not in seen]:
        del tracker.empty_since[cidr]
    return out
