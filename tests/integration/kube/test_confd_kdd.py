"""calico-confd on the Kubernetes datastore, against the session's real kube-apiserver: what only
Kubernetes gives. Each test runs the real daemon (watch mode, --sync-only) for one node of its
own and removes every object it made.

- BGP passwords from Secrets in calico-node's namespace: rendered, re-rendered when the Secret
  changes, never logged, the file not group/world readable; a value BIRD cannot quote drops
  the peering.
- Service IP advertisement: BGPConfiguration ranges plus a /32 for a Local service with an
  endpoint on this node (EndpointSlices: no controller makes them here, the test does),
  withdrawn when the endpoint moves away; external IPs only inside serviceExternalIPs.
- `localWorkloadSelector` BGPPeers from this node's pods: a passive peering to the pod's IP.
"""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from calico_node.kubelab.apiserver import ControlPlane
from libcalico.datastore import kubernetes_service as kservice
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.errors import NotFound

pytestmark = [pytest.mark.bird]

REPO = Path(__file__).resolve().parents[3]
DEST = Path("etc/calico/confd/config")
WAIT = 20.0
CRD = "/apis/crd.projectcalico.org/v1"


class Confd:
    """The daemon for one node, its files and log in `root`."""

    def __init__(self, cp: ControlPlane, node: str, root: Path) -> None:
        self.root = root
        self.out = root / "out" / DEST
        self.log = root / "confd.log"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("CALICO_", "ETCD_", "K8S_"))}
        env.update(DATASTORE_TYPE="kubernetes", KUBECONFIG=str(cp.kubeconfig), NODENAME=node,
                   NAMESPACE="kube-system", PYTHONPATH=str(REPO), BGP_LOGSEVERITYSCREEN="debug",
                   CALICO_ENDPOINT_STATUS_PATH_PREFIX=str(root / "run"),
                   GRPC_ENABLE_FORK_SUPPORT="false")
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "confd", "--confdir", str(REPO), "--dest-root",
                 str(root / "out"), "--sync-only", "--min-interval", "0.2"],
                env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self, name: str = "bird.cfg") -> str:
        try:
            return (self.out / name).read_text()
        except FileNotFoundError:
            return ""

    def wait(self, pred: Callable[[], bool], what: str) -> None:
        deadline = time.monotonic() + WAIT
        while not pred():
            assert self.proc.poll() is None, f"confd exited:\n{self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, (
                f"timed out waiting for {what}\n--- bird.cfg ---\n{self.text()[-2000:]}\n"
                f"--- confd log ---\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


class Objects:
    """Creates API objects and deletes them again (newest first), even on failure."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.made: list[str] = []

    def create(self, collection: str, doc: dict[str, Any]) -> None:
        status, reply = self.cp.request("POST", collection, doc)
        assert status == 201, f"POST {collection}: {status} {reply}"
        self.made.append(f"{collection}/{doc['metadata']['name']}")

    def replace(self, path: str, doc: dict[str, Any]) -> None:
        _, cur = self.cp.request("GET", path)
        doc = {**doc, "metadata": {**doc["metadata"],
                                   "resourceVersion": cur["metadata"]["resourceVersion"]}}
        status, reply = self.cp.request("PUT", path, doc)
        assert status == 200, f"PUT {path}: {status} {reply}"

    def node(self, name: str, ip: str) -> None:
        self.create("/api/v1/nodes", {"apiVersion": "v1", "kind": "Node", "metadata": {
            "name": name, "annotations": {"projectcalico.org/IPv4Address": ip}}})

    def calico(self, plural: str, name: str, kind: str, spec: dict[str, Any]) -> None:
        self.create(f"{CRD}/{plural}", {"apiVersion": "crd.projectcalico.org/v1", "kind": kind,
                                        "metadata": {"name": name}, "spec": spec})

    def cleanup(self) -> None:
        problems = []
        for path in reversed(self.made):
            status, reply = self.cp.request("DELETE", f"{path}?gracePeriodSeconds=0")
            if status not in (200, 202, 404):
                problems.append(f"DELETE {path}: {status} {reply}")
        self.made.clear()
        assert not problems, problems


@pytest.fixture
def objects(kube_apiserver: ControlPlane) -> Iterator[Objects]:
    o = Objects(kube_apiserver)
    try:
        yield o
    finally:
        o.cleanup()


@contextlib.contextmanager
def confd(cp: ControlPlane, node: str, root: Path) -> Iterator[Confd]:
    d = Confd(cp, node, root)
    try:
        yield d
    finally:
        d.stop()


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def test_bgp_password_from_secret(kube_apiserver: ControlPlane, objects: Objects,
                                  tmp_path: Path) -> None:
    cp = kube_apiserver
    tag = uuid.uuid4().hex[:6]
    node, secret = f"pw-{tag}", f"bgp-pw-{tag}"
    secrets = "/api/v1/namespaces/kube-system/secrets"
    objects.node(node, "10.77.0.1/24")
    objects.calico("bgppeers", f"tor-{tag}", "BGPPeer", {
        "node": node, "peerIP": "10.77.0.254", "asNumber": 65010,
        "password": {"secretKeyRef": {"name": secret, "key": "tor"}}})
    objects.calico("bgppeers", f"rr-{tag}", "BGPPeer", {
        "node": node, "peerIP": "10.77.0.253", "asNumber": 65010,
        "password": {"secretKeyRef": {"name": secret, "key": "rr"}}})
    with confd(cp, node, tmp_path) as d:
        d.wait(lambda: "neighbor 10.77.0.254 as 65010" in d.text(), "the peerings")
        assert "password" not in d.text()  # no Secret yet: rendered without one
        objects.create(secrets, {"apiVersion": "v1", "kind": "Secret",
                                 "metadata": {"name": secret},
                                 "data": {"tor": _b64("s3cret-one"),
                                          "rr": _b64('bad"quote')}})
        d.wait(lambda: 'password "s3cret-one";' in d.text(), "the password from the Secret")
        # A value BIRD cannot quote drops that peering, rather than breaking bird.cfg.
        assert "10.77.0.253" not in d.text()
        mode = stat.S_IMODE((d.out / "bird.cfg").stat().st_mode)
        assert mode & 0o077 == 0, oct(mode)
        objects.replace(f"{secrets}/{secret}", {
            "apiVersion": "v1", "kind": "Secret", "metadata": {"name": secret},
            "data": {"tor": _b64("rotated-two"), "rr": _b64("fine-now")}})
        d.wait(lambda: 'password "rotated-two";' in d.text()
               and 'password "fine-now";' in d.text(), "the rotated passwords")
        assert "s3cret-one" not in d.text()
        mode = stat.S_IMODE((d.out / "bird.cfg").stat().st_mode)
        assert mode & 0o077 == 0, oct(mode)
        cp.request("DELETE", f"{secrets}/{secret}")
        d.wait(lambda: "password" not in d.text(), "the passwords to go with the Secret")
        log = d.log.read_text()
    for value in ("s3cret-one", "rotated-two", "fine-now", 'bad"quote'):
        assert value not in log, f"a password reached the log: {value}"


def test_service_routes_from_services(kube_apiserver: ControlPlane, objects: Objects,
                                      tmp_path: Path) -> None:
    cp = kube_apiserver
    tag = uuid.uuid4().hex[:6]
    node, other = f"svc-{tag}", f"svc-other-{tag}"
    services = "/api/v1/namespaces/default/services"
    slices = "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices"
    objects.node(node, "10.78.0.1/24")
    objects.node(other, "10.78.0.2/24")
    objects.calico("bgpconfigurations", "default", "BGPConfiguration", {
        "serviceClusterIPs": [{"cidr": "10.101.0.0/16"}],
        "serviceExternalIPs": [{"cidr": "203.0.113.0/24"}]})

    def slice_on(where: str) -> dict[str, Any]:
        return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": f"web-{tag}-a",
                             "labels": {kservice.SERVICE_NAME_LABEL: f"web-{tag}"}},
                "addressType": "IPv4", "ports": [{"port": 80}],
                "endpoints": [{"addresses": ["192.168.5.5"], "nodeName": where}]}

    objects.create(services, {"apiVersion": "v1", "kind": "Service",
                              "metadata": {"name": f"web-{tag}"},
                              "spec": {"type": "NodePort", "externalTrafficPolicy": "Local",
                                       "clusterIP": "10.101.7.7",
                                       "externalIPs": ["203.0.113.9", "198.51.100.9"],
                                       "ports": [{"port": 80}]}})
    objects.create(slices, slice_on(node))
    # No asNumber: Calico renders `as 0`, which BIRD rejects; left out, bird.cfg still parses.
    objects.calico("bgppeers", f"noas-{tag}", "BGPPeer", {"node": node,
                                                          "peerIP": "10.78.0.250"})
    with confd(cp, node, tmp_path) as d:
        aggr = "bird_aggr.cfg"
        d.wait(lambda: "route 10.101.7.7/32 blackhole;" in d.text(aggr), "the service route")
        text = d.text(aggr)
        assert "route 10.101.0.0/16 blackhole;" in text
        assert "route 203.0.113.0/24 blackhole;" in text
        assert "route 203.0.113.9/32 blackhole;" in text
        assert "198.51.100.9" not in text  # not within serviceExternalIPs
        assert "10.101.7.7/32" not in d.text("bird_ipam.cfg").split("calico_kernel")[1]
        objects.replace(f"{slices}/web-{tag}-a", slice_on(other))
        d.wait(lambda: "10.101.7.7/32" not in d.text(aggr), "the route to be withdrawn")
        assert "route 10.101.0.0/16 blackhole;" in d.text(aggr)
        assert "10.78.0.250" not in d.text()
        assert subprocess.run(["bird", "-p", "-c", str(d.out / "bird.cfg")],
                              capture_output=True, check=False).returncode == 0


def test_local_workload_peers_from_pods(kube_apiserver: ControlPlane, objects: Objects,
                                        tmp_path: Path) -> None:
    cp = kube_apiserver
    tag = uuid.uuid4().hex[:6]
    node, ns = f"lw-{tag}", "confd-kdd"
    cp.ensure_namespace(ns)  # namespaces never finish deleting here: one, reused
    pods = f"/api/v1/namespaces/{ns}/pods"
    objects.node(node, "10.79.0.1/24")
    objects.calico("bgppeers", f"bird-{tag}", "BGPPeer", {
        "node": node, "localWorkloadSelector": "app == 'bird'", "asNumber": 65020})
    router = f"router-{tag}"
    for name, app, ip, where in ((router, "bird", "192.168.9.9", node),
                                 (f"web-{tag}", "web", "192.168.9.10", node),
                                 (f"elsewhere-{tag}", "bird", "192.168.9.11", f"{node}-2")):
        objects.create(pods, {"apiVersion": "v1", "kind": "Pod",
                              "metadata": {"name": name, "labels": {"app": app}},
                              "spec": {"nodeName": where,
                                       "containers": [{"name": "c", "image": "busybox"}]}})
        cp.request("PATCH", f"{pods}/{name}/status", {"status": {"podIP": ip}},
                   content_type="application/merge-patch+json")
    with confd(cp, node, tmp_path) as d:
        d.wait(lambda: "protocol bgp Local_Workload_192_168_9_9 " in d.text(),
               "the local workload peer")
        body = d.text().split("protocol bgp Local_Workload_192_168_9_9 ")[1].split("\n}")[0]
        assert "neighbor 192.168.9.9 as 65020;" in body
        assert "passive on;" in body
        assert "source address" not in body
        assert "192.168.9.10" not in d.text()  # not selected
        assert "192.168.9.11" not in d.text()  # selected, but on another node
        status, _ = cp.request("DELETE", f"{pods}/{router}?gracePeriodSeconds=0")
        assert status == 200
        d.wait(lambda: "Local_Workload" not in d.text(), "the peer to go with its pod")


def test_service_values_refuse_what_is_not_an_address() -> None:
    """Hostile text in a stored Service or EndpointSlice never becomes a route: only exact
    addresses are kept."""
    key = kservice.key(kservice.SERVICE, "default", "x")
    svc = kservice.decode_service(key, (
        '{"type":"LoadBalancer","clusterIP":"10.0.0.1; } protocol","externalIPs":'
        '["1.2.3.4","1.2.3.4/32","evil\\n"],"ingressIPs":["5.6.7.8","x"],'
        '"loadBalancerIP":"None","externalTrafficPolicy":"Local"}'))
    assert svc.cluster_ip is None and svc.load_balancer_ip is None
    assert [str(i) for i in svc.external_ips] == ["1.2.3.4"]
    assert [str(i) for i in svc.ingress_ips] == ["5.6.7.8"]
    sl = kservice.decode_slice(kservice.key(kservice.ENDPOINT_SLICE, "default", "x-1"), (
        '{"service":"x","addressType":"IPv4","endpoints":[{"addresses":["10.1.1.1",'
        '"10.1.1.1 blackhole; }"],"nodeName":"n","ready":false}]}'))
    assert [str(a) for a in sl.endpoints[0].addresses] == ["10.1.1.1"]
    assert not sl.endpoints[0].ready


def test_backend_reads_services(objects: Objects,
                                           kube_backend: KubernetesBackend) -> None:
    tag = uuid.uuid4().hex[:6]
    services = "/api/v1/namespaces/default/services"
    listing = kube_backend.list(kservice.SERVICES_PREFIX)
    stream = kube_backend.watch(kservice.SERVICES_PREFIX, listing.revision)
    try:
        objects.create(services, {"apiVersion": "v1", "kind": "Service",
                                  "metadata": {"name": f"db-{tag}"},
                                  "spec": {"clusterIP": "10.101.8.8", "ports": [{"port": 5}]}})
        key = kservice.key(kservice.SERVICE, "default", f"db-{tag}")
        got = kube_backend.get(key)
        assert kservice.decode_service(key, got.value).cluster_ip is not None
        for ev in stream:
            if ev.key == key:
                assert ev.value == got.value
                break
    finally:
        stream.close()
    with pytest.raises(NotFound):
        kube_backend.get(kservice.key(kservice.SERVICE, "default", f"none-{tag}"))
    with pytest.raises(Exception, match="not supported"):
        kube_backend.create(key, got.value)
