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
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from libcalico import proc
from libcalico.errors import CalicoError

KUBE_VERSION = "v1.37.2"
"""Must equal the k8s.io/kubernetes version in tools/kube/go.mod (a unit test checks)."""

ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = ROOT / "manifests" / "crds"
SERVICE_CIDRS = "10.101.0.0/16,fd00:96::/112"
READY_BUDGET = 60.0
STOP_GRACE = 20.0
ADMIN_USER = "calico-py-admin"


class KubeLabError(CalicoError):
    """The control plane could not be built, started, reached or stopped."""


def bin_dir() -> Path:
    """Where scripts/build-kube put the binaries ($CALICO_PY_KUBE_BIN overrides)."""
    override = os.environ.get("CALICO_PY_KUBE_BIN")
    if override:
        return Path(override)
    cache = Path(os.environ.get("CALICO_PY_CACHE", "/var/cache/calico-py"))
    return cache / "kube" / KUBE_VERSION / "bin"


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


def _request(server: str, token: str, ctx: ssl.SSLContext, method: str, path: str,
             body: Any, content_type: str, timeout: float) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(server + path, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": content_type,
        "Accept": "application/json"})
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=timeout) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------------------------------
# Files


def _openssl(d: Path, *args: str) -> None:
    proc.run(["openssl", *args], timeout=30)


def _pki(d: Path) -> None:
    """CA, serving certificate (127.0.0.1, localhost and the in-cluster names), SA key."""
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl(d, "req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"),
             "-days", "7", "-subj", "/CN=calico-py-kubelab-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    ext = d / "apiserver.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.101.0.1,DNS:localhost,DNS:kubernetes,"
        "DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\n"
        "extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    _openssl(d, "req", *ec, "-keyout", str(d / "apiserver.key"), "-out", str(d / "apiserver.csr"),
             "-subj", "/CN=kube-apiserver")
    _openssl(d, "x509", "-req", "-in", str(d / "apiserver.csr"), "-CA", str(d / "ca.crt"),
             "-CAkey", str(d / "ca.key"), "-CAcreateserial", "-out", str(d / "apiserver.crt"),
             "-days", "7", "-extfile", str(ext))
    _openssl(d, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
             "-out", str(d / "sa.key"))
    _openssl(d, "pkey", "-in", str(d / "sa.key"), "-pubout", "-out", str(d / "sa.pub"))
    for f in ("ca.key", "apiserver.key", "sa.key"):
        (d / f).chmod(0o600)


def _kubeconfig(server: str, ca: Path, token: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1", "kind": "Config",
        "clusters": [{"name": "kubelab", "cluster": {"server": server,
                                                     "certificate-authority": str(ca)}}],
        "users": [{"name": ADMIN_USER, "user": {"token": token}}],
        "contexts": [{"name": "kubelab", "context": {"cluster": "kubelab", "user": ADMIN_USER}}],
        "current-context": "kubelab",
    }


def _write_state(cp: ControlPlane) -> None:
    tmp = cp.dir / "state.json.tmp"
    tmp.write_text(json.dumps(cp.state(), indent=1))
    tmp.replace(cp.dir / "state.json")


# ---------------------------------------------------------------------------------------------
# Processes


def _spawn(d: Path, name: str, argv: list[str]) -> int:
    with open(d / f"{name}.log", "ab") as log:  # name: the log's
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True, cwd=d)
    return p.pid


def _alive(pid: int, name: str) -> bool:
    """True while `pid` is a live (non-zombie) process running the binary `name`."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and Path(exe).name == name


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _stop_pid(pid: int, name: str, grace: float = STOP_GRACE) -> None:
    if not _alive(pid, name):
        _reap(pid)
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        _reap(pid)
        if not _alive(pid, name):
            _reap(pid)
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    for _ in range(50):
        _reap(pid)
        if not _alive(pid, name):
            _reap(pid)
            return
        time.sleep(0.1)
    raise KubeLabError(f"{name} (pid {pid}) did not stop")


def _start_etcd(d: Path, port: int) -> int:
    url = f"http://127.0.0.1:{port}"
    return _spawn(d, "etcd", [
        str(bin_dir() / "etcd"), "--data-dir", str(d / "etcd-data"),
        "--listen-client-urls", url, "--advertise-client-urls", url,
        # One member: the peer URL is never dialled; port 0 keeps 2380 free.
        "--listen-peer-urls", "http://127.0.0.1:0",
        "--unsafe-no-fsync", "--log-level", "warn", "--quota-backend-bytes", str(2 << 30),
    ])


def _start_apiserver(d: Path, port: int, etcd: str, log: str = "kube-apiserver") -> int:
    return _spawn(d, log, [
        str(bin_dir() / "kube-apiserver"),
        "--etcd-servers", etcd,
        "--bind-address", "127.0.0.1", "--secure-port", str(port),
        "--cert-dir", str(d / "certs"),
        "--tls-cert-file", str(d / "apiserver.crt"),
        "--tls-private-key-file", str(d / "apiserver.key"),
        "--client-ca-file", str(d / "ca.crt"),
        "--token-auth-file", str(d / "tokens.csv"),
        "--service-account-key-file", str(d / "sa.pub"),
        "--service-account-signing-key-file", str(d / "sa.key"),
        "--service-account-issuer", f"https://127.0.0.1:{port}/",
        "--service-cluster-ip-range", SERVICE_CIDRS,
        "--authorization-mode", "RBAC",
        "--allow-privileged=true",
        "--endpoint-reconciler-type", "none",
        "--enable-priority-and-fairness=false",
        "--max-requests-inflight", "0", "--max-mutating-requests-inflight", "0",
        "--profiling=false",
    ])


def _wait(what: str, pid: int, name: str, log: Path, deadline: float, ok: Any) -> None:
    last = ""
    while time.monotonic() < deadline:
        if not _alive(pid, name):
            _reap(pid)
            raise KubeLabError(f"{what} exited: {_tail(log)}")
        try:
            if ok():
                return
        except (OSError, ValueError) as exc:
            last = str(exc)
        time.sleep(0.2)
    raise KubeLabError(f"{what} not ready after {READY_BUDGET:.0f} s ({last}): {_tail(log)}")


def _tail(log: Path) -> str:
    try:
        return log.read_text(errors="replace")[-3000:]
    except OSError:
        return "(no log)"


def _etcd_healthy(endpoint: str) -> bool:
    with urllib.request.urlopen(endpoint + "/health", timeout=2) as resp:
        return bool(resp.status == 200 and json.loads(resp.read()).get("health") == "true")


def _wait_ready(cp: ControlPlane, pid: int, deadline: float | None = None,
                server: str | None = None, log: str = "kube-apiserver") -> None:
    deadline = deadline or time.monotonic() + READY_BUDGET
    url = server or cp.server

    def ready() -> bool:
        status, body = _request(url, cp.token, cp.ssl_context(), "GET", "/readyz", None,
                                "application/json", 5)
        return status == 200 and body == "ok"

    _wait("kube-apiserver", pid, "kube-apiserver", cp.dir / f"{log}.log", deadline, ready)


class ExtraApiServer:
    """A second kube-apiserver on the same etcd (as in an HA control plane), for tests that
    stop and start one API server while the other keeps serving. Its pid is recorded in the
    control plane's directory, so `down` stops it too."""

    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        self.port = free_port()
        self.server = f"https://127.0.0.1:{self.port}"
        self.pid = 0
        self.kubeconfig = cp.dir / f"kubeconfig-{self.port}"
        self.kubeconfig.write_text(yaml.safe_dump(_kubeconfig(self.server, cp.ca_file,
                                                              cp.token)))
        self.kubeconfig.chmod(0o600)

    def start(self) -> None:
        log = f"kube-apiserver-{self.port}"
        self.pid = _start_apiserver(self.cp.dir, self.port, self.cp.etcd_endpoint, log)
        with open(self.cp.dir / "extra-pids", "a") as f:
            f.write(f"{self.pid}\n")
        _wait_ready(self.cp, self.pid, server=self.server, log=log)

    def stop(self, grace: float = 2.0) -> None:
        """SIGTERM, SIGKILL after `grace` seconds (a server with open watches drains them for
        a minute: a short grace makes this the crash of one HA member)."""
        if self.pid:
            _stop_pid(self.pid, "kube-apiserver", grace)
            self.pid = 0


# ---------------------------------------------------------------------------------------------
# CRDs


def crd_documents() -> list[dict[str, Any]]:
    """The project's CRDs (manifests/crds/*.yaml), in file order."""
    docs: list[dict[str, Any]] = []
    for f in sorted(CRD_DIR.glob("*.yaml")):
        docs.extend(d for d in yaml.safe_load_all(f.read_text()) if d)
    return docs


def install_crds(cp: ControlPlane, deadline: float | None = None) -> None:
    """Create every CRD (an existing one is replaced) and wait until each is Established and
    its collection answers."""
    deadline = deadline or time.monotonic() + READY_BUDGET
    base = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions"
    docs = crd_documents()
    for doc in docs:
        status, reply = cp.request("POST", base, doc)
        if status == 409:
            name = doc["metadata"]["name"]
            _, cur = cp.request("GET", f"{base}/{name}")
            doc = {**doc, "metadata": {**doc["metadata"],
                                       "resourceVersion": cur["metadata"]["resourceVersion"]}}
            status, reply = cp.request("PUT", f"{base}/{name}", doc)
        if status not in (200, 201):
            raise KubeLabError(f"CRD {doc['metadata']['name']}: {status} {reply}")
    for doc in docs:
        spec = doc["spec"]
        name = doc["metadata"]["name"]
        group_version = f"{spec['group']}/{spec['versions'][0]['name']}"
        collection = f"/apis/{group_version}/{spec['names']['plural']}"
        while True:
            _, cur = cp.request("GET", f"{base}/{name}")
            conds = {c["type"]: c["status"] for c in cur.get("status", {}).get("conditions", [])}
            if conds.get("Established") == "True" and cp.request("GET", collection)[0] == 200:
                break
            if time.monotonic() > deadline:
                raise KubeLabError(f"CRD {name} not served after {READY_BUDGET:.0f} s: {conds}")
            time.sleep(0.1)


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
