"""Datastore key/values as Calico stores them, for Felix's unit tests."""

from __future__ import annotations

import ipaddress
import json

from libcalico.model import keys


def _j(d: dict[str, object]) -> str:
    return json.dumps(d, separators=(",", ":"))


def pool(name: str, cidr: str, vxlan: str = "Never", ipip: str = "Never",
         nat: bool = False) -> tuple[str, str]:
    return keys.resource_key("IPPool", name), _j({
        "kind": "IPPool", "metadata": {"name": name},
        "spec": {"cidr": cidr, "vxlanMode": vxlan, "ipipMode": ipip, "natOutgoing": nat}})


def node(name: str, ip: str, vtep: str | None = None, mac: str | None = None,
         ipip_addr: str | None = None) -> tuple[str, str]:
    spec: dict[str, object] = {"bgp": {"ipv4Address": ip}}
    if ipip_addr:
        spec["bgp"] = {"ipv4Address": ip, "ipv4IPIPTunnelAddr": ipip_addr}
    if vtep:
        spec["ipv4VXLANTunnelAddr"] = vtep
    if mac:
        spec["vxlanTunnelMACAddr"] = mac
    return keys.resource_key("Node", name), _j({"kind": "Node", "metadata": {"name": name},
                                                "spec": spec})


def block(cidr: str, host: str | None) -> tuple[str, str]:
    return keys.block_key(ipaddress.ip_network(cidr)), _j({
        "cidr": cidr, "affinity": f"host:{host}" if host else None, "allocations": [],
        "unallocated": [], "attributes": []})


def wep(name: str, node_name: str, iface: str, nets: list[str], mac: str = "ee:ee:ee:ee:ee:ee",
        profiles: tuple[str, ...] = ("kns.default",)) -> tuple[str, str]:
    return keys.resource_key("WorkloadEndpoint", name, "default"), _j({
        "kind": "WorkloadEndpoint", "metadata": {"name": name, "namespace": "default"},
        "spec": {"node": node_name, "interfaceName": iface, "ipNetworks": nets, "mac": mac,
                 "profiles": list(profiles)}})


def profile(name: str, ingress: list[dict[str, object]],
            egress: list[dict[str, object]]) -> tuple[str, str]:
    return keys.resource_key("Profile", name), _j({
        "kind": "Profile", "metadata": {"name": name},
        "spec": {"ingress": ingress, "egress": egress}})


def felixconfig(name: str, spec: dict[str, object]) -> tuple[str, str]:
    return keys.resource_key("FelixConfiguration", name), _j({
        "kind": "FelixConfiguration", "metadata": {"name": name}, "spec": spec})
