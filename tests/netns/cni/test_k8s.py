"""Kubernetes workloads (policy.type k8s) against a small local API server on loopback serving
Pod and Namespace objects, and host-local delegation through CNI_PATH."""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from calico_node.kubelab.apiserver import ControlPlane
from libcalico.datastore import connect
from libcalico.datastore.api import Backend
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.gateway import GatewayBackend
from libcalico.errors import NotFound
from libcalico.ipam.check import check
from libcalico.ipam.client import IPAMClient
from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer
from tests.fixtures.netns import NetnsFactory
from tests.integration.ipam import seed
from tests.netns.cni import cnirun

pytestmark = pytest.mark.netns
NODE = "k8s-node"


class FakeAPI:
    """Serves /api/v1/namespaces/<ns> and /api/v1/namespaces/<ns>/pods/<pod> from dicts."""

    def __init__(self) -> None:
        self.namespaces: dict[str, dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}
        self.tokens: list[str] = []
        self.nodes: dict[str, dict[str, Any]] = {}
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                api.tokens.append(self.headers.get("Authorization", ""))
                parts = self.path.strip("/").split("/")
                obj = None
                if parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 4:
                    obj = api.namespaces.get(parts[3])
                elif parts[:3] == ["api", "v1", "namespaces"] and len(parts) == 6:
                    obj = api.pods.get((parts[3], parts[5]))
                elif parts[:3] == ["api", "v1", "nodes"] and len(parts) == 4:
                    obj = api.nodes.get(parts[3])
                body = json.dumps(obj or {"kind": "Status", "code": 404}).encode()
                self.send_response(200 if obj else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def namespace(self, name: str, annotations: dict[str, str] | None = None) -> None:
        self.namespaces[name] = {"kind": "Namespace", "metadata": {
            "name": name, "labels": {"kubernetes.io/metadata.name": name},
            "annotations": annotations or {}}}

    def pod(self, ns: str, name: str, labels: dict[str, str],
            annotations: dict[str, str] | None = None, sa: str = "default") -> None:
        self.pods[(ns, name)] = {"kind": "Pod", "metadata": {
            "name": name, "namespace": ns, "labels": labels, "annotations": annotations or {}},
            "spec": {"serviceAccountName": sa}}

    def node_pod_cidr(self, node: str, cidr: str) -> None:
        self.nodes[node] = {"kind": "Node", "metadata": {"name": node},
                            "spec": {"podCIDR": cidr, "podCIDRs": [cidr]}}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class KubeAPI:
    """The same calls as FakeAPI, on the real API server (the Kubernetes datastore): pods
    bound to NODE, their namespaces and service accounts, the Node's podCIDR."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.pods: list[tuple[str, str]] = []

    def _ok(self, method: str, path: str, body: Any = None) -> Any:
        status, reply = self.cp.request(method, path, body)
        assert status in (200, 201), (method, path, status, reply)
        return reply

    def namespace(self, name: str, annotations: dict[str, str] | None = None) -> None:
        self.cp.ensure_namespace(name)
        if annotations:
            status, _ = self.cp.request("PATCH", f"/api/v1/namespaces/{name}",
                                        {"metadata": {"annotations": annotations}},
                                        "application/merge-patch+json")
            assert status == 200

    def pod(self, ns: str, name: str, labels: dict[str, str],
            annotations: dict[str, str] | None = None, sa: str = "default") -> None:
        if sa != "default":
            self.cp.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts",
                            {"apiVersion": "v1", "kind": "ServiceAccount",
                             "metadata": {"name": sa}})
        self._ok("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": labels, "annotations": annotations or {}},
            "spec": {"nodeName": NODE, "serviceAccountName": sa,
                     "containers": [{"name": "c", "image": "busybox"}]}})
        self.pods.append((ns, name))

    def annotations(self, ns: str, name: str) -> dict[str, str]:
        reply = self._ok("GET", f"/api/v1/namespaces/{ns}/pods/{name}")
        return dict(reply["metadata"].get("annotations") or {})

    def delete_pod(self, ns: str, name: str) -> None:
        self.cp.request("DELETE", f"/api/v1/namespaces/{ns}/pods/{name}?gracePeriodSeconds=0")

    def node_pod_cidr(self, node: str, cidr: str) -> None:
        status, _ = self.cp.request("PATCH", f"/api/v1/nodes/{node}",
                                    {"spec": {"podCIDR": cidr, "podCIDRs": [cidr]}},
                                    "application/merge-patch+json")
        assert status == 200

    def close(self) -> None:
        for ns, name in self.pods:
            self.delete_pod(ns, name)


POOLS: dict[str, dict[str, object]] = {
    "a-default": {"cidr": "10.190.0.0/24", "blockSize": 28},
    "b-ns": {"cidr": "10.191.0.0/24", "blockSize": 28, "nodeSelector": "!all()"},
    "c-pod": {"cidr": "10.192.0.0/24", "blockSize": 28, "nodeSelector": "!all()"},
    "d-v6": {"cidr": "fd92::/120", "blockSize": 124}}


def _etcd_setup(etcd: EtcdServer, tmp_path: Path) -> tuple[Any, Backend, dict[str, Any]]:
    api = FakeAPI()
    be = GatewayBackend([etcd.endpoint])
    seed.cluster(be, [NODE], POOLS)
    conf = {"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico",
            "etcd_endpoints": etcd.endpoint, "nodename": NODE,
            "ipam_lock_file": str(tmp_path / "lock"), "ipam": {"type": "calico-ipam"},
            "policy": {"type": "k8s", "k8s_api_root": api.url, "k8s_auth_token": "s3cret"}}
    return api, be, conf


@contextlib.contextmanager
def _kdd_setup(cp: ControlPlane, tmp_path: Path) -> Iterator[
        tuple[KubeAPI, Backend, dict[str, Any]]]:
    be = connect(DatastoreConfig.from_env({"DATASTORE_TYPE": "kubernetes",
                                           "KUBECONFIG": str(cp.kubeconfig)}))
    status, reply = cp.request("POST", "/api/v1/nodes", {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": NODE, "labels": {"kubernetes.io/hostname": NODE}}})
    assert status == 201, reply
    api = KubeAPI(cp)
    try:
        seed.put(be, "ClusterInformation", "default", {"datastoreReady": True})
        for name, spec in POOLS.items():
            seed.put(be, "IPPool", name, spec)
        conf = {"cniVersion": "1.0.0", "name": "k8s-pod-network", "type": "calico",
                "datastore_type": "kubernetes", "nodename": NODE,
                "ipam_lock_file": str(tmp_path / "lock"), "ipam": {"type": "calico-ipam"},
                "policy": {"type": "k8s"}, "kubernetes": {"kubeconfig": str(cp.kubeconfig)}}
        yield api, be, conf
    finally:
        api.close()
        IPAMClient(be).release_host_affinities(NODE)
        for name in POOLS:
            with contextlib.suppress(NotFound):
                be.delete(keys.resource_key("IPPool", name))
        cp.request("DELETE", f"/api/v1/nodes/{NODE}")
        be.close()


@pytest.fixture(params=["etcd", "kdd"])
def k8s(request: pytest.FixtureRequest, netns_factory: NetnsFactory, tmp_path: Path
        ) -> Iterator[dict[str, Any]]:
    """Kubernetes pods on both datastores: etcd with a fake API server for the Pod and
    Namespace reads, and the Kubernetes datastore on the real API server."""
    veths: list[str] = []
    with contextlib.ExitStack() as stack:
        if request.param == "etcd":
            api, be, conf = _etcd_setup(request.getfixturevalue("etcd"), tmp_path)
            stack.callback(api.close)
            stack.callback(be.close)
        else:
            api, be, conf = stack.enter_context(
                _kdd_setup(request.getfixturevalue("kube_apiserver"), tmp_path))
        stack.callback(_del_links, veths)
        yield {"api": api, "be": be, "conf": conf, "ns": netns_factory, "veths": veths,
               "tmp": tmp_path, "kdd": request.param == "kdd"}


def _del_links(veths: list[str]) -> None:
    for v in veths:
        subprocess.run(["ip", "link", "del", v], capture_output=True, check=False, timeout=30)


@pytest.fixture
def k8s_etcd(etcd: EtcdServer, netns_factory: NetnsFactory, tmp_path: Path) -> Iterator[
        dict[str, Any]]:
    """etcd only: plain CNI workloads (the Kubernetes datastore keeps endpoints of pods)."""
    api, be, conf = _etcd_setup(etcd, tmp_path)
    veths: list[str] = []
    yield {"api": api, "be": be, "conf": conf, "ns": netns_factory, "veths": veths,
           "tmp": tmp_path, "kdd": False}
    _del_links(veths)
    api.close()
    be.close()


def add(k: dict[str, Any], ns: str, pod: str, cid: str, conf: dict[str, Any] | None = None
        ) -> tuple[int, Any, str]:
    netns = k["ns"].new(cid[-12:])
    k["veths"].append("cali" + hashlib.sha1(f"{ns}.{pod}".encode()).hexdigest()[:11])
    rc, out = cnirun.run("ADD", conf or k["conf"], cid=cid, netns=f"/var/run/netns/{netns}",
                         args=f"IgnoreUnknown=1;K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod};"
                              f"K8S_POD_INFRA_CONTAINER_ID={cid}")
    return rc, out, f"/var/run/netns/{netns}"


def delete(k: dict[str, Any], ns: str, pod: str, cid: str, netns: str,
           conf: dict[str, Any] | None = None) -> int:
    rc, out = cnirun.run("DEL", conf or k["conf"], cid=cid, netns=netns,
                         args=f"K8S_POD_NAMESPACE={ns};K8S_POD_NAME={pod}")
    assert rc == 0 or out is not None
    if rc:
        print("DEL failed:", out)
    return rc


def in_net(addr: str, net: str) -> bool:
    return ipaddress.ip_interface(addr).ip in ipaddress.ip_network(net)


def test_pod_endpoint_profiles_and_pool_annotations(k8s: dict[str, Any]) -> None:
    api, be = k8s["api"], k8s["be"]
    api.namespace("plain")
    api.namespace("annotated", {"cni.projectcalico.org/ipv4pools": '["b-ns"]'})
    api.pod("plain", "web-7d8b49557c-x2k4j", {"app": "web"}, sa="websa")
    api.pod("annotated", "nsp", {})
    api.pod("annotated", "podp", {}, {"cni.projectcalico.org/ipv4pools": '["10.192.0.0/24"]'})

    rc, res, netns = add(k8s, "plain", "web-7d8b49557c-x2k4j", "c0ffee000001")
    assert rc == 0, res
    assert in_net(res["ips"][0]["address"], "10.190.0.0/24")
    veth = "cali" + hashlib.sha1(b"plain.web-7d8b49557c-x2k4j").hexdigest()[:11]
    assert res["interfaces"][0]["name"] == veth
    if not k8s["kdd"]:
        assert api.tokens[-1] == "Bearer s3cret"
    name = "k8s--node-k8s-web--7d8b49557c--x2k4j-eth0"
    wep = json.loads(be.get(keys.resource_key("WorkloadEndpoint", name, "plain")).value)
    assert wep["spec"]["pod"] == "web-7d8b49557c-x2k4j" and wep["spec"]["orchestrator"] == "k8s"
    assert wep["spec"]["profiles"] == ["kns.plain", "ksa.plain.websa"]
    assert wep["spec"]["serviceAccountName"] == "websa"
    assert wep["metadata"]["labels"] == {"app": "web", "projectcalico.org/namespace": "plain",
                                         "projectcalico.org/orchestrator": "k8s",
                                         "projectcalico.org/serviceaccount": "websa"}
    with pytest.raises(NotFound):  # policy type k8s: no network Profile
        be.get(keys.resource_key("Profile", "k8s-pod-network"))
    handle = json.loads(be.get(keys.handle_key("k8s-pod-network.c0ffee000001")).value)
    assert sum(handle["block"].values()) == 1
    assert delete(k8s, "plain", "web-7d8b49557c-x2k4j", "c0ffee000001", netns) == 0

    rc, res, netns = add(k8s, "annotated", "nsp", "c0ffee000002")
    assert rc == 0, res
    assert in_net(res["ips"][0]["address"], "10.191.0.0/24"), "namespace annotation"
    assert delete(k8s, "annotated", "nsp", "c0ffee000002", netns) == 0
    rc, res, netns = add(k8s, "annotated", "podp", "c0ffee000003")
    assert rc == 0, res
    assert in_net(res["ips"][0]["address"], "10.192.0.0/24"), "pod annotation wins"
    assert delete(k8s, "annotated", "podp", "c0ffee000003", netns) == 0
    assert check(be).clean

    # without policy.type k8s annotations are ignored and the network Profile is made
    conf = {**k8s["conf"]}
    conf.pop("policy")
    rc, res, netns = add(k8s, "annotated", "podp", "c0ffee000004", conf)
    assert rc == 0, res
    assert in_net(res["ips"][0]["address"], "10.190.0.0/24")
    if k8s["kdd"]:  # KDD derives Profiles from namespaces and service accounts
        with pytest.raises(NotFound):
            be.get(keys.resource_key("Profile", "k8s-pod-network"))
    else:
        prof = json.loads(be.get(keys.resource_key("Profile", "k8s-pod-network")).value)
        assert prof["spec"]["ingress"] == [{"action": "Allow", "source": {},
                                            "destination": {}}]
    assert delete(k8s, "annotated", "podp", "c0ffee000004", netns, conf) == 0


def test_ip_addrs_annotations(k8s: dict[str, Any]) -> None:
    api, be = k8s["api"], k8s["be"]
    api.namespace("fixed")
    api.pod("fixed", "one", {}, {"cni.projectcalico.org/ipAddrs": '["10.190.0.200"]'})
    api.pod("fixed", "noipam", {}, {"cni.projectcalico.org/ipAddrsNoIpam": '["10.250.0.9"]'})
    api.pod("fixed", "both", {}, {"cni.projectcalico.org/ipAddrsNoIpam": '["10.250.0.9"]',
                                  "cni.projectcalico.org/ipAddrs": '["10.190.0.9"]'})
    api.pod("fixed", "bad", {}, {"cni.projectcalico.org/ipAddrs": '["10.190.0.1", "10.190.0.2"]'})

    rc, res, netns = add(k8s, "fixed", "one", "f1xed0000001")
    assert rc == 0, res
    assert res["ips"][0]["address"] == "10.190.0.200/32"
    assert be.get(keys.handle_key("k8s-pod-network.f1xed0000001"))
    assert delete(k8s, "fixed", "one", "f1xed0000001", netns) == 0

    rc, res, _ = add(k8s, "fixed", "noipam", "f1xed0000002")
    assert rc == 1 and res["code"] == 7 and "ip_addrs_no_ipam" in res["msg"]
    conf = {**k8s["conf"], "feature_control": {"ip_addrs_no_ipam": True}}
    rc, res, netns = add(k8s, "fixed", "noipam", "f1xed0000003", conf)
    assert rc == 0, res
    assert res["ips"][0]["address"] == "10.250.0.9/32"
    assert be.list(keys.HANDLE_PREFIX).kvs == (), "ipAddrsNoIpam bypasses IPAM"
    assert delete(k8s, "fixed", "noipam", "f1xed0000003", netns, conf) == 0

    rc, res, _ = add(k8s, "fixed", "both", "f1xed0000004", conf)
    assert rc == 1 and "can't have both annotations" in res["msg"]
    rc, res, _ = add(k8s, "fixed", "bad", "f1xed0000005")
    assert rc == 1 and "at most one IPv4" in res["msg"]
    assert check(be).clean


def test_host_local_delegation(k8s_etcd: dict[str, Any]) -> None:
    k8s = k8s_etcd
    data = k8s["tmp"] / "host-local"
    conf = {"cniVersion": "1.1.0", "name": "hl-net", "type": "calico",
            "etcd_endpoints": k8s["conf"]["etcd_endpoints"], "nodename": NODE,
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.196.0.0/24"}]],
                     "dataDir": str(data)}}
    netns = k8s["ns"].new("hl")
    path = f"/var/run/netns/{netns}"
    cid = "h0571oca1000"
    k8s["veths"].append("cali" + cid[:11])
    rc, res = cnirun.run("ADD", conf, cid=cid, netns=path, cni_path="/usr/lib/cni")
    assert rc == 0, res
    assert res["cniVersion"] == "1.1.0"
    addr = res["ips"][0]["address"]
    assert addr == "10.196.0.2/32"
    assert (data / "hl-net" / "10.196.0.2").exists()
    rc, _ = cnirun.run("DEL", conf, cid=cid, netns=path, cni_path="/usr/lib/cni")
    assert rc == 0
    assert not (data / "hl-net" / "10.196.0.2").exists()
    # the delegate's own errors come back unchanged (message and code)
    bad = {**conf, "ipam": {"type": "host-local", "ranges": [[{"subnet": "nonsense"}]],
                            "dataDir": str(data)}}
    rc, res = cnirun.run("ADD", bad, cid=cid, netns=path, cni_path="/usr/lib/cni")
    assert rc == 1 and res == {"code": 999, "msg": "invalid CIDR address: nonsense"}, res
    fake = k8s["tmp"] / "fakeipam"
    fake.mkdir()
    (fake / "odd-ipam").write_text('#!/bin/sh\necho \'{"code":42,"msg":"pool drained",'
                                   '"details":"add a range"}\'\nexit 1\n')
    (fake / "odd-ipam").chmod(0o755)
    rc, res = cnirun.run("ADD", {**conf, "ipam": {"type": "odd-ipam"}}, cid=cid, netns=path,
                         cni_path=str(fake))
    assert (rc, res) == (1, {"code": 42, "msg": "pool drained", "details": "add a range"})
    rc, res = cnirun.run("ADD", conf, cid=cid, netns=path, cni_path=str(k8s["tmp"]))
    assert rc == 1 and res["code"] == 7 and "host-local" in res["msg"]
    assert os.path.exists(path)


def test_host_local_use_pod_cidr(k8s: dict[str, Any]) -> None:
    api = k8s["api"]
    api.node_pod_cidr(NODE, "10.195.3.0/24")
    api.namespace("hl")
    api.pod("hl", "p1", {})
    conf = {**k8s["conf"], "name": "hlk8s",
            "ipam": {"type": "host-local", "subnet": "usePodCidr",
                     "dataDir": str(k8s["tmp"] / "hl-data")}}
    rc, res, netns = add(k8s, "hl", "p1", "usepodcidr01", conf)
    assert rc == 0, res
    assert res["ips"][0]["address"] == "10.195.3.2/32"
    assert delete(k8s, "hl", "p1", "usepodcidr01", netns, conf) == 0
    assert not (k8s["tmp"] / "hl-data" / "hlk8s" / "10.195.3.2").exists()


def test_del_of_old_sandbox_keeps_newer_endpoint(k8s: dict[str, Any]) -> None:
    """A DEL for an older container of the same pod releases that container's addresses but
    keeps the endpoint the newer container wrote."""
    api, be = k8s["api"], k8s["be"]
    api.namespace("sb")
    api.pod("sb", "web", {})
    rc, old, old_ns = add(k8s, "sb", "web", "sandbox000001")
    assert rc == 0, old
    rc, new, new_ns = add(k8s, "sb", "web", "sandbox000002")
    assert rc == 0, new
    name = "k8s--node-k8s-web-eth0"
    key = keys.resource_key("WorkloadEndpoint", name, "sb")
    assert json.loads(be.get(key).value)["spec"]["containerID"] == "sandbox000002"
    assert delete(k8s, "sb", "web", "sandbox000001", old_ns) == 0
    assert json.loads(be.get(key).value)["spec"]["containerID"] == "sandbox000002"
    with pytest.raises(NotFound):
        be.get(keys.handle_key("k8s-pod-network.sandbox000001"))
    be.get(keys.handle_key("k8s-pod-network.sandbox000002"))
    assert delete(k8s, "sb", "web", "sandbox000002", new_ns) == 0
    if k8s["kdd"]:  # the pod stays; DEL blanked its IP annotations (as Calico's KDD does)
        ann = api.annotations("sb", "web")
        assert (ann["cni.projectcalico.org/podIP"], ann["cni.projectcalico.org/podIPs"]) == \
            ("", "")
        assert "ipNetworks" not in json.loads(be.get(key).value)["spec"]
    else:
        with pytest.raises(NotFound):
            be.get(key)
    assert check(be).clean


def test_ip_families_and_floating_ips(k8s: dict[str, Any]) -> None:
    api, be = k8s["api"], k8s["be"]
    api.namespace("fam", {"cni.projectcalico.org/ipFamilies": '["IPv4", "IPv6"]'})
    api.pod("fam", "dual", {})
    api.pod("fam", "six", {}, {"cni.projectcalico.org/ipFamilies": '["IPv6"]'})
    api.pod("fam", "bad", {}, {"cni.projectcalico.org/ipFamilies": '["IPv5"]'})
    api.pod("fam", "float", {}, {"cni.projectcalico.org/floatingIPs": '["192.0.2.77"]'})

    rc, res, netns = add(k8s, "fam", "dual", "fam000000001")
    assert rc == 0, res
    assert [ipaddress.ip_interface(i["address"]).version for i in res["ips"]] == [4, 6]
    assert delete(k8s, "fam", "dual", "fam000000001", netns) == 0
    rc, res, netns = add(k8s, "fam", "six", "fam000000002")
    assert rc == 0, res
    assert [ipaddress.ip_interface(i["address"]).version for i in res["ips"]] == [6], \
        "the pod's annotation wins over the namespace's"
    assert delete(k8s, "fam", "six", "fam000000002", netns) == 0
    rc, res, _ = add(k8s, "fam", "bad", "fam000000003")
    assert rc == 1 and res["code"] == 7 and "IPv5" in res["msg"]

    rc, res, _ = add(k8s, "fam", "float", "fam000000004")
    assert rc == 1 and "floating_ips" in res["msg"]
    assert be.list(keys.HANDLE_PREFIX).kvs == ()
    conf = {**k8s["conf"], "feature_control": {"floating_ips": True}}
    rc, res, netns = add(k8s, "fam", "float", "fam000000005", conf)
    assert rc == 0, res
    wep = json.loads(be.get(keys.resource_key(
        "WorkloadEndpoint", "k8s--node-k8s-float-eth0", "fam")).value)
    inner = res["ips"][0]["address"].split("/")[0]
    assert wep["spec"]["ipNATs"] == [{"internalIP": inner, "externalIP": "192.0.2.77"}]
    assert list(wep["spec"]).index("ipNATs") == list(wep["spec"]).index("ipNetworks") + 1
    assert delete(k8s, "fam", "float", "fam000000005", netns, conf) == 0
    assert check(be).clean
