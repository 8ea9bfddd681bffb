"""A stream of IPAM ADDs (or DELs) run as its own process by the concurrency tests.

    python -m tests.integration.ipam.workers add|del ENDPOINT BACKEND NODE PREFIX COUNT

BACKEND is `grpc` (libcalico.datastore.etcd) or `gateway` (the CNI's JSON gateway), so both
clients race each other on the same keys, or `kdd` (ENDPOINT is then a kubeconfig: the
Kubernetes datastore in the CNI's patch mode, workloads are the pods `<PREFIX><i>` of
namespace KDD_NAMESPACE). Each ADD assigns one address with the CNI's handle and attributes
and records a WorkloadEndpoint for it, as the `calico` plugin does (on KDD: the pod-status
PATCH of its IP annotations); each DEL removes the endpoint (on KDD: blanks the annotations)
and releases the handle. Prints a JSON summary.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time

from libcalico.datastore.api import Backend
from libcalico.errors import NotFound
from libcalico.ipam.client import AutoAssignArgs, IPAMClient
from libcalico.ipam.gojson import dumps, go_time_string
from libcalico.model import keys

KDD_NAMESPACE = "ipam-parallel"


def connect(endpoint: str, kind: str) -> Backend:
    if kind == "kdd":
        from calico_cni import kdd, netconf

        conf = netconf.parse({"name": "net", "cniVersion": "1.0.0", "type": "calico",
                              "datastore_type": "kubernetes",
                              "kubernetes": {"kubeconfig": endpoint}}, "1.0.0")
        return kdd.connect(conf, {})
    if kind == "grpc":
        from libcalico.datastore.etcd import EtcdBackend

        return EtcdBackend([endpoint])
    from libcalico.datastore.gateway import GatewayBackend

    return GatewayBackend([endpoint])


def wep(node: str, cid: str, ip: str, kind: str = "") -> tuple[str, str]:
    from calico_cni.naming import wep_name

    orch, ns = ("k8s", KDD_NAMESPACE) if kind == "kdd" else ("cni", "default")
    name = wep_name(node, orch, cid, "eth0")
    spec: dict[str, object] = {"orchestrator": orch, "node": node, "containerID": cid}
    if orch == "k8s":
        spec["pod"] = cid
    spec.update(endpoint="eth0", ipNetworks=[ip])
    doc = {"kind": "WorkloadEndpoint", "apiVersion": keys.API_VERSION,
           "metadata": {"name": name, "namespace": ns}, "spec": spec}
    return keys.resource_key("WorkloadEndpoint", name, ns), dumps(doc)


def main(argv: list[str]) -> None:
    op, endpoint, kind, node, prefix, count = argv
    backend = connect(endpoint, kind)
    client = IPAMClient(backend)
    out: dict[str, object] = {"ips": [], "failures": []}
    for i in range(int(count)):
        cid = f"{prefix}{i:04d}"
        handle = f"net.{cid}"
        if op == "add":
            v4, _ = client.auto_assign(AutoAssignArgs(
                node, handle_id=handle,
                attrs={"node": node, "timestamp": go_time_string(time.time_ns())}))
            msg = v4.shortfall_message("IPv4")
            if msg:
                out["failures"].append(msg)  # type: ignore[attr-defined]
                continue
            ip = v4.ips[0]
            out["ips"].append(str(ip))  # type: ignore[attr-defined]
            key, value = wep(node, cid, f"{ip.ip}/32", kind)
            backend.create(key, value)
        else:
            key, _ = wep(node, cid, "", kind)
            with contextlib.suppress(NotFound):
                backend.delete(key)
            try:
                client.release_by_handle(handle)
            except NotFound:
                out["failures"].append(f"no handle {handle}")  # type: ignore[attr-defined]
    backend.close()
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
