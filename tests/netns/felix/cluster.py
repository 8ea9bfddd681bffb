"""A small Calico "cluster" in network namespaces for Felix's live tests.

Topology (all namespaces made through netns_factory, removed at teardown):

    root ns: veth <rootdev> 198.19.N.1/24 ──┐            etcd listens on 198.19.N.1
    underlay ns: bridge br0 ────────────────┼── eth0 of every host ns (198.19.N.10+i/24)
                                            └── eth0 of the "outside" ns (198.19.N.200/24)
    host ns i: calico-felix runs here (`ip netns exec`), default route via 198.19.N.200;
               pods are veths cali<11 hex> into their own namespaces, /32 + 169.254.1.1.

Felix runs as a real subprocess inside each host namespace, so every kernel object it writes
(routes, neighbours, FDB, sysctls, iptables, ipsets, vxlan.calico) is in that namespace only.

The datastore is etcd (`Cluster(netns, etcd_factory)`) or the session's Kubernetes API server
(`Cluster(netns, kube=control_plane)`, see `stores.py`): the same calls make Nodes, blocks and
endpoints on either, so one live test runs on both. On Kubernetes each host namespace reaches
the API server at its kubeconfig's address through a `KubeRelay`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from calico_node.kubelab.apiserver import ControlPlane
from libcalico.datastore.kubernetes_pod import veth_name, wep_name
from libcalico.model import keys
from tests.fixtures.netns import NetnsFactory, ns_exec
from tests.netns.felix.kuberelay import KubeRelay
from tests.netns.felix.stores import EtcdStore, KubeStore, Store

REPO = Path(__file__).resolve().parents[3]
FELIX = [sys.executable, "-m", "felix"]


def wait_for(pred: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Host:
    name: str
    ns: str
    ip: ipaddress.IPv4Interface
    block: ipaddress.IPv4Network
    tunnel: ipaddress.IPv4Address
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)
    """The extra environment Felix was last started with (`restart_felix` reuses it)."""

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""


@dataclass
class Pod:
    name: str
    ns: str
    host: Host
    ip: ipaddress.IPv4Address
    iface: str
    mac: str
    ips: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    profiles: tuple[str, ...] = ("kns.default",)


class Cluster:
    def __init__(self, netns: NetnsFactory, etcd_factory: object = None, *,
                 kube: ControlPlane | None = None) -> None:
        self.netns = netns
        n = (os.getpid() % 200) + 20
        self.net = ipaddress.IPv4Network(f"198.19.{n}.0/24")
        self.gw = self.net[1]
        self.outside_ip = self.net[200]
        self.under = netns.new("fx-under")
        self.rootdev = f"fxr{os.getpid() % 100000}"
        self.tmp = Path(tempfile.mkdtemp(prefix="felix-netns-"))
        self.hosts: list[Host] = []
        self.pods: list[Pod] = []
        self.relays: list[KubeRelay] = []
        self.store: Store | None = None
        self._ip("link", "add", self.rootdev, "type", "veth", "peer", "name", "up0",
                 "netns", self.under)
        try:
            self._ip("addr", "add", f"{self.gw}/24", "dev", self.rootdev)
            self._ip("link", "set", self.rootdev, "up")
            ns_exec(self.under, "ip", "link", "add", "br0", "type", "bridge")
            ns_exec(self.under, "ip", "link", "set", "br0", "up")
            ns_exec(self.under, "ip", "link", "set", "up0", "master", "br0", "up")
            if kube is not None:
                self.kube = kube
                self.store = KubeStore(kube)
            else:
                self.etcd = etcd_factory.new("felix", host=str(self.gw))  # type: ignore[attr-defined]
                self.store = EtcdStore(self.etcd)
            self.outside = netns.new("fx-out")
            self._attach(self.outside, "o0", ipaddress.IPv4Interface(f"{self.outside_ip}/24"))
        except Exception:
            self.cleanup()
            raise

    @staticmethod
    def _ip(*args: str) -> None:
        subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)

    def _attach(self, ns: str, port: str, addr: ipaddress.IPv4Interface) -> None:
        ns_exec(self.under, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0",
                "netns", ns)
        ns_exec(self.under, "ip", "link", "set", port, "master", "br0", "up")
        ns_exec(ns, "ip", "addr", "add", str(addr), "dev", "eth0")
        ns_exec(ns, "ip", "link", "set", "eth0", "up")

    # -- datastore ------------------------------------------------------------------------

    @property
    def datastore(self) -> str:
        assert self.store is not None
        return self.store.name

    def put(self, key: str, value: dict[str, object]) -> None:
        assert self.store is not None
        self.store.put(key, value)

    def delete(self, key: str) -> None:
        assert self.store is not None
        self.store.delete(key)

    def pool(self, name: str, cidr: str, vxlan: str = "Always", ipip: str = "Never",
             nat: bool = False) -> None:
        self.put(keys.resource_key("IPPool", name), {
            "kind": "IPPool", "apiVersion": "projectcalico.org/v3",
            "metadata": {"name": name},
            "spec": {"cidr": cidr, "vxlanMode": vxlan, "ipipMode": ipip, "natOutgoing": nat,
                     "blockSize": 26, "nodeSelector": "all()"}})

    def allow_profile(self, name: str) -> None:
        """An allow-all profile. On Kubernetes `kns.<namespace>` is derived from the Namespace
        (and allows all), so only other names are written."""
        if self.datastore == "kubernetes" and name.startswith("kns."):
            return
        self.put(keys.resource_key("Profile", name), {
            "kind": "Profile", "apiVersion": "projectcalico.org/v3", "metadata": {"name": name},
            "spec": {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}]}})

    # -- hosts and pods -------------------------------------------------------------------

    def add_host(self, name: str, vtep_mac: str | None = None) -> Host:
        """A host namespace on the underlay and its Node (`vtep_mac`: the VXLAN tunnel MAC
        calico-node recorded; else Felix derives it from the node name)."""
        i = len(self.hosts)
        ns = self.netns.new(f"fx-{name}")
        addr = ipaddress.IPv4Interface(f"{self.net[10 + i]}/24")
        self._attach(ns, f"h{i}", addr)
        ns_exec(ns, "ip", "route", "add", "default", "via", str(self.outside_ip))
        block = ipaddress.IPv4Network(f"10.65.{i}.0/26")
        h = Host(name, ns, addr, block, block[1])
        self.hosts.append(h)
        if self.datastore == "kubernetes":
            port = int(self.kube.server.rsplit(":", 1)[1])
            self.relays.append(KubeRelay(ns, port))
        assert self.store is not None
        self.store.add_node(name, addr, h.tunnel, block, vtep_mac)
        return h

    def felix_env(self, host: Host, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FELIX_")}
        env.update({
            "FELIX_FELIXHOSTNAME": host.name, "FELIX_IPV6SUPPORT": "false",
            "FELIX_DEFAULTENDPOINTTOHOSTACTION": "ACCEPT",
            "FELIX_ROUTEREFRESHINTERVAL": "2", "FELIX_IPTABLESREFRESHINTERVAL": "2",
            "FELIX_IPSETSREFRESHINTERVAL": "2", "FELIX_INTERFACEREFRESHINTERVAL": "5",
            "GRPC_ENABLE_FORK_SUPPORT": "false", "PYTHONPATH": str(REPO),
            "FELIX_LOGSEVERITYSCREEN": "INFO",
        })
        assert self.store is not None
        env.update(self.store.felix_env())
        env.update(extra)
        return env

    def start_felix(self, host: Host, **extra: str) -> None:
        host.log_path = self.tmp / f"felix-{host.name}.log"
        host.extra = dict(extra)
        logf = open(host.log_path, "ab")  # noqa: SIM115 - handed to the child
        host.proc = subprocess.Popen(
            ["ip", "netns", "exec", host.ns, *FELIX, "-c", str(self.tmp / "none.cfg")],
            env=self.felix_env(host, **extra), stdout=logf, stderr=subprocess.STDOUT,
            cwd=REPO)
        logf.close()

    def stop_felix(self, host: Host) -> None:
        if host.proc is not None and host.proc.poll() is None:
            host.proc.terminate()
            try:
                host.proc.wait(15)
            except subprocess.TimeoutExpired:
                host.proc.kill()
                host.proc.wait(5)
        host.proc = None

    def wait_exit(self, host: Host, timeout: float = 30.0) -> int:
        """Felix's exit code once it has exited by itself (e.g. 129 for a restart)."""
        assert host.proc is not None
        proc = host.proc
        wait_for(lambda: proc.poll() is not None, timeout, f"felix on {host.name} to exit")
        host.proc = None
        return int(proc.returncode)

    def restart_felix(self, host: Host) -> None:
        """Start Felix again with the environment it had, as its supervisor would, and wait
        for its first apply."""
        self.stop_felix(host)
        before = len(self.applies(host))
        self.start_felix(host, **host.extra)
        self.wait_applied(host, before + 1)

    def applies(self, host: Host) -> list[str]:
        return [ln for ln in host.log().splitlines() if "apply #" in ln]

    def wait_applied(self, host: Host, count: int = 1, timeout: float = 60.0) -> None:
        def ok() -> bool:
            if host.proc is not None and host.proc.poll() is not None:
                raise AssertionError(f"felix on {host.name} exited:\n{host.log()[-3000:]}")
            return len(self.applies(host)) >= count
        wait_for(ok, timeout, f"felix apply on {host.name}:\n{host.log()[-2000:]}")

    def add_pod(self, host: Host, index: int, profiles: tuple[str, ...] = ("kns.default",),
                write: bool = True, v6: str | None = None,
                labels: dict[str, str] | None = None) -> Pod:
        """A pod wired as the CNI plugin wires it (veth named as Calico names it, /32, the
        169.254.1.1 gateway) and, with `write`, its endpoint in the datastore (`v6`: a second,
        IPv6 address). On Kubernetes the profiles are the namespace's and service account's."""
        ip = host.block[10 + index]
        name = f"{host.name}-p{index}"
        ns = self.netns.new(f"fx-{name}")
        iface = veth_name("default", name)
        ns_exec(host.ns, "ip", "link", "add", iface, "type", "veth", "peer", "name", "eth0",
                "netns", ns)
        ns_exec(ns, "ip", "addr", "add", f"{ip}/32", "dev", "eth0")
        if v6:
            ns_exec(ns, "ip", "-6", "addr", "add", f"{v6}/128", "dev", "eth0", "nodad")
        ns_exec(ns, "ip", "link", "set", "eth0", "up")
        ns_exec(ns, "ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
        ns_exec(ns, "ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
        ns_exec(host.ns, "ip", "link", "set", iface, "up")
        mac = json.loads(ns_exec(ns, "ip", "-j", "link", "show", "eth0").stdout)[0]["address"]
        ips: tuple[ipaddress.IPv4Interface | ipaddress.IPv6Interface, ...] = (
            ipaddress.IPv4Interface(f"{ip}/32"),
            *((ipaddress.IPv6Interface(f"{v6}/128"),) if v6 else ()))
        pod = Pod(name, ns, host, ip, iface, mac, ips, dict(labels or {}), profiles)
        self.pods.append(pod)
        if write:
            self.write_wep(pod, profiles)
        return pod

    @staticmethod
    def wep_name(pod: Pod) -> str:
        """Calico's name for the endpoint (each '-' of a part doubled)."""
        return wep_name(pod.host.name, pod.name)

    def wep_key(self, pod: Pod) -> str:
        return keys.resource_key("WorkloadEndpoint", self.wep_name(pod), "default")

    def write_wep(self, pod: Pod, profiles: tuple[str, ...] | None = None) -> None:
        assert self.store is not None
        if profiles is not None:
            pod.profiles = profiles
        profiles = pod.profiles
        self.store.add_endpoint(pod.host.name, pod.name,
                                pod.ips or (ipaddress.IPv4Interface(f"{pod.ip}/32"),),
                                pod.iface, pod.mac, profiles, pod.labels)

    def relabel(self, pod: Pod, labels: dict[str, str]) -> None:
        """The pod's own labels become `labels` (Kubernetes: the Pod's; etcd: the
        WorkloadEndpoint rewritten, as kube-controllers mirrors them)."""
        assert self.store is not None
        pod.labels = dict(labels)
        if isinstance(self.store, KubeStore):
            self.store.label_pod(pod.name, labels)
        else:
            self.write_wep(pod)

    def set_namespace_labels(self, labels: dict[str, str]) -> None:
        """Namespace `default`'s labels (Kubernetes: the Namespace; etcd: profile kns.default
        as Calico's kube-controllers writes it), which its endpoints inherit as `pcns.<key>`."""
        assert self.store is not None
        self.store.set_namespace_labels(labels)

    def cut_datastore(self, host: Host) -> None:
        """`host`'s Felix loses its datastore while the test can still write: Kubernetes: the
        host's relay closes (every connection cut, nothing listening); etcd: etcd moves to
        another client port (every host loses it)."""
        if isinstance(self.store, KubeStore):
            i = self.hosts.index(host)
            self.relays[i].close()
        else:
            self._etcd_port = self.etcd.client_port
            with socket.socket() as s:
                s.bind((str(self.gw), 0))
                port = int(s.getsockname()[1])
            self.etcd.restart(client_port=port)

    def restore_datastore(self, host: Host) -> None:
        """Undo `cut_datastore`."""
        if isinstance(self.store, KubeStore):
            i = self.hosts.index(host)
            self.relays[i] = KubeRelay(host.ns, self.relays[i].port)
        else:
            self.etcd.restart(client_port=self._etcd_port)

    def k8s_network_policy(self, name: str, obj: dict[str, object] | None) -> None:
        """A Kubernetes NetworkPolicy in namespace default (Kubernetes: the object; etcd: as
        kube-controllers mirrors it); None deletes it."""
        assert self.store is not None
        self.store.k8s_network_policy(name, obj)

    def remove_wep(self, pod: Pod) -> None:
        """The endpoint goes (etcd: the CNI deletes it; Kubernetes: the Pod is deleted)."""
        assert self.store is not None
        self.store.remove_endpoint(pod.host.name, pod.name)

    def cleanup(self) -> None:
        for h in self.hosts:
            with contextlib.suppress(Exception):
                self.stop_felix(h)
        for r in self.relays:
            with contextlib.suppress(Exception):
                r.close()
        if self.store is not None:
            with contextlib.suppress(Exception):
                self.store.close()
        subprocess.run(["ip", "link", "del", self.rootdev], capture_output=True, check=False,
                       timeout=30)
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)


def ping(ns: str, dst: object, count: int = 1, timeout: int = 2, src: str | None = None
         ) -> bool:
    argv = ["ping", "-c", str(count), "-W", str(timeout)]
    if src:
        argv += ["-I", src]
    r = subprocess.run(["ip", "netns", "exec", ns, *argv, str(dst)], capture_output=True,
                       timeout=30, check=False)
    return r.returncode == 0
