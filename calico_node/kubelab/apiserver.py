"""A real Kubernetes API server on loopback (etcd + kube-apiserver, no kubelet, scheduler or
controller-manager), for tests and the demo: `up(dir)` and `down(dir)`.

`up` generates into `dir` a CA and serving certificate, a service-account signing key, a
static admin token in `system:masters` and an admin kubeconfig (openssl CLI), starts etcd and
kube-apiserver (built by scripts/build-kube, cached outside the checkout) on free loopback
ports as their own process groups, waits for `/readyz`, installs the project's CRDs from
manifests/crds/ and waits until they are served. The processes outlive the caller (the
`scripts/kube-apiserver up` command exits at once); `down(dir)` stops them (SIGTERM, SIGKILL
after 20 s) and removes `dir`. Everything `down` needs is in `dir/state.json`.

The ServiceAccount admission plugin stays on, as in a real cluster (pods get
`serviceAccountName: default`), so `up` creates the `default` ServiceAccount in the namespaces
the API server makes; a test that makes a namespace makes its `default` ServiceAccount too
(`ensure_namespace`).

The parts: `pki` (certificates, kubeconfig), `process` (binaries, start, wait, stop, a second
API server), `crds` (CRD install and readiness); this module holds the control plane's state
and `up`/`down`, and re-exports the public names of the others.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import ssl
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from calico_node.kubelab.crds import CRD_DIR, ROOT, crd_documents, install_crds
from calico_node.kubelab.pki import ADMIN_USER, _kubeconfig, _pki
from calico_node.kubelab.process import (
    KUBE_VERSION,
    READY_BUDGET,
    SERVICE_CIDRS,
    STOP_GRACE,
    ExtraApiServer,
    KubeLabError,
    _etcd_healthy,
    _request,
    _start_apiserver,
    _start_etcd,
    _stop_pid,
    _wait,
    _wait_ready,
    bin_dir,
    free_port,
)

__all__ = [
    "ADMIN_USER", "CRD_DIR", "KUBE_VERSION", "READY_BUDGET", "ROOT", "SERVICE_CIDRS",
    "STOP_GRACE", "ControlPlane", "ExtraApiServer", "KubeLabError", "bin_dir", "crd_documents",
    "down", "free_port", "install_crds", "running", "stop", "up",
]


@dataclass(frozen=True, slots=True)
class ControlPlane:
    dir: Path
    server: str
    """https://127.0.0.1:PORT"""
    etcd_endpoint: str
    kubeconfig: Path
    ca_file: Path
    token: str
    """The admin bearer token (system:masters)."""
    etcd_pid: int
    apiserver_pid: int

    def state(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in d.items()}

    @classmethod
    def load(cls, dir: Path) -> ControlPlane:
        try:
            d = json.loads((dir / "state.json").read_text())
        except (OSError, ValueError) as exc:
            raise KubeLabError(f"{dir}: no control plane state ({exc})") from exc
        return cls(dir=Path(d["dir"]), server=d["server"], etcd_endpoint=d["etcd_endpoint"],
                   kubeconfig=Path(d["kubeconfig"]), ca_file=Path(d["ca_file"]),
                   token=d["token"], etcd_pid=int(d["etcd_pid"]),
                   apiserver_pid=int(d["apiserver_pid"]))

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def request(self, method: str, path: str, body: Any = None,
                content_type: str = "application/json", timeout: float = 10.0
                ) -> tuple[int, Any]:
        """One admin request; returns (status, decoded JSON or text)."""
        return _request(self.server, self.token, self.ssl_context(), method, path, body,
                        content_type, timeout)

    def ensure_namespace(self, name: str) -> None:
        """Namespace `name` and its `default` ServiceAccount (no controller makes it here)."""
        for path, obj in (
            ("/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                    "metadata": {"name": name}}),
            (f"/api/v1/namespaces/{name}/serviceaccounts",
             {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}),
        ):
            status, reply = self.request("POST", path, obj)
            if status not in (201, 409):
                raise KubeLabError(f"POST {path}: {status} {reply}")

    def extra_apiserver(self) -> ExtraApiServer:
        """A second API server on this etcd, started; the caller stops it."""
        extra = ExtraApiServer(self)
        extra.start()
        return extra

    def apply(self, docs: list[dict[str, Any]]) -> None:
        """Create each object, or replace it when it exists (the kinds in `_PATHS`)."""
        for doc in docs:
            ns = doc["metadata"].get("namespace", "default")
            try:
                coll = _PATHS[doc["kind"]].format(ns=ns)
            except KeyError:
                raise KubeLabError(f"cannot apply kind {doc['kind']!r}") from None
            status, reply = self.request("POST", coll, doc)
            if status == 409:
                path = f"{coll}/{doc['metadata']['name']}"
                _, cur = self.request("GET", path)
                doc = {**doc, "metadata": {**doc["metadata"], "resourceVersion":
                                           cur["metadata"]["resourceVersion"]}}
                status, reply = self.request("PUT", path, doc)
            if status not in (200, 201):
                raise KubeLabError(f"{doc['kind']} {doc['metadata']['name']}: {status} {reply}")

    def service_account_token(self, namespace: str, service_account: str,
                              seconds: int = 3600) -> str:
        """A real token of the ServiceAccount (TokenRequest), as a pod would have."""
        status, reply = self.request(
            "POST", f"/api/v1/namespaces/{namespace}/serviceaccounts/{service_account}/token",
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": seconds}})
        if status != 201:
            raise KubeLabError(f"token for {namespace}/{service_account}: {status} {reply}")
        return str(reply["status"]["token"])

    def restart_apiserver(self) -> ControlPlane:
        """Stop kube-apiserver and start it again on the same port and etcd (its watch cache
        starts afresh, so older resourceVersions answer 410). Returns the new state."""
        _stop_pid(self.apiserver_pid, "kube-apiserver")
        port = int(self.server.rsplit(":", 1)[1])
        pid = _start_apiserver(self.dir, port, self.etcd_endpoint)
        new = ControlPlane(self.dir, self.server, self.etcd_endpoint, self.kubeconfig,
                           self.ca_file, self.token, self.etcd_pid, pid)
        _write_state(new)
        _wait_ready(new, pid)
        return new


_RBAC = "/apis/rbac.authorization.k8s.io/v1"
_PATHS = {
    "Namespace": "/api/v1/namespaces",
    "ServiceAccount": "/api/v1/namespaces/{ns}/serviceaccounts",
    "Secret": "/api/v1/namespaces/{ns}/secrets",
    "ClusterRole": f"{_RBAC}/clusterroles",
    "ClusterRoleBinding": f"{_RBAC}/clusterrolebindings",
    "Role": _RBAC + "/namespaces/{ns}/roles",
    "RoleBinding": _RBAC + "/namespaces/{ns}/rolebindings",
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
}
"""Collections `ControlPlane.apply` knows."""


def _write_state(cp: ControlPlane) -> None:
    tmp = cp.dir / "state.json.tmp"
    tmp.write_text(json.dumps(cp.state(), indent=1))
    tmp.replace(cp.dir / "state.json")


# ---------------------------------------------------------------------------------------------
# up / down


def up(dir: Path) -> ControlPlane:
    """Start a control plane with its files in `dir` (created; must be empty if it exists)."""
    for b in ("etcd", "kube-apiserver"):
        if not (bin_dir() / b).is_file():
            raise KubeLabError(f"{bin_dir() / b} is missing: run scripts/build-kube first")
    dir = dir.resolve()
    if dir.exists() and any(dir.iterdir()):
        raise KubeLabError(f"{dir} is not empty")
    dir.mkdir(parents=True, exist_ok=True)
    (dir / "certs").mkdir()
    _pki(dir)
    token = secrets.token_hex(24)
    (dir / "tokens.csv").write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
    (dir / "tokens.csv").chmod(0o600)
    etcd_port, api_port = free_port(), free_port()
    server = f"https://127.0.0.1:{api_port}"
    etcd_endpoint = f"http://127.0.0.1:{etcd_port}"
    deadline = time.monotonic() + READY_BUDGET
    etcd_pid = _start_etcd(dir, etcd_port)
    cp = ControlPlane(dir, server, etcd_endpoint, dir / "kubeconfig", dir / "ca.crt", token,
                      etcd_pid, 0)
    _write_state(cp)
    try:
        _wait("etcd", etcd_pid, "etcd", dir / "etcd.log", deadline,
              lambda: _etcd_healthy(etcd_endpoint))
        api_pid = _start_apiserver(dir, api_port, etcd_endpoint)
        cp = ControlPlane(dir, server, etcd_endpoint, dir / "kubeconfig", dir / "ca.crt", token,
                          etcd_pid, api_pid)
        _write_state(cp)
        _wait_ready(cp, api_pid, deadline)
        install_crds(cp, deadline)
        for ns in ("default", "kube-system"):
            cp.ensure_namespace(ns)
        kc = dir / "kubeconfig"
        kc.write_text(yaml.safe_dump(_kubeconfig(server, dir / "ca.crt", token)))
        kc.chmod(0o600)
    except BaseException:
        stop(cp)
        raise
    return cp


def stop(cp: ControlPlane) -> None:
    """Stop both processes (kube-apiserver first), keeping the files."""
    with contextlib.suppress(OSError, ValueError):
        for line in (cp.dir / "extra-pids").read_text().split():
            _stop_pid(int(line), "kube-apiserver")
    if cp.apiserver_pid:
        _stop_pid(cp.apiserver_pid, "kube-apiserver")
    _stop_pid(cp.etcd_pid, "etcd")


def down(dir: Path) -> None:
    """Stop the control plane whose files are in `dir`, then remove `dir`."""
    import shutil

    dir = dir.resolve()
    if not (dir / "state.json").exists():
        if dir.exists():
            raise KubeLabError(f"{dir} holds no control plane (no state.json); not removed")
        return
    stop(ControlPlane.load(dir))
    shutil.rmtree(dir)


@contextlib.contextmanager
def running(dir: Path) -> Iterator[ControlPlane]:
    """`up(dir)` for the duration of a with-block, `down(dir)` after it even on failure."""
    try:
        cp = up(dir)
    except BaseException:
        with contextlib.suppress(Exception):
            down(dir)
        raise
    try:
        yield cp
    finally:
        down(dir)
