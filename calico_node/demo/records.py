"""The demo cluster's Calico resources, written straight into etcd as Calico's JSON: the
profile, BGP peers and configuration an operator sets, node edits, and the mesh or
route-reflector topology."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable

from calico_node.demo import plan
from calico_node.demo.members import ClusterError, Node, Options
from libcalico.datastore.api import Backend
from libcalico.errors import CalicoError, NotFound
from libcalico.model import keys


class Records:
    """Part of `Cluster`: resources in the datastore."""

    opts: Options
    backend: Backend
    nodes: dict[str, Node]

    def put(self, kind: str, name: str, spec: dict[str, object],
            labels: dict[str, str] | None = None) -> None:
        """Create or replace a resource (Calico's JSON) directly in etcd."""
        key = keys.resource_key(kind, name)
        meta: dict[str, object] = {"name": name}
        if labels:
            meta["labels"] = labels
        try:
            kv = self.backend.get(key)
            old = json.loads(kv.value)
            old_meta = old.get("metadata") or {}
            for k in ("uid", "creationTimestamp"):
                if k in old_meta:
                    meta[k] = old_meta[k]
            self.backend.update(key, _dumps({"kind": kind, "apiVersion": keys.API_VERSION,
                                             "metadata": meta, "spec": spec}), kv.revision)
        except NotFound:
            meta["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.backend.create(key, _dumps({"kind": kind, "apiVersion": keys.API_VERSION,
                                             "metadata": meta, "spec": spec}))

    def delete(self, kind: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.backend.delete(keys.resource_key(kind, name))

    def edit_node(self, name: str, fn: Callable[[dict[str, object]], None]) -> None:
        key = keys.resource_key("Node", name)
        for _ in range(10):
            kv = self.backend.get(key)
            doc = json.loads(kv.value)
            fn(doc)
            try:
                self.backend.update(key, _dumps(doc), kv.revision)
                return
            except CalicoError:
                continue
        raise ClusterError(f"could not update Node {name}")

    def seed(self) -> None:
        """What an operator configures before nodes join: the profile pods use, the edge
        router peering, and the topology."""
        self.put("Profile", plan.NETWORK, {"ingress": [{"action": "Allow"}],
                                          "egress": [{"action": "Allow"}]})
        if self.opts.edge and self.opts.backend == "bird":
            self.put("BGPPeer", "edge-router", {"peerIP": str(plan.EDGE_IP),
                                                "asNumber": plan.EDGE_AS})
        self.put("BGPConfiguration", "default",
                 {"logSeverityScreen": "Info", "asNumber": plan.CLUSTER_AS,
                  "nodeToNodeMeshEnabled": self.opts.topology == "mesh"})

    def set_topology(self, topology: str) -> None:
        """mesh: full node-to-node mesh. rr: the first node reflects routes for the others."""
        rr = next(iter(self.nodes))

        def label(doc: dict[str, object]) -> None:
            meta = doc.setdefault("metadata", {})
            spec = doc.setdefault("spec", {})
            assert isinstance(meta, dict) and isinstance(spec, dict)
            labels = dict(meta.get("labels") or {})
            bgp = dict(spec.get("bgp") or {})
            if topology == "rr":
                labels["route-reflector"] = "true"
                bgp["routeReflectorClusterID"] = "224.0.0.1"
            else:
                labels.pop("route-reflector", None)
                bgp.pop("routeReflectorClusterID", None)
            meta["labels"] = labels
            spec["bgp"] = bgp

        if topology == "rr":
            self.edit_node(rr, label)
            self.put("BGPPeer", "peer-with-route-reflectors",
                     {"nodeSelector": "all()", "peerSelector": "route-reflector == 'true'"})
            self.put("BGPConfiguration", "default",
                     {"logSeverityScreen": "Info", "asNumber": plan.CLUSTER_AS,
                      "nodeToNodeMeshEnabled": False})
        else:
            self.put("BGPConfiguration", "default",
                     {"logSeverityScreen": "Info", "asNumber": plan.CLUSTER_AS,
                      "nodeToNodeMeshEnabled": True})
            self.delete("BGPPeer", "peer-with-route-reflectors")
            self.edit_node(rr, label)
        self.opts = Options(self.opts.nodes, self.opts.pods, self.opts.encap, topology,
                            self.opts.edge)


def _dumps(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"))
