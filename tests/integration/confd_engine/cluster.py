"""Helpers for confd engine tests: Calico resources as etcd JSON, a temp confdir, a running
calico-confd process.

Resources are written as Calico's etcdv3 backend stores them (raw JSON at
/calico/resources/v3/projectcalico.org/...), through the project's EtcdBackend.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from libcalico.datastore import connect
from libcalico.datastore.api import Backend
from libcalico.datastore.config import DatastoreConfig
from libcalico.errors import NotFound
from libcalico.model import keys

REPO = Path(__file__).resolve().parents[3]
CONFD = [sys.executable, "-m", "confd"]
CONFIG_DIR = "etc/calico/confd/config"
FILES = ("bird.cfg", "bird6.cfg", "bird_aggr.cfg", "bird6_aggr.cfg", "bird_ipam.cfg",
         "bird6_ipam.cfg")


def backend(endpoint: str) -> Backend:
    return connect(DatastoreConfig.from_env({"ETCD_ENDPOINTS": endpoint}))


def _doc(kind: str, name: str, spec: Mapping[str, object],
         labels: Mapping[str, str] | None = None) -> str:
    meta: dict[str, object] = {"name": name, "uid": f"uid-{kind}-{name}",
                               "creationTimestamp": "2026-01-01T00:00:00Z"}
    if labels:
        meta["labels"] = dict(labels)
    return json.dumps({"kind": kind, "apiVersion": "projectcalico.org/v3", "metadata": meta,
                       "spec": dict(spec)}, separators=(",", ":"))


def put(be: Backend, kind: str, name: str, spec: Mapping[str, object],
        labels: Mapping[str, str] | None = None) -> None:
    be.apply(keys.resource_key(kind, name), _doc(kind, name, spec, labels))


def node(be: Backend, name: str, ipv4: str, *, ipv6: str | None = None, asn: int | None = None,
         rr_cluster_id: str | None = None, labels: Mapping[str, str] | None = None) -> None:
    bgp: dict[str, object] = {"ipv4Address": ipv4}
    if ipv6:
        bgp["ipv6Address"] = ipv6
    if asn is not None:
        bgp["asNumber"] = asn
    if rr_cluster_id:
        bgp["routeReflectorClusterID"] = rr_cluster_id
    put(be, "Node", name, {"bgp": bgp}, labels)


def delete(be: Backend, kind: str, name: str) -> None:
    with contextlib.suppress(NotFound):
        be.delete(keys.resource_key(kind, name))


def pool(be: Backend, name: str, cidr: str, **spec: object) -> None:
    put(be, "IPPool", name, {"cidr": cidr, "ipipMode": "Never", "vxlanMode": "Never",
                             "natOutgoing": True, "blockSize": 26, "nodeSelector": "all()",
                             **spec})


def affinity(be: Backend, host: str, cidr: str) -> None:
    import ipaddress
    be.apply(keys.affinity_key(host, ipaddress.ip_network(cidr)),
             json.dumps({"state": "confirmed", "deleted": False}))


def make_confdir(root: Path, *, reload_log: Path | None = None,
                 reload_cmds: Mapping[str, str] | None = None,
                 check_cmds: Mapping[str, str] | None = None,
                 copy_templates: bool = False) -> Path:
    """A confdir beside `root` made from the shipped one: same templates (symlinked, or copied
    when a test will break one), conf.d with reload_cmd replaced by one that appends the
    resource family (`bird` / `bird6`) to `reload_log`, or by `reload_cmds[family]`."""
    confdir = root / "confdir"
    (confdir / "conf.d").mkdir(parents=True)
    if copy_templates:
        shutil.copytree(REPO / "templates", confdir / "templates", symlinks=False)
    else:
        (confdir / "templates").symlink_to(REPO / "templates")
    for toml in sorted((REPO / "conf.d").glob("*.toml")):
        family = "bird6" if "bird6" in toml.name else "bird"
        lines = []
        for line in toml.read_text().splitlines():
            if line.startswith("reload_cmd") and (reload_log or reload_cmds):
                cmd = (reload_cmds or {}).get(family) or f"echo {family} >> {reload_log}"
                line = "reload_cmd = " + json.dumps(cmd)
            if line.startswith("check_cmd") and check_cmds and family in check_cmds:
                line = "check_cmd = " + json.dumps(check_cmds[family])
            lines.append(line)
        (confdir / "conf.d" / toml.name).write_text("\n".join(lines) + "\n")
    return confdir


def env(endpoint: str, nodename: str) -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("ETCD_", "CALICO_"))}
    e.update(ETCD_ENDPOINTS=endpoint, NODENAME=nodename, PYTHONPATH=str(REPO),
             GRPC_ENABLE_FORK_SUPPORT="false")
    return e


def run_confd(endpoint: str, nodename: str, *args: str,
              timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CONFD, *args], env=env(endpoint, nodename), capture_output=True,
                          text=True, timeout=timeout, cwd=REPO, check=False)


class Daemon:
    """calico-confd in watch mode; stopped (SIGTERM, then SIGKILL) by `stop()`."""

    def __init__(self, endpoint: str, nodename: str, *args: str, log_path: Path,
                 extra_env: Mapping[str, str] | None = None) -> None:
        self.log_path = log_path
        with open(log_path, "w") as log:
            self.proc = subprocess.Popen([*CONFD, *args],
                                         env={**env(endpoint, nodename), **(extra_env or {})},
                                         stdout=log, stderr=subprocess.STDOUT, cwd=REPO)

    def log(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@contextlib.contextmanager
def daemon(endpoint: str, nodename: str, *args: str, log_path: Path) -> Iterator[Daemon]:
    d = Daemon(endpoint, nodename, *args, log_path=log_path)
    try:
        yield d
    finally:
        d.stop()


def wait_for(what: str, pred: Callable[[], bool], timeout: float = 30.0,
             log: Callable[[], str] | None = None) -> None:
    """Poll `pred` until true (not a timed assertion: the bound only stops a hung test)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}" + (f"\n{log()}" if log else ""))


def text(path: Path) -> str:
    try:
        return path.read_text()
    except FileNotFoundError:
        return ""
