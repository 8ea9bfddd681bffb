"""The plugins' Kubernetes-datastore edges that need no API server: which datastore a
configuration names, the client environment Calico's CNI builds from netconf, and the
endpoint derived from a Pod object."""

from __future__ import annotations

import json

from calico_cni import context, kdd, netconf

BASE = {"name": "k8s-pod-network", "cniVersion": "1.0.0", "type": "calico",
        "ipam": {"type": "calico-ipam"}}


def test_datastore_type_from_netconf_then_environment() -> None:
    plain = netconf.parse(BASE, "1.0.0")
    assert plain.datastore_type == ""
    assert context.datastore_type(plain, {}) == "etcdv3"
    assert context.datastore_type(plain, {"DATASTORE_TYPE": "kubernetes"}) == "kubernetes"
    assert context.datastore_type(plain, {"DATASTORE_TYPE": "etcdv3",
                                          "CALICO_DATASTORE_TYPE": "kubernetes"}) == "kubernetes"
    kube = netconf.parse({**BASE, "datastore_type": "kubernetes"}, "1.0.0")
    assert context.datastore_type(kube, {"DATASTORE_TYPE": "etcdv3"}) == "kubernetes"


def test_client_environment_as_calico_exports_netconf() -> None:
    conf = netconf.parse({**BASE, "datastore_type": "kubernetes",
                          "kubernetes": {"kubeconfig": "/etc/cni/net.d/calico-kubeconfig"},
                          "policy": {"type": "k8s", "k8s_api_root": "https://10.0.0.1:6443/api/v1",
                                     "k8s_auth_token": "tok"}}, "1.0.0")
    env = kdd.client_env(conf, {"KUBECONFIG": "/root/.kube/config", "PATH": "/bin",
                                "HOME": "/root", "K8S_CA_FILE": "/ca.pem"})
    assert env == {"DATASTORE_TYPE": "kubernetes",
                   "KUBECONFIG": "/etc/cni/net.d/calico-kubeconfig",
                   "K8S_API_ENDPOINT": "https://10.0.0.1:6443", "K8S_API_TOKEN": "tok",
                   "HOME": "/root", "K8S_CA_FILE": "/ca.pem"}
    wins = netconf.parse({**BASE, "kubernetes": {"k8s_api_root": "https://kube:443"},
                          "policy": {"k8s_api_root": "https://other:6443"}}, "1.0.0")
    assert kdd.client_env(wins, {})["K8S_API_ENDPOINT"] == "https://kube:443"
    assert kdd.client_env(netconf.parse(BASE, "1.0.0"), {"KUBECONFIG": "/k"}) == {
        "DATASTORE_TYPE": "kubernetes", "KUBECONFIG": "/k"}


def test_endpoint_of_the_pod() -> None:
    pod = {"metadata": {"name": "web-1", "namespace": "ns1", "uid": "u1",
                        "resourceVersion": "42", "labels": {"app": "web"},
                        "annotations": {"cni.projectcalico.org/podIP": "10.0.0.5/32",
                                        "cni.projectcalico.org/containerID": "c1"}},
           "spec": {"nodeName": "node-a", "serviceAccountName": "sa"}}
    key = "/calico/resources/v3/projectcalico.org/workloadendpoints/ns1/node--a-k8s-web--1-eth0"
    kv = kdd.endpoint_of(pod, key, "cali")
    assert kv is not None and kv.revision == "42"
    spec = json.loads(kv.value)["spec"]
    assert spec["containerID"] == "c1" and spec["ipNetworks"] == ["10.0.0.5/32"]
    assert kdd.endpoint_of(pod, key.replace("node--a", "node--b"), "cali") is None
    assert kdd.endpoint_of({**pod, "spec": {"nodeName": "node-a", "hostNetwork": True}}, key,
                           "cali") is None
