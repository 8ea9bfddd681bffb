"""Snapshot builders for confd view tests: raw etcd keys → JSON, as a datastore holds them.

Values are written directly (not through the codec) so tests can also hold what a hostile or
buggy writer could put into etcd."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from libcalico.model import keys

TEMPLATES = Path(__file__).resolve().parents[3] / "templates"


def _doc(kind: str, name: str, spec: dict[str, Any], labels: dict[str, str] | None = None
         ) -> tuple[str, str]:
    meta: dict[str, Any] = {"name": name}
    if labels:
        meta["labels"] = labels
    doc = {"kind": kind, "apiVersion": "projectcalico.org/v3", "metadata": meta, "spec": spec}
    return keys.resource_key(kind, name), json.dumps(doc)


def node(name: str, v4: str | None = None, v6: str | None = None, *, asn: int | None = None,
         rr: str | None = None, labels: dict[str, str] | None = None) -> tuple[str, str]:
    bgp: dict[str, Any] = {}
    if v4:
        bgp["ipv4Address"] = v4
    if v6:
        bgp["ipv6Address"] = v6
    if asn:
        bgp["asNumber"] = asn
    if rr:
        bgp["routeReflectorClusterID"] = rr
    return _doc("Node", name, {"bgp": bgp}, labels)


def peer(name: str, **spec: Any) -> tuple[str, str]:
    return _doc("BGPPeer", name, spec)


def config(name: str = "default", **spec: Any) -> tuple[str, str]:
    return _doc("BGPConfiguration", name, spec)


def bgpfilter(name: str, **spec: Any) -> tuple[str, str]:
    return _doc("BGPFilter", name, spec)


def pool(name: str, cidr: str, **spec: Any) -> tuple[str, str]:
    return _doc("IPPool", name, {"cidr": cidr, **spec})


def affinity(host: str, cidr: str, state: str = "confirmed") -> tuple[str, str]:
    import ipaddress

    return (keys.affinity_key(host, ipaddress.ip_network(cidr)),
            json.dumps({"state": state, "deleted": False}))


def snapshot(*items: tuple[str, str]) -> dict[str, str]:
    return dict(items)


def mesh(n: int, prefix: str = "node") -> dict[str, str]:
    """`n` nodes 10.0.x.y/16 (and fd00::x:y/64) named node-0000…"""
    out = {}
    for i in range(n):
        k, v = node(f"{prefix}-{i:04d}", f"10.0.{i // 250}.{i % 250 + 1}/16",
                    f"fd00::{i // 250}:{i % 250 + 1}/64")
        out[k] = v
    return out
