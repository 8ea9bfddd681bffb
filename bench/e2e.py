"""End-to-end benchmark of a Calico cluster in namespaces (run as root: `python bench/e2e.py`).

Uses the demo's machinery (calico_node.demo.cluster): a local etcd, node namespaces each
running calico-node (BIRD, confd, Felix), pods through the CNI plugin. Everything it makes is
removed at the end, even on failure. Figures, each beside the limit measured in the same run:

1. Pod reachable: from CNI ADD returning on node-2 to the first echo reply from a pod on
   node-1 (ping every 10 ms): p50, p99. Limit: the same measurement after a hand-made
   `ip route add` of the pod's /32 on node-1 for a pod wired by hand (no Calico in the path).
2. Node join: from launching calico-node on a new node to every session of the cluster being
   Established (mesh and route reflector; 3 and 10 nodes). Limit: two plain BIRDs with a
   static config, from launch to Established.
3. Throughput (iperf3, 5 s, TCP): pod to pod across nodes beside node to node on the same
   underlay, with no encapsulation and with VXLAN, in >= 10 interleaved pairs (E2E_PAIRS):
   the median of the per-pair ratios with its spread; without encapsulation also a pod path
   made by hand (no Calico rules) on two plain nodes, to tell Felix's rules from the veth
   path itself.

Goals (issue 5): pod reachable p50 ≤ 1 s, node joined ≤ 10 s, no-encap pod throughput ≥ 90% of
node-to-node. `--quick` runs 3 nodes only.

`--datastore kubernetes` (issue 11): the same cluster on the local Kubernetes API server (the
demo's `--datastore kubernetes`: Nodes registered as a kubelet does, each pod a Pod bound to
its node, the CNI run with the pod's CNI_ARGS); measures 1 and 2 (the datastore is not on the
data path, so no throughput run). In node join the new Node is registered before calico-node
is launched, as its kubelet would have done.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
os.environ.setdefault("GRPC_VERBOSITY", "NONE")

from calico_node.demo import cli, plan  # noqa: E402
from calico_node.demo import cluster as clustermod  # noqa: E402
from calico_node.demo import kube as kubemod  # noqa: E402
from calico_node.demo import lab as labmod  # noqa: E402
from libcalico.datastore import connect  # noqa: E402
from libcalico.datastore.api import Backend  # noqa: E402
from libcalico.datastore.config import DatastoreConfig  # noqa: E402
from libcalico.datastore.etcd import EtcdBackend  # noqa: E402

QUICK = "--quick" in sys.argv
DATASTORE = (sys.argv[sys.argv.index("--datastore") + 1]
             if "--datastore" in sys.argv[:-1] else "etcdv3")
PODS_FOR_LATENCY = 15


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


class Env:
    """One datastore (etcd, or the API server with --datastore kubernetes) plus one cluster
    at a time."""

    def __init__(self, tag: str) -> None:
        self.lab = labmod.Lab(f"cb{os.getpid()}{tag}",
                              Path(tempfile.mkdtemp(prefix="calico-bench-")))
        self.kube: kubemod.Kube | None = None
        self.url = ""
        self.backend: Backend
        if DATASTORE == "kubernetes":
            self.lab.cleanups.append(lambda: kubemod.stop(self.lab.workdir))
            self.kube = kubemod.start(self.lab.workdir)
            self.backend = connect(DatastoreConfig.from_env(
                {"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(self.kube.cp.kubeconfig)}))
        else:
            self.url = cli.start_etcd(self.lab)
            self.backend = EtcdBackend([self.url])
        self.cl: clustermod.Cluster | None = None

    def cluster(self, **opts: object) -> clustermod.Cluster:
        self.cl = clustermod.Cluster(
            clustermod.Options(datastore=DATASTORE, **opts), self.lab,  # type: ignore[arg-type]
            self.url, self.backend, kube=self.kube)
        self.cl.bring_up(timeout=300)
        return self.cl

    def close(self) -> None:
        if self.cl is not None:
            self.cl.close()
        self.backend.close()
        self.lab.close()


def hand_node(lab: labmod.Lab, ul: str, i: int) -> tuple[str, str]:
    """A plain node (no Calico) on the same underlay bridge: (namespace, address)."""
    ns = lab.ns(f"hn{i}")
    addr = f"172.30.0.{100 + i}"
    labmod.ip("link", "add", f"hn{i}", "netns", ul, "type", "veth", "peer", "name", "eth0",
              "netns", ns)
    labmod.ip_batch([f"link set hn{i} master br0", f"link set hn{i} up"], ns=ul)
    labmod.ip_batch([f"addr add {addr}/24 dev eth0", "link set eth0 up",
                     f"route add default via {plan.RELAY_IP}"], ns=ns)
    labmod.in_ns(ns, "sysctl", "-qw", "net.ipv4.ip_forward=1")
    return ns, addr


def hand_pod(lab: labmod.Lab, node_ns: str, i: int, ip: str, mtu: int = 1500) -> str:
    """A pod wired by hand the way Calico wires one: veth, /32, 169.254.1.1 gateway answered
    by proxy ARP (no delay), host route to the /32."""
    ns = lab.ns(f"hp{i}")
    dev = f"hv{i}"
    labmod.ip("link", "add", dev, "netns", node_ns, "type", "veth", "peer", "name", "eth0",
              "netns", ns)
    labmod.ip_batch([f"addr add {ip}/32 dev eth0", f"link set eth0 mtu {mtu} up",
                     "route add 169.254.1.1 dev eth0 scope link",
                     "route add default via 169.254.1.1 dev eth0"], ns=ns)
    labmod.ip_batch([f"link set {dev} up", f"route add {ip}/32 dev {dev}"], ns=node_ns)
    labmod.in_ns(node_ns, "sysctl", "-qw", f"net.ipv4.conf.{dev}.proxy_arp=1",
                 f"net.ipv4.neigh.{dev}.proxy_delay=0")
    return ns


def first_reply(src_ns: str, dst: str, t0: float, limit: float = 20.0) -> float:
    """Seconds from t0 (time.time()) to the first echo reply, pinging every 10 ms."""
    r = subprocess.run(["ip", "netns", "exec", src_ns, "ping", "-D", "-n", "-i", "0.01",
                        "-W", "1", "-c", "1", "-w", str(int(limit)), dst],
                       capture_output=True, text=True, timeout=limit + 10, check=False)
    m = re.search(r"^\[(\d+\.\d+)\].*bytes from", r.stdout, re.M)
    if not m:
        return float("inf")
    return float(m.group(1)) - t0


def pod_reachable() -> None:
    env = Env("a")
    try:
        cl = env.cluster(nodes=3, encap="none", edge=False)
        n1, n2 = cl.nodes["node-1"], cl.nodes["node-2"]
        src = cl.add_pod(n1, 0)
        cl.add_pod(n2, 0)  # node-2's block exists and is advertised before we measure
        cl.wait_established()
        lat = []
        for i in range(1, PODS_FOR_LATENCY + 1):
            pod = cl.add_pod(n2, i)
            t0 = time.time()
            lat.append(first_reply(src.ns, str(pod.ip), t0))
        # limit: the same measurement on a path made by hand (no Calico): a pod on a plain
        # node, reached from a pod on another plain node once a static route is added
        assert cl.underlay
        h1, _ = hand_node(env.lab, cl.underlay, 1)
        h2, h2addr = hand_node(env.lab, cl.underlay, 2)
        hsrc = hand_pod(env.lab, h1, 0, "10.251.0.100")
        labmod.ip("route", "add", "10.251.0.100/32", "via", "172.30.0.101", ns=h2)
        hand = []
        for i in range(1, 6):
            ip = f"10.251.0.{i}"
            hand_pod(env.lab, h2, i, ip)
            t0 = time.time()
            labmod.ip("route", "add", f"{ip}/32", "via", h2addr, ns=h1)
            hand.append(first_reply(hsrc, ip, t0))
        p50, p99 = pct(lat, 50), pct(lat, 99)
        lim = statistics.median(hand)
        kdd = ", KDD" if cl.kube else ""
        print(f"pod reachable after CNI ADD (n={len(lat)}{kdd}): p50 {p50 * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms | limit (hand-made route): {lim * 1000:.0f} ms | "
              f"ratio p50/limit {p50 / lim if lim > 0 else float('inf'):.1f} | "
              f"goal p50 <= 1000 ms: {'met' if p50 <= 1.0 else 'NOT met'}", flush=True)
    finally:
        env.close()


def bird_pair_limit() -> float:
    """Two plain BIRDs with static configs: launch to Established."""
    lab = labmod.Lab(f"cb{os.getpid()}p", Path(tempfile.mkdtemp(prefix="calico-bench-")))
    try:
        a, b = lab.ns("a"), lab.ns("b")
        labmod.ip("link", "add", "eth0", "netns", a, "type", "veth", "peer", "name", "eth0",
                  "netns", b)
        for ns, addr in ((a, "10.9.0.1"), (b, "10.9.0.2")):
            labmod.ip_batch([f"addr add {addr}/24 dev eth0", "link set eth0 up"], ns=ns)
        procs = []
        t0 = time.monotonic()
        for ns, me, peer in ((a, "10.9.0.1", "10.9.0.2"), (b, "10.9.0.2", "10.9.0.1")):
            cfg = lab.workdir / f"{ns}.cfg"
            cfg.write_text(f"router id {me};\nprotocol device {{}}\nprotocol bgp p {{ local {me} "
                           f"as 64512; neighbor {peer} as 64512; import all; export none; }}\n")
            procs.append(lab.spawn(ns, ["ip", "netns", "exec", ns, "bird", "-d", "-s",
                                        str(lab.workdir / f"{ns}.ctl"), "-c", str(cfg)], ns))
        from libcalico import birdctl
        while time.monotonic() - t0 < 60:
            try:
                r = birdctl.query(str(lab.workdir / f"{a}.ctl"), "show protocols")
                if "Established" in r:
                    return time.monotonic() - t0
            except Exception:
                pass
            time.sleep(0.05)
        return float("inf")
    finally:
        lab.close()


def node_join(nodes: int, topology: str, limit: float) -> None:
    env = Env(f"j{nodes}{topology[0]}")
    try:
        cl = env.cluster(nodes=nodes - 1, encap="none", topology=topology, edge=False)
        new = cl.add_node(plan.nodes(nodes, False)[-1])
        if cl.kube is not None:  # its kubelet registered it before calico-node starts
            cl.kube.register_node(new.name, str(new.plan.ip.ip))
        t0 = time.monotonic()
        cl.start_node(new)
        cl.wait_started([new], timeout=120)
        started = time.monotonic() - t0
        cl.wait_established(timeout=300)
        joined = time.monotonic() - t0
        kdd = ", KDD" if cl.kube else ""
        print(f"node join ({topology}, {nodes} nodes{kdd}): {joined:.1f} s to every session "
              f"Established (startup {started:.1f} s) | limit (2 plain BIRDs): {limit:.1f} s | "
              f"ratio {joined / limit:.1f} | goal <= 10 s: "
              f"{'met' if joined <= 10 else 'NOT met'}", flush=True)
    finally:
        env.close()


def iperf(src_ns: str, dst_ns: str, dst_ip: str) -> float:
    """Gbit/s over 5 s of TCP from src to dst."""
    server = subprocess.Popen(["ip", "netns", "exec", dst_ns, "iperf3", "-s", "-1", "-B",
                               dst_ip], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.5)
        r = subprocess.run(["ip", "netns", "exec", src_ns, "iperf3", "-c", dst_ip, "-t", "5",
                            "-J"], capture_output=True, text=True, timeout=60, check=False)
        data = json.loads(r.stdout or "{}")
        return float(data["end"]["sum_received"]["bits_per_second"]) / 1e9
    except (KeyError, ValueError):
        return 0.0
    finally:
        server.kill()
        server.wait()


def spread(values: list[float]) -> str:
    """median [p25–p75] (min–max) of `values`."""
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return (f"{statistics.median(values):.2f} [IQR {q[0]:.2f}-{q[2]:.2f}] "
            f"(min-max {min(values):.2f}-{max(values):.2f})")


def throughput(encap: str, pairs: int = int(os.environ.get("E2E_PAIRS", "10"))) -> None:
    """Pod-to-pod against node-to-node, measured in interleaved pairs: each pair runs the
    paths back to back (their order alternating from pair to pair), so that load on the
    shared box hits both sides of a ratio alike; the figure is the median of the per-pair
    ratios, with its spread. All traffic stays inside namespaces made here."""
    env = Env(f"t{encap[0]}")
    try:
        cl = env.cluster(nodes=2, encap=encap, edge=False)
        n1, n2 = cl.nodes["node-1"], cl.nodes["node-2"]
        a, b = cl.add_pod(n1, 1), cl.add_pod(n2, 1)
        cl.matrix(deadline=30)
        paths = {"node-to-node": (n1.ns, n2.ns, str(n2.plan.ip.ip)),
                 "pod-to-pod": (a.ns, b.ns, str(b.ip))}
        if encap == "none" and cl.underlay:
            h1, h1addr = hand_node(env.lab, cl.underlay, 1)
            h2, h2addr = hand_node(env.lab, cl.underlay, 2)
            p1 = hand_pod(env.lab, h1, 1, "10.251.0.1")
            p2 = hand_pod(env.lab, h2, 2, "10.251.0.2")
            labmod.ip("route", "add", "10.251.0.2/32", "via", h2addr, ns=h1)
            labmod.ip("route", "add", "10.251.0.1/32", "via", h1addr, ns=h2)
            paths["hand-made pod-to-pod"] = (p1, p2, "10.251.0.2")
        got: dict[str, list[float]] = {k: [] for k in paths}
        ratios: dict[str, list[float]] = {k: [] for k in paths if k != "node-to-node"}
        names = list(paths)
        for i in range(pairs):
            one: dict[str, float] = {}
            for k in (names if i % 2 == 0 else names[::-1]):
                src, dst, ip = paths[k]
                one[k] = iperf(src, dst, ip)
                got[k].append(one[k])
            base = one["node-to-node"]
            for k in ratios:
                if base > 0 and one[k] > 0:
                    ratios[k].append(one[k] / base)
        med = {k: statistics.median(v) for k, v in got.items()}
        if not ratios["pod-to-pod"]:
            print(f"throughput ({encap}): no successful pair", flush=True)
            return
        ratio = statistics.median(ratios["pod-to-pod"])
        extra = ""
        if ratios.get("hand-made pod-to-pod"):
            extra = (f" | hand-made pod path (no Calico) {med['hand-made pod-to-pod']:.2f} "
                     f"Gbit/s, ratio {spread(ratios['hand-made pod-to-pod'])}"
                     f" | goal >= 0.90: {'met' if ratio >= 0.9 else 'NOT met'}")
        print(f"throughput ({encap}, {len(ratios['pod-to-pod'])} interleaved pairs, iperf3 "
              f"5 s TCP): pod-to-pod {med['pod-to-pod']:.2f} Gbit/s | node-to-node "
              f"{med['node-to-node']:.2f} Gbit/s | per-pair ratio {spread(ratios['pod-to-pod'])}"
              f"{extra} | load {os.getloadavg()[0]:.1f}", flush=True)
    finally:
        env.close()


def main() -> None:
    if os.geteuid() != 0:
        sys.exit("bench/e2e.py: run as root")
    if shutil.which("iperf3") is None:
        sys.exit("bench/e2e.py: iperf3 is missing (apt-get install iperf3)")
    if DATASTORE not in ("etcdv3", "kubernetes"):
        sys.exit("bench/e2e.py: --datastore etcdv3|kubernetes")
    if DATASTORE == "kubernetes" and not kubemod.built():
        kubemod.build()
    if "--throughput" in sys.argv:
        for encap in ("none", "vxlan"):
            throughput(encap)
        return
    pod_reachable()
    limit = bird_pair_limit()
    for n in ((3,) if QUICK else (3, 10)):
        for topo in ("mesh", "rr"):
            node_join(n, topo, limit)
    if DATASTORE == "kubernetes":
        return
    for encap in ("none", "vxlan"):
        throughput(encap)


if __name__ == "__main__":
    main()
