"""The two datastores Felix's live tests run on, behind one small interface the cluster helper
uses: `etcd` (values written as Calico's etcdv3 backend stores them, WorkloadEndpoints written
as the CNI plugin writes them) and `kubernetes` (the session's real API server: Nodes,
Namespaces, ServiceAccounts and Pods made as a cluster makes them, the Pod's IPs patched into
`pods/status` as a kubelet does, IPAM through the IPAM library on the Kubernetes backend;
Calico's other kinds through the backend at the same keys as on etcd).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import uuid
from typing import Any, Protocol

import yaml

from calico_node.kubelab.apiserver import ROOT, ControlPlane
from libcalico.datastore import connect
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.kubernetes_pod import wep_name
from libcalico.errors import AlreadyExists, NotFound
from libcalico.ipam.client import IPAMClient
from libcalico.model import codec, keys
from libcalico.model.k8s_networkpolicy import etcd_mirror, policy_name

IP = ipaddress.IPv4Interface | ipaddress.IPv6Interface
RBAC = ROOT / "manifests" / "rbac" / "calico-node.yaml"


class Store(Protocol):
    name: str
    endpoint_macs: bool
    """True when the endpoint's MAC reaches Felix (etcd: the CNI writes it into the
    WorkloadEndpoint; KDD: a Pod carries none, so Felix programs no permanent neighbour)."""

    def felix_env(self) -> dict[str, str]: ...
    def put(self, key: str, value: dict[str, Any]) -> None: ...
    def delete(self, key: str) -> None: ...
    def add_node(self, name: str, addr: ipaddress.IPv4Interface,
                 tunnel: ipaddress.IPv4Address, block: ipaddress.IPv4Network,
                 vtep_mac: str | None) -> None: ...
    def add_endpoint(self, node: str, pod: str, ips: tuple[IP, ...], iface: str, mac: str,
                     profiles: tuple[str, ...], labels: dict[str, str]) -> None: ...
    def remove_endpoint(self, node: str, pod: str) -> None: ...
    def set_namespace_labels(self, labels: dict[str, str]) -> None: ...
    def k8s_network_policy(self, name: str, obj: dict[str, Any] | None) -> None: ...
    def close(self) -> None: ...


class EtcdStore:
    name = "etcd"
    endpoint_macs = True

    def __init__(self, etcd: Any) -> None:
        self.etcd = etcd

    def felix_env(self) -> dict[str, str]:
        return {"ETCD_ENDPOINTS": self.etcd.endpoint, "DATASTORE_TYPE": "etcdv3"}

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.etcd.ctl("put", key, json.dumps(value, separators=(",", ":")))

    def delete(self, key: str) -> None:
        self.etcd.ctl("del", key)

    def add_node(self, name: str, addr: ipaddress.IPv4Interface,
                 tunnel: ipaddress.IPv4Address, block: ipaddress.IPv4Network,
                 vtep_mac: str | None) -> None:
        spec: dict[str, Any] = {"bgp": {"ipv4Address": str(addr)},
                                "ipv4VXLANTunnelAddr": str(tunnel)}
        if vtep_mac:
            spec["vxlanTunnelMACAddr"] = vtep_mac
        self.put(keys.resource_key("Node", name), {
            "kind": "Node", "apiVersion": "projectcalico.org/v3", "metadata": {"name": name},
            "spec": spec})
        n = block.num_addresses
        self.put(keys.block_key(block), {
            "cidr": str(block), "affinity": f"host:{name}", "allocations": [None] * n,
            "unallocated": list(range(n)), "attributes": [], "deleted": False})

    def add_endpoint(self, node: str, pod: str, ips: tuple[IP, ...], iface: str, mac: str,
                     profiles: tuple[str, ...], labels: dict[str, str]) -> None:
        name = wep_name(node, pod)
        self.put(keys.resource_key("WorkloadEndpoint", name, "default"), {
            "kind": "WorkloadEndpoint", "apiVersion": "projectcalico.org/v3",
            "metadata": {"name": name, "namespace": "default", "labels": {
                **labels, "projectcalico.org/namespace": "default",
                "projectcalico.org/orchestrator": "k8s"}},
            "spec": {"orchestrator": "k8s", "node": node, "pod": pod, "endpoint": "eth0",
                     "ipNetworks": [str(ip) for ip in ips], "profiles": list(profiles),
                     "interfaceName": iface, "mac": mac}})

    def remove_endpoint(self, node: str, pod: str) -> None:
        self.delete(keys.resource_key("WorkloadEndpoint", wep_name(node, pod), "default"))

    def set_namespace_labels(self, labels: dict[str, str]) -> None:
        """Profile `kns.default` as Calico's kube-controllers writes it for the Namespace:
        allow all, the namespace's labels applied as `pcns.<key>`."""
        self.put(keys.resource_key("Profile", "kns.default"), {
            "kind": "Profile", "apiVersion": "projectcalico.org/v3",
            "metadata": {"name": "kns.default"},
            "spec": {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}],
                     "labelsToApply": {"pcns.projectcalico.org/name": "default",
                                       **{f"pcns.{k}": v for k, v in labels.items()}}}})

    def k8s_network_policy(self, name: str, obj: dict[str, Any] | None) -> None:
        """A Kubernetes NetworkPolicy in namespace default as Calico's kube-controllers
        mirrors it into etcd (`knp.default.<name>`); None deletes it."""
        key = keys.resource_key("NetworkPolicy", policy_name(name), "default")
        if obj is None:
            self.delete(key)
        else:
            self.put(key, json.loads(codec.dumps(etcd_mirror(obj))))

    def close(self) -> None:
        pass


class KubeStore:
    """Felix's datastore is the API server. Pods live in namespace `default` (profiles
    `kns.default` and `ksa.default.default`, derived); what this store makes is removed by
    `close()`."""

    name = "kubernetes"
    endpoint_macs = False
    NAMESPACE = "default"

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        # Felix runs with calico-node's own rights (manifests/rbac, a TokenRequest token), as
        # in a cluster; the test itself acts as the admin (kubelet, calico-node startup, CNI).
        cp.apply([d for d in yaml.safe_load_all(RBAC.read_text()) if d])
        self.felix_token = cp.service_account_token("kube-system", "calico-node")
        self.backend = connect(DatastoreConfig.from_env({
            "DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(cp.kubeconfig)}))
        self.ipam = IPAMClient(self.backend)
        self.nodes: list[str] = []
        self.pods: list[str] = []
        self.keys: list[str] = []
        self.handles: list[str] = []
        self.policies: list[str] = []

    def felix_env(self) -> dict[str, str]:
        return {"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(self.cp.kubeconfig),
                "K8S_API_TOKEN": self.felix_token}

    def _req(self, method: str, path: str, body: Any = None,
             content_type: str = "application/json", ok: tuple[int, ...] = (200, 201)
             ) -> Any:
        status, reply = self.cp.request(method, path, body, content_type)
        if status not in ok:
            raise AssertionError(f"{method} {path}: {status} {reply}")
        return reply

    def put(self, key: str, value: dict[str, Any]) -> None:
        """Create or replace a Calico resource at its etcd-style key (the backend maps it)."""
        text = json.dumps(value, separators=(",", ":"))
        try:
            self.backend.create(key, text)
        except AlreadyExists:
            cur = self.backend.get(key)
            self.backend.update(key, text, cur.revision)
        if key not in self.keys:
            self.keys.append(key)

    def delete(self, key: str) -> None:
        with contextlib.suppress(NotFound):
            self.backend.delete(key)

    def add_node(self, name: str, addr: ipaddress.IPv4Interface,
                 tunnel: ipaddress.IPv4Address, block: ipaddress.IPv4Network,
                 vtep_mac: str | None) -> None:
        # The Node as the kubelet registers it, with the annotations calico-node writes.
        annotations = {"projectcalico.org/IPv4Address": str(addr),
                       "projectcalico.org/IPv4VXLANTunnelAddr": str(tunnel)}
        if vtep_mac:
            annotations["projectcalico.org/VXLANTunnelMACAddr"] = vtep_mac
        self._req("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "annotations": annotations},
            "status": {"addresses": [{"type": "InternalIP", "address": str(addr.ip)}]}})
        self.nodes.append(name)
        # The tunnel address as calico-node allocates it: this claims the node's block.
        self.handles.append(f"vxlan-tunnel-addr-{name}")
        got = self.ipam.assign_ip(tunnel, handle_id=self.handles[-1],
                                  attrs={"node": name, "type": "vxlanTunnelAddress"},
                                  hostname=name)
        assert got.network == block, (got, block)

    def add_endpoint(self, node: str, pod: str, ips: tuple[IP, ...], iface: str, mac: str,
                     profiles: tuple[str, ...], labels: dict[str, str]) -> None:
        ns = self.NAMESPACE
        container = uuid.uuid4().hex
        self.handles.append(f"k8s-pod-network.{container}")
        for ip in ips:
            self.ipam.assign_ip(ip.ip, handle_id=self.handles[-1],
                                attrs={"namespace": ns, "node": node, "pod": pod,
                                       "timestamp": ""}, hostname=node)
        self._req("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod, "labels": labels},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]}})
        self.pods.append(pod)
        if len(ips) > 1:
            # As Calico's CNI plugin records them (before the kubelet reports any): the
            # annotations on pods/status, with the container ID.
            self._req("PATCH", f"/api/v1/namespaces/{ns}/pods/{pod}/status", {"metadata": {
                "annotations": {"cni.projectcalico.org/podIP": str(ips[0]),
                                "cni.projectcalico.org/podIPs": ",".join(map(str, ips)),
                                "cni.projectcalico.org/containerID": container}}},
                content_type="application/strategic-merge-patch+json")
            return
        # As the kubelet reports the sandbox's address.
        self._req("PATCH", f"/api/v1/namespaces/{ns}/pods/{pod}/status",
                  {"status": {"phase": "Running", "podIP": str(ips[0].ip),
                              "podIPs": [{"ip": str(ip.ip)} for ip in ips]}},
                  content_type="application/merge-patch+json")

    def remove_endpoint(self, node: str, pod: str) -> None:
        self._req("DELETE", f"/api/v1/namespaces/{self.NAMESPACE}/pods/{pod}"
                  "?gracePeriodSeconds=0", ok=(200, 202, 404))
        if pod in self.pods:
            self.pods.remove(pod)

    def label_pod(self, pod: str, labels: dict[str, str]) -> None:
        """The Pod's labels become exactly `labels`."""
        path = f"/api/v1/namespaces/{self.NAMESPACE}/pods/{pod}"
        old = {k: None for k in self._req("GET", path)["metadata"].get("labels") or {}}
        self._req("PATCH", path, {"metadata": {"labels": {**old, **labels}}},
                  content_type="application/merge-patch+json")

    def set_namespace_labels(self, labels: dict[str, str]) -> None:
        """The Namespace's labels become exactly `labels` (Calico derives kns.<ns> from it)."""
        cur = self._req("GET", f"/api/v1/namespaces/{self.NAMESPACE}")
        old = {k: None for k in cur["metadata"].get("labels") or {}
               if k != "kubernetes.io/metadata.name"}
        self._req("PATCH", f"/api/v1/namespaces/{self.NAMESPACE}",
                  {"metadata": {"labels": {**old, **labels}}},
                  content_type="application/merge-patch+json")

    def k8s_network_policy(self, name: str, obj: dict[str, Any] | None) -> None:
        """The Kubernetes NetworkPolicy object itself (networking.k8s.io/v1), which the
        backend serves as `knp.default.<name>`; None deletes it."""
        coll = f"/apis/networking.k8s.io/v1/namespaces/{self.NAMESPACE}/networkpolicies"
        if obj is None:
            self._req("DELETE", f"{coll}/{name}", ok=(200, 202, 404))
            if name in self.policies:
                self.policies.remove(name)
            return
        status, cur = self.cp.request("GET", f"{coll}/{name}")
        if status == 200:
            obj = {**obj, "metadata": {**obj["metadata"],
                                       "resourceVersion": cur["metadata"]["resourceVersion"]}}
            self._req("PUT", f"{coll}/{name}", obj)
        else:
            self._req("POST", coll, obj)
            self.policies.append(name)

    def close(self) -> None:
        for name in list(self.policies):
            self.k8s_network_policy(name, None)
        for pod in self.pods:
            self.cp.request("DELETE", f"/api/v1/namespaces/{self.NAMESPACE}/pods/{pod}"
                            "?gracePeriodSeconds=0")
        for key in reversed(self.keys):
            self.delete(key)
        for handle in self.handles:
            with contextlib.suppress(Exception):
                self.ipam.release_by_handle(handle)
        for node in self.nodes:
            with contextlib.suppress(Exception):
                self.ipam.release_host_affinities(node)
            self.cp.request("DELETE", f"/api/v1/nodes/{node}")
        self.pods, self.keys, self.nodes, self.handles = [], [], [], []
        self.backend.close()
