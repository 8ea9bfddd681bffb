"""The node controller over MemoryBackend and a scripted API: a confirmed leak is checked
once more against the API server before release, and a pod that is back there (the cache
being behind) keeps its address; released only once it is really gone for a grace period."""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from calico_kube_controllers.node import NodeController
from libcalico.datastore.memory import MemoryBackend
from libcalico.errors import NotFound
from libcalico.ipam import block as blk
from libcalico.ipam.assignment import AutoAssignArgs
from libcalico.ipam.client import IPAMClient
from libcalico.model import keys

GRACE = 900.0


class Blocking:
    def __init__(self) -> None:
        self.closed = threading.Event()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        self.closed.wait()
        return iter(())

    def close(self) -> None:
        self.closed.set()


class ScriptedKube:
    """Node n1 exists; no pod in the lists; a GET of the pod answers `live_pod`."""

    def __init__(self) -> None:
        self.live_pod: dict[str, Any] | None = None
        self.gets: list[str] = []

    def request(self, method: str, path: str, *, query: Mapping[str, str] | None = None,
                body: Any = None, content_type: str = "", what: str = "") -> Any:
        if path == "/api/v1/nodes":
            return {"items": [{"metadata": {"name": "n1", "resourceVersion": "1"}}],
                    "metadata": {"resourceVersion": "1"}}
        if path == "/api/v1/pods":
            return {"items": [], "metadata": {"resourceVersion": "1"}}
        self.gets.append(path)
        if self.live_pod is None:
            raise NotFound(path)
        return self.live_pod

    def watch(self, path: str, query: Mapping[str, str], *, what: str = "") -> Blocking:
        return Blocking()


def _allocated(be: MemoryBackend) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    return {ip for kv in be.list(keys.block_prefix(4)).kvs
            for ip, _ in blk.decode(kv.value, kv.key).in_use()}


def test_final_check_against_the_api_server_before_release() -> None:
    be = MemoryBackend()
    be.create(keys.resource_key("IPPool", "p"), json.dumps({
        "kind": "IPPool", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "p"},
        "spec": {"cidr": "10.5.0.0/24", "blockSize": 29}}))
    be.create(keys.resource_key("Node", "n1"), json.dumps({
        "kind": "Node", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "n1"},
        "spec": {}}))
    v4, _ = IPAMClient(be).auto_assign(AutoAssignArgs(
        hostname="n1", handle_id="k8s-pod-network.c1",
        attrs={"node": "n1", "namespace": "ns", "pod": "web"}))
    ip = v4.ips[0].ip
    kube = ScriptedKube()
    clock = [0.0]
    ctl = NodeController(be, kube, kdd=True, leak_grace_s=GRACE, clock=lambda: clock[0])
    ctl.start(lambda reason: None)
    try:
        assert ctl.nodes.synced.wait(10) and ctl.pods.synced.wait(10)
        assert ctl.reconcile().candidates == 1
        kube.live_pod = {"metadata": {"name": "web", "namespace": "ns"},
                         "spec": {"nodeName": "n1"},
                         "status": {"podIP": str(ip), "podIPs": [{"ip": str(ip)}]}}
        clock[0] += GRACE + 1
        s = ctl.reconcile()
        assert kube.gets == ["/api/v1/namespaces/ns/pods/web"]
        assert s.released == 0 and ip in _allocated(be) and not ctl.tracker.leaked_at

        kube.live_pod = None  # really gone now: a new grace period starts
        assert ctl.reconcile().candidates == 1
        clock[0] += GRACE + 1
        s = ctl.reconcile()
        assert s.released == 1 and ip not in _allocated(be)
        assert not be.list(keys.HANDLE_PREFIX).kvs
    finally:
        ctl.stop()
