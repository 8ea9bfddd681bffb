"""The `calico` plugin on the Kubernetes datastore only (the real API server, real
namespaces): the pod annotations it writes and clears, CHECK, a repeated ADD, the CNI
plugin's own ServiceAccount token in its kubeconfig (as calico-node writes it), a pod deleted
before DEL, an API server that cannot be reached (code 11, then the retry succeeds), an ADD
killed midway, and plain CNI workloads refused."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from calico_node.kubelab.apiserver import ROOT, ControlPlane, free_port
from libcalico.errors import NotFound
from libcalico.ipam.check import check
from libcalico.model import keys
from tests.fixtures.netns import NetnsFactory
from tests.netns.cni import cnirun
from tests.netns.cni.test_k8s import _del_links, _kdd_setup, add, delete, in_net

pytestmark = pytest.mark.netns
POD_IP = "cni.projectcalico.org/podIP"
POD_IPS = "cni.projectcalico.org/podIPs"
CONTAINER_ID = "cni.projectcalico.org/containerID"


@pytest.fixture
def kdd(kube_apiserver: ControlPlane, netns_factory: NetnsFactory, tmp_path: Path
        ) -> Iterator[dict[str, Any]]:
    veths: list[str] = []
    with _kdd_setup(kube_apiserver, tmp_path) as (api, be, conf):
        try:
            yield {"api": api, "be": be, "conf": conf, "ns": netns_factory, "veths": veths,
                   "tmp": tmp_path, "kdd": True, "cp": kube_apiserver}
        finally:
            _del_links(veths)


def _handle(be: Any, cid: str) -> Any:
    return be.get(keys.handle_key(f"k8s-pod-network.{cid}"))


def test_annotations_written_checked_and_cleared(kdd: dict[str, Any]) -> None:
    api, be = kdd["api"], kdd["be"]
    api.namespace("kdd-ann")
    api.pod("kdd-ann", "dual", {"app": "dual"})
    conf = {**kdd["conf"], "ipam": {"type": "calico-ipam", "assign_ipv6": "true"}}
    rc, res, netns = add(kdd, "kdd-ann", "dual", "kddann000001", conf)
    assert rc == 0, res
    v4, v6 = (i["address"] for i in res["ips"])
    assert in_net(v4, "10.190.0.0/24") and in_net(v6, "fd92::/120")
    ann = api.annotations("kdd-ann", "dual")
    assert (ann[POD_IP], ann[POD_IPS], ann[CONTAINER_ID]) == (v4, f"{v4},{v6}", "kddann000001")
    # no WorkloadEndpoint object: the endpoint is the pod's
    wep = json.loads(be.get(keys.resource_key(
        "WorkloadEndpoint", "k8s--node-k8s-dual-eth0", "kdd-ann")).value)
    assert wep["spec"]["ipNetworks"] == [v4, v6]
    assert wep["spec"]["containerID"] == "kddann000001"
    assert wep["metadata"]["labels"]["app"] == "dual"

    rc, out = cnirun.run("CHECK", {**conf, "prevResult": res}, cid="kddann000001", netns=netns,
                         args="K8S_POD_NAMESPACE=kdd-ann;K8S_POD_NAME=dual")
    assert (rc, out) == (0, None)
    # a repeated ADD for the same container keeps its addresses
    rc, again = cnirun.run("ADD", conf, cid="kddann000001", netns=netns,
                           args="K8S_POD_NAMESPACE=kdd-ann;K8S_POD_NAME=dual")
    assert rc == 0, again
    assert [i["address"] for i in again["ips"]] == [v4, v6]
    assert delete(kdd, "kdd-ann", "dual", "kddann000001", netns, conf) == 0
    ann = api.annotations("kdd-ann", "dual")
    assert (ann[POD_IP], ann[POD_IPS], ann[CONTAINER_ID]) == ("", "", "kddann000001")
    with pytest.raises(NotFound):
        _handle(be, "kddann000001")
    assert delete(kdd, "kdd-ann", "dual", "kddann000001", netns, conf) == 0, "DEL twice"
    assert check(be).clean


def test_with_the_cni_plugins_own_token(kdd: dict[str, Any]) -> None:
    """A kubeconfig as calico-node writes /etc/cni/net.d/calico-kubeconfig: server, CA data
    and a token of the calico-cni-plugin ServiceAccount (least privilege, RBAC on)."""
    cp: ControlPlane = kdd["cp"]
    cp.apply([d for d in yaml.safe_load_all(
        (ROOT / "manifests" / "rbac" / "calico-cni-plugin.yaml").read_text()) if d])
    kubeconfig = _kubeconfig_for(
        kdd, cp.service_account_token("kube-system", "calico-cni-plugin"), "calico-kubeconfig")
    conf = {**kdd["conf"], "kubernetes": {"kubeconfig": str(kubeconfig)}}
    kdd["api"].namespace("kdd-rbac")
    kdd["api"].pod("kdd-rbac", "web", {})
    rc, res, netns = add(kdd, "kdd-rbac", "web", "kddrbac00001", conf)
    assert rc == 0, res
    assert kdd["api"].annotations("kdd-rbac", "web")[POD_IP] == res["ips"][0]["address"]
    assert delete(kdd, "kdd-rbac", "web", "kddrbac00001", netns, conf) == 0
    assert check(kdd["be"]).clean


def _kubeconfig_for(kdd: dict[str, Any], token: str, name: str) -> Path:
    cp: ControlPlane = kdd["cp"]
    path: Path = kdd["tmp"] / name
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "local", "cluster": {
            "server": cp.server,
            "certificate-authority-data": base64.b64encode(cp.ca_file.read_bytes()).decode()}}],
        "users": [{"name": "calico", "user": {"token": token}}],
        "contexts": [{"name": "calico", "context": {"cluster": "local", "user": "calico"}}],
        "current-context": "calico"}))
    path.chmod(0o600)
    return path


def test_add_that_cannot_record_releases_everything(kdd: dict[str, Any]) -> None:
    """A token that may do everything but PATCH the pod's status: ADD fails at its last
    step, after IPAM and wiring, and leaves neither addresses nor interfaces."""
    cp: ControlPlane = kdd["cp"]
    docs = [d for d in yaml.safe_load_all(
        (ROOT / "manifests" / "rbac" / "calico-cni-plugin.yaml").read_text()) if d]
    for d in docs:
        d["metadata"]["name"] = "cni-nopatch"
        if d["kind"] == "ClusterRole":
            d["rules"] = [r for r in d["rules"] if "pods/status" not in r["resources"]]
        if d["kind"] == "ClusterRoleBinding":
            d["roleRef"]["name"] = "cni-nopatch"
            d["subjects"][0]["name"] = "cni-nopatch"
    cp.apply(docs)
    conf = {**kdd["conf"], "kubernetes": {"kubeconfig": str(_kubeconfig_for(
        kdd, cp.service_account_token("kube-system", "cni-nopatch"), "nopatch"))}}
    kdd["api"].namespace("kdd-nopatch")
    kdd["api"].pod("kdd-nopatch", "np", {})
    rc, res, _ = add(kdd, "kdd-nopatch", "np", "kddnopatch01", conf)
    assert rc == 1 and res["code"] == 999, res
    with pytest.raises(NotFound):
        _handle(kdd["be"], "kddnopatch01")
    veth = "cali" + hashlib.sha1(b"kdd-nopatch.np").hexdigest()[:11]
    links = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True,
                           check=True).stdout
    assert veth not in links
    assert check(kdd["be"]).clean


def test_pod_deleted_before_del(kdd: dict[str, Any]) -> None:
    api, be = kdd["api"], kdd["be"]
    api.namespace("kdd-gone")
    api.pod("kdd-gone", "short", {})
    rc, res, netns = add(kdd, "kdd-gone", "short", "kddgone00001")
    assert rc == 0, res
    api.delete_pod("kdd-gone", "short")
    subprocess.run(["ip", "netns", "del", os.path.basename(netns)], check=True, timeout=30)
    _handle(be, "kddgone00001")
    assert delete(kdd, "kdd-gone", "short", "kddgone00001", netns) == 0, \
        "the pod and its network namespace gone"
    with pytest.raises(NotFound):
        _handle(be, "kddgone00001")
    assert check(be).clean
    # ADD of a pod that is gone fails and holds nothing
    rc, res, _ = add(kdd, "kdd-gone", "short", "kddgone00002")
    assert rc == 1 and "not found" in res["msg"], res
    with pytest.raises(NotFound):
        _handle(be, "kddgone00002")


def test_api_server_unreachable_is_try_again_later(kdd: dict[str, Any]) -> None:
    api, be = kdd["api"], kdd["be"]
    cp: ControlPlane = kdd["cp"]
    dead = kdd["tmp"] / "dead-kubeconfig"
    doc = yaml.safe_load(cp.kubeconfig.read_text())
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dead.write_text(json.dumps(doc))
    down = {**kdd["conf"], "kubernetes": {"kubeconfig": str(dead)}}
    api.namespace("kdd-down")
    api.pod("kdd-down", "p", {})
    rc, res, _ = add(kdd, "kdd-down", "p", "kdddown00001", down)
    assert rc == 1 and res["code"] == 11, res
    rc, res, netns = add(kdd, "kdd-down", "p", "kdddown00002")
    assert rc == 0, res
    rc, out = cnirun.run("DEL", down, cid="kdddown00002", netns=netns,
                         args="K8S_POD_NAMESPACE=kdd-down;K8S_POD_NAME=p")
    assert rc == 1 and out["code"] == 11, out
    _handle(be, "kdddown00002")  # nothing released while the datastore is unreachable
    assert delete(kdd, "kdd-down", "p", "kdddown00002", netns) == 0, "the retry succeeds"
    assert delete(kdd, "kdd-down", "p", "kdddown00001", netns) == 0
    assert check(be).clean


def test_add_killed_midway_is_healed_by_del(kdd: dict[str, Any]) -> None:
    """SIGKILL of ADD at several points (before, during and after its IPAM writes and its
    pod PATCH); the kubelet's DEL for that sandbox leaves nothing behind, and a new sandbox
    of the same pod gets an address."""
    api, be = kdd["api"], kdd["be"]
    api.namespace("kdd-kill")
    api.pod("kdd-kill", "k", {})
    args = "K8S_POD_NAMESPACE=kdd-kill;K8S_POD_NAME=k"
    for n, delay in enumerate((0.05, 0.15, 0.25, 0.35, 0.5, 0.8)):
        cid = f"kddkill{n:05d}"
        netns = f"/var/run/netns/{kdd['ns'].new(cid[-12:])}"
        env = {**os.environ, "CNI_COMMAND": "ADD", "CNI_CONTAINERID": cid, "CNI_NETNS": netns,
               "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": args}
        p = subprocess.Popen([cnirun.CALICO], stdin=subprocess.PIPE,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        assert p.stdin is not None
        p.stdin.write(json.dumps(kdd["conf"]).encode())
        p.stdin.close()
        time.sleep(delay)  # only chooses where the kill lands; nothing is timed
        with contextlib.suppress(ProcessLookupError):
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        rc, out = cnirun.run("DEL", kdd["conf"], cid=cid, netns=netns, args=args)
        assert rc == 0, out
        with pytest.raises(NotFound):
            _handle(be, cid)
        report = check(be)
        assert report.clean, (delay, report.lines())
    rc, res, netns = add(kdd, "kdd-kill", "k", "kddkill99999")
    assert rc == 0, res
    assert delete(kdd, "kdd-kill", "k", "kddkill99999", netns) == 0
    assert check(be).clean


def test_through_the_resident_helper(kdd: dict[str, Any]) -> None:
    sock = kdd["tmp"] / "helper.sock"
    log = kdd["tmp"] / "helper.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "calico_cni.helper", "--socket",
                                 str(sock)], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    try:
        for _ in range(400):
            if sock.exists() or proc.poll() is not None:
                break
            time.sleep(0.05)
        assert sock.exists(), log.read_text()
        kdd["api"].namespace("kdd-helper")
        kdd["api"].pod("kdd-helper", "h", {})
        env = {"CALICO_CNI_HELPER_SOCKET": str(sock)}
        netns = f"/var/run/netns/{kdd['ns'].new('kddhelper')}"
        kdd["veths"].append("cali" + hashlib.sha1(b"kdd-helper.h").hexdigest()[:11])
        args = "K8S_POD_NAMESPACE=kdd-helper;K8S_POD_NAME=h"
        rc, res = cnirun.run("ADD", kdd["conf"], cid="kddhelper001", netns=netns, args=args,
                             extra_env=env)
        assert rc == 0, res
        assert kdd["api"].annotations("kdd-helper", "h")[POD_IP] == res["ips"][0]["address"]
        assert cnirun.run("DEL", kdd["conf"], cid="kddhelper001", netns=netns, args=args,
                          extra_env=env) == (0, None)
        assert "served calico ADD rc=0" in log.read_text()
        assert check(kdd["be"]).clean
    finally:
        proc.terminate()
        proc.wait(10)


def test_plain_cni_workload_refused(kdd: dict[str, Any]) -> None:
    netns = f"/var/run/netns/{kdd['ns'].new('plaincni')}"
    rc, out = cnirun.run("ADD", kdd["conf"], cid="kddplain0001", netns=netns)
    assert rc == 1 and out["code"] == 7 and "pods only" in out["msg"], out
    with pytest.raises(NotFound):
        _handle(kdd["be"], "kddplain0001")
