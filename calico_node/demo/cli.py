"""`calico-node demo`: a multi-node Calico network on this machine, shown and torn down.

    calico-node demo [--nodes N] [--pods N] [--encap none|ipip|vxlan] [--topology mesh|rr]
                     [--datastore etcdv3|kubernetes] [--no-edge] [--keep] [--cleanup]

Exit codes: 0 every pod reached every pod; 1 some pair failed or a step failed (the message
says which); 2 bad usage or a missing kernel feature (ipip on this kernel).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from calico_node.demo import cluster as clustermod
from calico_node.demo import kube as kubemod
from calico_node.demo import lab as labmod
from libcalico.errors import CalicoError

PREFIX = "cdemo"


class Interrupted(Exception):
    pass


class Progress:
    def __init__(self) -> None:
        self.t0 = time.monotonic()

    def __call__(self, text: str) -> None:
        print(f"[{time.monotonic() - self.t0:5.1f}s] {text}", flush=True)


def _args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="calico-node demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    p.add_argument("--pods", type=int, default=2, help="pods per node (default 2)")
    p.add_argument("--encap", choices=("none", "ipip", "vxlan"), default="none",
                   help="pod traffic encapsulation (default none: plain routed BGP)")
    p.add_argument("--topology", choices=("mesh", "rr"), default="mesh",
                   help="BGP full mesh, or the first node as route reflector")
    p.add_argument("--datastore", choices=("etcdv3", "kubernetes"), default="etcdv3",
                   help="etcd (default), or a local Kubernetes API server (KDD): Nodes and "
                        "Pods as API objects, the CNI run as a kubelet runs it")
    p.add_argument("--no-edge", action="store_true",
                   help="no edge router (plain BIRD peering with the nodes by eBGP)")
    p.add_argument("--keep", action="store_true", help="leave the network up until Ctrl-C")
    p.add_argument("--cleanup", action="store_true",
                   help="remove what a killed demo left behind, then exit")
    a = p.parse_args(list(argv))
    if not 1 <= a.nodes <= 40:
        p.error("--nodes must be between 1 and 40")
    if not 1 <= a.pods <= 20:
        p.error("--pods must be between 1 and 20")
    return a


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_etcd(lab: labmod.Lab) -> str:
    etcd = shutil.which("etcd")
    if etcd is None:
        raise clustermod.ClusterError("etcd is not installed (apt-get install etcd-server)")
    cport, pport = _free_port(), _free_port()
    url = f"http://127.0.0.1:{cport}"
    p = lab.spawn("etcd", [etcd, "--name", "demo", "--data-dir", str(lab.workdir / "etcd"),
                           "--listen-client-urls", url, "--advertise-client-urls", url,
                           "--listen-peer-urls", f"http://127.0.0.1:{pport}",
                           "--initial-advertise-peer-urls", f"http://127.0.0.1:{pport}",
                           "--initial-cluster", f"demo=http://127.0.0.1:{pport}",
                           "--log-level", "warn", "--logger", "zap"], "etcd")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise clustermod.ClusterError("etcd exited at start (see its log)")
        try:
            socket.create_connection(("127.0.0.1", cport), timeout=0.5).close()
            return url
        except OSError:
            time.sleep(0.1)
    raise clustermod.ClusterError("etcd did not start listening in 20 s")


def main(argv: Sequence[str]) -> None:
    args = _args(argv)
    if os.geteuid() != 0:
        print("calico-node demo: must run as root (it makes network namespaces)",
              file=sys.stderr)
        sys.exit(2)
    if args.cleanup:
        gone = labmod.sweep(PREFIX)
        print(f"removed {len(gone)} namespaces: {' '.join(gone) or '-'}")
        dirs = sweep_workdirs()
        print(f"removed {len(dirs)} working directories: {' '.join(dirs) or '-'}")
        return
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")  # the demo prints its own errors
    if args.encap == "ipip":
        ok, why = clustermod.ipip_supported()
        if not ok:
            print("calico-node demo: --encap ipip needs the kernel's ipip module, which this "
                  f"kernel does not have ({why}). Use --encap vxlan or --encap none.",
                  file=sys.stderr)
            sys.exit(2)
    if args.datastore == "kubernetes" and not kubemod.built():
        print("building kube-apiserver and etcd (scripts/build-kube, first run only: about "
              "5 minutes)", flush=True)
        try:
            kubemod.build()
        except CalicoError as exc:
            print(f"calico-node demo: {exc}", file=sys.stderr)
            sys.exit(1)
    sys.exit(run(args))


WORKDIR_PREFIX = "calico-demo-"
PID_FILE = "demo.pid"


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def sweep_workdirs() -> list[str]:
    """Working directories of demos that are no longer running: their API server (if any)
    stopped, the directory removed."""
    gone = []
    for d in sorted(Path(tempfile.gettempdir()).glob(f"{WORKDIR_PREFIX}*")):
        try:
            pid = int((d / PID_FILE).read_text())
        except (OSError, ValueError):
            continue
        if _running(pid):
            continue
        try:
            kubemod.stop(d)
        except CalicoError as exc:
            print(f"{d}: {exc}", file=sys.stderr)
            continue
        shutil.rmtree(d, ignore_errors=True)
        gone.append(str(d))
    return gone


def run(args: argparse.Namespace) -> int:
    say = Progress()
    opts = clustermod.Options(args.nodes, args.pods, args.encap, args.topology,
                              edge=not args.no_edge, datastore=args.datastore)
    prefix = f"{PREFIX}{os.getpid()}"
    lab = labmod.Lab(prefix, Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX)))
    (lab.workdir / PID_FILE).write_text(f"{os.getpid()}\n")
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        raise Interrupted()

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    cl: clustermod.Cluster | None = None
    backend = None
    code = 1
    try:
        say(f"workdir {lab.workdir}, namespaces {prefix}-*")
        if opts.kdd:
            say("starting the Kubernetes API server (etcd + kube-apiserver, CRDs)")
            lab.cleanups.append(lambda: kubemod.stop(lab.workdir))
            kube = kubemod.start(lab.workdir)
            say(f"API server ready at {kube.cp.server} (kubeconfig {kube.cp.kubeconfig})")
            from libcalico.datastore import connect
            from libcalico.datastore.config import DatastoreConfig

            backend = connect(DatastoreConfig.from_env(
                {"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(kube.cp.kubeconfig)}))
            cl = clustermod.Cluster(opts, lab, "", backend, say, kube=kube)
        else:
            say("starting etcd")
            url = start_etcd(lab)
            from libcalico.datastore.etcd import EtcdBackend

            backend = EtcdBackend([url])
            cl = clustermod.Cluster(opts, lab, url, backend, say)
        cl.bring_up()
        nodes = list(cl.nodes.values())
        say(f"starting {opts.pods} pod(s) per node through the CNI plugin"
            + (f" (Pods in namespace {kubemod.NAMESPACE}, bound to their nodes)"
               if opts.kdd else ""))
        for n in nodes:
            for j in range(1, opts.pods + 1):
                pod = cl.add_pod(n, j)
                say(f"  {pod.label}: {pod.ip} ({pod.ns})")
        print()
        for n in nodes:
            print(f"=== {n.name} ({n.plan.ip.ip}): calicoctl node status")
            print(cl.node_status(n))
            print()
        if cl.edge:
            # A new block's aggregation reaches BIRD about a second after its first pod
            # (confd's pass interval); until then the pod's /32 may be exported. Give BGP
            # up to 10 s to settle on the blocks (whatever it shows then is printed).
            settle = time.monotonic() + 10
            routes = cl.edge_routes()
            while any("/" not in r.split()[0] for r in routes) and time.monotonic() < settle:
                time.sleep(0.2)
                routes = cl.edge_routes()
            print(f"=== edge router: {len(routes)} routes learned by BGP")
            for r in routes:
                print("  " + r)
            print()
        print("=== workload endpoints" + (" (derived from the Pods)" if opts.kdd else ""))
        eps = cl.endpoints()
        w = max([len(e[1]) for e in eps] + [4])
        print(f"{'NODE':<10} {'NAME':<{w}} {'NETWORKS':<18} INTERFACE")
        for node, name, nets, iface in eps:
            print(f"{node:<10} {name:<{w}} {nets:<18} {iface}")
        print()
        say("ping matrix (every pod to every other pod)")
        result = cl.matrix(deadline=30)
        _print_matrix(cl, result)
        ok = sum(result.values())
        total = len(result)
        print(f"reachability: {ok}/{total} pod pairs")
        code = 0 if ok == total else 1
        if args.keep:
            say("network is up; press Ctrl-C to tear it down. Try: "
                f"ip netns exec {cl.pods[0].ns} ping {cl.pods[-1].ip}")
            while not stop.is_set():
                stop.wait(1)
    except Interrupted:
        print("\ninterrupted", file=sys.stderr)
        code = 130 if not args.keep else code
    except (CalicoError, OSError, subprocess.SubprocessError) as exc:
        print(f"calico-node demo: {exc}", file=sys.stderr)
        code = 1
    finally:
        for s in old:  # a second Ctrl-C must not cut the teardown short
            signal.signal(s, signal.SIG_IGN)
        say("tearing down")
        if cl is not None:
            cl.close()
        if backend is not None:
            backend.close()
        lab.close()
        left = [e.name for e in labmod.NETNS_DIR.glob(f"{prefix}-*")] \
            if labmod.NETNS_DIR.is_dir() else []
        left += [f"pid {p.pid} ({n})" for n, p in lab.procs if p.poll() is None]
        left += [str(d) for d in (lab.workdir, *lab.made_dirs) if d.exists()]
        say("done: no namespace, process or file left" if not left
            else f"left behind: {', '.join(left)}")
        for s, h in old.items():
            signal.signal(s, h)
    return code


def _print_matrix(cl: clustermod.Cluster, result: dict[tuple[str, str], bool]) -> None:
    labels = [p.label for p in cl.pods]
    short = [f"{p.node.split('-')[-1]}.{p.index}" for p in cl.pods]
    w = max(len(x) for x in labels)
    print(" " * (w + 1) + " ".join(f"{s:>5}" for s in short))
    for a in labels:
        cells = []
        for b in labels:
            cells.append("    ." if a == b else ("   ok" if result.get((a, b)) else " FAIL"))
        print(f"{a:<{w}} " + " ".join(cells))
