"""Routes, permanent neighbours and VXLAN FDB entries: desired vs kernel, batched writes.

Ownership without memory, as Calico: a main-table route is ours when its protocol is 80, when
it leaves through a workload interface (prefix `cali`; routes of interfaces no endpoint claims
get a 10 s grace period so that the CNI plugin's fresh routes survive until the endpoint
arrives), or when it uses `vxlan.calico` (and `tunl0` when Felix owns IPIP routes). Permanent
neighbours and FDB entries are ours on workload interfaces and `vxlan.calico`.

A route's identity is (table, destination, metric), as in the kernel, where routes differing
only in metric coexist: a metric-0 route on a workload interface (an older CNI plugin's, or our
own from before workload routes carried the normal route priority) is not "already right" but
an extra route of ours, deleted once the right one is in place (same batch, after it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping

from felix.calc.desired import (
    IPIP_DEVICE,
    PROTO_FELIX,
    VXLAN_DEVICE,
    HostState,
    IPAddr,
    IPNet,
    Route,
)
from felix.drivers.deltatracker import DeltaTracker
from felix.drivers.netlink import Netlink, Op

log = logging.getLogger(__name__)

GRACE_SECONDS = 10.0
RouteKey = tuple[int, IPNet, int]


class RouteDriver:
    def __init__(self, netlink: Netlink, prefixes: tuple[str, ...], own_tunl0: bool,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.nl = netlink
        self.prefixes = prefixes
        self.own_tunl0 = own_tunl0
        self.clock = clock
        self.routes: DeltaTracker[RouteKey, Route] = DeltaTracker()
        self.neigh: DeltaTracker[tuple[str, IPAddr], str] = DeltaTracker()
        self.fdb: DeltaTracker[tuple[str, str], IPAddr] = DeltaTracker()
        self._stale_since: dict[RouteKey, float] = {}
        self._workload_ifaces: frozenset[str] = frozenset()
        self._was_desired: set[RouteKey] = set()
        self.last_errors: list[str] = []

    def _is_workload(self, dev: str | None) -> bool:
        return bool(dev) and any(dev.startswith(p) for p in self.prefixes)  # type: ignore[union-attr]

    def _ours(self, r: Route) -> bool:
        if r.proto == PROTO_FELIX:
            return True
        if r.proto in (2,):  # kernel-made routes (connected subnets) are never ours
            return False
        if self._is_workload(r.dev) or r.dev == VXLAN_DEVICE:
            return True
        return r.dev == IPIP_DEVICE and self.own_tunl0

    def set_desired(self, st: HostState) -> None:
        desired = {r.key: r for r in st.routes.values()}
        self.routes.set_desired(desired)
        self._was_desired.update(desired)
        self.neigh.set_desired(st.neighbours)
        self.fdb.set_desired(st.fdb)
        self._workload_ifaces = st.workload_ifaces

    def resync(self) -> None:
        """Re-read the kernel (start-up and periodic refresh)."""
        self.routes.replace_dataplane(
            (r.key, r) for r in self.nl.list_routes() if self._ours(r))
        self.neigh.replace_dataplane(
            (k, v) for k, v in self.nl.list_neighbours().items()
            if self._is_workload(k[0]) or k[0] == VXLAN_DEVICE)
        self.fdb.replace_dataplane(self.nl.list_fdb(VXLAN_DEVICE).items())

    def needs_resync(self) -> bool:
        return not self.routes.dataplane_known

    def pending(self) -> bool:
        return not (self.routes.in_sync() and self.neigh.in_sync() and self.fdb.in_sync())

    def apply(self, allow_deletes: bool, links_present: Mapping[str, object]) -> tuple[int, int]:
        """Write what differs. Returns (operations written, operations failed)."""
        if self.needs_resync():
            self.resync()
        ops: list[Op] = []
        now = self.clock()
        # FDB and VTEP neighbours before the routes that use them.
        for k, ip in self.fdb.pending_updates().items():
            ops.append(Op("fdb-replace", dev=k[0], mac=k[1], ip=ip))
        for (dev, ip), mac in self.neigh.pending_updates().items():
            if dev in links_present:
                ops.append(Op("neigh-replace", dev=dev, ip=ip, mac=mac))
        for r in self.routes.pending_updates().values():
            if r.dev is None or r.dev in links_present:
                ops.append(Op("route-replace", route=r))
        if allow_deletes:
            for key in self.routes.pending_deletions():
                r = self.routes.dataplane()[key]
                if (self._is_workload(r.dev) and r.dev not in self._workload_ifaces
                        and r.proto != PROTO_FELIX and key not in self._was_desired):
                    first = self._stale_since.setdefault(key, now)
                    if now - first < GRACE_SECONDS:
                        continue
                ops.append(Op("route-del", route=r))
            for nk in self.neigh.pending_deletions():
                ops.append(Op("neigh-del", dev=nk[0], ip=nk[1]))
            for fk in self.fdb.pending_deletions():
                ops.append(Op("fdb-del", dev=fk[0], mac=fk[1], ip=self.fdb.dataplane()[fk]))
        if not ops:
            return 0, 0
        res = self.nl.apply(ops)
        failed = {id(op) for op, _ in res.failed}
        self.last_errors = [f"{op.kind} {op.route or op.ip}: {why}" for op, why in res.failed]
        for op in ops:
            if id(op) in failed:
                continue
            if op.kind == "route-replace" and op.route is not None:
                self.routes.applied_update(op.route.key, op.route)
            elif op.kind == "route-del" and op.route is not None:
                self.routes.applied_delete(op.route.key)
                self._was_desired.discard(op.route.key)
                self._stale_since.pop(op.route.key, None)
            elif op.kind == "neigh-replace" and op.ip is not None:
                self.neigh.applied_update((op.dev, op.ip), op.mac)
            elif op.kind == "neigh-del" and op.ip is not None:
                self.neigh.applied_delete((op.dev, op.ip))
            elif op.kind == "fdb-replace" and op.ip is not None:
                self.fdb.applied_update((op.dev, op.mac), op.ip)
            elif op.kind == "fdb-del":
                self.fdb.applied_delete((op.dev, op.mac))
        if res.failed:
            log.warning("%d of %d netlink operations failed (will retry): %s",
                        len(res.failed), len(ops), "; ".join(self.last_errors[:3]))
            # A failure may mean our picture of the kernel is wrong: re-read next time.
            self.routes.dataplane_known = False
        return len(ops), len(res.failed)
