"""Calico resource documents as calico-node writes them (Calico's JSON shape), pure.

Startup works on the stored JSON so that fields it does not manage (labels, other spec
fields written by users or other tools) are kept untouched on update.
"""

from __future__ import annotations

import copy
import hashlib
import ipaddress
from collections.abc import Mapping
from typing import Any

from calico_node.settings import PoolSettings
from libcalico.model.keys import API_VERSION

PURE = True

Doc = dict[str, Any]


def new_doc(kind: str, name: str, spec: Mapping[str, Any], uid: str, created: str) -> Doc:
    return {"kind": kind, "apiVersion": API_VERSION,
            "metadata": {"name": name, "uid": uid, "creationTimestamp": created},
            "spec": dict(spec)}


def pool_spec(p: PoolSettings) -> dict[str, Any]:
    spec: dict[str, Any] = {"cidr": str(p.cidr), "vxlanMode": p.vxlan_mode,
                            "ipipMode": p.ipip_mode, "natOutgoing": p.nat_outgoing,
                            "blockSize": p.block_size, "nodeSelector": p.node_selector}
    if p.disable_bgp_export:
        spec["disableBGPExport"] = True
    spec["allowedUses"] = ["Workload", "Tunnel"]
    spec["assignmentMode"] = "Automatic"
    return spec


def vxlan_mac(node: str) -> str:
    """The VTEP MAC Felix derives for a node: 0x66 followed by sha1(name)[0:5]."""
    digest = hashlib.sha1(node.encode()).digest()
    return ":".join(f"{b:02x}" for b in (0x66, *digest[:5]))


def node_address(doc: Mapping[str, Any], version: int) -> str | None:
    """The Node's BGP address as stored (with its prefix length), if valid."""
    text = ((doc.get("spec") or {}).get("bgp") or {}).get(f"ipv{version}Address")
    if not isinstance(text, str) or not text:
        return None
    try:
        ip = ipaddress.ip_interface(text).ip
    except ValueError:
        return None
    return text if ip.version == version else None


def node_ipv4(doc: Mapping[str, Any]) -> ipaddress.IPv4Address | None:
    text = node_address(doc, 4)
    return ipaddress.IPv4Interface(text).ip if text else None


def node_ipv6(doc: Mapping[str, Any]) -> ipaddress.IPv6Address | None:
    text = node_address(doc, 6)
    return ipaddress.IPv6Interface(text).ip if text else None


def update_node(
    doc: Doc, *, ipv4: str | None, ipv6: str | None, as_number: int | None,
    keep_v4: bool, keep_v6: bool,
) -> Doc:
    """A copy of `doc` with the addresses and AS calico-node manages set."""
    out = copy.deepcopy(doc)
    spec = out.setdefault("spec", {})
    bgp = dict(spec.get("bgp") or {})
    if not keep_v4:
        if ipv4:
            bgp["ipv4Address"] = ipv4
        else:
            bgp.pop("ipv4Address", None)
    if not keep_v6:
        if ipv6:
            bgp["ipv6Address"] = ipv6
        else:
            bgp.pop("ipv6Address", None)
    if as_number is not None:
        bgp["asNumber"] = as_number
    if bgp:
        spec["bgp"] = bgp
    else:
        spec.pop("bgp", None)
    addrs = [a for a in (bgp.get("ipv4Address"), bgp.get("ipv6Address")) if a]
    others = [a for a in spec.get("addresses") or [] if a.get("type") != "CalicoNodeIP"]
    spec["addresses"] = [{"address": a, "type": "CalicoNodeIP"} for a in addrs] + others
    if not spec["addresses"]:
        spec.pop("addresses")
    return out


def set_tunnel(doc: Doc, kind: str, addr: str | None, mac: str | None = None) -> Doc:
    """Set or clear a tunnel address: kind is "ipip" or "vxlan"."""
    out = copy.deepcopy(doc)
    spec = out.setdefault("spec", {})
    if kind == "ipip":
        bgp = dict(spec.get("bgp") or {})
        if addr:
            bgp["ipv4IPIPTunnelAddr"] = addr
        else:
            bgp.pop("ipv4IPIPTunnelAddr", None)
        if bgp:
            spec["bgp"] = bgp
        return out
    if addr:
        spec["ipv4VXLANTunnelAddr"] = addr
        if mac:
            spec["vxlanTunnelMACAddr"] = mac
    else:
        spec.pop("ipv4VXLANTunnelAddr", None)
        spec.pop("vxlanTunnelMACAddr", None)
    return out


def tunnel_addr(doc: Mapping[str, Any], kind: str) -> str | None:
    spec = doc.get("spec") or {}
    if kind == "ipip":
        v = (spec.get("bgp") or {}).get("ipv4IPIPTunnelAddr")
    else:
        v = spec.get("ipv4VXLANTunnelAddr")
    return v if isinstance(v, str) and v else None
