"""The kubelab processes: where the binaries are, spawning etcd and kube-apiserver as their own
process groups, waiting until they answer, stopping them (SIGTERM, SIGKILL after a grace),
and a second API server on the same etcd (`ExtraApiServer`). Moved out of apiserver.py,
which re-exports the public names."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from calico_node.kubelab.pki import _kubeconfig
from libcalico.errors import CalicoError

if TYPE_CHECKING:
    from calico_node.kubelab.apiserver import ControlPlane

KUBE_VERSION = "v1.37.2"
"""Must equal the k8s.io/kubernetes version in tools/kube/go.mod (a unit test checks)."""

SERVICE_CIDRS = "10.101.0.0/16,fd00:96::/112"
READY_BUDGET = 60.0
STOP_GRACE = 20.0


class KubeLabError(CalicoError):
    """The control plane could not be built, started, reached or stopped."""


def bin_dir() -> Path:
    """Where scripts/build-kube put the binaries ($CALICO_PY_KUBE_BIN overrides)."""
    override = os.environ.get("CALICO_PY_KUBE_BIN")
    if override:
        return Path(override)
    cache = Path(os.environ.get("CALICO_PY_CACHE", "/var/cache/calico-py"))
    return cache / "kube" / KUBE_VERSION / "bin"


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
