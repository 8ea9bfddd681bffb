"""calico-confd driving real BIRD: three node namespaces plus an edge router.

Topology: a LAN namespace holds a bridge; each node namespace (n1, n2, n3) and the edge
namespace has a veth into it, with addresses from 10.99.0.0/24 and fd99::/64 (inside the
namespaces only). etcd listens on 127.0.0.1 in the root namespace; one calico-confd per node
runs in the root namespace (watch mode, NODENAME=<node>, dests under a per-node temp dir,
real check_cmd `bird -p` and reload through `birdc configure` on the node's control socket).
Only BIRD runs inside the node namespaces.

Phases: full mesh (v4 and v6 sessions Established, block routes in every kernel table); route
reflectors (mesh off, n1 reflects, selector peers) by reload, with the same BIRD processes; a
global peer to a plain-BIRD edge router that learns the pod blocks; etcd stopped (files,
sessions and processes stay) and restarted (confd applies the next change).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdFactory, EtcdServer
from tests.fixtures.netns import NetnsFactory, ns_exec
from tests.integration.confd_engine import cluster as c

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.bird]

NODES = {"n1": 1, "n2": 2, "n3": 3}
EDGE = 254
BLOCKS = {"n1": "192.168.1.0/26", "n2": "192.168.2.0/26", "n3": "192.168.3.0/26"}
BLOCKS6 = {"n1": "fd00:10:1::/122", "n2": "fd00:10:2::/122", "n3": "fd00:10:3::/122"}
SETTLE = 90.0


@dataclass
class Bird:
    ns: str
    ctl: Path
    pidfile: Path
    birdc: str

    def pid(self) -> int:
        return int(self.pidfile.read_text().strip())

    def show(self, *what: str) -> str:
        r = subprocess.run([self.birdc, "-s", str(self.ctl), "show", *what], capture_output=True,
                           text=True, timeout=10, check=False)
        return r.stdout

    def protocols(self) -> dict[str, str]:
        """BGP protocol name -> BGP state (`Established`, `Active`, ...)."""
        out: dict[str, str] = {}
        for line in self.show("protocols").splitlines():
            parts = line.split()
            if len(parts) >= 6 and parts[1] == "BGP":
                out[parts[0]] = parts[5]
        return out


@dataclass
class Node:
    name: str
    ns: str
    ip: str
    ip6: str
    root: Path
    bird: Bird | None = None
    bird6: Bird | None = None
    confd: c.Daemon | None = None

    @property
    def cfg(self) -> Path:
        return self.root / c.CONFIG_DIR

    @property
    def b4(self) -> Bird:
        assert self.bird is not None, f"{self.name}: bird not started"
        return self.bird

    @property
    def b6(self) -> Bird:
        assert self.bird6 is not None, f"{self.name}: bird6 not started"
        return self.bird6

    def pids(self) -> tuple[int, int]:
        return self.b4.pid(), self.b6.pid()


def sh(ns: str, *argv: str) -> str:
    return ns_exec(ns, *argv).stdout


def start_bird(ns: str, binary: str, cfg: Path, run: Path) -> Bird:
    run.mkdir(parents=True, exist_ok=True)
    ctl, pid = run / f"{binary}.ctl", run / f"{binary}.pid"
    ns_exec(ns, binary, "-c", str(cfg), "-s", str(ctl), "-P", str(pid))
    b = Bird(ns, ctl, pid, "birdc6" if binary == "bird6" else "birdc")
    wait("BIRD control socket", lambda: ctl.exists() and pid.exists(), 20)
    return b


def stop_bird(b: Bird | None) -> None:
    if b is None:
        return
    with contextlib.suppress(Exception):
        os.kill(b.pid(), signal.SIGKILL)


def wait(what: str, pred: Callable[[], bool], timeout: float = SETTLE,
         detail: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out waiting for {what}\n{detail()}")


def routes(ns: str, family: str = "-4") -> str:
    return sh(ns, "ip", family, "route", "show", "proto", "bird")


@pytest.fixture
def etcd(etcd_factory: EtcdFactory) -> EtcdServer:
    """A private etcd: this test stops and restarts it."""
    return etcd_factory.new("confd-live")


@pytest.fixture
def lab(etcd: EtcdServer, netns_factory: NetnsFactory, tmp_path: Path) -> Iterator[dict[str, Node]]:
    lan = netns_factory.new("cfd-lan")
    sh(lan, "ip", "link", "add", "br0", "type", "bridge")
    sh(lan, "ip", "link", "set", "br0", "up")
    nodes: dict[str, Node] = {}
    for name, idx in [*NODES.items(), ("edge", EDGE)]:
        ns = netns_factory.new(f"cfd-{name}")
        sh(lan, "ip", "link", "add", f"p{idx}", "type", "veth", "peer", "name", "eth0",
           "netns", ns)
        sh(lan, "ip", "link", "set", f"p{idx}", "master", "br0", "up")
        sh(ns, "ip", "addr", "add", f"10.99.0.{idx}/24", "dev", "eth0")
        sh(ns, "ip", "-6", "addr", "add", f"fd99::{idx}/64", "dev", "eth0", "nodad")
        sh(ns, "ip", "link", "set", "eth0", "up")
        nodes[name] = Node(name, ns, f"10.99.0.{idx}", f"fd99::{idx}", tmp_path / name)
    be = c.backend(etcd.endpoint)
    try:
        for name, idx in NODES.items():
            c.node(be, name, f"10.99.0.{idx}/24", ipv6=f"fd99::{idx}/64")
            c.affinity(be, name, BLOCKS[name])
            c.affinity(be, name, BLOCKS6[name])
        c.pool(be, "default-ipv4-ippool", "192.168.0.0/16")
        c.pool(be, "default-ipv6-ippool", "fd00:10::/48", blockSize=122)
    finally:
        be.close()
    try:
        yield nodes
    finally:
        for n in nodes.values():
            if n.confd is not None:
                n.confd.stop()
            stop_bird(n.bird)
            stop_bird(n.bird6)
        # netns_factory then kills anything left in the namespaces and deletes them


def start_node(etcd: EtcdServer, tmp_path: Path, n: Node) -> None:
    run = n.root / "run"
    n.root.mkdir(parents=True, exist_ok=True)
    # The shipped resources unchanged: real `bird -p` checks and the shipped reload_cmd
    # (`birdc configure` on $CALICO_RUN_DIR/bird.ctl), pointed at this node's BIRD sockets.
    confdir = c.make_confdir(n.root)
    n.confd = c.Daemon(etcd.endpoint, n.name, "--confdir", str(confdir), "--dest-root",
                       str(n.root), log_path=n.root / "confd.log",
                       extra_env={"CALICO_RUN_DIR": str(run)})
    wait(f"{n.name} config", lambda: all((n.cfg / f).exists() for f in c.FILES), 60,
         n.confd.log)
    n.bird = start_bird(n.ns, "bird", n.cfg / "bird.cfg", run)
    n.bird6 = start_bird(n.ns, "bird6", n.cfg / "bird6.cfg", run)


def start_edge(edge: Node) -> None:
    edge.root.mkdir(parents=True, exist_ok=True)
    conf = [f"router id 10.99.0.{EDGE};",
            "protocol device { scan time 2; }",
            "protocol kernel { export all; scan time 2; }"]
    for name, idx in NODES.items():
        conf.append(f"protocol bgp {name} {{ local as 65001; neighbor 10.99.0.{idx} as 64512; "
                    "import all; export none; }")
    (edge.root / "bird.cfg").write_text("\n".join(conf) + "\n")
    edge.bird = start_bird(edge.ns, "bird", edge.root / "bird.cfg", edge.root / "run")


def all_established(b: Bird, names: set[str]) -> bool:
    p = b.protocols()
    return names <= set(p) and all(p[n] == "Established" for n in names)


def test_mesh_route_reflectors_and_edge_router(etcd: EtcdServer, lab: dict[str, Node],
                                              tmp_path: Path) -> None:
    nodes = {k: v for k, v in lab.items() if k != "edge"}
    for n in nodes.values():
        start_node(etcd, tmp_path, n)

    # 1. Full mesh: every node has Mesh_ sessions to the two others, v4 and v6, Established.
    for n in nodes.values():
        others = [o for o in nodes.values() if o is not n]
        want4 = {f"Mesh_{o.ip.replace('.', '_')}" for o in others}
        want6 = {f"Mesh_{o.ip6.replace(':', '_')}" for o in others}
        b4, b6 = n.b4, n.b6
        wait(f"{n.name} v4 mesh", lambda b4=b4, w=want4: all_established(b4, w),
             detail=lambda b4=b4: b4.show("protocols"))
        wait(f"{n.name} v6 mesh", lambda b6=b6, w=want6: all_established(b6, w),
             detail=lambda b6=b6: b6.show("protocols"))
    # ... and learns the other nodes' blocks into its kernel table.
    for n in nodes.values():
        for o in nodes.values():
            if o is n:
                continue
            wait(f"{n.name} route to {o.name}'s block",
                 lambda n=n, o=o: f"{BLOCKS[o.name]} via {o.ip} " in routes(n.ns),
                 detail=lambda n=n: routes(n.ns))
            wait(f"{n.name} v6 route to {o.name}'s block",
                 lambda n=n, o=o: f"{BLOCKS6[o.name]} via {o.ip6} " in routes(n.ns, "-6"),
                 detail=lambda n=n: routes(n.ns, "-6"))
    pids = {n.name: n.pids() for n in nodes.values()}

    # 2. Route reflectors: mesh off, n1 is the reflector, selector peers; BIRD reconfigured.
    be = c.backend(etcd.endpoint)
    try:
        c.put(be, "BGPConfiguration", "default", {"nodeToNodeMeshEnabled": False,
                                                  "asNumber": 64512})
        c.node(be, "n1", "10.99.0.1/24", ipv6="fd99::1/64", rr_cluster_id="224.0.0.1",
               labels={"route-reflector": "true"})
        c.put(be, "BGPPeer", "peer-with-rr", {"nodeSelector": "all()",
                                              "peerSelector": "route-reflector == 'true'"})
    finally:
        be.close()
    rr, n2, n3 = nodes["n1"], nodes["n2"], nodes["n3"]
    wait("RR sessions on n1",
         lambda: all_established(rr.b4, {"Node_10_99_0_2", "Node_10_99_0_3"})
         and not any(p.startswith("Mesh_") for p in rr.b4.protocols()),
         detail=lambda: rr.b4.show("protocols"))
    for client in (n2, n3):
        b = client.b4
        wait(f"{client.name} peers only with the reflector",
             lambda b=b: all_established(b, {"Node_10_99_0_1"})
             and not any(p.startswith("Mesh_") for p in b.protocols()),
             detail=lambda b=b: b.show("protocols"))
    assert "rr client" in (rr.cfg / "bird.cfg").read_text()
    # n2 now learns n3's block through the reflector (next hop unchanged: n3).
    wait("n2 learns n3's block via the RR", lambda: f"{BLOCKS['n3']} via 10.99.0.3 "
         in routes(n2.ns), detail=lambda: routes(n2.ns))
    assert {n.name: n.pids() for n in nodes.values()} == pids, "BIRD reconfigured, not restarted"

    # 3. A global peer to the edge router: it learns every node's pod routes.
    edge = lab["edge"]
    start_edge(edge)
    be = c.backend(etcd.endpoint)
    try:
        c.put(be, "BGPPeer", "edge", {"peerIP": f"10.99.0.{EDGE}", "asNumber": 65001})
    finally:
        be.close()
    wait("edge sessions", lambda: all_established(edge.b4, set(NODES)),
         detail=lambda: edge.b4.show("protocols"))
    for n in nodes.values():
        # from its owner's session, with the owner as next hop (the edge's best path may be
        # another node's copy: every node re-advertises what it learned to the eBGP edge)
        wait(f"edge learns {n.name}'s block from {n.name}",
             lambda n=n: re.search(rf"{re.escape(BLOCKS[n.name])}\s+via {re.escape(n.ip)} ",
                                   edge.b4.show("route", "protocol", n.name)) is not None,
             detail=lambda: edge.b4.show("route"))
        assert "Global_10_99_0_254" in n.b4.protocols()
    wait("edge kernel has every pod block",
         lambda: all(f"{b} via " in routes(edge.ns) for b in BLOCKS.values()),
         detail=lambda: routes(edge.ns))
    assert {n.name: n.pids() for n in nodes.values()} == pids

    # 4. etcd goes away: files, sessions and BIRD processes stay; confd catches up afterwards.
    files = {(n.name, f): (n.cfg / f).read_bytes() for n in nodes.values() for f in c.FILES}
    etcd.stop()
    for n in nodes.values():
        assert n.confd is not None
        wait(f"{n.name} notices the outage",
             lambda n=n: "holding the current configuration" in n.confd.log(),  # type: ignore[union-attr]
             detail=n.confd.log)
    time.sleep(3)
    assert {(n.name, f): (n.cfg / f).read_bytes() for n in nodes.values()
            for f in c.FILES} == files
    assert all_established(edge.b4, set(NODES)), edge.b4.show("protocols")
    assert all_established(rr.b4, {"Node_10_99_0_2", "Node_10_99_0_3", "Global_10_99_0_254"})
    assert {n.name: n.pids() for n in nodes.values()} == pids
    etcd.cluster_state = "existing"
    etcd.start()
    be = c.backend(etcd.endpoint)
    try:
        c.delete(be, "BGPPeer", "edge")
    finally:
        be.close()
    for n in nodes.values():
        wait(f"{n.name} drops the edge peer after etcd is back",
             lambda n=n: "Global_10_99_0_254" not in n.b4.protocols(),
             detail=lambda n=n: n.b4.show("protocols"))
    assert {n.name: n.pids() for n in nodes.values()} == pids

    for n in nodes.values():
        assert n.confd is not None
        log = n.confd.log()
        assert "Traceback" not in log, log
