"""The project's CRDs (manifests/crds/) as the real API server serves them: one object of
each kind created and read back unchanged, and the IPAM schemas enforced."""

from __future__ import annotations

import re
from typing import Any

import pytest

from calico_node.kubelab.apiserver import KUBE_VERSION, ROOT, ControlPlane, crd_documents

GROUP = "crd.projectcalico.org/v1"

SPECS: dict[str, dict[str, Any]] = {
    "BGPConfiguration": {"asNumber": 64512, "nodeToNodeMeshEnabled": True,
                         "logSeverityScreen": "Info"},
    "BGPFilter": {"exportV4": [{"action": "Accept", "matchOperator": "In", "cidr": "10.0.0.0/8"}]},
    "BGPPeer": {"peerIP": "192.0.2.10", "asNumber": 64513, "node": "node-1"},
    "BlockAffinity": {"state": "confirmed", "node": "node-1", "type": "host",
                      "cidr": "10.244.0.0/26", "deleted": "false"},
    "ClusterInformation": {"clusterGUID": "8e4a1b8bd0a447a7b4f2c5c9c6b6a3f1",
                           "datastoreReady": True, "clusterType": "k8s,bgp,kdd"},
    "FelixConfiguration": {"reportingInterval": "0s", "logSeverityScreen": "Info"},
    "GlobalNetworkPolicy": {"tier": "default", "order": 10, "selector": "all()",
                            "types": ["Ingress"], "ingress": [{"action": "Allow"}]},
    "GlobalNetworkSet": {"nets": ["198.51.100.0/24"]},
    "HostEndpoint": {"node": "node-1", "interfaceName": "eth0", "expectedIPs": ["192.0.2.5"]},
    "IPAMBlock": {"cidr": "10.244.0.0/26", "affinity": "host:node-1", "allocations": [0, None],
                  "unallocated": [1], "attributes": [{"handle_id": "k8s-pod-network.abc",
                                                       "secondary": {"node": "node-1"}}],
                  "sequenceNumber": 7, "sequenceNumberForAllocation": {"0": 6},
                  "deleted": False, "strictAffinity": False},
    "IPAMConfig": {"strictAffinity": False, "autoAllocateBlocks": True, "maxBlocksPerHost": 0},
    "IPAMHandle": {"handleID": "k8s-pod-network.ABC", "block": {"10.244.0.0/26": 1},
                   "deleted": False},
    "IPPool": {"cidr": "10.244.0.0/16", "blockSize": 26, "ipipMode": "Never",
               "vxlanMode": "Always", "natOutgoing": True, "nodeSelector": "all()"},
    "IPReservation": {"reservedCIDRs": ["10.244.0.0/30"]},
    "KubeControllersConfiguration": {"healthChecks": "Enabled",
                                     "controllers": {"node": {"reconcilerPeriod": "5m"}}},
    "NetworkPolicy": {"tier": "default", "selector": "app == 'web'", "types": ["Egress"],
                      "egress": [{"action": "Deny"}]},
    "NetworkSet": {"nets": ["198.51.100.0/28"]},
    "Tier": {"order": 100, "defaultAction": "Deny"},
    "StagedGlobalNetworkPolicy": {"tier": "default", "stagedAction": "Set",
                                  "selector": "all()", "types": ["Ingress"]},
    "StagedKubernetesNetworkPolicy": {"stagedAction": "Set", "podSelector": {},
                                      "policyTypes": ["Ingress"]},
    "StagedNetworkPolicy": {"tier": "default", "stagedAction": "Set", "selector": "all()"},
}
DERIVED = {"Node", "Profile", "WorkloadEndpoint"}
"""Kinds KDD keeps in core objects (Nodes, Namespaces/ServiceAccounts, Pods)."""
V1_KIND = {"IPAMConfiguration": "IPAMConfig"}
IPAM_KINDS = {"IPAMBlock", "BlockAffinity", "IPAMHandle"}


def _collection(doc: dict[str, Any], namespace: str | None) -> str:
    plural = doc["spec"]["names"]["plural"]
    ns = f"namespaces/{namespace}/" if namespace else ""
    return f"/apis/{GROUP}/{ns}{plural}"


def test_every_kind_round_trips(kube_apiserver: ControlPlane) -> None:
    docs = crd_documents()
    assert sorted(d["spec"]["names"]["kind"] for d in docs) == sorted(SPECS)
    made: list[str] = []
    try:
        for doc in docs:
            kind = doc["spec"]["names"]["kind"]
            namespace = "default" if doc["spec"]["scope"] == "Namespaced" else None
            coll = _collection(doc, namespace)
            obj = {"apiVersion": GROUP, "kind": kind,
                   "metadata": {"name": "crd-test", "annotations": {
                       "projectcalico.org/metadata": '{"labels":{"a":"b"}}'}},
                   "spec": SPECS[kind]}
            status, reply = kube_apiserver.request("POST", coll, obj)
            assert status == 201, (kind, reply)
            made.append(f"{coll}/crd-test")
            status, got = kube_apiserver.request("GET", f"{coll}/crd-test")
            assert status == 200, (kind, got)
            assert got["kind"] == kind
            assert got["spec"] == SPECS[kind], kind
            assert got["metadata"]["annotations"] == obj["metadata"]["annotations"]
            assert got["metadata"].get("namespace") == namespace
    finally:
        for path in made:
            kube_apiserver.request("DELETE", path)


@pytest.mark.parametrize(("kind", "missing"), [
    ("IPAMBlock", "strictAffinity"), ("BlockAffinity", "deleted"), ("IPAMHandle", "handleID"),
    ("IPAMConfig", "autoAllocateBlocks"),
])
def test_ipam_schema_requires_calicos_fields(kube_apiserver: ControlPlane, kind: str,
                                             missing: str) -> None:
    doc = next(d for d in crd_documents() if d["spec"]["names"]["kind"] == kind)
    spec = {k: v for k, v in SPECS[kind].items() if k != missing}
    obj = {"apiVersion": GROUP, "kind": kind, "metadata": {"name": "crd-bad"}, "spec": spec}
    status, reply = kube_apiserver.request("POST", _collection(doc, None), obj)
    assert status == 422, reply
    assert missing in reply["message"]


def test_every_kind_the_project_stores_has_a_crd() -> None:
    from libcalico.model import keys

    want = {V1_KIND.get(k, k) for k in keys.KINDS if k not in DERIVED} | IPAM_KINDS
    have = {d["spec"]["names"]["kind"]: d for d in crd_documents()}
    assert set(have) == want
    for kind, info in keys.KINDS.items():
        if kind in DERIVED:
            continue
        names = have[V1_KIND.get(kind, kind)]["spec"]
        assert names["scope"] == ("Namespaced" if info.namespaced else "Cluster"), kind
        if kind not in V1_KIND:
            assert names["names"]["plural"] == info.plural, kind


def test_kube_version_matches_the_wrapper_module() -> None:
    gomod = (ROOT / "tools" / "kube" / "go.mod").read_text()
    assert re.search(rf"^require k8s\.io/kubernetes {re.escape(KUBE_VERSION)}\b", gomod, re.M)
