"""Deleting a Calico Node on etcd as libcalico-go's `nodes.Delete` does (what Calico's
node-deletion controller calls when the Kubernetes Node is gone):

1. the addresses of the node's WorkloadEndpoints and its tunnel addresses (IPIP, VXLAN,
   WireGuard IPv4) are released;
2. its WorkloadEndpoints are deleted;
3. its IPAM host is removed (every affinity released; blocks still holding addresses stay,
   unaffine, for the IPAM GC);
4. BGPPeers and HostEndpoints with `spec.node` = the node, FelixConfiguration and
   BGPConfiguration `node.<name>` are deleted;
5. the Node itself is deleted.

Each step tolerates what is already gone.
"""

from __future__ import annotations

import contextlib
import logging

from libcalico.client import Client
from libcalico.errors import NotFound
from libcalico.ipam.block import IPAddress
from libcalico.ipam.client import IPAMClient
from libcalico.model.resources import (
    BGPConfiguration,
    BGPPeer,
    FelixConfiguration,
    HostEndpoint,
    Node,
    WorkloadEndpoint,
)

log = logging.getLogger(__name__)


def delete_node(client: Client, ipam: IPAMClient, name: str) -> None:
    weps = [w for w in client.list(WorkloadEndpoint) if w.spec.node == name]
    ips: list[IPAddress] = [n.network_address for w in weps for n in w.spec.ip_networks]
    with contextlib.suppress(NotFound):
        node = client.get(Node, name)
        spec = node.spec
        for ip in (spec.bgp.ipv4_ipip_tunnel_addr if spec.bgp else None,
                   spec.ipv4_vxlan_tunnel_addr,
                   spec.wireguard.interface_ipv4_address if spec.wireguard else None):
            if ip is not None:
                ips.append(ip)
    if ips:
        ipam.release_ips(ips)
    for w in weps:
        with contextlib.suppress(NotFound):
            client.delete(WorkloadEndpoint, w.metadata.name, w.metadata.namespace)
    ipam.remove_ipam_host(name)
    for peer in client.list(BGPPeer):
        if peer.spec.node == name:
            with contextlib.suppress(NotFound):
                client.delete(BGPPeer, peer.metadata.name)
    for kind in (FelixConfiguration, BGPConfiguration):
        with contextlib.suppress(NotFound):
            client.delete(kind, f"node.{name}")
    for hep in client.list(HostEndpoint):
        if hep.spec.node == name:
            with contextlib.suppress(NotFound):
                client.delete(HostEndpoint, hep.metadata.name)
    with contextlib.suppress(NotFound):
        client.delete(Node, name)
    log.info("deleted Calico node %s: %d workload endpoints, %d addresses released", name,
             len(weps), len(ips))
