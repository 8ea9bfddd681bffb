"""calicoctl on the Kubernetes datastore (a CalicoAPIConfig with datastoreType kubernetes and
the session API server's kubeconfig), every result checked in the API server: CRUD and CAS
conflicts of CRD kinds (one of each of 14 kinds through apply/get/label/patch/delete), Nodes
applied as updates of the Kubernetes Node, what KDD refuses (Node create, WorkloadEndpoint and
Profile writes) in Calico's words, bad documents writing nothing, ClusterInformation and
`version`, and `ipam show/check/release` over the IPAM custom resources and the pods."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from calico_node.kubelab.apiserver import ControlPlane

CALICOCTL = Path(sys.executable).parent / "calicoctl"
CRD = "/apis/crd.projectcalico.org/v1"


def _ctl(cfg: Path, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("ETCD_", "CALICO_", "DATASTORE_", "KUBECONFIG", "K8S_"))}
    return subprocess.run([str(CALICOCTL), "--config", str(cfg), *args], input=input,
                          capture_output=True, text=True, timeout=60, check=False,
                          env={**base, "GRPC_ENABLE_FORK_SUPPORT": "false"})


def _kdd_cfg(cp: ControlPlane, tmp_path: Path) -> Path:
    cfg = tmp_path / "calicoctl.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
                   "spec:\n  datastoreType: kubernetes\n"
                   f"  kubeconfig: {cp.kubeconfig}\n")
    return cfg


def test_calicoctl_crud_on_kdd(kube_apiserver: ControlPlane, tmp_path: Path) -> None:
    cfg = _kdd_cfg(kube_apiserver, tmp_path)
    tag = uuid.uuid4().hex[:8]
    gns, peer = f"ctl-gns-{tag}", f"ctl-peer-{tag}"
    docs: list[dict[str, Any]] = [
        {"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet",
         "metadata": {"name": gns, "labels": {"zone": "a"}},
         "spec": {"nets": ["198.51.100.0/28"]}},
        {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": peer},
         "spec": {"peerIP": "192.0.2.50", "asNumber": 64600}},
    ]
    text = yaml.safe_dump_all(docs)
    try:
        r = _ctl(cfg, "apply", "-f", "-", input=text)
        assert r.returncode == 0, r.stderr
        assert "Successfully applied 2 resource(s)" in r.stdout

        status, cr = kube_apiserver.request("GET", f"{CRD}/bgppeers/{peer}")
        assert status == 200 and cr["spec"] == {"peerIP": "192.0.2.50", "asNumber": 64600}

        r = _ctl(cfg, "create", "-f", "-", input=text)
        assert r.returncode != 0
        assert "resource already exists" in r.stderr

        r = _ctl(cfg, "get", "bgppeer", peer, "-o", "json")
        assert r.returncode == 0, r.stderr
        got = json.loads(r.stdout)
        assert got["spec"]["asNumber"] == 64600
        assert got["metadata"]["resourceVersion"] == cr["metadata"]["resourceVersion"]

        r = _ctl(cfg, "label", "globalnetworkset", gns, "zone=b", "--overwrite")
        assert r.returncode == 0, r.stderr
        status, cr = kube_apiserver.request("GET", f"{CRD}/globalnetworksets/{gns}")
        stored = json.loads(cr["metadata"]["annotations"]["projectcalico.org/metadata"])
        assert stored["labels"] == {"zone": "b"}

        docs[1]["spec"]["asNumber"] = 64601
        r = _ctl(cfg, "replace", "-f", "-", input=yaml.safe_dump(docs[1]))
        assert r.returncode == 0, r.stderr
        assert kube_apiserver.request("GET", f"{CRD}/bgppeers/{peer}")[1]["spec"]["asNumber"] \
            == 64601

        r = _ctl(cfg, "delete", "-f", "-", input=text)
        assert r.returncode == 0, r.stderr
        assert "Successfully deleted 2 resource(s)" in r.stdout
        assert kube_apiserver.request("GET", f"{CRD}/bgppeers/{peer}")[0] == 404
        r = _ctl(cfg, "get", "bgppeer", peer)
        assert r.returncode != 0
        assert "resource does not exist" in r.stderr
    finally:
        kube_apiserver.request("DELETE", f"{CRD}/bgppeers/{peer}")
        kube_apiserver.request("DELETE", f"{CRD}/globalnetworksets/{gns}")


def test_calicoctl_refuses_what_kdd_cannot_write(kube_apiserver: ControlPlane,
                                                 tmp_path: Path) -> None:
    cfg = _kdd_cfg(kube_apiserver, tmp_path)
    node = yaml.safe_dump({"apiVersion": "projectcalico.org/v3", "kind": "Node",
                           "metadata": {"name": "not-a-k8s-node"}, "spec": {}})
    r = _ctl(cfg, "create", "-f", "-", input=node)
    assert r.returncode != 0
    assert "Failed to create 'Node' resource: [operation Create is not supported on " \
        "Node(not-a-k8s-node)]" in r.stderr
    profile = yaml.safe_dump({"apiVersion": "projectcalico.org/v3", "kind": "Profile",
                              "metadata": {"name": "kns.default"}, "spec": {}})
    r = _ctl(cfg, "delete", "-f", "-", input=profile)
    assert r.returncode != 0
    assert "operation Delete is not supported on Profile(kns.default)" in r.stderr


def test_calicoctl_ipam_on_kdd(kube_apiserver: ControlPlane, tmp_path: Path) -> None:
    from libcalico.client import Client
    from libcalico.datastore import connect
    from libcalico.datastore.config import DatastoreConfig
    from libcalico.ipam.assignment import AutoAssignArgs
    from libcalico.ipam.client import IPAMClient
    from libcalico.model import codec
    from libcalico.model.resources import IPPool

    cp = kube_apiserver
    cfg = _kdd_cfg(cp, tmp_path)
    tag = uuid.uuid4().hex[:6]
    node, pool = f"ctl-ipam-{tag}", f"ctl-pool-{tag}"
    backend = connect(DatastoreConfig.from_env({"DATASTORE_TYPE": "kubernetes",
                                                "KUBECONFIG": str(cp.kubeconfig)}))
    assert cp.request("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                "metadata": {"name": node}})[0] == 201
    client = Client(backend)
    client.create(codec.decode({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                                "metadata": {"name": pool},
                                "spec": {"cidr": f"10.{60 + int(tag[:2], 16) % 30}.0.0/24",
                                         "blockSize": 28}}))
    ipam = IPAMClient(backend)
    try:
        v4, _ = ipam.auto_assign(AutoAssignArgs(hostname=node, num4=2, handle_id=f"h-{tag}"))
        block = str(v4.ips[0].network)
        r = _ctl(cfg, "ipam", "show", "--show-blocks")
        assert r.returncode == 0, r.stderr
        assert f"Block ({node})" in r.stdout and block in r.stdout
        r = _ctl(cfg, "ipam", "release", f"--ip={v4.ips[0].ip}")
        assert r.returncode == 0, r.stderr
        assert f"Successfully released IP address {v4.ips[0].ip}" in r.stdout
        assert [str(i) for i in ipam.ips_by_handle(f"h-{tag}")] == [str(v4.ips[1].ip)]
    finally:
        ipam.release_by_handle(f"h-{tag}")
        ipam.release_host_affinities(node)
        client.delete(IPPool, pool)
        backend.close()
        cp.request("DELETE", f"/api/v1/nodes/{node}")


def test_calicoctl_apply_node_on_kdd_updates_the_kubernetes_node(
        kube_apiserver: ControlPlane, tmp_path: Path) -> None:
    """KDD cannot create a Node, so calicoctl apply falls back to an update, as Calico's
    resource manager does on ErrorOperationNotSupported: an existing Kubernetes Node gets the
    annotations, an unknown one is "resource does not exist" and nothing is created."""
    cp = kube_apiserver
    cfg = _kdd_cfg(cp, tmp_path)
    tag = uuid.uuid4().hex[:6]
    node, unknown = f"ctl-apply-{tag}", f"ctl-none-{tag}"
    assert cp.request("POST", "/api/v1/nodes", {
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": node, "labels": {"kubernetes.io/os": "linux"}}})[0] == 201
    try:
        doc: dict[str, Any] = {
            "apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": node},
            "spec": {"bgp": {"ipv4Address": "10.0.0.5/24", "asNumber": 64601}}}
        r = _ctl(cfg, "apply", "-f", "-", input=yaml.safe_dump(doc))
        assert r.returncode == 0, r.stderr
        assert "Successfully applied 1 'Node' resource(s)" in r.stdout
        status, kn = cp.request("GET", f"/api/v1/nodes/{node}")
        assert status == 200
        ann = kn["metadata"]["annotations"]
        assert ann["projectcalico.org/IPv4Address"] == "10.0.0.5/24"
        assert ann["projectcalico.org/ASNumber"] == "64601"
        assert kn["metadata"]["labels"]["kubernetes.io/os"] == "linux"

        doc["metadata"]["name"] = unknown
        r = _ctl(cfg, "apply", "-f", "-", input=yaml.safe_dump(doc))
        assert r.returncode != 0
        assert f"Failed to apply 'Node' resource: [resource does not exist: Node({unknown})]" \
            in r.stderr
        assert cp.request("GET", f"/api/v1/nodes/{unknown}")[0] == 404
    finally:
        cp.request("DELETE", f"/api/v1/nodes/{node}")


def test_calicoctl_on_kdd_refusals_bad_documents_and_conflicts(
        kube_apiserver: ControlPlane, tmp_path: Path) -> None:
    """WorkloadEndpoints come from Pods: calicoctl shows them and refuses to write them in
    Calico's words; a file with one bad document writes nothing; a replace at a stale
    resourceVersion is an update conflict."""
    cp = kube_apiserver
    cfg = _kdd_cfg(cp, tmp_path)
    tag = uuid.uuid4().hex[:6]
    ns, node, pod, peer = f"ctl-ns-{tag}", f"ctl-n-{tag}", "web", f"ctl-cas-{tag}"
    cp.ensure_namespace(ns)
    wep = f"ctl--n--{tag}-k8s-web-eth0"
    try:
        assert cp.request("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": pod},
            "spec": {"nodeName": node, "automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "pause"}]}})[0] == 201
        r = _ctl(cfg, "get", "workloadendpoints", "-n", ns, "-o", "wide")
        assert r.returncode == 0, r.stderr
        assert wep in r.stdout and f"kns.{ns},ksa.{ns}.default" in r.stdout
        doc = {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
               "metadata": {"name": wep, "namespace": ns},
               "spec": {"node": node, "orchestrator": "k8s", "pod": pod, "endpoint": "eth0",
                        "interfaceName": "cali0"}}
        r = _ctl(cfg, "create", "-f", "-", input=yaml.safe_dump(doc))
        assert r.returncode != 0
        assert "Failed to create 'WorkloadEndpoint' resource: [operation Create is not " \
            f"supported on WorkloadEndpoint({ns}/{wep})]" in r.stderr
        r = _ctl(cfg, "label", "workloadendpoint", wep, "-n", ns, "x=y")
        assert r.returncode != 0
        assert f"operation Update is not supported on WorkloadEndpoint({ns}/{wep})" in r.stderr
        r = _ctl(cfg, "delete", "workloadendpoint", wep, "-n", ns)
        assert r.returncode != 0
        assert f"operation Delete is not supported on WorkloadEndpoint({ns}/{wep})" in r.stderr
        assert cp.request("GET", f"/api/v1/namespaces/{ns}/pods/{pod}")[0] == 200

        good = {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
                "metadata": {"name": peer}, "spec": {"peerIP": "192.0.2.9", "asNumber": 64512}}
        bad = {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
               "metadata": {"name": f"{peer}-bad"},
               "spec": {"peerIP": "not-an-ip", "asNumber": 64512}}
        r = _ctl(cfg, "apply", "-f", "-", input=yaml.safe_dump_all([good, bad]))
        assert r.returncode != 0
        assert "Nothing was written" in r.stderr
        assert cp.request("GET", f"{CRD}/bgppeers/{peer}")[0] == 404

        r = _ctl(cfg, "apply", "-f", "-", input=yaml.safe_dump(good))
        assert r.returncode == 0, r.stderr
        stale = _ctl(cfg, "get", "bgppeer", peer, "-o", "yaml").stdout
        r = _ctl(cfg, "patch", "bgppeer", peer, "-p", '{"spec":{"asNumber":64513}}')
        assert r.returncode == 0, r.stderr
        r = _ctl(cfg, "replace", "-f", "-", input=stale)
        assert r.returncode != 0
        assert f"update conflict: BGPPeer({peer})" in r.stderr
        assert cp.request("GET", f"{CRD}/bgppeers/{peer}")[1]["spec"]["asNumber"] == 64513
    finally:
        cp.request("DELETE", f"{CRD}/bgppeers/{peer}")
        cp.request("DELETE", f"/api/v1/namespaces/{ns}")


def test_calicoctl_get_clusterinformation_on_kdd(kube_apiserver: ControlPlane,
                                                  tmp_path: Path) -> None:
    """ClusterInformation (calico-node writes it on KDD) is shown with Calico's columns and
    read by `calicoctl version`; missing, it is named as calicoctl names resources."""
    cp = kube_apiserver
    cfg = _kdd_cfg(cp, tmp_path)
    path = f"{CRD}/clusterinformations/default"
    made = cp.request("GET", path)[0] == 404
    if made:  # (another test's calico-node may have written it; then it is left alone)
        from libcalico.datastore import kubernetes_convert as convert

        r = _ctl(cfg, "version")
        assert r.returncode == 1
        assert "Unable to retrieve Cluster Version or Type: resource does not exist: " \
            "ClusterInformation(default)" in r.stderr

        assert cp.request("POST", f"{CRD}/clusterinformations", convert.to_cr({
            "apiVersion": "projectcalico.org/v3", "kind": "ClusterInformation",
            "metadata": {"name": "default"},
            "spec": {"clusterGUID": "c0ffee", "clusterType": "k8s,bgp",
                     "calicoVersion": "v3.31.0", "datastoreReady": True}}))[0] == 201
    try:
        spec = cp.request("GET", path)[1]["spec"]
        r = _ctl(cfg, "get", "clusterinformation")
        assert r.returncode == 0, r.stderr
        head, row = r.stdout.splitlines()[:2]
        assert head.split() == [
            "NAME", "CLUSTERGUID", "CLUSTERTYPE", "CALICOVERSION", "DATASTOREREADY"]
        r = _ctl(cfg, "version")
        assert r.returncode == 0, r.stderr
        assert f"Cluster Version:   {spec.get('calicoVersion') or 'unknown'}" in r.stdout
        ready = {True: "true", False: "false", None: "<nil>"}[spec.get("datastoreReady")]
        assert row.split() == ["default", *(v for v in (
            spec.get("clusterGUID"), spec.get("clusterType"), spec.get("calicoVersion"))
            if v), ready]
    finally:
        if made:
            cp.request("DELETE", path)


def test_calicoctl_every_crd_kind_on_kdd(kube_apiserver: ControlPlane, tmp_path: Path) -> None:
    """apply, get, label, patch and delete of one resource of each kind KDD keeps as a custom
    resource (the singletons named `default` aside: other tests share them), each seen in
    the API server and gone after the delete."""
    from libcalico.model import keys

    cp = kube_apiserver
    cfg = _kdd_cfg(cp, tmp_path)
    t = uuid.uuid4().hex[:6]
    ns = f"ctl-all-{t}"
    cp.ensure_namespace(ns)
    specs: list[tuple[str, str, dict[str, Any]]] = [
        ("BGPConfiguration", f"node.ctl-{t}", {"logSeverityScreen": "Info"}),
        ("BGPFilter", f"f-{t}", {}),
        ("BGPPeer", f"p-{t}", {"peerIP": "192.0.2.7", "asNumber": 64512}),
        ("FelixConfiguration", f"node.ctl-{t}", {"logSeverityScreen": "Info"}),
        ("GlobalNetworkPolicy", f"gnp-{t}", {"selector": "all()", "types": ["Ingress"]}),
        ("GlobalNetworkSet", f"gns-{t}", {"nets": ["10.2.0.0/24"]}),
        ("HostEndpoint", f"hep-{t}", {"node": f"n-{t}", "interfaceName": "eth0"}),
        ("IPPool", f"pool-{t}", {"cidr": "10.177.0.0/16"}),
        ("IPReservation", f"res-{t}", {"reservedCIDRs": ["10.177.1.0/24"]}),
        ("NetworkPolicy", f"np-{t}", {"selector": "all()", "types": ["Ingress"]}),
        ("NetworkSet", f"ns-{t}", {"nets": ["10.1.0.0/24"]}),
        ("StagedGlobalNetworkPolicy", f"sgnp-{t}", {"selector": "all()"}),
        ("StagedNetworkPolicy", f"snp-{t}", {"selector": "all()"}),
        ("Tier", f"tier-{t}", {"order": 100}),
    ]
    docs = []
    for kind, name, spec in specs:
        meta: dict[str, Any] = {"name": name}
        if keys.KINDS[kind].namespaced:
            meta["namespace"] = ns
        docs.append({"apiVersion": "projectcalico.org/v3", "kind": kind, "metadata": meta,
                     "spec": spec})
    text = yaml.safe_dump_all(docs)

    def stored(kind: str) -> list[dict[str, Any]]:
        info = keys.KINDS[kind]
        coll = f"{CRD}/namespaces/{ns}/{info.plural}" if info.namespaced \
            else f"{CRD}/{info.plural}"
        status, reply = cp.request("GET", coll)
        assert status == 200, (kind, reply)
        return [i for i in reply["items"] if t in i["metadata"]["name"]]

    try:
        r = _ctl(cfg, "apply", "-f", "-", input=text)
        assert r.returncode == 0, r.stderr
        assert f"Successfully applied {len(docs)} resource(s)" in r.stdout
        for kind, name, _ in specs:
            assert len(stored(kind)) == 1, kind
            where = ["-n", ns] if keys.KINDS[kind].namespaced else []
            r = _ctl(cfg, "get", kind.lower(), name, *where, "-o", "json")
            assert r.returncode == 0, (kind, r.stderr)
            got = json.loads(r.stdout)
            assert (got["kind"], got["metadata"]["name"]) == (kind, name)
            r = _ctl(cfg, "label", kind.lower(), name, *where, "t=1")
            assert r.returncode == 0, (kind, r.stderr)
            r = _ctl(cfg, "patch", kind.lower(), name, *where, "-p",
                     '{"metadata":{"labels":{"p":"2"}}}')
            assert r.returncode == 0, (kind, r.stderr)
            r = _ctl(cfg, "get", kind.lower(), name, *where, "-o", "json")
            assert json.loads(r.stdout)["metadata"]["labels"] == {"t": "1", "p": "2"}, kind
            cr = stored(kind)[0]
            assert json.loads(cr["metadata"]["annotations"]["projectcalico.org/metadata"])[
                "labels"] == {"t": "1", "p": "2"}, kind
        r = _ctl(cfg, "delete", "-f", "-", input=text)
        assert r.returncode == 0, r.stderr
        assert f"Successfully deleted {len(docs)} resource(s)" in r.stdout
        for kind, _, _ in specs:
            assert stored(kind) == [], kind
    finally:
        _ctl(cfg, "delete", "--skip-not-exists", "-f", "-", input=text)
        cp.request("DELETE", f"/api/v1/namespaces/{ns}")


def test_calicoctl_ipam_check_on_kdd_uses_the_pods(kube_apiserver: ControlPlane,
                                                   tmp_path: Path) -> None:
    """`ipam check` on KDD counts the workload addresses of the pods: an allocation a pod
    holds is fine, one no pod holds is a leak, a pod address without an allocation is
    reported; nothing is released by the check."""
    from libcalico.client import Client
    from libcalico.datastore import connect
    from libcalico.datastore.config import DatastoreConfig
    from libcalico.datastore.kubernetes_pod import wep_name
    from libcalico.errors import NotFound
    from libcalico.ipam.assignment import AutoAssignArgs
    from libcalico.ipam.client import IPAMClient
    from libcalico.model import codec
    from libcalico.model.resources import IPPool

    cp = kube_apiserver
    cfg = _kdd_cfg(cp, tmp_path)
    tag = uuid.uuid4().hex[:6]
    node, pool, ns = f"ctl-chk-{tag}", f"ctl-chkpool-{tag}", f"ctl-chkns-{tag}"
    cp.ensure_namespace(ns)
    assert cp.request("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                "metadata": {"name": node}})[0] == 201
    backend = connect(DatastoreConfig.from_env({"DATASTORE_TYPE": "kubernetes",
                                                "KUBECONFIG": str(cp.kubeconfig)}))
    client = Client(backend)
    client.create(codec.decode({"apiVersion": "projectcalico.org/v3", "kind": "IPPool",
                                "metadata": {"name": pool},
                                "spec": {"cidr": f"10.{100 + int(tag[:2], 16) % 50}.0.0/24",
                                         "blockSize": 28}}))
    ipam = IPAMClient(backend)
    handles = [f"k8s-pod-network.{tag}-{i}" for i in range(2)]
    try:
        ips = [ipam.auto_assign(AutoAssignArgs(hostname=node, num4=1, handle_id=h,
                                               attrs={"namespace": ns, "pod": f"p{i}",
                                                      "node": node}))[0].ips[0].ip
               for i, h in enumerate(handles)]
        stray = ips[0] + 8  # in the block, never allocated
        for name, ip in (("p0", ips[0]), ("p9", stray)):
            assert cp.request("POST", f"/api/v1/namespaces/{ns}/pods", {
                "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
                "spec": {"nodeName": node, "automountServiceAccountToken": False,
                         "containers": [{"name": "c", "image": "pause"}]}})[0] == 201
            status, reply = cp.request(
                "PATCH", f"/api/v1/namespaces/{ns}/pods/{name}/status",
                {"status": {"podIP": str(ip), "podIPs": [{"ip": str(ip)}]}},
                content_type="application/merge-patch+json")
            assert status == 200, reply
        r = _ctl(cfg, "ipam", "check")
        assert r.returncode == 1, r.stdout + r.stderr
        out = r.stdout
        assert f"leaked address (allocated, no workload): {ips[1]} handle {handles[1]}" in out
        assert f"address in use without an allocation: {stray} " \
            f"({ns}/{wep_name(node, 'p9')})" in out
        assert not any(str(ips[0]) in line.split() for line in out.splitlines())  # p0's
        assert [str(i) for i in ipam.ips_by_handle(handles[1])] == [str(ips[1])]
    finally:
        for h in handles:
            with contextlib.suppress(NotFound):
                ipam.release_by_handle(h)
        ipam.release_host_affinities(node)
        client.delete(IPPool, pool)
        backend.close()
        cp.request("DELETE", f"/api/v1/namespaces/{ns}")
        cp.request("DELETE", f"/api/v1/nodes/{node}")
