"""calico-node startup on the Kubernetes datastore, against the real API server: Calico's
annotations on the Kubernetes Node (addresses, tunnel address and MAC, AS), the default pool
as an `ippools` custom resource, ClusterInformation (`kdd` in its clusterType), the default
FelixConfiguration (no per-node one, as Calico on KDD), the NetworkUnavailable=False
condition; a second start changes nothing; a Node that Kubernetes does not have is refused."""

from __future__ import annotations

import contextlib
import ipaddress
import os
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from calico_node import autodetect, startup
from calico_node.kubelab.apiserver import ROOT, ControlPlane
from libcalico import proc
from libcalico.client import Client
from libcalico.datastore import connect
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.errors import NotFound
from libcalico.ipam.client import IPAMClient
from libcalico.model.resources import ClusterInformation, FelixConfiguration, IPPool

CRD = "/apis/crd.projectcalico.org/v1"
RBAC = ROOT / "manifests" / "rbac" / "calico-node.yaml"
NOW = datetime(2026, 12, 4, 21, 0, 0, tzinfo=UTC)


def _absent(cp: ControlPlane, path: str) -> bool:
    return cp.request("GET", path)[0] == 404


@pytest.fixture
def k8s_node(kube_apiserver: ControlPlane, kube_backend: KubernetesBackend,
             tmp_path: Path) -> Iterator[str]:
    """A Kubernetes Node of the test's own; the cluster-wide objects startup makes (the
    default pool, ClusterInformation, FelixConfiguration) are removed afterwards if the test
    made them."""
    name = f"kdd-{uuid.uuid4().hex[:8]}"
    client = Client(kube_backend)
    assert not [p for p in client.list(IPPool) if p.spec.cidr.version == 4], \
        "another test left an IPv4 pool behind"
    made = {kind: _absent(kube_apiserver, f"{CRD}/{plural}/default")
            for kind, plural in (("ClusterInformation", "clusterinformations"),
                                 ("FelixConfiguration", "felixconfigurations"))}
    status, reply = kube_apiserver.request("POST", "/api/v1/nodes", {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "spec": {"podCIDR": "10.244.9.0/24", "podCIDRs": ["10.244.9.0/24"]}})
    assert status == 201, reply
    status, reply = kube_apiserver.request("PATCH", f"/api/v1/nodes/{name}/status", {
        "status": {"addresses": [{"type": "InternalIP", "address": "198.51.100.7"},
                                 {"type": "Hostname", "address": name}]}},
        content_type="application/strategic-merge-patch+json")
    assert status == 200, reply
    try:
        yield name
    finally:
        ipam = IPAMClient(kube_backend)
        for kind in ("ipip", "vxlan"):
            with contextlib.suppress(NotFound):
                ipam.release_by_handle(f"{kind}-tunnel-addr-{name}")
        ipam.release_host_affinities(name)
        for pool in ("default-ipv4-ippool", "default-ipv6-ippool"):
            with contextlib.suppress(NotFound):
                client.delete(IPPool, pool)
        with contextlib.suppress(NotFound):
            if made["ClusterInformation"]:
                client.delete(ClusterInformation, "default")
        with contextlib.suppress(NotFound):
            if made["FelixConfiguration"]:
                client.delete(FelixConfiguration, "default")
        kube_apiserver.request("DELETE", f"/api/v1/nodes/{name}")


def run(kube_backend: KubernetesBackend, tmp_path: Path, name: str,
        **env: str) -> startup.Result:
    full = {"DATASTORE_TYPE": "kubernetes", "NODENAME": name,
            "CALICO_NODENAME_FILE": str(tmp_path / "nodename"), **env}
    ifaces = [autodetect.Interface("eth0", (ipaddress.ip_interface("198.51.100.7/24"),))]
    return startup.Startup(backend=kube_backend, env=full, interfaces=lambda: ifaces,
                           route_lookup=lambda d: None, hostname=name, wait_timeout=5,
                           now=lambda: NOW, kube=kube_backend.client).run()


def _node(cp: ControlPlane, name: str) -> dict[str, Any]:
    status, node = cp.request("GET", f"/api/v1/nodes/{name}")
    assert status == 200, node
    assert isinstance(node, dict)
    return node


def test_startup_writes_calicos_annotations_pools_and_condition(
        kube_apiserver: ControlPlane, kube_backend: KubernetesBackend, k8s_node: str,
        tmp_path: Path) -> None:
    env = {"AS": "64513", "CLUSTER_TYPE": "k8s,bgp", "CALICO_IPV4POOL_CIDR": "10.77.0.0/16",
           "CALICO_IPV4POOL_VXLAN": "Always"}
    r = run(kube_backend, tmp_path, k8s_node, **env)
    assert r.ipv4 == "198.51.100.7/24" and r.vxlan_tunnel is not None
    assert ipaddress.ip_address(r.vxlan_tunnel) in ipaddress.ip_network("10.77.0.0/16")

    kn = _node(kube_apiserver, k8s_node)
    ann = {k: v for k, v in kn["metadata"]["annotations"].items()
           if k.startswith("projectcalico.org/")}
    assert ann == {"projectcalico.org/IPv4Address": "198.51.100.7/24",
                   "projectcalico.org/ASNumber": "64513",
                   "projectcalico.org/IPv4VXLANTunnelAddr": r.vxlan_tunnel,
                   "projectcalico.org/VXLANTunnelMACAddr": ann.get(
                       "projectcalico.org/VXLANTunnelMACAddr", "")}
    assert ann["projectcalico.org/VXLANTunnelMACAddr"].startswith("66:")
    assert kn["metadata"]["labels"] == {"kubernetes.io/hostname": k8s_node}  # untouched
    cond = [c for c in kn["status"]["conditions"] if c["type"] == "NetworkUnavailable"]
    assert [(c["status"], c["reason"], c["message"]) for c in cond] == [
        ("False", "CalicoIsUp", "Calico is running on this node")]

    status, pool = kube_apiserver.request("GET", f"{CRD}/ippools/default-ipv4-ippool")
    assert status == 200, pool
    assert pool["apiVersion"] == "crd.projectcalico.org/v1" and pool["kind"] == "IPPool"
    assert pool["spec"] == {"cidr": "10.77.0.0/16", "vxlanMode": "Always", "ipipMode": "Never",
                            "natOutgoing": True, "blockSize": 26, "nodeSelector": "all()",
                            "allowedUses": ["Workload", "Tunnel"],
                            "assignmentMode": "Automatic"}
    status, ci = kube_apiserver.request("GET", f"{CRD}/clusterinformations/default")
    assert status == 200 and ci["spec"]["clusterType"] == "k8s,bgp,kdd"
    assert ci["spec"]["datastoreReady"] is True
    status, fc = kube_apiserver.request("GET", f"{CRD}/felixconfigurations/default")
    assert status == 200 and fc["spec"]["reportingInterval"] == "0s"
    assert _absent(kube_apiserver, f"{CRD}/felixconfigurations/node.{k8s_node}")
    status, handle = kube_apiserver.request(
        "GET", f"{CRD}/ipamhandles/vxlan-tunnel-addr-{k8s_node}")
    assert status == 200 and sum(handle["spec"]["block"].values()) == 1
    assert (tmp_path / "nodename").read_text() == k8s_node

    # A second start (same environment) changes nothing: same Node, pool and
    # ClusterInformation objects at the same resourceVersions.
    rvs = {p: kube_apiserver.request("GET", p)[1]["metadata"]["resourceVersion"]
           for p in (f"/api/v1/nodes/{k8s_node}", f"{CRD}/ippools/default-ipv4-ippool",
                     f"{CRD}/clusterinformations/default")}
    assert run(kube_backend, tmp_path, k8s_node, **env) == r
    assert {p: kube_apiserver.request("GET", p)[1]["metadata"]["resourceVersion"]
            for p in rvs} == rvs


def test_ipip_tunnel_address_annotation(kube_apiserver: ControlPlane,
                                        kube_backend: KubernetesBackend, k8s_node: str,
                                        tmp_path: Path) -> None:
    r = run(kube_backend, tmp_path, k8s_node, IP="198.51.100.7",
            CALICO_IPV4POOL_CIDR="10.78.0.0/16", CALICO_IPV4POOL_IPIP="Always")
    assert r.ipip_tunnel is not None and r.vxlan_tunnel is None
    ann = _node(kube_apiserver, k8s_node)["metadata"]["annotations"]
    assert ann["projectcalico.org/IPv4Address"] == "198.51.100.7/32"
    assert ann["projectcalico.org/IPv4IPIPTunnelAddr"] == r.ipip_tunnel
    assert "projectcalico.org/ASNumber" not in ann
    assert "projectcalico.org/IPv4VXLANTunnelAddr" not in ann


def test_a_node_kubernetes_does_not_have_is_refused(
        kube_apiserver: ControlPlane, kube_backend: KubernetesBackend, k8s_node: str,
        tmp_path: Path) -> None:
    with pytest.raises(startup.StartupError, match="not found in the Kubernetes datastore"):
        run(kube_backend, tmp_path, f"{k8s_node}-ghost")
    assert not (tmp_path / "nodename").exists()


def test_calico_nodes_own_rbac_suffices(kube_apiserver: ControlPlane,
                                        kube_backend: KubernetesBackend, k8s_node: str,
                                        tmp_path: Path) -> None:
    """Startup with a token of calico-node's ServiceAccount (manifests/rbac/calico-node.yaml):
    the pool, ClusterInformation, FelixConfiguration, IPAM, the annotations and the condition
    are all within its ClusterRole."""
    cp = kube_apiserver
    cp.apply([d for d in yaml.safe_load_all(RBAC.read_text()) if d])
    backend = connect(DatastoreConfig.from_env({
        "DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(cp.kubeconfig),
        "K8S_API_TOKEN": cp.service_account_token("kube-system", "calico-node")}))
    assert isinstance(backend, KubernetesBackend)
    try:
        r = run(backend, tmp_path, k8s_node, CALICO_IPV4POOL_CIDR="10.79.0.0/16",
                CALICO_IPV4POOL_IPIP="Always")
    finally:
        backend.close()
    assert r.ipip_tunnel is not None
    kn = _node(cp, k8s_node)
    assert kn["metadata"]["annotations"]["projectcalico.org/IPv4IPIPTunnelAddr"] == r.ipip_tunnel
    assert [c["reason"] for c in kn["status"]["conditions"]
            if c["type"] == "NetworkUnavailable"] == ["CalicoIsUp"]


def test_kubernetes_internal_ip_autodetection(kube_apiserver: ControlPlane,
                                              kube_backend: KubernetesBackend, k8s_node: str,
                                              tmp_path: Path) -> None:
    """IP_AUTODETECTION_METHOD=kubernetes-internal-ip: the Node's InternalIP with the prefix
    of the interface that has it; an InternalIP on no interface is taken alone (/32)."""
    r = run(kube_backend, tmp_path, k8s_node, IP_AUTODETECTION_METHOD="kubernetes-internal-ip",
            CALICO_IPV4POOL_CIDR="10.80.0.0/16")
    assert r.ipv4 == "198.51.100.7/24"
    status, reply = kube_apiserver.request("PATCH", f"/api/v1/nodes/{k8s_node}/status", {
        "status": {"addresses": [{"type": "InternalIP", "address": "203.0.113.50"}]}},
        content_type="application/merge-patch+json")
    assert status == 200, reply
    r = run(kube_backend, tmp_path, k8s_node, IP_AUTODETECTION_METHOD="kubernetes-internal-ip")
    assert r.ipv4 == "203.0.113.50/32"
    ann = _node(kube_apiserver, k8s_node)["metadata"]["annotations"]
    assert ann["projectcalico.org/IPv4Address"] == "203.0.113.50/32"


def test_calico_node_startup_command_on_kdd(kube_apiserver: ControlPlane,
                                            kube_backend: KubernetesBackend, k8s_node: str,
                                            tmp_path: Path) -> None:
    """`calico-node -startup` as a process with DATASTORE_TYPE=kubernetes and a kubeconfig:
    the entry point connects the Kubernetes backend and hands its API client to startup."""
    env = {"PATH": os.environ.get("PATH", ""), "DATASTORE_TYPE": "kubernetes",
           "KUBECONFIG": str(kube_apiserver.kubeconfig), "NODENAME": k8s_node,
           "CALICO_NODENAME_FILE": str(tmp_path / "nodename"), "IP": "198.51.100.7/24",
           "CALICO_IPV4POOL_CIDR": "10.81.0.0/16", "GRPC_ENABLE_FORK_SUPPORT": "false"}
    done = proc.run([sys.executable, "-m", "calico_node", "-startup"], timeout=60, env=env,
                    check=False)
    assert done.returncode == 0, done.stderr
    kn = _node(kube_apiserver, k8s_node)
    assert kn["metadata"]["annotations"]["projectcalico.org/IPv4Address"] == "198.51.100.7/24"
    assert [c["reason"] for c in kn["status"]["conditions"]
            if c["type"] == "NetworkUnavailable"] == ["CalicoIsUp"]
    assert (tmp_path / "nodename").read_text() == k8s_node
