"""Datastore key/values as Calico stores them, for Felix's unit tests."""

from __future__ import annotations

import ipaddress
import json

from libcalico.model import keys


def _j(d: dict[str, object]) -> str:
    if "kind" in d:
        d = {"apiVersion": keys.API_VERSION, **d}
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
    net = ipaddress.ip_network(cidr)
    return keys.block_key(net), _j({
        "cidr": cidr, "affinity": f"host:{host}" if host else None,
        "allocations": [None] * net.num_addresses,
        "unallocated": list(range(net.num_addresses)), "attributes": []})


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


class Refused(Exception):
    """The value never reaches Felix's snapshot; the message says why (field and reason)."""


def resource(key: str, value: str) -> object:
    """What Felix's snapshot receives for one stored value: decoded once by the codec (the
    resource cache), then checked by kernelsafe. Refused when either turns it away."""
    from felix.calc import kernelsafe
    from libcalico.datastore.resourcecache import ResourceCache
    from libcalico.datastore.snapshot import Update

    (ch,) = ResourceCache().apply((Update(key, value, "1"),))
    if ch.dropped or ch.resource is None:
        raise Refused(ch.dropped)
    bad = kernelsafe.check(key, ch.resource)
    if bad is not None:
        raise Refused(str(bad))
    return ch.resource
