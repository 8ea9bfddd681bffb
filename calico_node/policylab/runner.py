"""The policy lab's run: the demo's cluster (calico_node.demo.cluster, etcd datastore) with
the file's pods, then each step reconciled, waited for and probed."""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from calico_node.demo import cluster as clustermod
from calico_node.demo import lab as labmod
from calico_node.demo import plan
from calico_node.policylab import net, report, sync, world
from calico_node.policylab.labfile import POLICY_CLASSES, LabFile, PodSpec, Step
from libcalico.client import Client
from libcalico.datastore.api import Backend
from libcalico.errors import Conflict, NotFound
from libcalico.model import codec, keys
from libcalico.model.resources import Profile, Resource, Tier, WorkloadEndpoint
from libcalico.model.resources_policy import BUILTIN_TIERS

log = logging.getLogger(__name__)

SYNC_TIMEOUT = 60.0
_WRITE_ORDER = ("Tier", "GlobalNetworkSet", "NetworkSet")
"""Tiers and sets are written before the policies using them and deleted after them."""


@dataclasses.dataclass
class LabPod:
    spec: PodSpec
    ns: str
    container_id: str
    node: str


class PolicyLab:
    def __init__(self, lab: LabFile, cl: clustermod.Cluster, say: Callable[[str], None]) -> None:
        self.file = lab
        self.cl = cl
        self.say = say
        self.backend: Backend = cl.backend
        self.client = Client(cl.backend)
        self.pods: dict[str, LabPod] = {}
        self.servers = net.Servers()
        self.sctp = True

    # ---- build once ----------------------------------------------------------------------
    def build(self) -> None:
        first = self.file.steps[0]
        for prof in world.profiles(self.file, first):
            self.client.apply(prof)
        for i, spec in enumerate(self.file.pods, 1):
            self.add_pod(i, spec)
        some = next(iter(self.pods.values()))
        self.sctp = net.sctp_available(some.ns)
        if not self.sctp:
            self.say("SCTP: this kernel has no SCTP sockets: SCTP servers and probes skipped")
        for p in self.pods.values():
            for port in p.spec.ports:
                if port.protocol == "SCTP" and not self.sctp:
                    continue
                self.servers.listen(p.ns, port.port, port.protocol)

    def add_pod(self, i: int, spec: PodSpec) -> None:
        node = self.cl.nodes[spec.node]
        ns = self.cl.lab.ns(f"p{i}")
        cid = plan.container_id(self.cl.lab.prefix, spec.key, i)
        args = f"K8S_POD_NAMESPACE={spec.namespace};K8S_POD_NAME={spec.name};IP={spec.ip}"
        r = self.cl.cni(node, "ADD", cid, ns, args=args)
        if r.returncode != 0:
            self.cl.lab.drop_ns(ns)
            raise clustermod.ClusterError(f"CNI ADD of {spec.key} on {spec.node} failed: "
                                          f"{r.stdout.strip()} {r.stderr.strip()}")
        self.pods[spec.key] = LabPod(spec, ns, cid, spec.node)
        addr = ipaddress.ip_interface(json.loads(r.stdout)["ips"][0]["address"]).ip
        self.say(f"  pod {spec.key} on {spec.node}: {addr} ({ns})")

    def remove_pods(self) -> None:
        for p in list(self.pods.values()):
            node = self.cl.nodes.get(p.node)
            if node is not None and node.proc is not None:
                r = self.cl.cni(node, "DEL", p.container_id, p.ns, args=(
                    f"K8S_POD_NAMESPACE={p.spec.namespace};K8S_POD_NAME={p.spec.name}"))
                if r.returncode != 0:
                    log.warning("CNI DEL of %s: %s %s", p.spec.key, r.stdout, r.stderr)
            self.cl.lab.drop_ns(p.ns)
            del self.pods[p.spec.key]

    # ---- one step ------------------------------------------------------------------------
    def reconcile(self, step: Step) -> None:
        """The datastore holds exactly this step's policies, tiers and sets, its namespace
        labels (profiles) and its pod labels (endpoints)."""
        for prof in world.profiles(self.file, step):
            self._apply_if_changed(prof)
        for p in self.pods.values():
            self._label_pod(p, step)
        reconcile_policies(self.client, step.policies)

    def _apply_if_changed(self, res: Resource) -> None:
        apply_if_changed(self.client, res)

    def _label_pod(self, p: LabPod, step: Step) -> None:
        for _ in range(10):
            weps = [w for w in self.client.list(WorkloadEndpoint, p.spec.namespace)
                    if w.spec.pod == p.spec.name]
            if not weps:
                raise clustermod.ClusterError(f"no WorkloadEndpoint for pod {p.spec.key}")
            new = world.endpoint(weps[0], p.spec, step.pod_labels[p.spec.key])
            if _content(new) == _content(weps[0]):
                return
            try:
                self.client.update(new)
                return
            except (Conflict, NotFound):
                continue
        raise clustermod.ClusterError(f"could not update the endpoint of {p.spec.key}")

    def wait_in_sync(self, timeout: float = SYNC_TIMEOUT) -> float:
        """Until Felix on every node shows the chains and IP sets this step needs, twice in
        a row (seconds taken)."""
        t0 = time.monotonic()
        resources: list[object] = []
        for cls in (WorkloadEndpoint, Profile, *POLICY_CLASSES):
            resources += self.client.list(cls)
        want = {name: sync.expected(resources, name) for name in self.cl.nodes}
        stable = 0
        last: list[str] = []
        while True:
            last = []
            for name, node in self.cl.nodes.items():
                live = sync.live(
                    labmod.in_ns(node.ns, "iptables-save", "-t", "filter").stdout,
                    labmod.in_ns(node.ns, "ipset", "save").stdout)
                last += [f"{name}: {d}" for d in want[name].differences(live)]
            stable = stable + 1 if not last else 0
            if stable >= 2:
                return time.monotonic() - t0
            if time.monotonic() - t0 > timeout:
                raise clustermod.ClusterError(
                    f"Felix not in sync after {timeout:.0f} s: " + "; ".join(last[:6]))
            time.sleep(0.25)

    def probe(self, port: int, protocol: str) -> dict[str, dict[str, bool | None]]:
        keys_ = list(self.pods)
        pairs = [(a, b) for a in keys_ for b in keys_ if a != b]
        out: dict[str, dict[str, bool | None]] = {a: {} for a in keys_}
        if protocol == "SCTP" and not self.sctp:
            for a, b in pairs:
                out[a][b] = None
            return out
        with ThreadPoolExecutor(max_workers=min(64, len(pairs))) as ex:
            futs = {(a, b): ex.submit(net.probe, self.pods[a].ns, self.pods[b].spec.ip,
                                      port, protocol) for a, b in pairs}
            for (a, b), f in futs.items():
                out[a][b] = f.result()
        return out

    def run_steps(self) -> list[tuple[str, list[dict[str, Any]]]]:
        results: list[tuple[str, list[dict[str, Any]]]] = []
        for step in self.file.steps:
            self.say(f"step {step.name!r}: {len(step.policies)} policy objects")
            self.reconcile(step)
            took = self.wait_in_sync()
            self.say(f"  Felix in sync on {len(self.cl.nodes)} nodes ({took:.1f} s)")
            probes = []
            for pr in step.probes:
                m = self.probe(pr.port, pr.protocol)
                self.say(f"  {pr.protocol}/{pr.port}:\n" + report.table(list(self.pods), m))
                probes.append(report.probe_result(pr.port, pr.protocol, m))
            results.append((step.name, probes))
        return results

    def close(self) -> None:
        self.servers.close()


def reconcile_policies(client: Client, policies: Sequence[Resource]) -> None:
    """The datastore's policies, tiers and network sets become exactly `policies`: the others
    deleted (policies before the tiers and sets they use; Calico's built-in tiers stay), these
    created or updated where they differ (tiers and sets before the policies)."""
    want = {keys.resource_key(r.KIND, r.metadata.name, r.metadata.namespace): r
            for r in policies}
    have: dict[str, str] = {}
    for cls in POLICY_CLASSES:
        for kv in client.backend.list(keys.resource_prefix(cls.KIND)).kvs:  # type: ignore[attr-defined]
            have[kv.key] = cls.KIND  # type: ignore[attr-defined]
    gone = [k for k in have if k not in want and not _builtin_tier(k)]
    for k in sorted(gone, key=lambda k: (have[k] in _WRITE_ORDER, have[k] == "Tier", k)):
        with contextlib.suppress(NotFound):
            client.backend.delete(k)
    for r in sorted(want.values(), key=lambda r: (r.KIND not in _WRITE_ORDER, r.KIND != "Tier")):
        apply_if_changed(client, r)


def _builtin_tier(key: str) -> bool:
    parsed = keys.parse_resource_key(key)
    return parsed is not None and parsed[0] == Tier.KIND and parsed[2] in BUILTIN_TIERS


def apply_if_changed(client: Client, res: Resource) -> None:
    """Create or update `res` unless the stored one has the same spec and labels (an
    unchanged object is not rewritten, so Felix sees no change)."""
    meta = res.metadata
    try:
        old = client.get(res.KIND, meta.name, meta.namespace)
    except NotFound:
        old = None
    if old is not None and _content(old) == _content(res):
        return
    client.apply(dataclasses.replace(
        res, metadata=dataclasses.replace(meta, resource_version=None)))


def _content(res: Resource) -> tuple[str, str]:
    doc = codec.encode(res)
    meta = doc.get("metadata")
    labels = meta.get("labels", {}) if isinstance(meta, dict) else {}
    return (json.dumps(doc.get("spec"), sort_keys=True), json.dumps(labels, sort_keys=True))


def run(lab: LabFile, nodes: int, say: Callable[[str], None], workdir: Path,
        prefix: str, etcd_endpoint: str | None = None,
        backend: Backend | None = None) -> dict[str, Any]:
    """Build, run every step, tear down (always); the result document."""
    from calico_node.demo import cli as democli

    labobj = labmod.Lab(prefix, workdir)
    own_backend = backend is None
    cl: clustermod.Cluster | None = None
    pl: PolicyLab | None = None
    try:
        if etcd_endpoint is None:
            say("starting etcd")
            etcd_endpoint = democli.start_etcd(labobj)
        if backend is None:
            from libcalico.datastore.etcd import EtcdBackend

            backend = EtcdBackend([etcd_endpoint])
        opts = clustermod.Options(nodes=nodes, pods=0, edge=False)
        cl = clustermod.Cluster(opts, labobj, etcd_endpoint, backend, say)
        cl.bring_up()
        pl = PolicyLab(lab, cl, say)
        say(f"creating {len(lab.pods)} pods with fixed addresses (Calico IPAM)")
        pl.build()
        steps = pl.run_steps()
        return report.document(not pl.sctp, steps)
    finally:
        if pl is not None:
            pl.close()
            try:
                pl.remove_pods()
            except Exception as exc:  # teardown goes on
                log.warning("removing pods: %s", exc)
        if cl is not None:
            cl.close()
        if own_backend and backend is not None:
            backend.close()
        labobj.close()


def leftovers(prefix: str, workdir: Path) -> list[str]:
    left = [e.name for e in labmod.NETNS_DIR.glob(f"{prefix}-*")] \
        if labmod.NETNS_DIR.is_dir() else []
    if workdir.exists():
        left.append(str(workdir))
    return left


__all__: Sequence[str] = ("PolicyLab", "leftovers", "run")
