"""The demo's addressing plan and the edge router's BIRD configuration (pure)."""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

PURE = True

SUBNETS = (ipaddress.ip_network("172.30.0.0/24"), ipaddress.ip_network("172.30.1.0/24"))
RELAY_IP = ipaddress.IPv4Address("172.30.0.254")   # etcd, reached through the relay
ROUTER_IPS = (ipaddress.IPv4Address("172.30.0.1"), ipaddress.IPv4Address("172.30.1.1"))
EDGE_IP = ipaddress.ip_address("172.30.0.250")
EDGE_AS = 65000
CLUSTER_AS = 64512
POOL = ipaddress.IPv4Network("10.244.0.0/16")
ETCD_PORT = 2379
ETCD_URL = f"http://{RELAY_IP}:{ETCD_PORT}"
NETWORK = "demo-net"
API_IP = ipaddress.IPv4Address("10.101.0.1")
"""Kubernetes datastore: the API server as the nodes reach it, the `kubernetes` service
address (in its serving certificate), relayed from the underlay namespace."""
API_PORT = 443


@dataclass(frozen=True, slots=True)
class NodePlan:
    index: int
    name: str
    subnet: int
    ip: ipaddress.IPv4Interface
    gateway: ipaddress.IPv4Address
    """The node's default route: the router between the subnets, else the underlay."""


def nodes(count: int, two_subnets: bool) -> tuple[NodePlan, ...]:
    if not 1 <= count <= 40:
        raise ValueError("--nodes must be between 1 and 40")
    out = []
    for i in range(1, count + 1):
        subnet = (i + 1) % 2 if two_subnets else 0
        net = SUBNETS[subnet]
        out.append(NodePlan(i, f"node-{i}", subnet,
                            ipaddress.IPv4Interface(f"{net.network_address + 10 + i}/24"),
                            ROUTER_IPS[subnet] if two_subnets else RELAY_IP))
    return tuple(out)


def container_id(prefix: str, node: str, pod: int) -> str:
    return hashlib.sha256(f"{prefix}/{node}/{pod}".encode()).hexdigest()


def pod_name(node: str, pod: int) -> str:
    """The pod's name on the Kubernetes datastore."""
    return f"{node}-pod-{pod}"


def edge_bird_config(peers: tuple[NodePlan, ...]) -> str:
    """Plain BIRD as a data-centre router: eBGP to every node, learned routes to the kernel."""
    lines = [
        f"router id {EDGE_IP};",
        "protocol device { scan time 5; }",
        "protocol kernel { persist off; scan time 5; import none; export all; }",
    ]
    for p in peers:
        lines.append(
            f"protocol bgp {p.name.replace('-', '_')} {{ local {EDGE_IP} as {EDGE_AS}; "
            f"neighbor {p.ip.ip} as {CLUSTER_AS}; import all; export none; }}"
        )
    return "\n".join(lines) + "\n"
