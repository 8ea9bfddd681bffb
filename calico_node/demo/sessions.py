"""The demo cluster's BGP sessions: what each node should have, what its BIRD reports, and
waiting until they match."""

from __future__ import annotations

import time

from calico_node.demo import plan
from calico_node.demo.members import BIN, ClusterError, Node, Options
from libcalico import bird, birdctl, proc
from libcalico.errors import CalicoError


class Sessions:
    """Part of `Cluster`: BGP sessions and node status."""

    opts: Options
    nodes: dict[str, Node]
    edge: str

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
