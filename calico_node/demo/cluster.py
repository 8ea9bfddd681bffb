"""A Calico cluster in namespaces: underlay, etcd relay, calico-node per node, CNI pods.

Used by `calico-node demo`, the end-to-end tests and bench/e2e.py. Node namespaces each run
a real `calico-node` (BIRD, confd, Felix under its supervisor) in a private mount namespace
where the node's own directories are bind-mounted on Calico's fixed paths
(/etc/calico, /var/run/calico, /var/lib/calico), as a container would have them.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from calico_node.demo import lab as labmod
from calico_node.demo import plan
from libcalico import bird, birdctl, proc
from libcalico.datastore.api import Backend
from libcalico.errors import AlreadyExists, CalicoError, CommandFailed, NotFound
from libcalico.model import keys

log = logging.getLogger(__name__)

BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Options:
    nodes: int = 3
    pods: int = 2
    encap: str = "none"          # none | ipip | vxlan
    topology: str = "mesh"       # mesh | rr
    edge: bool = True

    @property
    def two_subnets(self) -> bool:
        return self.encap != "none"

    @property
    def backend(self) -> str:
        return "vxlan" if self.encap == "vxlan" else "bird"


@dataclass
class Node:
    plan: plan.NodePlan
    ns: str
    dir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.plan.name

    @property
    def bird_socket(self) -> str:
        return str(self.dir / "run" / "bird.ctl")


@dataclass(frozen=True, slots=True)
class Pod:
    node: str
    index: int
    ns: str
    container_id: str
    ip: ipaddress.IPv4Address

    @property
    def label(self) -> str:
        return f"{self.node}/pod-{self.index}"


class ClusterError(CalicoError):
    pass


@dataclass
class Cluster:
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

    # ---- the whole sequence --------------------------------------------------------------
    def bring_up(self, timeout: float = 90) -> None:
        """Underlay, configuration, calico-node on every node, edge router, BGP Established."""
        opts = self.opts
        say = self.say
        say(f"underlay: bridge{'s' if opts.two_subnets else ''} in {self.lab.prefix}-ul"
            + (", router between 172.30.0.0/24 and 172.30.1.0/24" if opts.two_subnets
               else ", one subnet 172.30.0.0/24")
            + f", etcd relayed at {plan.RELAY_IP}:{plan.ETCD_PORT}")
        self.lab.ensure_mountpoints()
        self.build_underlay()
        self.seed()
        nodes = [self.add_node(p) for p in plan.nodes(opts.nodes, opts.two_subnets)]
        say(f"starting calico-node on {len(nodes)} nodes "
            f"(backend {opts.backend}, encap {opts.encap}, topology {opts.topology})")
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
        if self.opts.two_subnets:
            lines += ["link add br1 type bridge", "link set br1 up"]
        labmod.ip_batch(lines, ns=ul)
        if self.opts.two_subnets:
            self.router = self.lab.ns("rtr")
            for i, rip in enumerate(plan.ROUTER_IPS):
                self._veth(self.router, f"eth{i}", f"rtr{i}", f"br{i}", f"{rip}/24")
            labmod.in_ns(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            labmod.ip("route", "add", str(plan.SUBNETS[1]), "via", str(plan.ROUTER_IPS[0]), ns=ul)
        endpoint = self.etcd_endpoint.split("//", 1)[-1]
        host, _, port = endpoint.rpartition(":")
        self.relay = labmod.Relay(ul, (str(plan.RELAY_IP), plan.ETCD_PORT), (host, int(port)))
        self.lab.cleanups.append(self.relay.close)

    def _veth(self, ns: str, inside: str, outside: str, bridge: str, addr: str) -> None:
        ul = self.underlay
        labmod.ip("link", "add", outside, "netns", ul, "type", "veth", "peer", "name", inside,
                  "netns", ns)
        labmod.ip_batch([f"link set {outside} master {bridge}", f"link set {outside} up"], ns=ul)
        labmod.ip_batch([f"addr add {addr} dev {inside}", f"link set {inside} up"], ns=ns)

    @property
    def etcd_url(self) -> str:
        return f"http://{plan.RELAY_IP}:{plan.ETCD_PORT}"

    # ---- datastore -----------------------------------------------------------------------
    def put(self, kind: str, name: str, spec: dict[str, object],
            labels: dict[str, str] | None = None) -> None:
        """Create or replace a resource (Calico's JSON) directly in etcd."""
        key = keys.resource_key(kind, name)
        meta: dict[str, object] = {"name": name}
        if labels:
            meta["labels"] = labels
        try:
            kv = self.backend.get(key)
            old = json.loads(kv.value)
            old_meta = old.get("metadata") or {}
            for k in ("uid", "creationTimestamp"):
                if k in old_meta:
                    meta[k] = old_meta[k]
            self.backend.update(key, _dumps({"kind": kind, "apiVersion": keys.API_VERSION,
                                             "metadata": meta, "spec": spec}), kv.revision)
        except NotFound:
            meta["creationTimestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            self.backend.create(key, _dumps({"kind": kind, "apiVersion": keys.API_VERSION,
                                             "metadata": meta, "spec": spec}))

    def delete(self, kind: str, name: str) -> None:
        with contextlib.suppress(NotFound):
            self.backend.delete(keys.resource_key(kind, name))

    def edit_node(self, name: str, fn: Callable[[dict[str, object]], None]) -> None:
        key = keys.resource_key("Node", name)
        for _ in range(10):
            kv = self.backend.get(key)
            doc = json.loads(kv.value)
            fn(doc)
            try:
                self.backend.update(key, _dumps(doc), kv.revision)
                return
            except CalicoError:
                continue
        raise ClusterError(f"could not update Node {name}")

    def seed(self) -> None:
        """What an operator configures before nodes join: the profile pods use, the edge
        router peering, and the topology."""
        self.put("Profile", plan.NETWORK, {"ingress": [{"action": "Allow"}],
                                          "egress": [{"action": "Allow"}]})
        if self.opts.edge and self.opts.backend == "bird":
            self.put("BGPPeer", "edge-router", {"peerIP": str(plan.EDGE_IP),
                                                "asNumber": plan.EDGE_AS})
        self.put("BGPConfiguration", "default",
                 {"logSeverityScreen": "Info", "asNumber": plan.CLUSTER_AS,
                  "nodeToNodeMeshEnabled": self.opts.topology == "mesh"})

    def set_topology(self, topology: str) -> None:
        """mesh: full node-to-node mesh. rr: the first node reflects routes for the others."""
        rr = next(iter(self.nodes))

        def label(doc: dict[str, object]) -> None:
            meta = doc.setdefault("metadata", {})
            spec = doc.setdefault("spec", {})
            assert isinstance(meta, dict) and isinstance(spec, dict)
            labels = dict(meta.get("labels") or {})
            bgp = dict(spec.get("bgp") or {})
            if topology == "rr":
                labels["route-reflector"] = "true"
                bgp["routeReflectorClusterID"] = "224.0.0.1"
            else:
                labels.pop("route-reflector", None)
                bgp.pop("routeReflectorClusterID", None)
            meta["labels"] = labels
            spec["bgp"] = bgp

        if topology == "rr":
            self.edit_node(rr, label)
            self.put("BGPPeer", "peer-with-route-reflectors",
                     {"nodeSelector": "all()", "peerSelector": "route-reflector == 'true'"})
            self.put("BGPConfiguration", "default",
                     {"logSeverityScreen": "Info", "asNumber": plan.CLUSTER_AS,
                      "nodeToNodeMeshEnabled": False})
        else:
            self.put("BGPConfiguration", "default",
                     {"logSeverityScreen": "Info", "asNumber": plan.CLUSTER_AS,
                      "nodeToNodeMeshEnabled": True})
            self.delete("BGPPeer", "peer-with-route-reflectors")
            self.edit_node(rr, label)
        self.opts = Options(self.opts.nodes, self.opts.pods, self.opts.encap, topology,
                            self.opts.edge)

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
            "DATASTORE_TYPE": "etcdv3",
            "ETCD_ENDPOINTS": self.etcd_url,
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

    # ---- BGP -----------------------------------------------------------------------------
    def peers(self, node: Node) -> tuple[bird.Peer, ...]:
        try:
            return bird.peers(birdctl.show_protocols(node.bird_socket, timeout=3), 4)
        except CalicoError:
            return ()

    def expected_peers(self, node: Node) -> set[tuple[str, str]]:
        """(peer address, peer type) of every session `node` should have."""
        if self.opts.backend != "bird":
            return set()
        others = [n for n in self.nodes.values() if n is not node]
        first = next(iter(self.nodes.values()))
        if self.opts.topology == "rr":
            want = {(str(n.plan.ip.ip), "node specific")
                    for n in (others if node is first else [first] if node is not first
                              else [])}
        else:
            want = {(str(n.plan.ip.ip), "node-to-node mesh") for n in others}
        if self.opts.edge and self.edge and node.plan.subnet == 0:
            want.add((str(plan.EDGE_IP), "global"))
        return want

    def wait_established(self, timeout: float = 60) -> float:
        """Until every node has exactly its expected sessions, all Established."""
        start = time.monotonic()
        while True:
            missing = []
            for n in self.nodes.values():
                if n.proc is None:
                    continue
                want = self.expected_peers(n)
                got = {(str(p.address), p.peer_type) for p in self.peers(n) if p.established}
                have = {(str(p.address), p.peer_type) for p in self.peers(n)}
                if got != want or have != want:
                    missing.append(f"{n.name} {len(got & want)}/{len(want)}"
                                   + (f" (+{len(have - want)} unexpected)" if have - want
                                      else ""))
            if not missing:
                return time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise ClusterError("BGP sessions not as expected: " + ", ".join(missing))
            time.sleep(0.2)

    def node_status(self, node: Node) -> str:
        """`calicoctl node status` run on the node (its namespaces, its BIRD socket)."""
        if node.proc is None:
            return "(node stopped)"
        r = proc.run(["nsenter", "-t", str(node.proc.pid), "-m", "-n", str(BIN / "calicoctl"),
                      "node", "status"], timeout=30, check=False)
        return (r.stdout + r.stderr).rstrip()

    # ---- pods ----------------------------------------------------------------------------
    def cni(self, node: Node, command: str, container_id: str, netns: str) -> proc.Completed:
        if node.proc is None:
            raise ClusterError(f"{node.name} is not running")
        conf = {"cniVersion": "0.3.1", "name": plan.NETWORK, "type": "calico",
                "datastore_type": "etcdv3", "etcd_endpoints": self.etcd_url,
                "nodename": node.name, "log_level": "warning",
                "mtu": 1450 if self.opts.encap == "vxlan" else 1500,
                "ipam": {"type": "calico-ipam"}}
        env = {"PATH": f"{BIN}:/usr/sbin:/usr/bin:/sbin:/bin", "GRPC_ENABLE_FORK_SUPPORT": "false",
               "CNI_COMMAND": command, "CNI_CONTAINERID": container_id,
               "CNI_NETNS": f"/var/run/netns/{netns}", "CNI_IFNAME": "eth0",
               "CNI_PATH": str(BIN)}
        return proc.run(["nsenter", "-t", str(node.proc.pid), "-m", "-n", str(BIN / "calico")],
                        input=json.dumps(conf), timeout=60, env=env, check=False)

    def add_pod(self, node: Node, index: int) -> Pod:
        ns = self.lab.ns(f"{node.plan.index}p{index}")
        cid = plan.container_id(self.lab.prefix, node.name, index)
        r = self.cni(node, "ADD", cid, ns)
        if r.returncode != 0:
            self.lab.drop_ns(ns)
            raise ClusterError(f"CNI ADD failed on {node.name}: {r.stdout.strip()} "
                               f"{r.stderr.strip()}")
        try:
            result = json.loads(r.stdout)
            addr = ipaddress.ip_interface(result["ips"][0]["address"]).ip
        except (ValueError, KeyError, IndexError) as exc:
            raise ClusterError(f"CNI ADD on {node.name} returned no address: {r.stdout}") from exc
        assert isinstance(addr, ipaddress.IPv4Address)
        pod = Pod(node.name, index, ns, cid, addr)
        self.pods.append(pod)
        return pod

    def del_pod(self, pod: Pod) -> None:
        r = self.cni(self.nodes[pod.node], "DEL", pod.container_id, pod.ns)
        if r.returncode != 0:
            raise ClusterError(f"CNI DEL failed on {pod.node}: {r.stdout.strip()} "
                               f"{r.stderr.strip()}")
        self.lab.drop_ns(pod.ns)
        self.pods.remove(pod)

    def endpoints(self) -> list[tuple[str, str, str, str]]:
        """(node, name, networks, interface) for every WorkloadEndpoint in etcd."""
        out = []
        for kv in self.backend.list(keys.resource_prefix("WorkloadEndpoint")).kvs:
            doc = json.loads(kv.value)
            spec = doc.get("spec") or {}
            out.append((str(spec.get("node", "")), str(doc["metadata"]["name"]),
                        ",".join(spec.get("ipNetworks") or []),
                        str(spec.get("interfaceName", ""))))
        return sorted(out)

    # ---- reachability --------------------------------------------------------------------
    def ping(self, src: Pod | str, dst: ipaddress.IPv4Address, wait: float = 1.0) -> bool:
        ns = src.ns if isinstance(src, Pod) else src
        r = proc.run(["ip", "netns", "exec", ns, "ping", "-c", "1", "-W", str(wait), "-q",
                      str(dst)], timeout=wait + 10, check=False)
        return r.returncode == 0

    def matrix(self, pods: Sequence[Pod] | None = None,
               deadline: float = 30.0) -> dict[tuple[str, str], bool]:
        """Ping every ordered pair; retry failures until `deadline` seconds have passed."""
        pods = list(self.pods if pods is None else pods)
        result: dict[tuple[str, str], bool] = {}
        todo = [(a, b) for a in pods for b in pods if a is not b]
        end = time.monotonic() + deadline
        while True:
            procs = [(a, b, subprocess.Popen(
                ["ip", "netns", "exec", a.ns, "ping", "-c", "1", "-W", "1", "-q", str(b.ip)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)) for a, b in todo]
            failed = []
            for a, b, p in procs:
                ok = p.wait(15) == 0
                result[(a.label, b.label)] = ok
                if not ok:
                    failed.append((a, b))
            todo = failed
            if not todo or time.monotonic() > end:
                return result
            time.sleep(0.5)

    def close(self) -> None:
        for n in self.nodes.values():
            try:
                self.stop_node(n)
            except (OSError, CommandFailed, subprocess.SubprocessError) as exc:
                log.warning("stopping %s: %s", n.name, exc)


def _dumps(doc: object) -> str:
    return json.dumps(doc, separators=(",", ":"))


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


__all__ = ["AlreadyExists", "Cluster", "ClusterError", "Node", "Options", "Pod"]
