"""The datastore records an ADD writes: the WorkloadEndpoint (created, or updated with
compare-and-swap from the value read at the start of the ADD) and the network's Profile."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from calico_cni import spec
from calico_cni.spec import CNIError
from calico_cni.workload import EndpointInfo, Workload
from libcalico.datastore.api import Backend, KVPair
from libcalico.errors import AlreadyExists, Conflict, NotFound
from libcalico.ipam import gojson
from libcalico.model import keys

Iface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def _meta(name: str, namespace: str | None, labels: Mapping[str, str] | None,
          old: Mapping[str, Any] | None) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name}
    if namespace is not None:
        m["namespace"] = namespace
    om = (old or {}).get("metadata") or {}
    m["uid"] = om.get("uid") or _uuid4()
    m["creationTimestamp"] = om.get("creationTimestamp") or gojson.rfc3339(time.time_ns())
    if labels:
        m["labels"] = dict(sorted(labels.items()))
    return m


def _uuid4() -> str:
    """A random (version 4) UUID without importing uuid (which imports platform)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def ip_nats(ips: list[Iface], floating: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address,
                                              ...]) -> list[dict[str, str]]:
    """spec.ipNATs: each floating IP mapped to the workload address of its family."""
    out = []
    for fip in floating:
        inner = next((i for i in ips if i.version == fip.version), None)
        if inner is None:
            raise CNIError(spec.INVALID_NETWORK_CONFIG,
                           f"floating IP {fip} has no IPv{fip.version} workload address to "
                           "map to", "request an address of that family for the pod")
        out.append({"internalIP": str(inner.ip), "externalIP": str(fip)})
    return out


def wep_document(w: Workload, ips: list[Iface], info: EndpointInfo, veth: str, mac: str,
                 old: Mapping[str, Any] | None) -> dict[str, Any]:
    labels, service_account, profiles = info.labels, info.service_account, list(info.profiles)
    all_labels = dict(labels)
    all_labels["projectcalico.org/namespace"] = w.namespace
    all_labels["projectcalico.org/orchestrator"] = w.orchestrator
    if w.orchestrator == "k8s":
        all_labels["projectcalico.org/serviceaccount"] = service_account
    s: dict[str, Any] = {"orchestrator": w.orchestrator, "node": w.node,
                         "containerID": w.container_id}
    if w.orchestrator == "k8s":
        s["pod"] = w.pod
    s["endpoint"] = w.endpoint
    if w.orchestrator == "k8s":
        s["serviceAccountName"] = service_account
    s["ipNetworks"] = [f"{i.ip}/{i.max_prefixlen}" for i in ips]
    if info.floating_ips:
        s["ipNATs"] = ip_nats(ips, info.floating_ips)
    s["profiles"] = profiles
    s["interfaceName"] = veth
    s["mac"] = mac
    return {"kind": "WorkloadEndpoint", "apiVersion": keys.API_VERSION,
            "metadata": _meta(w.wep_name, w.namespace, all_labels, old), "spec": s}


def ensure_profile(backend: Backend, name: str, orchestrator: str) -> None:
    """The network's Profile, created if absent and never updated (as Calico does)."""
    ingress: dict[str, Any] = {"action": "Allow", "source": {}, "destination": {}}
    if orchestrator != "k8s":
        ingress["source"] = {"selector": f"has({name})"}
    doc = {"kind": "Profile", "apiVersion": keys.API_VERSION,
           "metadata": _meta(name, None, None, None),
           "spec": {"ingress": [ingress],
                    "egress": [{"action": "Allow", "source": {}, "destination": {}}],
                    "labelsToApply": {name: ""}}}
    with contextlib.suppress(AlreadyExists):
        backend.create(keys.resource_key("Profile", name), gojson.dumps(doc))


def get_wep(backend: Backend, w: Workload) -> KVPair | None:
    try:
        return backend.get(keys.resource_key("WorkloadEndpoint", w.wep_name, w.namespace))
    except NotFound:
        return None


def write_wep(backend: Backend, w: Workload, ips: list[Iface], info: EndpointInfo,
               veth: str, mac: str, existing: KVPair | None) -> None:
    """Create or update (CAS) the endpoint, starting from the value read at the start of
    ADD; a lost swap re-reads."""
    key = keys.resource_key("WorkloadEndpoint", w.wep_name, w.namespace)
    for attempt in range(5):
        if attempt:
            existing = get_wep(backend, w)
        old = json.loads(existing.value) if existing else None
        text = gojson.dumps(wep_document(w, ips, info, veth, mac, old))
        try:
            if existing is None:
                backend.create(key, text)
            else:
                backend.update(key, text, existing.revision)
            return
        except (AlreadyExists, Conflict, NotFound):
            continue
    raise CNIError(spec.TRY_AGAIN_LATER, f"could not write WorkloadEndpoint {w.wep_name}: "
                   "concurrent updates")
