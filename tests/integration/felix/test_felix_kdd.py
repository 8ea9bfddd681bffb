"""Felix's owner loop fed by the real syncer over the real Kubernetes API server (KDD), against
a fake kernel: what only KDD derives reaches Felix as Calico derives it. ServiceAccount labels
become the endpoint's `pcsa.` labels (through profile `ksa.<ns>.<sa>`) and move it in and out
of a policy's selector IP set; a pod that has finished loses its IPs, so its route goes;
BGPConfiguration `default` sets the workload route metric; a pod with a malformed CNI
annotation is refused without stopping Felix."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import threading
import uuid
from collections.abc import Iterator

import pytest

from calico_node.kubelab.apiserver import ControlPlane
from felix.__main__ import PREFIXES
from felix.dataplane.loop import Dataplane, LinksChanged, Stop
from libcalico.datastore import connect
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.kubernetes_pod import veth_name
from libcalico.datastore.syncer import Syncer
from libcalico.ipam.client import IPAMClient
from libcalico.model import keys
from tests.netns.felix.cluster import wait_for
from tests.unit.felix import data
from tests.unit.felix.fakes import FakeIptables, FakeNetlink, FakeSysctl

MERGE = "application/merge-patch+json"


@pytest.fixture
def kdd(kube_apiserver: ControlPlane) -> Iterator[tuple[ControlPlane, str, str]]:
    """A namespace with ServiceAccount `web` labelled tier=frontend, and a Node; removed
    afterwards with every object the test makes."""
    cp = kube_apiserver
    tag = uuid.uuid4().hex[:6]
    ns, node = f"fxk-{tag}", f"fxk-node-{tag}"
    cp.ensure_namespace(ns)
    cp.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "web", "labels": {"tier": "frontend"}}})
    cp.request("POST", "/api/v1/nodes", {
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": node, "annotations": {
            "projectcalico.org/IPv4Address": "192.168.77.1/24"}}})
    try:
        yield cp, ns, node
    finally:
        cp.request("DELETE", f"/api/v1/namespaces/{ns}/pods?gracePeriodSeconds=0")
        cp.request("DELETE", f"/api/v1/namespaces/{ns}")
        cp.request("DELETE", f"/api/v1/nodes/{node}")


def test_service_account_labels_and_finished_pods_on_kdd(
        kdd: tuple[ControlPlane, str, str]) -> None:
    cp, ns, me = kdd
    be = connect(DatastoreConfig.from_env({"DATASTORE_TYPE": "kubernetes",
                                           "KUBECONFIG": str(cp.kubeconfig)}))
    ipam = IPAMClient(be)
    pool_key, pool = data.pool(f"fxk-{ns}", "10.77.0.0/16")
    gnp_key = keys.resource_key("GlobalNetworkPolicy", f"{ns}-frontend-in")
    handle = f"k8s-pod-network.{uuid.uuid4().hex}"
    bgp_key = keys.resource_key("BGPConfiguration", "default")
    be.create(pool_key, pool)
    be.create(gnp_key, json.dumps({
        "kind": "GlobalNetworkPolicy", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": f"{ns}-frontend-in"},
        "spec": {"tier": "default", "selector": f"projectcalico.org/namespace == '{ns}'",
                 "types": ["Ingress"],
                 "ingress": [{"action": "Allow", "source": {"selector":
                                                            "pcsa.tier == 'frontend'"}}]}}))
    iface = veth_name(ns, "web-1")
    nl = FakeNetlink()
    nl.add_link("eth0", addrs=("192.168.77.1/24",))
    nl.add_link(iface)
    ipt = FakeIptables()
    dp = Dataplane({"FELIX_FELIXHOSTNAME": me, "FELIX_IPV6SUPPORT": "false",
                    "FELIX_IPTABLESBACKEND": "nft"}, {}, me, nl, FakeSysctl(), runner=ipt)
    dp.queue.put(LinksChanged(nl.list_links()))
    syncer = Syncer(be, PREFIXES, dp.queue.put)
    runner = threading.Thread(target=dp.run, daemon=True)
    try:
        ipam.assign_ip(ipaddress.ip_address("10.77.0.10"), handle_id=handle,
                       attrs={"namespace": ns, "pod": "web-1", "node": me}, hostname=me)
        assert cp.request("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1"},
            "spec": {"nodeName": me, "serviceAccountName": "web",
                     "containers": [{"name": "c", "image": "busybox"}]}})[0] == 201
        cp.request("PATCH", f"/api/v1/namespaces/{ns}/pods/web-1/status",
                   {"status": {"phase": "Running", "podIP": "10.77.0.10"}}, content_type=MERGE)
        syncer.start()
        runner.start()
        route = (254, ipaddress.ip_network("10.77.0.10/32"))
        blackhole = (254, ipaddress.ip_network("10.77.0.0/26"))

        def frontend_members() -> set[str]:
            return {m for name, ms in ipt.ipsets.items() if name.startswith("cali40s:")
                    for m in ms}

        wait_for(lambda: route in nl.routes and blackhole in nl.routes, 20, "routes")
        assert f"cali-tw-{iface}" in ipt.table(4, "filter")
        wait_for(lambda: any(m.startswith("10.77.0.10") for m in frontend_members()), 20,
                 "the pod in the frontend set (its service account's label)")

        # Workload routes take BGPConfiguration default's normal route priority (a CRD here).
        assert nl.routes.metrics(route[1]) == [1024]
        be.create(bgp_key, json.dumps({
            "kind": "BGPConfiguration", "apiVersion": "projectcalico.org/v3",
            "metadata": {"name": "default"}, "spec": {"ipv4NormalRoutePriority": 5000}}))
        wait_for(lambda: nl.routes.metrics(route[1]) == [5000], 20, "metric 5000")
        be.delete(bgp_key)
        wait_for(lambda: nl.routes.metrics(route[1]) == [1024], 20, "metric 1024 again")

        # A pod whose CNI annotation is not an address: refused at the boundary, Felix runs on.
        assert cp.request("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod", "metadata": {
                "name": "bad", "annotations": {"cni.projectcalico.org/podIP": "10.77.0.999"}},
            "spec": {"nodeName": me, "containers": [{"name": "c", "image": "busybox"}]}}
        )[0] == 201

        cp.request("PATCH", f"/api/v1/namespaces/{ns}/serviceaccounts/web",
                   {"metadata": {"labels": {"tier": "backend"}}}, content_type=MERGE)
        wait_for(lambda: not any(m.startswith("10.77.0.10") for m in frontend_members()), 20,
                 "the pod out of the frontend set")

        cp.request("PATCH", f"/api/v1/namespaces/{ns}/pods/web-1/status",
                   {"status": {"phase": "Succeeded"}}, content_type=MERGE)
        wait_for(lambda: route not in nl.routes, 20, "a finished pod's route withdrawn")
        assert blackhole in nl.routes
        assert runner.is_alive()
    finally:
        dp.queue.put(Stop())
        if runner.is_alive():
            runner.join(10)
        syncer.stop()
        dp.close()
        with contextlib.suppress(Exception):
            ipam.release_by_handle(handle)
        with contextlib.suppress(Exception):
            ipam.release_host_affinities(me)
        for key in (gnp_key, pool_key, bgp_key):
            with contextlib.suppress(Exception):
                be.delete(key)
        be.close()


def test_terminating_pod_keeps_its_route_until_the_cni_releases_it(
        kdd: tuple[ControlPlane, str, str]) -> None:
    """A pod deleted with a grace period stays (terminating) until its kubelet finishes; its
    route stays while the CNI's podIP annotation does, and goes once CNI DEL blanks it (as
    Calico treats a terminating pod with a blank podIP annotation as finished)."""
    cp, ns, me = kdd
    be = connect(DatastoreConfig.from_env({"DATASTORE_TYPE": "kubernetes",
                                           "KUBECONFIG": str(cp.kubeconfig)}))
    ipam = IPAMClient(be)
    pool_key, pool = data.pool(f"fxk-{ns}", "10.78.0.0/16")
    container = uuid.uuid4().hex
    handle = f"k8s-pod-network.{container}"
    be.create(pool_key, pool)
    iface = veth_name(ns, "job-1")
    nl = FakeNetlink()
    nl.add_link("eth0", addrs=("192.168.77.1/24",))
    nl.add_link(iface)
    dp = Dataplane({"FELIX_FELIXHOSTNAME": me, "FELIX_IPV6SUPPORT": "false",
                    "FELIX_IPTABLESBACKEND": "nft"}, {}, me, nl, FakeSysctl(),
                   runner=FakeIptables())
    dp.queue.put(LinksChanged(nl.list_links()))
    syncer = Syncer(be, PREFIXES, dp.queue.put)
    runner = threading.Thread(target=dp.run, daemon=True)
    pod_path = f"/api/v1/namespaces/{ns}/pods/job-1"
    try:
        ipam.assign_ip(ipaddress.ip_address("10.78.0.10"), handle_id=handle,
                       attrs={"namespace": ns, "pod": "job-1", "node": me}, hostname=me)
        # A finalizer keeps the pod terminating, as a kubelet that has not finished would.
        assert cp.request("POST", f"/api/v1/namespaces/{ns}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "job-1", "finalizers": ["calico-py.test/hold"]},
            "spec": {"nodeName": me, "containers": [{"name": "c", "image": "busybox"}]}}
        )[0] == 201
        cni = "cni.projectcalico.org/"
        cp.request("PATCH", f"{pod_path}/status", {"metadata": {"annotations": {
            cni + "podIP": "10.78.0.10/32", cni + "podIPs": "10.78.0.10/32",
            cni + "containerID": container}}}, content_type=MERGE)
        syncer.start()
        runner.start()
        route = (254, ipaddress.ip_network("10.78.0.10/32"))
        wait_for(lambda: route in nl.routes, 20, "the pod's route")

        assert cp.request("DELETE", f"{pod_path}?gracePeriodSeconds=30")[0] == 200
        status, obj = cp.request("GET", pod_path)
        assert status == 200 and obj["metadata"].get("deletionTimestamp")
        # Still terminating, IP annotated: the route stays, also after a later change of the
        # pod has been applied (a label: the apply proves Felix has seen the deletion).
        n = dp.applies
        cp.request("PATCH", pod_path, {"metadata": {"labels": {"phase": "terminating"}}},
                   content_type=MERGE)
        wait_for(lambda: dp.applies > n, 20, "an apply after the deletion")
        assert route in nl.routes
        # CNI DEL blanks the annotations: the pod is finished, its route goes.
        cp.request("PATCH", f"{pod_path}/status", {"metadata": {"annotations": {
            cni + "podIP": "", cni + "podIPs": ""}}}, content_type=MERGE)
        wait_for(lambda: route not in nl.routes, 20, "the route of the released pod gone")
        assert runner.is_alive()
    finally:
        dp.queue.put(Stop())
        if runner.is_alive():
            runner.join(10)
        syncer.stop()
        dp.close()
        cp.request("PATCH", pod_path, {"metadata": {"finalizers": None}}, content_type=MERGE)
        with contextlib.suppress(Exception):
            ipam.release_by_handle(handle)
        with contextlib.suppress(Exception):
            ipam.release_host_affinities(me)
        with contextlib.suppress(Exception):
            be.delete(pool_key)
        be.close()
