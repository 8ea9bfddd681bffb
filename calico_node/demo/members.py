"""What a demo cluster is made of: its options, its nodes and pods, and its error."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from calico_node.demo import plan
from libcalico.errors import CalicoError

BIN = Path(sys.executable).parent
"""The environment's scripts: calico-node, calico, calicoctl."""


@dataclass(frozen=True, slots=True)
class Options:
    nodes: int = 3
    pods: int = 2
    encap: str = "none"          # none | ipip | vxlan
    topology: str = "mesh"       # mesh | rr
    edge: bool = True
    datastore: str = "etcdv3"    # etcdv3 | kubernetes

    @property
    def two_subnets(self) -> bool:
        return self.encap != "none"

    @property
    def kdd(self) -> bool:
        return self.datastore == "kubernetes"

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

    @property
    def kube_name(self) -> str:
        """Its Pod's name on the Kubernetes datastore (namespace `demo`)."""
        return plan.pod_name(self.node, self.index)


class ClusterError(CalicoError):
    pass
