"""End to end: calico-node in namespaces, real etcd, BIRD, confd, Felix and the CNI plugin.

Each test builds a small cluster with the demo's machinery (calico_node.demo.cluster) and
checks that every pod reaches every other pod, then breaks something and checks again.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from calico_node.demo import cluster as clustermod
from calico_node.demo import lab as labmod
from calico_node.demo import plan as planmod
from libcalico import birdctl, proc
from libcalico.model import keys
from tests.fixtures.etcd import EtcdFactory, EtcdServer
from tests.netns.node.conftest import Factory

pytestmark = [pytest.mark.netns, pytest.mark.etcd, pytest.mark.bird]


def all_ok(cl: clustermod.Cluster, deadline: float = 30) -> None:
    result = cl.matrix(deadline=deadline)
    bad = [f"{a}->{b}" for (a, b), ok in result.items() if not ok]
    assert result and not bad, f"unreachable: {bad}"


def pods(cl: clustermod.Cluster, per_node: int = 1) -> None:
    for n in cl.nodes.values():
        for j in range(1, per_node + 1):
            cl.add_pod(n, j)


def pids_of(ns: str, comm: str) -> list[int]:
    out = []
    for pid in labmod.ip("netns", "pids", ns).split():
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == comm:
                out.append(int(pid))
        except OSError:
            continue
    return out


def _cmdline(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def wait_for(fn: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if fn():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _prefixes(bird_reply: str) -> set[ipaddress.IPv4Network]:
    """The destinations in a raw `show route` reply: a route's line is `1007-<prefix> …` or,
    continuing the same reply code, ` <prefix> …`; next hops of multipath routes are indented
    further and have no prefix."""
    out = set()
    for ln in bird_reply.splitlines():
        m = re.match(r"^(?:\d{4}[- ]| )(\d+\.\d+\.\d+\.\d+/\d+)\s", ln)
        if m:
            out.add(ipaddress.IPv4Network(m.group(1)))
    return out


def edge_tables(cl: clustermod.Cluster) -> tuple[set[ipaddress.IPv4Network], ...]:
    """(edge kernel routes learnt by BGP, edge BIRD table)."""
    kernel = {ipaddress.IPv4Network(ln.split()[0]) for ln in cl.edge_routes()}
    table = _prefixes(birdctl.query(str(cl.lab.workdir / "edge" / "bird.ctl"), "show route"))
    return kernel, table


def assert_edge_holds_only_blocks(cl: clustermod.Cluster) -> None:
    """The edge router learns the pool's /26 blocks and not one /32 per pod: workload routes
    carry metric 1024 (the normal route priority), which calico_aggr does not export. A new
    block's aggregation reaches BIRD about a second after its first pod (confd's pass
    interval), so a /32 may show briefly: wait for the tables to settle (with metric 0, as
    before, they never did), then compare."""
    blocks = {ipaddress.IPv4Network(f"{p.ip}/26", strict=False) for p in cl.pods}
    assert all(b.subnet_of(planmod.POOL) for b in blocks)
    with contextlib.suppress(AssertionError):
        wait_for(lambda: edge_tables(cl) == (blocks, blocks), 20, "edge holds only the blocks")
    kernel, table = edge_tables(cl)
    assert kernel == blocks, f"edge kernel routes {sorted(map(str, kernel))}"
    assert table == blocks, f"edge BIRD table {sorted(map(str, table))}"


def test_mesh_then_route_reflector_live(etcd: EtcdServer, make_cluster: Factory) -> None:
    cl = make_cluster(etcd.endpoint, nodes=3, encap="none", topology="mesh", edge=True)
    pods(cl)
    all_ok(cl)
    n1 = cl.nodes["node-1"]
    assert {p.peer_type for p in cl.peers(n1)} == {"node-to-node mesh", "global"}
    status = cl.node_status(n1)
    assert "| PEER ADDRESS |" in status and "node-to-node mesh" in status
    # the edge router (plain BIRD) learned every node's block by eBGP
    routes = " ".join(cl.edge_routes())
    for p in cl.pods:
        block = ".".join(str(p.ip).split(".")[:3])
        assert block in routes
    # Each node's workload /32 has metric 1024 and is in its BIRD table (learnt from the
    # kernel), so the edge checks below see routes BIRD had the chance to export.
    for p in cl.pods:
        ns = cl.nodes[p.node].ns
        kr = json.loads(labmod.ip("-4", "-j", "route", "show", "exact", f"{p.ip}/32", ns=ns))
        assert [(r["dev"][:4], r.get("metric", 0)) for r in kr] == [("cali", 1024)], kr
        wait_for(lambda p=p: ipaddress.IPv4Network(f"{p.ip}/32") in _prefixes(birdctl.query(
            cl.nodes[p.node].bird_socket, f"show route {p.ip}/32")), 30,
            f"{p.node}'s BIRD learns {p.ip}/32 from the kernel")
    assert_edge_holds_only_blocks(cl)
    cl.set_topology("rr")
    cl.wait_established(timeout=90)
    types = {n.name: {p.peer_type for p in cl.peers(n)} for n in cl.nodes.values()}
    assert types["node-2"] == {"node specific", "global"}
    assert len([p for p in cl.peers(n1) if p.peer_type == "node specific"]) == 2
    all_ok(cl)
    assert_edge_holds_only_blocks(cl)


def test_vxlan_across_a_router(etcd: EtcdServer, make_cluster: Factory) -> None:
    cl = make_cluster(etcd.endpoint, nodes=3, encap="vxlan", edge=False)
    pods(cl)
    all_ok(cl)
    routes = labmod.ip("-4", "route", "show", ns=cl.nodes["node-1"].ns)
    assert "dev vxlan.calico" in routes
    # node-2 is on the other subnet: its VXLAN packets cross the router
    assert cl.nodes["node-2"].plan.subnet != cl.nodes["node-1"].plan.subnet


def test_faults_component_kill_etcd_outage_node_restart(
        etcd_factory: EtcdFactory, make_cluster: Factory) -> None:
    srv = etcd_factory.new("e2e")
    cl = make_cluster(srv.endpoint, nodes=3, encap="none", edge=False)
    pods(cl)
    all_ok(cl)
    n2, n3 = cl.nodes["node-2"], cl.nodes["node-3"]

    # kill -9 BIRD: the supervisor restarts it, sessions and routes come back
    old = pids_of(n2.ns, "bird")
    assert len(old) == 1
    os.kill(old[0], signal.SIGKILL)
    wait_for(lambda: pids_of(n2.ns, "bird") not in ([], old), 30, "bird restarted")
    cl.wait_established(timeout=60)
    all_ok(cl)

    # kill -9 Felix: restarted, and it programs a new pod
    felix = [p for p in pids_of(n3.ns, "calico-felix")] or [
        int(p) for p in labmod.ip("netns", "pids", n3.ns).split()
        if "calico-felix" in Path(f"/proc/{p}/cmdline").read_bytes().decode(errors="replace")]
    assert felix, "felix is not running on node-3"
    os.kill(felix[0], signal.SIGKILL)
    wait_for(lambda: [p for p in labmod.ip("netns", "pids", n3.ns).split()
                      if p != str(felix[0]) and "calico-felix" in _cmdline(p)], 30,
             "felix restarted")
    cl.add_pod(n3, 2)
    all_ok(cl, deadline=45)

    # etcd down for 30 s: existing pods keep talking
    srv.stop()
    time.sleep(30)
    all_ok(cl, deadline=10)
    srv.cluster_state = "existing"
    srv.start()
    # changes made after it returns apply
    cl.add_pod(cl.nodes["node-1"], 2)
    all_ok(cl, deadline=45)

    # restart a whole node: its pods are reachable again
    cl.stop_node(n2)
    cl.start_node(n2)
    cl.wait_started([n2], timeout=60)
    cl.wait_established(timeout=60)
    all_ok(cl, deadline=45)


def test_churn_leaves_nothing_stale(etcd: EtcdServer, make_cluster: Factory) -> None:
    cl = make_cluster(etcd.endpoint, nodes=3, encap="none", edge=False)
    nodes = list(cl.nodes.values())
    keep = [cl.add_pod(n, 0) for n in nodes]

    def add_on(n: clustermod.Node) -> list[clustermod.Pod]:
        return [cl.add_pod(n, i + 1) for i in range(100) if nodes[i % 3] is n]

    with ThreadPoolExecutor(3) as pool:  # one CNI at a time per node, nodes in parallel
        made = [p for group in pool.map(add_on, nodes) for p in group]
    assert len(made) == 100 and len({p.ip for p in made}) == 100
    sample = made[:3] + keep
    result = cl.matrix(sample, deadline=45)
    assert all(result.values()), [k for k, v in result.items() if not v]
    def del_on(n: clustermod.Node) -> None:
        for p in made:
            if p.node == n.name:
                cl.del_pod(p)

    with ThreadPoolExecutor(3) as pool:
        list(pool.map(del_on, nodes))
    all_ok(cl, deadline=30)
    # IPAM: only the kept pods' handles are left, and each block allocation is accounted
    handles = [kv.key.rsplit("/", 1)[1] for kv in cl.backend.list(keys.HANDLE_PREFIX).kvs]
    assert sorted(handles) == sorted(f"demo-net.{p.container_id}" for p in keep)
    allocated = 0
    for kv in cl.backend.list(keys.block_prefix(4)).kvs:
        block = json.loads(kv.value)
        allocated += sum(1 for a in block["allocations"] if a is not None)
    assert allocated == len(keep)
    weps = cl.backend.list(keys.resource_prefix("WorkloadEndpoint")).kvs
    assert len(weps) == len(keep)
    check = proc.run([str(clustermod.BIN / "calicoctl"), "ipam", "check"], timeout=60,
                     check=False, env={**os.environ, "DATASTORE_TYPE": "etcdv3",
                                       "ETCD_ENDPOINTS": cl.etcd_endpoint})
    assert check.returncode == 0, check.stdout + check.stderr

    # kernel: no stale interface, route or iptables chain on any node (Felix may lag a bit)
    def clean() -> bool:
        for n in nodes:
            links = labmod.ip("-o", "link", "show", ns=n.ns).count(": cali")
            routes = [ln for ln in labmod.ip("-4", "route", "show", ns=n.ns).splitlines()
                      if " dev cali" in ln]
            save = labmod.in_ns(n.ns, "iptables-save", "-t", "filter").stdout
            chains = [ln for ln in save.splitlines()
                      if ln.startswith((":cali-tw-", ":cali-fw-"))]
            if links != 1 or len(routes) != 1 or len(chains) != 2:
                return False
        return True

    wait_for(clean, 30, "no stale interface, route or chain")


def test_sigterm_stops_every_component(etcd: EtcdServer, make_cluster: Factory) -> None:
    cl = make_cluster(etcd.endpoint, nodes=1, encap="none", edge=False)
    n1 = cl.nodes["node-1"]
    wait_for(lambda: {"bird", "bird6"} <= {Path(f"/proc/{p}/comm").read_text().strip()
                                           for p in labmod.ip("netns", "pids", n1.ns).split()
                                           if Path(f"/proc/{p}").exists()},
             30, "bird and bird6 running")
    assert any("calico-felix" in _cmdline(p) for p in labmod.ip("netns", "pids", n1.ns).split())
    assert any("calico-confd" in _cmdline(p) for p in labmod.ip("netns", "pids", n1.ns).split())
    proc_ = n1.proc
    assert proc_ is not None
    proc_.send_signal(signal.SIGTERM)  # calico-node only, not its process group
    assert proc_.wait(30) == 0
    n1.proc = None
    assert labmod.ip("netns", "pids", n1.ns).split() == []
