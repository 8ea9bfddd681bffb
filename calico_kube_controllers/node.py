"""The node controller: IPAM garbage collection on both datastores, and on etcd the deletion
of Calico Nodes whose Kubernetes Node is gone (Calico's `node_deleter.go` + `ipam.go`).

Kubernetes Nodes and Pods come from two informers; every Node or Pod deletion, the
informers' start-of-day sync and a periodic timer (the leak grace period / 2) kick one owner
loop, which runs a full scan:

1. (etcd) every Calico Node with a `k8s` orchRef whose Kubernetes Node is not in the cache,
   confirmed gone by a GET, is deleted as libcalico-go deletes a Node (`nodedelete.py`);
2. every allocation of every IPAM block is classified (`gc.check_allocations`);
3. confirmed leaks are checked once more (the pod read live from the API server while its
   node exists, from the cache otherwise), all-or-none per handle, and released with their
   handle and sequence number (an allocation that changed meanwhile is left alone);
4. empty affine blocks seen empty for longer than the grace period are released, keeping one
   per node;
5. nodes that are gone and hold nothing valid have their affinities released (must be empty).

Time for the grace periods comes from the injected `clock` (seconds).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from calico_kube_controllers import gc, nodedelete
from calico_kube_controllers.informer import DELETED, SYNCED, Informer, Kube
from libcalico.client import Client
from libcalico.datastore.api import Backend
from libcalico.datastore.kubernetes_client import name_path
from libcalico.errors import Conflict, DatastoreError, NotFound, ValidationError
from libcalico.ipam import block as blk
from libcalico.ipam.client import IPAMClient
from libcalico.model import keys
from libcalico.model.resources import Node

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Summary:
    blocks: int = 0
    allocations: int = 0
    candidates: int = 0
    confirmed: int = 0
    released: int = 0
    empty_blocks_released: int = 0
    nodes_released: int = 0
    calico_nodes_deleted: int = 0

    def line(self) -> str:
        return (f"node controller pass: blocks={self.blocks} allocations={self.allocations} "
                f"leak_candidates={self.candidates} confirmed_leaks={self.confirmed} "
                f"released={self.released} empty_blocks_released={self.empty_blocks_released} "
                f"nodes_released={self.nodes_released} "
                f"calico_nodes_deleted={self.calico_nodes_deleted}")


class NodeController:
    name = "node"

    def __init__(self, backend: Backend, kube: Kube, *, kdd: bool,
                 leak_grace_s: float = gc.DEFAULT_LEAK_GRACE_PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.kube = kube
        self.kdd = kdd
        self.grace = leak_grace_s
        self.clock = clock
        self.ipam = IPAMClient(backend)
        self.client = Client(backend)
        self.tracker = gc.LeakTracker()
        self.nodes = Informer(kube, "/api/v1/nodes", self._on_event)
        self.pods = Informer(kube, "/api/v1/pods", self._on_event)
        self.kick: Callable[[str], None] = lambda reason: None
        self.last = Summary()

    @property
    def interval_s(self) -> float:
        return self.grace / 2 if self.grace > 0 else 300.0

    def synced(self) -> bool:
        return self.nodes.synced.is_set() and self.pods.synced.is_set()

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        if kind in (DELETED, SYNCED):
            self.kick(kind.lower())

    def start(self, loop_kick: Callable[[str], None]) -> None:
        self.kick = loop_kick
        self.nodes.start()
        self.pods.start()

    def stop(self) -> None:
        self.nodes.stop()
        self.pods.stop()

    # -- one pass -----------------------------------------------------------------------------

    def reconcile(self) -> Summary:
        k8s_nodes = {o["metadata"]["name"] for o in self.nodes.items().values()}
        deleted = 0 if self.kdd else self._delete_stale_calico_nodes(k8s_nodes)
        views = self._node_views(k8s_nodes)
        blocks = self._blocks()
        allocs = [a for b in blocks for a in gc.allocations_of(b)]
        by_node: dict[str, list[gc.Allocation]] = {}
        by_handle: dict[str | None, list[gc.Allocation]] = {}
        for b in blocks:
            if (h := b.host()) is not None:
                by_node.setdefault(h, [])
        for a in allocs:
            if a.node:
                by_node.setdefault(a.node, []).append(a)
            by_handle.setdefault(a.handle, []).append(a)
        for n in by_node:
            views.setdefault(n, gc.NodeView("", False))
        pods = self._pod_infos()
        now = self.clock()
        self.tracker.forget_missing(a.id for a in allocs)
        to_release = gc.check_allocations(by_node, views, pods, self.tracker, now, self.grace)
        released = self._release_leaks(by_handle, views)
        empties = 0
        for cidr, host in gc.empty_blocks_to_release(blocks, self.tracker, now, self.grace):
            try:
                empties += self.ipam.release_affinity(cidr, host, must_be_empty=True)
            except DatastoreError as exc:
                log.warning("releasing empty block %s of %s failed: %s", cidr, host, exc)
        nodes_released = 0
        for cnode in to_release:
            try:
                self.ipam.release_host_affinities(cnode, must_be_empty=True)
                nodes_released += 1
                log.info("released the IPAM affinities of deleted node %s", cnode)
            except DatastoreError as exc:
                log.warning("releasing the affinities of node %s failed, next pass "
                            "retries: %s", cnode, exc)
        s = Summary(blocks=len(blocks), allocations=len(allocs),
                    candidates=len(set(self.tracker.leaked_at) - set(self.tracker.confirmed)),
                    confirmed=len(self.tracker.confirmed), released=released,
                    empty_blocks_released=empties, nodes_released=nodes_released,
                    calico_nodes_deleted=deleted)
        self.last = s
        log.info("%s", s.line())
        return s

    def _blocks(self) -> list[blk.Block]:
        out = []
        for version in (4, 6):
            for kv in self.backend.list(keys.block_prefix(version)).kvs:
                try:
                    out.append(blk.decode(kv.value, kv.key))
                except ValidationError as exc:
                    log.warning("skipping unreadable IPAM block %s: %s", kv.key, exc)
        return out

    def _pod_infos(self) -> dict[tuple[str, str], gc.PodInfo | gc.Unknown]:
        out: dict[tuple[str, str], gc.PodInfo | gc.Unknown] = {}
        for o in self.pods.items().values():
            md = o.get("metadata") or {}
            out[(str(md.get("namespace")), str(md.get("name")))] = gc.pod_info(o)
        return out

    def _node_views(self, k8s_nodes: set[str]) -> dict[str, gc.NodeView]:
        """Per IPAM host: its Kubernetes node. On KDD the Calico Node is the Kubernetes Node;
        on etcd the Calico Node's `k8s` orchRef names it (no such ref: not Kubernetes, left
        alone; no Calico Node: gone)."""
        if self.kdd:
            return {n: gc.NodeView(n, True) for n in k8s_nodes}
        views: dict[str, gc.NodeView] = {}
        for n in self.client.list(Node):
            ref = next((r.node_name for r in n.spec.orch_refs
                        if r.orchestrator == "k8s"), None)
            views[n.metadata.name] = gc.NodeView(ref or None, bool(ref) and ref in k8s_nodes)
        return views

    def _delete_stale_calico_nodes(self, k8s_nodes: set[str]) -> int:
        deleted = 0
        for n in self.client.list(Node):
            ref = next((r.node_name for r in n.spec.orch_refs if r.orchestrator == "k8s"), None)
            if not ref or ref in k8s_nodes or self._kube_exists(f"/api/v1/nodes/{name_path(ref)}"):
                continue
            log.info("Kubernetes node %s is gone: deleting Calico node %s", ref, n.metadata.name)
            nodedelete.delete_node(self.client, self.ipam, n.metadata.name)
            deleted += 1
        return deleted

    def _kube_exists(self, path: str) -> bool:
        try:
            self.kube.request("GET", path)
            return True
        except NotFound:
            return False

    def _live_pod(self, namespace: str, name: str) -> gc.PodLookup:
        try:
            obj = self.kube.request(
                "GET", f"/api/v1/namespaces/{name_path(namespace)}/pods/{name_path(name)}")
        except NotFound:
            return None
        except DatastoreError as exc:
            log.warning("cannot read pod %s/%s, assuming its address valid: %s", namespace,
                        name, exc)
            return gc.UNKNOWN
        return gc.pod_info(obj)

    def _release_leaks(self, by_handle: dict[str | None, list[gc.Allocation]],
                       views: dict[str, gc.NodeView]) -> int:
        released = 0
        for a in list(self.tracker.confirmed.values()):
            view = views.get(a.node, gc.NodeView("", False))
            knode = (view.knode or "") if view.exists else ""
            if a.is_pod:
                pod: gc.PodLookup
                if knode:  # the node is there: ask the API server, not the cache
                    pod = self._live_pod(*a.pod_key)
                else:
                    cached = self.pods.get("/".join(a.pod_key))
                    pod = None if cached is None else gc.pod_info(cached)
                if gc.allocation_valid(a, knode, pod):
                    log.info("leaked address %s (%s/%s) is in use again", a.ip, *a.pod_key)
                    self.tracker.mark_valid(a)
                    continue
            if not gc.handle_confirmed(a.handle, by_handle, self.tracker):
                continue
            try:
                self.ipam.release_ips([a.ip], handle_id=a.handle, sequence_number=a.sequence)
            except Conflict as exc:
                log.info("not releasing %s: it changed since the scan (%s)", a.ip, exc)
                self.tracker.mark_valid(a)
                continue
            except DatastoreError as exc:
                log.warning("releasing leaked address %s failed, next pass retries: %s",
                            a.ip, exc)
                continue
            log.info("garbage collected leaked address %s handle=%s node=%s pod=%s/%s", a.ip,
                     a.handle, a.node or "-", *a.pod_key)
            self.tracker.confirmed.pop(a.id, None)
            self.tracker.leaked_at.pop(a.id, None)
            released += 1
        return released
