"""The demo cluster's Calico resources, written into etcd through the typed Client: the
profile, BGP peers and configuration an operator sets, node edits, and the mesh or
route-reflector topology."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from ipaddress import IPv4Address

from calico_node.demo import plan
from calico_node.demo.members import ClusterError, Node, Options
from libcalico.client import Client
from libcalico.datastore.api import Backend
from libcalico.errors import Conflict, NotFound
from libcalico.model import codec, keys
from libcalico.model.resources import Node as CalicoNode
from libcalico.model.resources import NodeBGPSpec


class Records:
    """Part of `Cluster`: resources in the datastore."""

    opts: Options
    backend: Backend
    nodes: dict[str, Node]

    def put(self, kind: str, name: str, spec: dict[str, object],
            labels: dict[str, str] | None = None) -> None:
        """Create or replace a resource (its spec in Calico's JSON), keeping the stored uid
        and creationTimestamp."""
        meta: dict[str, object] = {"name": name}
        if labels:
            meta["labels"] = labels
        Client(self.backend).apply(codec.decode(
            {"kind": kind, "apiVersion": keys.API_VERSION, "metadata": meta, "spec": spec}))

    def delete(self, kind: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.backend.delete(keys.resource_key(kind, name))

    def edit_node(self, name: str, fn: Callable[[CalicoNode], CalicoNode]) -> None:
        """Read-modify-write of a Calico Node (CAS on its resourceVersion, retried)."""
        client = Client(self.backend)
        for _ in range(10):
            node = client.get(CalicoNode, name)
            try:
                client.update(fn(node))
                return
            except (Conflict, NotFound):
                continue
        raise ClusterError(f"could not update Node {name}")

    def seed(self) -> None:
        """What an operator configures before nodes join: the profile pods use, the edge
        router peering, and the topology."""
        if not self.opts.kdd:  # on KDD the pods' profile is their namespace's (kns.demo)
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

        def label(node: CalicoNode) -> CalicoNode:
            labels = dict(node.metadata.labels)
            bgp = node.spec.bgp or NodeBGPSpec()
            if topology == "rr":
                labels["route-reflector"] = "true"
                bgp = replace(bgp, route_reflector_cluster_id=IPv4Address("224.0.0.1"))
            else:
                labels.pop("route-reflector", None)
                bgp = replace(bgp, route_reflector_cluster_id=None)
            return replace(node, metadata=replace(node.metadata, labels=labels),
                           spec=replace(node.spec, bgp=None if bgp == NodeBGPSpec() else bgp))

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
        self.opts = replace(self.opts, topology=topology)
