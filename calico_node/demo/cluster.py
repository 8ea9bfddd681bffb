"""A Calico cluster in namespaces: underlay, etcd relay, calico-node per node, CNI pods.

Used by `calico-node demo`, the end-to-end tests and bench/e2e.py. `Cluster` holds the state
and the bring-up (underlay, nodes, edge router); its resources, BGP sessions and pods are in
`records`, `sessions` and `workloads`; what it is made of in `members`.

Node namespaces each run a real `calico-node` (BIRD, confd, Felix under its supervisor) in a
private mount namespace where the node's own directories are bind-mounted on Calico's fixed
paths (/etc/calico, /var/run/calico, /var/lib/calico), as a container would have them.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from calico_node.demo import kube as kubemod
from calico_node.demo import lab as labmod
from calico_node.demo import plan
from calico_node.demo.members import BIN, ClusterError, Node, Options, Pod
from calico_node.demo.records import Records
from calico_node.demo.sessions import Sessions
from calico_node.demo.workloads import Workloads
from libcalico import proc
from libcalico.datastore.api import Backend
from libcalico.errors import AlreadyExists, CommandFailed

log = logging.getLogger(__name__)


@dataclass
class Cluster(Records, Sessions, Workloads):
    """The cluster's state and its bring-up; resources (`records.Records`), BGP sessions
    (`sessions.Sessions`) and pods (`workloads.Workloads`) are its other parts."""

    opts: Options
    lab: labmod.Lab
    etcd_endpoint: str
    backend: Backend
    say: Callable[[str], None] = lambda s: None
    nodes: dict[str, Node] = field(default_factory=dict)
    pods: list[Pod] = field(default_factory=list)
    underlay: str = ""
    router: str = ""
    edge: str = ""
    relay: labmod.Relay | None = None
    kube: kubemod.Kube | None = None
    """The API server, with --datastore kubernetes (`etcd_endpoint` is then unused)."""

    def __post_init__(self) -> None:
        if self.opts.kdd != (self.kube is not None):
            raise ClusterError("--datastore kubernetes needs the API server (and only it)")

    # ---- the whole sequence --------------------------------------------------------------
    def bring_up(self, timeout: float = 90) -> None:
        """Underlay, configuration, calico-node on every node, edge router, BGP Established."""
        opts = self.opts
        say = self.say
        say(f"underlay: bridge{'s' if opts.two_subnets else ''} in {self.lab.prefix}-ul"
            + (", router between 172.30.0.0/24 and 172.30.1.0/24" if opts.two_subnets
               else ", one subnet 172.30.0.0/24")
            + (f", API server relayed at {plan.API_IP}:{plan.API_PORT}" if self.kube
               else f", etcd relayed at {plan.RELAY_IP}:{plan.ETCD_PORT}"))
        self.lab.ensure_mountpoints()
        self.build_underlay()
        self.seed()
        nodes = [self.add_node(p) for p in plan.nodes(opts.nodes, opts.two_subnets)]
        if self.kube is not None:
            for n in nodes:
                self.kube.register_node(n.name, str(n.plan.ip.ip))
            say(f"registered {len(nodes)} Kubernetes Nodes (as their kubelets would)")
        say(f"starting calico-node on {len(nodes)} nodes (datastore {opts.datastore}, "
            f"backend {opts.backend}, encap {opts.encap}, topology {opts.topology})")
        for n in nodes:
            self.start_node(n)
        self.wait_started(nodes, timeout=timeout)
        say("startup done on every node: Node resources, default pool, tunnel addresses")
        if opts.topology == "rr":
            self.set_topology("rr")
            say(f"route reflector: {nodes[0].name} (routeReflectorClusterID 224.0.0.1)")
        if opts.edge and opts.backend == "bird":
            self.start_edge()
            say(f"edge router {plan.EDGE_IP} AS {plan.EDGE_AS}: plain BIRD, eBGP to each node")
        if opts.backend == "bird":
            t = self.wait_established(timeout=timeout)
            say(f"all BGP sessions Established ({t:.1f}s)")

    # ---- underlay ------------------------------------------------------------------------
    def build_underlay(self) -> None:
        """Bridges in their own namespace, a router between the two subnets, the etcd relay."""
        self.underlay = self.lab.ns("ul")
        ul = self.underlay
        lines = ["link add br0 type bridge", "link set br0 up",
                 f"addr add {plan.RELAY_IP}/24 dev br0"]
        if self.kube is not None:
            lines.append(f"addr add {plan.API_IP}/32 dev lo")
        if self.opts.two_subnets:
            lines += ["link add br1 type bridge", "link set br1 up"]
        labmod.ip_batch(lines, ns=ul)
        if self.opts.two_subnets:
            self.router = self.lab.ns("rtr")
            for i, rip in enumerate(plan.ROUTER_IPS):
                self._veth(self.router, f"eth{i}", f"rtr{i}", f"br{i}", f"{rip}/24")
            labmod.in_ns(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            labmod.ip("route", "add", str(plan.SUBNETS[1]), "via", str(plan.ROUTER_IPS[0]), ns=ul)
            if self.kube is not None:
                labmod.ip("route", "add", f"{plan.API_IP}/32", "via", str(plan.RELAY_IP),
                          ns=self.router)
        if self.kube is not None:
            self.relay = labmod.Relay(ul, (str(plan.API_IP), plan.API_PORT),
                                      ("127.0.0.1", self.kube.port))
        else:
            endpoint = self.etcd_endpoint.split("//", 1)[-1]
            host, _, port = endpoint.rpartition(":")
            self.relay = labmod.Relay(ul, (str(plan.RELAY_IP), plan.ETCD_PORT),
                                      (host, int(port)))
        self.lab.cleanups.append(self.relay.close)

    def _veth(self, ns: str, inside: str, outside: str, bridge: str, addr: str) -> None:
        ul = self.underlay
        labmod.ip("link", "add", outside, "netns", ul, "type", "veth", "peer", "name", inside,
                  "netns", ns)
        labmod.ip_batch([f"link set {outside} master {bridge}", f"link set {outside} up"], ns=ul)
        labmod.ip_batch([f"addr add {addr} dev {inside}", f"link set {inside} up"], ns=ns)

    @property
    def etcd_url(self) -> str:
        return plan.ETCD_URL


    # ---- nodes ---------------------------------------------------------------------------
    def add_node(self, p: plan.NodePlan) -> Node:
        ns = self.lab.ns(p.name)
        self._veth(ns, "eth0", f"v{p.index}", f"br{p.subnet}", str(p.ip))
        labmod.ip("route", "add", "default", "via", str(p.gateway), ns=ns)
        labmod.in_ns(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        d = self.lab.workdir / p.name
        for sub in ("etc", "run", "lib", "log"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        node = Node(p, ns, d)
        self.nodes[p.name] = node
        return node

    def node_env(self, node: Node) -> dict[str, str]:
        env = {
            "PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin",
            "GRPC_ENABLE_FORK_SUPPORT": "false",
            "NODENAME": node.name,
            "CALICO_NETWORKING_BACKEND": self.opts.backend,
            "IP_AUTODETECTION_METHOD": "interface=eth0",
            "CALICO_IPV4POOL_CIDR": str(plan.POOL),
            "CALICO_IPV4POOL_BLOCK_SIZE": "26",
            "CALICO_IPV4POOL_NAT_OUTGOING": "false",
            "CALICO_LOG_DIR": str(node.dir / "log"),
            "FELIX_IPV6SUPPORT": "false",
            "FELIX_HEALTHENABLED": "true",
            "FELIX_LOGSEVERITYSCREEN": "info",
            "CALICO_STARTUP_LOGLEVEL": "info",
        }
        if self.kube is not None:
            env.update({"DATASTORE_TYPE": "kubernetes",
                        "KUBECONFIG": str(self.kube.node_kubeconfig),
                        "CLUSTER_TYPE": "k8s,bgp"})
        else:
            env.update({"DATASTORE_TYPE": "etcdv3", "ETCD_ENDPOINTS": self.etcd_url})
        if self.opts.encap == "vxlan":
            env["CALICO_IPV4POOL_VXLAN"] = "Always"
        elif self.opts.encap == "ipip":
            env["CALICO_IPV4POOL_IPIP"] = "CrossSubnet"
        return env

    def start_node(self, node: Node) -> None:
        d = node.dir
        mounts = " && ".join(
            f"mount --bind {shlex.quote(str(d / src))} {dst}"
            for src, dst in (("etc", "/etc/calico"), ("run", "/var/run/calico"),
                             ("lib", "/var/lib/calico")))
        argv = ["ip", "netns", "exec", node.ns, "sh", "-c", f'{mounts} && exec "$0"',
                str(BIN / "calico-node")]
        (d / "lib" / "nodename").unlink(missing_ok=True)
        node.proc = self.lab.spawn(node.name, argv, f"{node.name}-calico-node",
                                   env=self.node_env(node))

    def wait_started(self, nodes: Sequence[Node], timeout: float = 60) -> None:
        """Until each node's startup has written its nodename file."""
        deadline = time.monotonic() + timeout
        pending = list(nodes)
        while pending:
            for n in list(pending):
                if (n.dir / "lib" / "nodename").exists():
                    pending.remove(n)
                elif n.proc is not None and n.proc.poll() is not None:
                    raise ClusterError(f"calico-node on {n.name} exited rc={n.proc.returncode}: "
                                       f"{self.tail(n.name + '-calico-node')}")
            if pending and time.monotonic() > deadline:
                raise ClusterError(f"calico-node startup did not finish on "
                                   f"{', '.join(n.name for n in pending)}")
            time.sleep(0.1)

    def stop_node(self, node: Node) -> None:
        if node.proc is not None:
            self.lab.stop(node.proc, timeout=20)
            node.proc = None

    def tail(self, log_name: str, lines: int = 15) -> str:
        p = self.lab.workdir / "logs" / f"{log_name}.log"
        try:
            return "\n".join(p.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    # ---- edge router ---------------------------------------------------------------------
    def start_edge(self) -> None:
        self.edge = self.lab.ns("edge")
        self._veth(self.edge, "eth0", "edge", "br0", f"{plan.EDGE_IP}/24")
        d = self.lab.workdir / "edge"
        d.mkdir(exist_ok=True)
        peers = tuple(n.plan for n in self.nodes.values() if n.plan.subnet == 0)
        (d / "bird.cfg").write_text(plan.edge_bird_config(peers))
        self.lab.spawn("edge-bird", ["ip", "netns", "exec", self.edge, "bird", "-d", "-s",
                                     str(d / "bird.ctl"), "-c", str(d / "bird.cfg")],
                       "edge-bird")

    def edge_routes(self) -> list[str]:
        if not self.edge:
            return []
        out = labmod.ip("-4", "route", "show", "proto", "bird", ns=self.edge)
        return [ln.strip() for ln in out.splitlines() if ln.strip()]




    def close(self) -> None:
        for n in self.nodes.values():
            try:
                self.stop_node(n)
            except (OSError, CommandFailed, subprocess.SubprocessError) as exc:
                log.warning("stopping %s: %s", n.name, exc)




def ipip_supported() -> tuple[bool, str]:
    """Whether this kernel can make an ipip device (tried in a scratch namespace)."""
    name = f"cdemo-ipipcheck-{os.getpid()}"
    labmod.ip("netns", "add", name)
    try:
        r = proc.run(["ip", "-n", name, "link", "add", "tunl0", "type", "ipip"], timeout=10,
                     check=False)
        if r.returncode == 0:
            return True, ""
        return False, r.stderr.strip() or f"ip link add type ipip exited {r.returncode}"
    finally:
        labmod.delete_netns(name)


__all__ = ["BIN", "AlreadyExists", "Cluster", "ClusterError", "Node", "Options", "Pod"]
