"""calico-ipam on the Kubernetes datastore (the real API server): the binary's ADD, DEL,
CHECK, GC and STATUS over the IPAM custom resources, the datastore named by netconf or by
the environment, an unreachable API server (code 11), and the requests an assignment makes
(counted on the client, so that a needless round trip shows)."""

from __future__ import annotations

import io
import ipaddress
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from calico_cni import context, ipam_plugin
from calico_node.kubelab.apiserver import ControlPlane, free_port
from libcalico.datastore import kubernetes_client
from libcalico.datastore.kubernetes import KubernetesBackend
from libcalico.errors import NotFound
from libcalico.ipam import block as blk
from libcalico.ipam.check import check
from libcalico.ipam.client import IPAMClient
from libcalico.model import keys
from tests.integration.ipam import seed

IPAM = str(Path(sys.executable).parent / "calico-ipam")


def run(command: str, conf: dict[str, Any], cid: str = "c1", args: str = "",
        env_extra: dict[str, str] | None = None) -> tuple[int, Any]:
    env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": "/var/run/netns/none", "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni",
           "CNI_ARGS": args, **(env_extra or {})}
    r = subprocess.run([IPAM], input=json.dumps(conf), env=env, capture_output=True, text=True,
                       timeout=60, check=False)
    return r.returncode, (json.loads(r.stdout) if r.stdout.strip() else None)


@pytest.fixture
def setup(kube_apiserver: ControlPlane, kube_backend: KubernetesBackend, tmp_path: Path
          ) -> Iterator[tuple[KubernetesBackend, dict[str, Any], str]]:
    cp, be = kube_apiserver, kube_backend
    tag = uuid.uuid4().hex[:6]
    node, octet = f"cniipam-{tag}", int(tag[:2], 16)
    cidr = f"10.{100 + octet % 50}.{octet}.0/24"
    assert cp.request("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                "metadata": {"name": node}})[0] == 201
    seed.put(be, "ClusterInformation", "default", {"datastoreReady": True})
    seed.put(be, "IPPool", f"cniipam-{tag}", {"cidr": cidr, "blockSize": 28})
    conf = {"cniVersion": "1.1.0", "name": "net", "type": "calico-ipam",
            "datastore_type": "kubernetes", "kubernetes": {"kubeconfig": str(cp.kubeconfig)},
            "nodename": node, "ipam_lock_file": str(tmp_path / "lock")}
    try:
        yield be, conf, cidr
    finally:
        IPAMClient(be).release_host_affinities(node)
        be.delete(keys.resource_key("IPPool", f"cniipam-{tag}"))
        cp.request("DELETE", f"/api/v1/nodes/{node}")


def test_add_check_gc_del_on_the_ipam_resources(setup: Any) -> None:
    be, conf, cidr = setup
    rc, res = run("ADD", conf, cid="Keep1", args="K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1")
    assert rc == 0, res
    addr = ipaddress.ip_interface(res["ips"][0]["address"])
    assert addr.network.prefixlen == 28 and addr.ip in ipaddress.ip_network(cidr)
    b = blk.decode(be.get(keys.block_key(addr.network)).value)
    attr = dict(b.in_use())[addr.ip]
    assert attr.handle_id == "net.Keep1"
    assert {k: v for k, v in (attr.secondary or {}).items() if k != "timestamp"} == {
        "node": conf["nodename"], "namespace": "ns1", "pod": "pod1"}
    # the handle is Calico's ipamhandles object, its name lower-cased
    assert be.get(keys.handle_key("net.Keep1"))
    assert run("CHECK", {**conf, "prevResult": res}, cid="Keep1") == (0, None)
    for cid in ("stale1", "stale2"):
        assert run("ADD", conf, cid=cid)[0] == 0
    gc = {**conf, "cni.dev/valid-attachments": [{"containerID": "Keep1", "ifname": "eth0"}]}
    assert run("GC", gc) == (0, None)
    for cid in ("stale1", "stale2"):
        with pytest.raises(NotFound):
            be.get(keys.handle_key(f"net.{cid}"))
    assert run("DEL", conf, cid="Keep1") == (0, None)
    assert run("DEL", conf, cid="Keep1") == (0, None), "DEL twice"
    with pytest.raises(NotFound):
        be.get(keys.handle_key("net.Keep1"))
    assert run("STATUS", conf) == (0, None)
    assert check(be).clean


def test_datastore_from_the_environment_and_unreachable(setup: Any, tmp_path: Path) -> None:
    be, conf, _ = setup
    plain = {k: v for k, v in conf.items() if k not in ("datastore_type", "kubernetes")}
    env = {"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": conf["kubernetes"]["kubeconfig"]}
    rc, res = run("ADD", plain, cid="envcid", env_extra=env)
    assert rc == 0, res
    dead = tmp_path / "dead"
    doc = yaml.safe_load(Path(conf["kubernetes"]["kubeconfig"]).read_text())
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    dead.write_text(json.dumps(doc))
    down = {**conf, "kubernetes": {"kubeconfig": str(dead)}}
    for command in ("ADD", "DEL", "STATUS"):
        rc, res = run(command, down, cid="envcid")
        assert rc == 1 and res["code"] in (11, 50), (command, res)
        assert "unavailable" in res["msg"] or "127.0.0.1" in res["msg"], res
    be.get(keys.handle_key("net.envcid"))  # nothing released while unreachable
    assert run("DEL", plain, cid="envcid", env_extra=env) == (0, None)
    rc, res = run("ADD", {**conf, "kubernetes": {"kubeconfig": str(tmp_path / "none")}})
    assert rc == 1 and res["code"] == 7, res
    assert check(be).clean


def test_requests_per_assignment(setup: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The calls one ADD and one DEL make once the host has its block (the plugin path,
    in-process, counted on the client)."""
    _, conf, _ = setup
    made: list[str] = []
    real = kubernetes_client.KubeClient.request

    def counting(self: Any, method: str, path: str, **kw: Any) -> Any:
        made.append(f"{method} {path}")
        return real(self, method, path, **kw)

    monkeypatch.setattr(kubernetes_client.KubeClient, "request", counting)

    def call(command: str, cid: str) -> int:
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": "/x",
               "CNI_IFNAME": "eth0", "CNI_PATH": "/usr/lib/cni", "CNI_ARGS": ""}
        return context.run(ipam_plugin.handle, env, json.dumps(conf).encode(), io.StringIO())

    assert call("ADD", "first") == 0  # claims the block
    made.clear()
    assert call("ADD", "second") == 0
    add = list(made)
    made.clear()
    assert call("DEL", "second") == 0
    delete = list(made)
    assert call("DEL", "first") == 0
    # config, node, reservations, pools, the host's affinities, the hinted block, the
    # handle (read, create) and the block write
    assert len(add) <= 9, add
    assert len(delete) <= 9, delete
