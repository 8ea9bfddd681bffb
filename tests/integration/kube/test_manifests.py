"""The manifests users apply to a cluster (manifests/, CRDs aside: test_crds.py installs
them) pass the real API server's validation: each object is created with `?dryRun=All`
(201, and nothing is stored), or, when the session already holds one of that name (test_rbac
applies the RBAC files), replaced with `?dryRun=All` at its resourceVersion (200)."""

from __future__ import annotations

import json
import os
import stat
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from calico_cni import netconf
from calico_node import cni_install
from calico_node.kubelab.apiserver import ROOT, ControlPlane
from libcalico.datastore.kubernetes_client import (
    KubeClient,
    Unauthorized,
    access_from_kubeconfig,
)

MANIFESTS = ROOT / "manifests"
FILES = sorted(p for p in MANIFESTS.rglob("*.yaml")
               if "crds" not in p.relative_to(MANIFESTS).parts)

# kind -> (API prefix, plural, namespaced)
COLLECTIONS = {
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "ConfigMap": ("/api/v1", "configmaps", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
}


class OneRound(threading.Event):
    """A stop event whose first wait times out (one round of the loop), then is set."""

    def __init__(self) -> None:
        super().__init__()
        self.rounds = 0

    def wait(self, timeout: float | None = None) -> bool:
        self.rounds += 1
        return self.rounds > 1


def _collection(doc: dict[str, Any]) -> str:
    prefix, plural, namespaced = COLLECTIONS[doc["kind"]]
    if namespaced:
        return f"{prefix}/namespaces/{doc['metadata']['namespace']}/{plural}"
    return f"{prefix}/{plural}"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    return [(f"{p.relative_to(MANIFESTS)}:{d['kind']}/{d['metadata']['name']}", d)
            for p in FILES for d in yaml.safe_load_all(p.read_text()) if d]


def test_the_manifests_are_there() -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for _, d in _documents()}
    for sa in ("calico-node", "calico-cni-plugin", "calico-kube-controllers"):
        assert {("ServiceAccount", sa), ("ClusterRole", sa), ("ClusterRoleBinding", sa)} <= kinds
    assert {("DaemonSet", "calico-node"), ("ConfigMap", "calico-config"),
            ("Deployment", "calico-kube-controllers")} <= kinds


@pytest.mark.parametrize(("label", "doc"), _documents(), ids=[x for x, _ in _documents()])
def test_server_side_dry_run(kube_apiserver: ControlPlane, label: str,
                             doc: dict[str, Any]) -> None:
    cp = kube_apiserver
    url = _collection(doc)
    item = f"{url}/{doc['metadata']['name']}"
    existed = cp.request("GET", item)[0] == 200
    status, reply = cp.request("POST", f"{url}?dryRun=All&fieldValidation=Strict", doc)
    if status == 409 and existed:
        current = cp.request("GET", item)[1]
        replaced = {**doc, "metadata": {**doc["metadata"],
                                        "resourceVersion": current["metadata"]["resourceVersion"]}}
        status, reply = cp.request("PUT", f"{item}?dryRun=All&fieldValidation=Strict", replaced)
        assert status == 200, (label, reply)
    else:
        assert status == 201, (label, reply)
        assert cp.request("GET", item)[0] == 404, f"{label}: a dry run stored it"
    assert reply["kind"] == doc["kind"]


def test_the_daemonset_uses_the_config_and_accounts(kube_apiserver: ControlPlane) -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for _, d in _documents()}
    pod = docs[("DaemonSet", "calico-node")]["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == "calico-node" and pod["hostNetwork"] is True
    (init,) = pod["initContainers"]
    assert init["command"] == ["calico-node", "install-cni"]
    config = docs[("ConfigMap", "calico-config")]["data"]
    refs = {e["valueFrom"]["configMapKeyRef"]["key"]
            for c in [init, *pod["containers"]] for e in c["env"]
            if "configMapKeyRef" in e.get("valueFrom", {})}
    assert refs <= set(config)
    for placeholder in ("__KUBERNETES_NODE_NAME__", "__KUBECONFIG_FILEPATH__", "__CNI_MTU__"):
        assert placeholder in config["cni_network_config"]


def test_install_cni_writes_plugins_config_and_a_cni_plugin_kubeconfig(
        kube_apiserver: ControlPlane, tmp_path: Path) -> None:
    """The DaemonSet's init container (`calico-node install-cni`) with calico-node's own
    service account: the launchers, the conflist from the ConfigMap, and a kubeconfig whose
    token is the calico-cni-plugin ServiceAccount's (it may read pools, not list pods)."""
    cp = kube_apiserver
    for name in ("calico-node.yaml", "calico-cni-plugin.yaml"):
        cp.apply([d for d in yaml.safe_load_all((MANIFESTS / "rbac" / name).read_text()) if d])
    sa = tmp_path / "serviceaccount"
    sa.mkdir()
    (sa / "token").write_text(cp.service_account_token("kube-system", "calico-node"))
    (sa / "ca.crt").write_bytes(cp.ca_file.read_bytes())
    (sa / "namespace").write_text("kube-system")
    url = urlsplit(cp.server)
    config = next(d for _, d in _documents() if d["kind"] == "ConfigMap")["data"]
    env = {"KUBERNETES_SERVICE_HOST": str(url.hostname), "KUBERNETES_SERVICE_PORT": str(url.port),
           "KUBERNETES_NODE_NAME": "node-a", "CNI_NETWORK_CONFIG": config["cni_network_config"],
           "CNI_MTU": config["veth_mtu"], "CNI_CONF_NAME": "10-calico.conflist"}
    host = tmp_path / "host"
    written = cni_install.install(env, root=host, sa_dir=sa, runtime=False)
    net = host / "etc/cni/net.d"
    assert sorted(p.relative_to(host).as_posix() for p in written) == [
        "etc/cni/net.d/10-calico.conflist", "etc/cni/net.d/calico-kubeconfig",
        "opt/cni/bin/calico", "opt/cni/bin/calico-ipam"]
    assert all(os.access(host / "opt/cni/bin" / b, os.X_OK) for b in ("calico", "calico-ipam"))
    (plugin,) = json.loads((net / "10-calico.conflist").read_text())["plugins"]
    assert plugin["nodename"] == "node-a" and plugin["mtu"] == 0
    assert plugin["kubernetes"] == {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"}
    parsed = netconf.parse({**plugin, "name": "k8s-pod-network"}, "0.3.1")
    assert parsed.kubeconfig == "/etc/cni/net.d/calico-kubeconfig" and parsed.mtu == 0
    kc = net / "calico-kubeconfig"
    assert stat.S_IMODE(kc.stat().st_mode) == 0o600
    # calico-node's token watch: one refresh (the stop event says "go on" once), a new file.
    assert cni_install.manages_cni({**env, "DATASTORE_TYPE": "kubernetes"}, root=host)
    inode = kc.stat().st_ino
    cni_install.keep_token_fresh(env, OneRound(), root=host, sa_dir=sa)
    assert kc.stat().st_ino != inode and stat.S_IMODE(kc.stat().st_mode) == 0o600
    client = KubeClient(access_from_kubeconfig(str(kc)))
    try:
        client.request("GET", "/apis/crd.projectcalico.org/v1/ippools")
        with pytest.raises(Unauthorized):
            client.request("GET", "/api/v1/pods")  # calico-node's token could
    finally:
        client.close()
