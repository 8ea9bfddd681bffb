"""Datastore objects the IPAM and CNI tests need (written raw, as Calico stores them)."""

from __future__ import annotations

import json

from libcalico.datastore.api import Backend
from libcalico.model import keys


def put(backend: Backend, kind: str, name: str, spec: dict[str, object],
        labels: dict[str, str] | None = None) -> None:
    doc = {"kind": kind, "apiVersion": keys.API_VERSION,
           "metadata": {"name": name, **({"labels": labels} if labels else {})}, "spec": spec}
    backend.apply(keys.resource_key(kind, name), json.dumps(doc))


def cluster(backend: Backend, nodes: list[str], pools: dict[str, dict[str, object]]) -> None:
    put(backend, "ClusterInformation", "default", {"datastoreReady": True})
    for n in nodes:
        put(backend, "Node", n, {}, {"kubernetes.io/hostname": n})
    for name, spec in pools.items():
        put(backend, "IPPool", name, spec)
