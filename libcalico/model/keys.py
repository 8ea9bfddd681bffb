"""The only place datastore paths are spelled (Calico's etcdv3 layout, byte for byte)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

RESOURCE_ROOT = "/calico/resources/v3/projectcalico.org/"
IPAM_ROOT = "/calico/ipam/v2/"
API_VERSION = "projectcalico.org/v3"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class KindInfo:
    kind: str
    plural: str
    namespaced: bool = False


KINDS: dict[str, KindInfo] = {
    k.kind: k
    for k in (
        KindInfo("BGPConfiguration", "bgpconfigurations"),
        KindInfo("BGPFilter", "bgpfilters"),
        KindInfo("BGPPeer", "bgppeers"),
        KindInfo("ClusterInformation", "clusterinformations"),
        KindInfo("FelixConfiguration", "felixconfigurations"),
        KindInfo("GlobalNetworkPolicy", "globalnetworkpolicies"),
        KindInfo("GlobalNetworkSet", "globalnetworksets"),
        KindInfo("HostEndpoint", "hostendpoints"),
        KindInfo("IPAMConfiguration", "ipamconfigurations"),
        KindInfo("IPPool", "ippools"),
        KindInfo("IPReservation", "ipreservations"),
        KindInfo("KubeControllersConfiguration", "kubecontrollersconfigurations"),
        KindInfo("NetworkPolicy", "networkpolicies", namespaced=True),
        KindInfo("NetworkSet", "networksets", namespaced=True),
        KindInfo("Node", "nodes"),
        KindInfo("Profile", "profiles"),
        KindInfo("StagedGlobalNetworkPolicy", "stagedglobalnetworkpolicies"),
        KindInfo("StagedKubernetesNetworkPolicy", "stagedkubernetesnetworkpolicies",
                 namespaced=True),
        KindInfo("StagedNetworkPolicy", "stagednetworkpolicies", namespaced=True),
        KindInfo("Tier", "tiers"),
        KindInfo("WorkloadEndpoint", "workloadendpoints", namespaced=True),
    )
}


def resource_prefix(kind: str, namespace: str | None = None) -> str:
    """List prefix for a kind (and namespace, for namespaced kinds); ends with '/'."""
    info = KINDS[kind]
    if info.namespaced and namespace:
        return f"{RESOURCE_ROOT}{info.plural}/{namespace}/"
    return f"{RESOURCE_ROOT}{info.plural}/"


def resource_key(kind: str, name: str, namespace: str | None = None) -> str:
    info = KINDS[kind]
    if info.namespaced:
        if not namespace:
            raise ValueError(f"{kind} is namespaced: a namespace is required")
        return f"{RESOURCE_ROOT}{info.plural}/{namespace}/{name}"
    return f"{RESOURCE_ROOT}{info.plural}/{name}"


def parse_resource_key(key: str) -> tuple[str, str | None, str] | None:
    """(kind, namespace, name) for a v3 resource key, or None if it is not one."""
    if not key.startswith(RESOURCE_ROOT):
        return None
    parts = key[len(RESOURCE_ROOT):].split("/")
    for info in KINDS.values():
        if parts[0] != info.plural:
            continue
        if info.namespaced and len(parts) == 3:
            return info.kind, parts[1], parts[2]
        if not info.namespaced and len(parts) == 2:
            return info.kind, None, parts[1]
    return None


def _cidr_segment(cidr: IPNetwork) -> str:
    return str(cidr).replace("/", "-")


def block_key(cidr: IPNetwork) -> str:
    return f"{IPAM_ROOT}assignment/ipv{cidr.version}/block/{_cidr_segment(cidr)}"


def block_prefix(version: int | None = None) -> str:
    return f"{IPAM_ROOT}assignment/ipv{version}/block/" if version else f"{IPAM_ROOT}assignment/"


def parse_block_key(key: str) -> IPNetwork | None:
    prefix = f"{IPAM_ROOT}assignment/"
    if not key.startswith(prefix):
        return None
    seg = key.rsplit("/", 1)[-1]
    head, _, bits = seg.rpartition("-")
    try:
        return ipaddress.ip_network(f"{head}/{bits}")
    except ValueError:
        return None


def affinity_key(host: str, cidr: IPNetwork, affinity_type: str = "host") -> str:
    return f"{IPAM_ROOT}{affinity_type}/{host}/ipv{cidr.version}/block/{_cidr_segment(cidr)}"


def affinity_prefix(host: str | None = None, version: int | None = None,
                    affinity_type: str = "host") -> str:
    if host is None:
        return f"{IPAM_ROOT}{affinity_type}/"
    if version is None:
        return f"{IPAM_ROOT}{affinity_type}/{host}/"
    return f"{IPAM_ROOT}{affinity_type}/{host}/ipv{version}/block/"


def parse_affinity_key(key: str) -> tuple[str, str, IPNetwork] | None:
    """(affinity_type, host, cidr) for an affinity key, or None."""
    if not key.startswith(IPAM_ROOT):
        return None
    parts = key[len(IPAM_ROOT):].split("/")
    if len(parts) != 5 or parts[3] != "block" or parts[2] not in ("ipv4", "ipv6"):
        return None
    cidr = parse_block_key(f"{IPAM_ROOT}assignment/{parts[2]}/block/{parts[4]}")
    if cidr is None:
        return None
    return parts[0], parts[1], cidr


def handle_key(handle_id: str) -> str:
    return f"{IPAM_ROOT}handle/{handle_id}"


HANDLE_PREFIX = f"{IPAM_ROOT}handle/"
IPAM_CONFIG_KEY = f"{IPAM_ROOT}config"


def ipam_host_key(host: str) -> str:
    return f"{IPAM_ROOT}host/{host}"
