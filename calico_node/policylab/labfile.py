"""The policy lab's input file: parsed and checked before anything starts (pure).

    {"namespaces": {"x": {"labels": {...}}},
     "pods": [{"namespace": "x", "name": "a", "labels": {...}, "ip": "10.244.1.10",
               "ports": [{"name": "serve-80-tcp", "containerPort": 80, "protocol": "TCP"}],
               "node": "node-2"}],
     "steps": [{"name": "...", "policies": [Kubernetes NetworkPolicy and Calico policy, tier
                and network set objects], "namespace_labels": {"y": {...}},
                "pod_labels": {"x/b": {...}}, "probes": [{"port": 80, "protocol": "TCP",
                "expected": {"x/a": {"x/b": true}}}]}]}
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from libcalico.errors import FieldError, ValidationError
from libcalico.model import codec, k8s_networkpolicy, keys
from libcalico.model import validate as v
from libcalico.model.resources import (
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    NetworkPolicy,
    NetworkSet,
    Resource,
    StagedGlobalNetworkPolicy,
    StagedKubernetesNetworkPolicy,
    StagedNetworkPolicy,
    Tier,
)
from libcalico.model.resources_policy import BUILTIN_TIERS

PURE = True

POOL = ipaddress.IPv4Network("10.244.0.0/16")   # the demo cluster's pool (plan.POOL)
BLOCK_PREFIX = 26                                 # its block size
PROTOCOLS = ("TCP", "UDP", "SCTP")
POLICY_CLASSES: tuple[type, ...] = (
    NetworkPolicy, GlobalNetworkPolicy, StagedNetworkPolicy, StagedGlobalNetworkPolicy,
    StagedKubernetesNetworkPolicy, Tier, NetworkSet, GlobalNetworkSet)
"""The kinds a step may hold; each step's set of them is exactly what is in force."""
POLICY_KINDS = tuple(c.KIND for c in POLICY_CLASSES)  # type: ignore[attr-defined]


class LabFileError(ValidationError):
    pass


@dataclass(frozen=True, slots=True)
class PodPort:
    name: str
    port: int
    protocol: str


@dataclass(frozen=True, slots=True)
class PodSpec:
    namespace: str
    name: str
    labels: Mapping[str, str]
    ip: ipaddress.IPv4Address
    ports: tuple[PodPort, ...]
    node: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Probe:
    port: int
    protocol: str
    expected: Mapping[str, Mapping[str, bool]] | None


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    policies: tuple[Resource, ...]
    namespace_labels: Mapping[str, Mapping[str, str]]
    """Every namespace's complete labels at this step."""
    pod_labels: Mapping[str, Mapping[str, str]]
    """Every pod's complete labels at this step, by `ns/name`."""
    probes: tuple[Probe, ...]


@dataclass(frozen=True, slots=True)
class LabFile:
    namespaces: Mapping[str, Mapping[str, str]]
    pods: tuple[PodSpec, ...]
    steps: tuple[Step, ...]
    nodes: tuple[str, ...]


def node_names(count: int) -> tuple[str, ...]:
    return tuple(f"node-{i}" for i in range(1, count + 1))


class _Checker:
    def __init__(self) -> None:
        self.errors: list[FieldError] = []

    def err(self, path: str, reason: str) -> None:
        self.errors.append(FieldError(path, reason))

    def obj(self, doc: Any, path: str, required: bool = True) -> Mapping[str, Any]:
        if doc is None and not required:
            return {}
        if not isinstance(doc, Mapping):
            self.err(path, "must be an object")
            return {}
        return doc

    def arr(self, doc: Any, path: str, required: bool = True) -> list[Any]:
        if doc is None and not required:
            return []
        if not isinstance(doc, list):
            self.err(path, "must be a list")
            return []
        return doc

    def labels(self, doc: Any, path: str) -> dict[str, str]:
        m = self.obj(doc, path, required=False)
        if not all(isinstance(k, str) and isinstance(x, str) for k, x in m.items()):
            self.err(path, "labels must map strings to strings")
            return {}
        out = dict(m)
        for fe in v.label_map(out, path):
            self.errors.append(fe)
        return out

    def keys_only(self, doc: Mapping[str, Any], allowed: tuple[str, ...], path: str) -> None:
        for k in doc:
            if k not in allowed:
                self.err(f"{path}.{k}" if path else k, "unknown field")


def parse(text: str, nodes: int = 3) -> LabFile:
    """The lab file, or LabFileError naming every problem found."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise LabFileError(f"not valid JSON: {exc}") from None
    return from_document(doc, nodes)


def from_document(doc: Any, nodes: int = 3) -> LabFile:
    c = _Checker()
    top = c.obj(doc, "")
    c.keys_only(top, ("namespaces", "pods", "steps"), "")
    names = node_names(nodes)
    namespaces: dict[str, dict[str, str]] = {}
    for ns, nsdoc in c.obj(top.get("namespaces"), "namespaces").items():
        path = f"namespaces.{ns}"
        for fe in v.dns1123_label(ns, path):
            c.errors.append(fe)
        d = c.obj(nsdoc, path)
        c.keys_only(d, ("labels",), path)
        namespaces[ns] = c.labels(d.get("labels"), f"{path}.labels")
    if not namespaces and not c.errors:
        c.err("namespaces", "at least one namespace is needed")
    pods = _pods(c, c.arr(top.get("pods"), "pods"), namespaces, names)
    by_key = {p.key: p for p in pods}
    steps: list[Step] = []
    raw_steps = c.arr(top.get("steps"), "steps")
    if not raw_steps and not c.errors:
        c.err("steps", "at least one step is needed")
    seen_steps: set[str] = set()
    for i, sdoc in enumerate(raw_steps):
        steps.append(_step(c, sdoc, f"steps[{i}]", namespaces, by_key, seen_steps))
    if c.errors:
        raise LabFileError(c.errors, "lab file")
    return LabFile(namespaces, tuple(pods), tuple(steps), names)


def _pods(c: _Checker, raw: list[Any], namespaces: Mapping[str, Any],
          names: tuple[str, ...]) -> list[PodSpec]:
    out: list[PodSpec] = []
    seen: set[str] = set()
    ips: set[ipaddress.IPv4Address] = set()
    block_node: dict[ipaddress.IPv4Network, str] = {}
    placed = 0
    if not raw and not c.errors:
        c.err("pods", "at least two pods are needed")
    for i, pdoc in enumerate(raw):
        path = f"pods[{i}]"
        p = c.obj(pdoc, path)
        c.keys_only(p, ("namespace", "name", "labels", "ip", "ports", "node"), path)
        ns, name = p.get("namespace"), p.get("name")
        if ns not in namespaces:
            c.err(f"{path}.namespace", f"{ns!r} is not one of the file's namespaces")
        if not isinstance(name, str) or v.dns1123_label(name, f"{path}.name"):
            c.err(f"{path}.name", "must be a DNS label (lower-case letters, digits, '-')")
            name = str(name)
        key = f"{ns}/{name}"
        if key in seen:
            c.err(path, f"pod {key} is listed twice")
        seen.add(key)
        labels = c.labels(p.get("labels"), f"{path}.labels")
        try:
            ip = ipaddress.ip_address(str(p.get("ip")))
        except ValueError:
            c.err(f"{path}.ip", f"{p.get('ip')!r} is not an IP address")
            continue
        if not isinstance(ip, ipaddress.IPv4Address) or ip not in POOL or ip in (
                POOL.network_address, POOL.broadcast_address):
            c.err(f"{path}.ip", f"{ip} must be an IPv4 address in the lab's pool {POOL}")
            continue
        if ip in ips:
            c.err(f"{path}.ip", f"{ip} is used by another pod")
        ips.add(ip)
        ports: list[PodPort] = []
        pseen: set[tuple[int, str]] = set()
        for j, qdoc in enumerate(c.arr(p.get("ports"), f"{path}.ports", required=False)):
            qpath = f"{path}.ports[{j}]"
            q = c.obj(qdoc, qpath)
            c.keys_only(q, ("name", "containerPort", "protocol"), qpath)
            port, proto, pname = q.get("containerPort"), q.get("protocol", "TCP"), q.get("name", "")
            if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
                c.err(f"{qpath}.containerPort", "must be a port number 1-65535")
                continue
            if proto not in PROTOCOLS:
                c.err(f"{qpath}.protocol", f"must be one of {', '.join(PROTOCOLS)}")
                continue
            if not isinstance(pname, str) or (pname and (len(pname) > 15 or not all(
                    ch.isalnum() or ch == "-" for ch in pname))):
                c.err(f"{qpath}.name", "a port name is up to 15 letters, digits and '-'")
                continue
            if (port, proto) in pseen:
                c.err(qpath, f"{port}/{proto} listed twice")
            pseen.add((port, proto))
            ports.append(PodPort(pname, port, proto))
        block = ipaddress.IPv4Network(f"{ip}/{BLOCK_PREFIX}", strict=False)
        node = p.get("node")
        if node is None:
            node = block_node.get(block)
            if node is None:
                node = names[placed % len(names)]
                placed += 1
        elif node not in names:
            c.err(f"{path}.node", f"{node!r} is not a lab node ({', '.join(names)})")
            continue
        if block_node.setdefault(block, node) != node:
            c.err(f"{path}.ip", f"{ip} is in block {block}, which holds a pod of "
                                f"{block_node[block]}: pods on different nodes need addresses "
                                f"in different /{BLOCK_PREFIX} blocks")
        out.append(PodSpec(str(ns), name, labels, ip, tuple(ports), node))
    if len(out) == 1 and not c.errors:
        c.err("pods", "at least two pods are needed")
    return out


def _step(c: _Checker, sdoc: Any, path: str, namespaces: Mapping[str, Mapping[str, str]],
          pods: Mapping[str, PodSpec], seen: set[str]) -> Step:
    s = c.obj(sdoc, path)
    c.keys_only(s, ("name", "policies", "namespace_labels", "pod_labels", "probes"), path)
    name = s.get("name")
    if not isinstance(name, str) or not name:
        c.err(f"{path}.name", "each step needs a name")
        name = str(name)
    elif name in seen:
        c.err(f"{path}.name", f"step {name!r} is named twice")
    seen.add(name)
    policies: list[Resource] = []
    ids: set[tuple[str, str, str]] = set()
    for j, pdoc in enumerate(c.arr(s.get("policies"), f"{path}.policies", required=False)):
        res = _policy(c, pdoc, f"{path}.policies[{j}]")
        if res is None:
            continue
        meta = res.metadata
        ident = (res.KIND, meta.namespace or "", meta.name)
        if ident in ids:
            c.err(f"{path}.policies[{j}]", f"{ident[0]} {ident[1]}/{ident[2]} is given twice")
        ids.add(ident)
        policies.append(res)
    tiers = {r.metadata.name for r in policies if isinstance(r, Tier)}
    for j, r in enumerate(policies):
        tier = getattr(r.spec, "tier", "") or "default"
        if not isinstance(r, Tier) and tier not in tiers and tier not in BUILTIN_TIERS:
            c.err(f"{path}.policies[{j}].spec.tier",
                  f"tier {tier!r} is not in this step's policies (a step holds every object "
                  "in force, its tiers too)")
    ns_labels = {n: dict(lbl) for n, lbl in namespaces.items()}
    for n, lbl in c.obj(s.get("namespace_labels"), f"{path}.namespace_labels",
                        required=False).items():
        if n not in namespaces:
            c.err(f"{path}.namespace_labels.{n}", "not one of the file's namespaces")
        ns_labels[n] = c.labels(lbl, f"{path}.namespace_labels.{n}")
    pod_labels = {k: dict(p.labels) for k, p in pods.items()}
    for k, lbl in c.obj(s.get("pod_labels"), f"{path}.pod_labels", required=False).items():
        if k not in pods:
            c.err(f"{path}.pod_labels.{k}", "not one of the file's pods (namespace/name)")
        pod_labels[k] = c.labels(lbl, f"{path}.pod_labels.{k}")
    probes: list[Probe] = []
    raw_probes = c.arr(s.get("probes"), f"{path}.probes")
    if not raw_probes and not c.errors:
        c.err(f"{path}.probes", "each step needs at least one probe")
    for j, qdoc in enumerate(raw_probes):
        qpath = f"{path}.probes[{j}]"
        q = c.obj(qdoc, qpath)
        c.keys_only(q, ("port", "protocol", "expected"), qpath)
        port, proto = q.get("port"), q.get("protocol", "TCP")
        if not isinstance(port, int) or isinstance(port, bool) or not 1 <= port <= 65535:
            c.err(f"{qpath}.port", "must be a port number 1-65535")
            continue
        if proto not in PROTOCOLS:
            c.err(f"{qpath}.protocol", f"must be one of {', '.join(PROTOCOLS)}")
            continue
        expected = None
        if "expected" in q:
            expected = _matrix(c, q["expected"], f"{qpath}.expected", pods)
        probes.append(Probe(port, str(proto), expected))
    return Step(name, tuple(policies), ns_labels, pod_labels, tuple(probes))


def _matrix(c: _Checker, doc: Any, path: str, pods: Mapping[str, PodSpec]
            ) -> dict[str, dict[str, bool]]:
    out: dict[str, dict[str, bool]] = {}
    for src, row in c.obj(doc, path).items():
        if src not in pods:
            c.err(f"{path}.{src}", "not one of the file's pods")
        cells: dict[str, bool] = {}
        for dst, val in c.obj(row, f"{path}.{src}").items():
            if dst not in pods or dst == src:
                c.err(f"{path}.{src}.{dst}", "not another pod of the file")
            if not isinstance(val, bool):
                c.err(f"{path}.{src}.{dst}", "must be true or false")
                continue
            cells[dst] = val
        out[src] = cells
    return out


def _policy(c: _Checker, doc: Any, path: str) -> Resource | None:
    d = c.obj(doc, path)
    if not d:
        return None
    try:
        if k8s_networkpolicy.is_kubernetes_policy(d):
            got = k8s_networkpolicy.convert(d)
            for why in got.dropped:
                c.err(path, f"Calico would drop this rule: {why}")
            return got.policy
        if d.get("apiVersion") != keys.API_VERSION:
            c.err(f"{path}.apiVersion", "must be networking.k8s.io/v1 (kind NetworkPolicy) or "
                                        f"{keys.API_VERSION}")
            return None
        if d.get("kind") not in POLICY_KINDS:
            c.err(f"{path}.kind", f"must be one of {', '.join(POLICY_KINDS)}")
            return None
        meta = d.get("metadata")
        if (isinstance(meta, Mapping) and "namespace" not in meta
                and d.get("kind") in ("NetworkPolicy", "StagedNetworkPolicy",
                                      "StagedKubernetesNetworkPolicy", "NetworkSet")):
            d = {**d, "metadata": {**meta, "namespace": "default"}}
        return codec.decode(d, document=path)
    except ValidationError as exc:
        for fe in exc.errors:
            c.err(f"{path}.{fe.path}" if fe.path else path, fe.reason)
        return None
