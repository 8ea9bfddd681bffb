"""The demo on the Kubernetes datastore: the local API server (`calico_node.kubelab`) and what
a Kubernetes cluster's own components would do around Calico — the kubelet registering its
Node, the scheduler binding Pods to nodes, the kubelet reporting the sandbox's address.

The API server listens on the root namespace's loopback. The nodes reach it as pods reach
`kubernetes.default`: at the service address 10.101.0.1:443 (in the serving certificate),
which a relay in the underlay namespace forwards to the real port, the same way the etcd
demo relays etcd. The nodes' kubeconfigs name that address, each with the token of the
component's own ServiceAccount as a Calico install grants it (manifests/rbac/: calico-node
for startup, confd and Felix; calico-cni-plugin for the CNI plugin); the admin kubeconfig
(127.0.0.1) is the demo's own, for what an operator, the kubelet and the scheduler write.
"""

from __future__ import annotations

import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from calico_node.demo import plan
from calico_node.demo.members import ClusterError
from calico_node.kubelab import apiserver
from libcalico import proc

NAMESPACE = "demo"
"""The Kubernetes namespace of the demo's pods (their profile: kns.demo, allow all)."""

BUILD_SCRIPT = apiserver.ROOT / "scripts" / "build-kube"
RBAC = (apiserver.ROOT / "manifests" / "rbac" / "calico-node.yaml",
        apiserver.ROOT / "manifests" / "rbac" / "calico-cni-plugin.yaml")
SECRETS_GRANT: list[dict[str, Any]] = [
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
     "metadata": {"name": "calico-node-secrets", "namespace": "kube-system"},
     "rules": [{"apiGroups": [""], "resources": ["secrets"],
                "verbs": ["get", "list", "watch"]}]},
    {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
     "metadata": {"name": "calico-node-secrets", "namespace": "kube-system"},
     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                 "name": "calico-node-secrets"},
     "subjects": [{"kind": "ServiceAccount", "name": "calico-node",
                   "namespace": "kube-system"}]},
]
"""More than Calico grants calico-node: confd here lists and watches every Secret of its
namespace for BGP passwords (docs/datastore.md, Secrets) and does not get in sync without it,
where Calico's watches only the referenced ones (a Role with resourceNames then suffices)."""
TOKEN_SECONDS = 7 * 24 * 3600
"""Long enough for any `--keep` session (nothing here refreshes the tokens)."""


def built() -> bool:
    return all((apiserver.bin_dir() / b).is_file() for b in ("etcd", "kube-apiserver"))


def build() -> None:
    """scripts/build-kube (the first run: about 5 minutes here; later runs reuse it)."""
    r = proc.run(["bash", str(BUILD_SCRIPT)], timeout=3600, check=False)
    if r.returncode != 0 or not built():
        raise ClusterError(f"scripts/build-kube failed (rc={r.returncode}): "
                           f"{r.stderr.strip()[-2000:]}")


@dataclass(frozen=True, slots=True)
class Kube:
    """The running API server as the demo uses it."""

    cp: apiserver.ControlPlane
    node_kubeconfig: Path
    """What calico-node uses on every node: https://10.101.0.1:443, calico-node's token."""
    cni_kubeconfig: Path
    """The CNI plugin's (as install-cni writes calico-kubeconfig): calico-cni-plugin's."""

    @property
    def port(self) -> int:
        return int(self.cp.server.rsplit(":", 1)[1])

    def _ok(self, method: str, path: str, body: Any = None,
            content_type: str = "application/json", ok: tuple[int, ...] = (200, 201)) -> Any:
        status, reply = self.cp.request(method, path, body, content_type)
        if status not in ok:
            raise ClusterError(f"{method} {path}: {status} {reply}")
        return reply

    # ---- what a kubelet does ---------------------------------------------------------------
    def register_node(self, name: str, address: str) -> None:
        """The Node as a kubelet registers it (labels, InternalIP and Hostname addresses)."""
        self._ok("POST", "/api/v1/nodes", {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64"}},
            "status": {"addresses": [{"type": "InternalIP", "address": address},
                                     {"type": "Hostname", "address": name}]}})

    def create_pod(self, name: str, node: str) -> str:
        """A Pod already bound to `node` (as the scheduler leaves it); returns its UID."""
        reply = self._ok("POST", f"/api/v1/namespaces/{NAMESPACE}/pods", {
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": "demo", "node": node}},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                     "containers": [{"name": "pause", "image": "registry.k8s.io/pause:3.10"}]}})
        return str(reply["metadata"]["uid"])

    def report_running(self, name: str, host_ip: str, pod_ip: str) -> None:
        """The kubelet's status update once the sandbox has its address."""
        self._ok("PATCH", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}/status",
                 {"status": {"phase": "Running", "hostIP": host_ip, "podIP": pod_ip,
                             "podIPs": [{"ip": pod_ip}]}},
                 content_type="application/merge-patch+json")

    def delete_pod(self, name: str) -> None:
        self._ok("DELETE", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}?gracePeriodSeconds=0",
                 ok=(200, 202, 404))

    def pod_annotations(self, name: str) -> dict[str, str]:
        reply = self._ok("GET", f"/api/v1/namespaces/{NAMESPACE}/pods/{name}")
        return dict(reply["metadata"].get("annotations") or {})


def start(workdir: Path) -> Kube:
    """Start the API server with its files in `workdir/kube`; the caller runs `stop` (also
    when this raises). The nodes' kubeconfig goes beside it."""
    if not built():
        raise ClusterError(f"{apiserver.bin_dir()} has no kube-apiserver: run "
                           "scripts/build-kube (the demo builds it when run as "
                           "scripts/demo)")
    # Ctrl-C is held back while the processes start, so that every pid is in state.json
    # before the interrupt unwinds into `stop`.
    held = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        cp = apiserver.up(workdir / "kube")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    cp.ensure_namespace(NAMESPACE)
    cp.apply([d for f in RBAC for d in yaml.safe_load_all(f.read_text()) if d]
             + SECRETS_GRANT)
    made = []
    for sa in ("calico-node", "calico-cni-plugin"):
        kc = workdir / f"{sa}.kubeconfig"
        token = cp.service_account_token("kube-system", sa, TOKEN_SECONDS)
        kc.write_text(yaml.safe_dump(node_kubeconfig(cp, sa, token)))
        kc.chmod(0o600)
        made.append(kc)
    return Kube(cp, made[0], made[1])


def stop(workdir: Path) -> None:
    """Stop the API server started in `workdir` (if any) and remove its directory."""
    d = workdir / "kube"
    if (d / "state.json").exists():
        apiserver.down(d)
    else:  # interrupted before anything started
        shutil.rmtree(d, ignore_errors=True)


def node_kubeconfig(cp: apiserver.ControlPlane, user: str, token: str) -> dict[str, Any]:
    """A kubeconfig for the nodes: the API server at the service address, the lab's CA."""
    server = f"https://{plan.API_IP}:{plan.API_PORT}"
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "demo", "cluster": {
            "server": server, "certificate-authority": str(cp.ca_file)}}],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": "demo", "context": {"cluster": "demo", "user": user}}],
        "current-context": "demo",
    }


def cni_args(pod: str, container_id: str) -> str:
    """CNI_ARGS as the container runtime passes them for a Kubernetes pod."""
    return (f"IgnoreUnknown=1;K8S_POD_NAMESPACE={NAMESPACE};K8S_POD_NAME={pod};"
            f"K8S_POD_INFRA_CONTAINER_ID={container_id}")


def netconf(node: str, kubeconfig: Path, mtu: int) -> dict[str, Any]:
    """The network configuration a Calico install writes on a Kubernetes node."""
    return {"cniVersion": "0.3.1", "name": "k8s-pod-network", "type": "calico",
            "datastore_type": "kubernetes", "nodename": node, "log_level": "warning",
            "mtu": mtu, "ipam": {"type": "calico-ipam"}, "policy": {"type": "k8s"},
            "kubernetes": {"kubeconfig": str(kubeconfig)}}
