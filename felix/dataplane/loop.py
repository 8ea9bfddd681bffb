"""The one owner thread of Felix.

Inputs arrive on one queue: datastore updates and status from the syncer, interface maps from
the interface monitor. The loop applies nothing before the datastore is in sync (so nothing
is ever removed from a half-read picture), then on every change, on every retry deadline
after a failure (failures stay pending), and on every refresh deadline (the kernel is re-read
to repair drift). It also applies nothing while a resync is in progress or the datastore is
unreachable: the kernel keeps its last good state. Apply order: sysctls → tunnel devices →
IP set creates/updates → {FDB, neighbours and routes on a helper thread ‖ iptables tables,
one restore each, only if changed} → our leftovers in the other iptables backend (start-up
and refresh) → IP set deletes. The owner thread alone decides what to write; the helper only
runs the route driver's batch and is joined before the apply ends.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from felix import config as felix_config
from felix.calc import desired as calc
from felix.calc import kernelsafe
from felix.calc.chains import TableDesired
from felix.drivers import ipip, vxlan
from felix.drivers.ipsets import IPSetDriver
from felix.drivers.iptables.table import Table, commands, detect_backend, read_together
from felix.drivers.netlink import Link, Netlink
from felix.drivers.routes import RouteDriver
from felix.drivers.sysctl import SysctlDriver, SysctlFS
from felix.health import HealthState
from felix.metrics import Metrics
from libcalico import proc
from libcalico.datastore.resourcecache import ResourceCache
from libcalico.datastore.snapshot import StatusChanged, SyncStatus, Updates
from libcalico.errors import CalicoError
from libcalico.model.resources import WorkloadEndpoint

log = logging.getLogger("felix.dataplane")

TABLES = ("raw", "mangle", "filter", "nat")


def _read_names(path: str) -> set[str]:
    try:
        with open(path) as f:
            return {line.strip() for line in f if line.strip()}
    except OSError:
        return set()


class RestartNeeded(Exception):
    """The effective configuration changed: exit so the supervisor restarts us (rc 129)."""


@dataclass(frozen=True, slots=True)
class LinksChanged:
    links: dict[str, Link]


@dataclass(frozen=True, slots=True)
class Stop:
    pass


@dataclass
class ApplyStats:
    sysctls: int = 0
    netlink_ops: int = 0
    restores: int = 0
    restore_lines: int = 0
    errors: int = 0
    phases: dict[str, float] = field(default_factory=dict)


class Dataplane:
    def __init__(self, env: Mapping[str, str], file_values: Mapping[str, str], hostname: str,
                 netlink: Netlink, sysctl_fs: SysctlFS, runner: proc.Runner = proc.run,
                 metrics: Metrics | None = None, health: HealthState | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 legacy_loaded: bool | None = None) -> None:
        self.env = dict(env)
        self.file_values = dict(file_values)
        self.hostname = hostname
        self.nl = netlink
        self.run_cmd = runner
        self.clock = clock
        self.metrics = metrics or Metrics()
        self.health = health or HealthState(90.0, clock)
        self.legacy_loaded = legacy_loaded
        self.queue: queue.Queue[object] = queue.Queue()
        self.cache = ResourceCache()          # decodes once (libcalico.model codec)
        self.snapshot = calc.Snapshot()
        self.status = SyncStatus.WAIT_FOR_DATASTORE
        self.in_sync_once = False
        self.links: dict[str, Link] | None = None
        self._ifaces: dict[str, calc.Iface] = {}
        self._ifaces_of: dict[str, Link] | None = None
        self._counted: dict[tuple[int, str], TableDesired] = {}
        self.cfg: felix_config.FelixConfig | None = None
        self.rp_filter = (sysctl_fs.read("net/ipv4/conf/default/rp_filter") or "1")
        self.sysctls = SysctlDriver(sysctl_fs)
        self.ipsets = IPSetDriver(runner)
        self.routes: RouteDriver | None = None
        self.tables: dict[tuple[int, str], Table] = {}
        self.backend = ""
        self.state: calc.HostState | None = None
        self.inputs_dirty = True
        self.needs_apply = True
        self.retry_at: float | None = None
        self.backoff = 0.5
        self.applies = 0
        self.refresh_at: dict[str, float] = {}
        self.bad_keys: dict[str, str] = {}
        self.last_stats = ApplyStats()
        self.sweep_due = True
        self.selectors_in_use = True        # until the first computation says otherwise
        self.legacy_tables: Callable[[str], set[str]] = _read_names
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="felix-routes")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    # -- inputs ---------------------------------------------------------------------------

    def on_event(self, ev: object) -> None:
        if isinstance(ev, Updates):
            for ch in self.cache.apply(ev.updates):
                self._on_change(ch.key, ch.resource, ch.dropped)
        elif isinstance(ev, StatusChanged):
            if ev.status != self.status:
                log.info("datastore status %s", ev.status.name)
            self.status = ev.status
            self.in_sync_once = self.in_sync_once or ev.status == SyncStatus.IN_SYNC
            self.needs_apply = True
        elif isinstance(ev, LinksChanged):
            old = self.links or {}
            self.links = ev.links
            self.inputs_dirty = self.needs_apply = True
            if self.routes is not None and any(
                    n not in ev.links or (o.up and not ev.links[n].up) for n, o in old.items()):
                self.routes.routes.dataplane_known = False   # the kernel dropped routes

    def _on_change(self, key: str, obj: object | None, dropped: str | None) -> None:
        """One decoded resource (None: deleted, or dropped by the codec for `dropped`).
        Values Calico accepts but that are unsafe in the kernel are refused here, by
        kernelsafe; either way the key is treated as absent and the reason logged once."""
        reason = dropped
        if obj is not None:
            refusal = kernelsafe.check(key, obj)
            if refusal is not None:
                reason, obj = str(refusal), None
        if reason:
            if self.bad_keys.get(key) != reason:
                log.warning("ignoring invalid datastore value %s: %s", key, reason)
            self.bad_keys[key] = reason
        else:
            self.bad_keys.pop(key, None)
        old = self.snapshot.objects.get(key)
        self.snapshot.apply(key, obj)
        if self._irrelevant(old) and self._irrelevant(obj):
            return          # another node's endpoint and no selector looks at endpoints
        self.inputs_dirty = self.needs_apply = True

    def _irrelevant(self, obj: object) -> bool:
        """Other nodes' endpoints only matter to selector IP sets (as in Calico's calc
        graph, remote endpoint churn costs no recomputation otherwise)."""
        if obj is None:
            return True
        return (isinstance(obj, WorkloadEndpoint) and obj.spec.node != self.hostname
                and not self.selectors_in_use)

    # -- configuration --------------------------------------------------------------------

    def effective_config(self) -> felix_config.FelixConfig:
        node, glob = self.snapshot.felix_config(self.hostname)
        cfg = felix_config.load(self.env, self.file_values, node, glob)
        if not cfg.hostname:
            cfg = felix_config.load({**self.env, "FELIX_FELIXHOSTNAME": self.hostname},
                                    self.file_values, node, glob)
        return cfg

    def _start_drivers(self, cfg: felix_config.FelixConfig) -> None:
        self.cfg = cfg
        self.backend = detect_backend(cfg.iptables_backend, self.run_cmd, self.legacy_loaded)
        own_tunl0 = cfg.program_cluster_routes in ("Enabled", "EnabledIPIPOnly")
        self.routes = RouteDriver(self.nl, cfg.interface_prefix, own_tunl0, self.clock)
        self.health.timeout = max(cfg.dataplane_watchdog_timeout, 20.0)
        now = self.clock()
        self.refresh_at = {"routes": now + cfg.route_refresh_interval,
                           "iptables": now + cfg.iptables_refresh_interval,
                           "ipsets": now + cfg.ipsets_refresh_interval}
        for w in cfg.warnings:
            log.warning("invalid FelixConfiguration value: %s", w)
        log.info("configuration: hostname=%s iptables backend=%s insert mode=%s "
                 "endpoint-to-host=%s prefixes=%s non-default=%s", cfg.hostname, self.backend,
                 cfg.chain_insert_mode, cfg.default_endpoint_to_host_action,
                 ",".join(cfg.interface_prefix),
                 ",".join(f"{n}({s})" for n, s in cfg.sources) or "none")

    # -- the loop -------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        times = list(self.refresh_at.values())
        if self.retry_at is not None:
            times.append(self.retry_at)
        return min(times) if times else None

    def run(self) -> None:
        while True:
            dl = self.next_deadline()
            timeout = 5.0 if dl is None else max(0.0, min(5.0, dl - self.clock()))
            try:
                ev = self.queue.get(timeout=timeout)
            except queue.Empty:
                ev = None
            batch = [] if ev is None else [ev]
            while True:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            for e in batch:
                if isinstance(e, Stop):
                    return
                self.on_event(e)
            self.health.beat()
            self.step()

    def step(self) -> None:
        """Apply once the datastore has been in sync and something is due. Raises
        RestartNeeded. As in Calico (the dataplane's datastoreInSync is never reset), a later
        loss of the datastore does not stop the applies: the picture stays whole (a relist
        arrives as one diff), link events and drift repair go on."""
        if not self.in_sync_once or self.links is None:
            return
        cfg = self.effective_config() if self.inputs_dirty else self.cfg
        if self.cfg is None and cfg is not None:
            self._start_drivers(cfg)
        elif cfg != self.cfg:
            raise RestartNeeded("configuration changed")
        now = self.clock()
        assert self.cfg is not None and self.routes is not None
        for what, at in list(self.refresh_at.items()):
            if now >= at:
                self._refresh(what)
                interval = {"routes": self.cfg.route_refresh_interval,
                            "iptables": self.cfg.iptables_refresh_interval,
                            "ipsets": self.cfg.ipsets_refresh_interval}[what]
                self.refresh_at[what] = now + interval
                self.needs_apply = True
        if self.retry_at is not None and now >= self.retry_at:
            self.needs_apply = True
        if self.needs_apply:
            self.apply()

    def _refresh(self, what: str) -> None:
        self.metrics.resyncs.inc()
        assert self.routes is not None
        if what == "routes":
            self.routes.routes.dataplane_known = False
            self.sysctls.tracker.dataplane_known = False
            self.sysctls.resync()
        elif what == "iptables":
            for t in self.tables.values():
                t.invalidate()
            self.sweep_due = True
        else:
            self.ipsets.tracker.dataplane_known = False

    def _sweep_other_backend(self) -> None:
        """As Calico does since v3.33: remove our chains and hashed rules from the iptables
        backend we are not using (e.g. left by a Felix that ran with the other one). Legacy
        tables are only read when the kernel already has them (no module autoloading).
        Failures are logged, never fatal, never retried before the next refresh."""
        other = "legacy" if self.backend == "nft" else "nft"
        for version in (4, 6):
            loaded = self.other_tables(version, other)
            for name in TABLES:
                if name not in loaded:
                    continue
                t = Table(version, name, commands(version, other), self.run_cmd)
                try:
                    n = t.apply(True)
                except CalicoError as exc:
                    log.warning("sweeping %s %s v%d failed: %s", other, name, version, exc)
                    continue
                if n:
                    log.info("removed our leftovers from %s %s v%d (%d lines)", other, name,
                             version, n)

    def other_tables(self, version: int, backend: str) -> set[str]:
        if backend == "nft":
            return set(TABLES)
        path = "/proc/net/ip_tables_names" if version == 4 else "/proc/net/ip6_tables_names"
        return self.legacy_tables(path)

    def _table(self, version: int, name: str) -> Table:
        t = self.tables.get((version, name))
        if t is None:
            t = Table(version, name, commands(version, self.backend), self.run_cmd)
            self.tables[(version, name)] = t
        return t

    def apply(self) -> ApplyStats:
        assert self.cfg is not None and self.routes is not None and self.links is not None
        t0 = time.perf_counter()
        self.needs_apply = False
        stats = ApplyStats()
        errors: list[str] = []
        if self.inputs_dirty or self.state is None:
            if self._ifaces_of is not self.links:
                # Rebuilt only when the links changed: the calculation memoises its scans of
                # the interface map by the map's identity.
                self._ifaces = {n: calc.Iface(n, link.up, link.mtu, link.addrs)
                                for n, link in self.links.items()}
                self._ifaces_of = self.links
            self.state = calc.compute(self.snapshot, self.cfg, self._ifaces, self.rp_filter)
            self.inputs_dirty = False
            self.selectors_in_use = any(("0s:" in name or "0n:" in name)
                                        for name in self.state.ipsets)
        stats.phases["calc"] = time.perf_counter() - t0
        st = self.state

        def phase(name: str, fn: Callable[[], Any]) -> Any:
            t = time.perf_counter()
            try:
                return fn()
            except CalicoError as exc:
                errors.append(f"{name}: {exc}")
                log.warning("%s failed (will retry): %s", name, exc)
                return None
            finally:
                phase = name.split(" ")[0]
                stats.phases[phase] = stats.phases.get(phase, 0.0) + time.perf_counter() - t

        # 1. sysctls
        self.sysctls.set_desired(st.sysctls)
        r = phase("sysctls", self.sysctls.apply)
        if r:
            stats.sysctls += r[0]
            errors += self.sysctls.last_errors
        # 2. tunnel devices
        n1, e1 = phase("vxlan", lambda: vxlan.apply(self.nl, st.vxlan, self.links or {}, True)) \
            or (0, [])
        n2, e2 = phase("ipip", lambda: ipip.apply(self.nl, st.ipip, self.links or {})) or (0, [])
        errors += e1 + e2
        stats.netlink_ops += n1 + n2
        if n1 or n2:
            # Re-read just the tunnel devices we touched.
            fresh: dict[str, Link] = dict(self.links or {})
            for dev, n in ((calc.VXLAN_DEVICE, n1), (calc.IPIP_DEVICE, n2)):
                if n:
                    got = phase("links", lambda dev=dev: self.nl.list_links(dev))  # type: ignore[misc]
                    if got is not None:
                        fresh.pop(dev, None)
                        fresh.update(got)
            self.links = fresh
        # 3. ipsets
        self.ipsets.set_desired(st.ipsets)
        phase("ipsets", self.ipsets.apply_updates)
        # 4. FDB, neighbours, routes — on the helper thread, in parallel with iptables (as
        # Calico does): both mostly wait for their subprocess. Joined before returning.
        self.routes.set_desired(st)
        links = dict(self.links or {})
        routes_done = self._pool.submit(
            phase, "routes", lambda: self.routes.apply(True, links))  # type: ignore[union-attr]
        # 5. iptables (tables to be read are read with one save per IP version)
        saves = sum(t.saves for t in self.tables.values())
        for version in (4, 6):
            read_together([self._table(*k) for k in sorted(set(st.tables) | set(self.tables))
                           if k[0] == version])
        self.metrics.save_calls.inc(sum(t.saves for t in self.tables.values()) - saves)
        for key in sorted(set(st.tables) | set(self.tables)):
            t = self._table(*key)
            t.set_desired(st.tables.get(key, TableDesired()))
            before_r, before_s = t.restores, t.saves
            lines = phase(f"iptables {key[1]} v{key[0]}", lambda t=t: t.apply(True))  # type: ignore[misc]
            self.metrics.restore_calls.inc(t.restores - before_r)
            self.metrics.save_calls.inc(t.saves - before_s)
            stats.restores += t.restores - before_r
            if lines:
                stats.restore_lines += lines
                self.metrics.lines.inc(lines)
            elif lines is None:
                self.metrics.restore_errors.inc()
            td = st.tables.get(key, TableDesired())
            if self._counted.get(key) is not td:
                self._counted[key] = td
                self.metrics.rules.labels(str(key[0]), key[1]).set(
                    sum(len(v) for v in td.chains.values()))
                self.metrics.chains.labels(str(key[0]), key[1]).set(len(td.chains))
        r = routes_done.result()
        if r:
            stats.netlink_ops += r[0]
            if r[1]:
                errors += self.routes.last_errors
        # 5b. our leftovers in the backend we do not use (start-up and every refresh)
        if self.sweep_due:
            self.sweep_due = False
            self._sweep_other_backend()
        # 6. ipset deletes
        phase("ipset deletes", self.ipsets.apply_deletions)

        pending = (self.routes.pending() or self.sysctls.pending())
        stats.errors = len(errors)
        elapsed = time.perf_counter() - t0
        self.metrics.apply_time.observe(elapsed)
        self.metrics.routes.set(len(st.routes))
        self.metrics.endpoints.set(len(st.workload_ifaces))
        self.applies += 1
        if errors or pending:
            self.metrics.failures.inc()
            self.retry_at = self.clock() + self.backoff
            self.backoff = min(self.backoff * 2, 30.0)
        else:
            self.retry_at = None
            self.backoff = 0.5
            self.health.ready_flag = True
        log.info("apply #%d in %.1f ms: endpoints=%d routes=%d neighbours=%d fdb=%d "
                 "sysctl-writes=%d netlink-ops=%d iptables-restores=%d restore-lines=%d "
                 "errors=%d%s [%s]", self.applies, elapsed * 1000, len(st.workload_ifaces),
                 len(st.routes), len(st.neighbours), len(st.fdb), stats.sysctls,
                 stats.netlink_ops, stats.restores, stats.restore_lines, len(errors),
                 f" (retry in {self.retry_at - self.clock():.1f}s)" if self.retry_at else "",
                 " ".join(f"{k}={v * 1000:.0f}ms" for k, v in stats.phases.items()))
        self.last_stats = stats
        return stats
