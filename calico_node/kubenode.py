"""The Kubernetes Node's own status, which calico-node sets on the Kubernetes datastore
beside the Calico fields the backend keeps in the Node's annotations.

Calico (`node/pkg/lifecycle/utils`, SetNodeNetworkUnavailableCondition) marks the node's
network available once it is up: a strategic-merge PATCH of `nodes/<name>/status` with the
condition `NetworkUnavailable=False`, reason `CalicoIsUp` (RBAC: `nodes/status` patch).
Conditions merge by `type`, so the others (kubelet's Ready, …) are untouched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from libcalico.datastore.kubernetes_client import name_path

if TYPE_CHECKING:
    from libcalico.datastore.kubernetes_client import KubeClient

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
REASON = "CalicoIsUp"
MESSAGE = "Calico is running on this node"


def network_available_patch(now: datetime) -> dict[str, Any]:
    stamp = now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"status": {"conditions": [{
        "type": "NetworkUnavailable", "status": "False", "reason": REASON,
        "message": MESSAGE, "lastTransitionTime": stamp, "lastHeartbeatTime": stamp}]}}


def mark_network_available(kube: KubeClient, node: str, now: datetime) -> None:
    """Set `NetworkUnavailable=False` (CalicoIsUp) on the Kubernetes Node `node`."""
    kube.request("PATCH", f"/api/v1/nodes/{name_path(node)}/status",
                 body=network_available_patch(now), content_type=STRATEGIC_MERGE,
                 what=f"Node({node}) status")
