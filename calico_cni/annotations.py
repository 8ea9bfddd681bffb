"""Calico's pod and namespace annotations for the CNI (`policy.type: k8s`): pools,
families, fixed addresses and floating IPs, each refused with a message naming the
annotation (pure)."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from calico_cni import netconf, spec
from calico_cni.spec import CNIError

PURE = True

ANN_IPV4POOLS = "cni.projectcalico.org/ipv4pools"
ANN_IPV6POOLS = "cni.projectcalico.org/ipv6pools"
ANN_IPADDRS = "cni.projectcalico.org/ipAddrs"
ANN_IPADDRS_NO_IPAM = "cni.projectcalico.org/ipAddrsNoIpam"
ANN_IPFAMILIES = "cni.projectcalico.org/ipFamilies"
ANN_FLOATING_IPS = "cni.projectcalico.org/floatingIPs"


def json_list(text: str, what: str) -> list[str]:
    try:
        v = json.loads(text)
    except json.JSONDecodeError:
        v = None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise CNIError(spec.INVALID_NETWORK_CONFIG, f"annotation {what} must be a JSON list "
                       f"of strings, not {text!r}")
    return v


def fixed_ips(text: str, what: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    items = json_list(text, what)
    if not items:
        raise CNIError(spec.INVALID_NETWORK_CONFIG, f"annotation {what} is empty")
    out = []
    for t in items:
        try:
            out.append(ipaddress.ip_address(t))
        except ValueError:
            raise CNIError(spec.INVALID_NETWORK_CONFIG,
                           f"annotation {what}: {t!r} is not an IP address") from None
    if sum(1 for i in out if i.version == 4) > 1 or sum(1 for i in out if i.version == 6) > 1:
        raise CNIError(spec.INVALID_NETWORK_CONFIG,
                       f"annotation {what}: at most one IPv4 and one IPv6 address")
    return out


def floating_ips(annotations: Mapping[str, str], conf: netconf.NetConf
                  ) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    text = annotations.get(ANN_FLOATING_IPS)
    if not text:
        return ()
    if not conf.floating_ips:
        raise CNIError(spec.INVALID_NETWORK_CONFIG,
                       "requested feature is not enabled: floating_ips",
                       "set feature_control.floating_ips to true")
    out = []
    for t in json_list(text, ANN_FLOATING_IPS):
        try:
            out.append(ipaddress.ip_address(t))
        except ValueError:
            raise CNIError(spec.INVALID_NETWORK_CONFIG,
                           f"annotation {ANN_FLOATING_IPS}: {t!r} is not an IP address") from None
    return tuple(out)


def families(doc: dict[str, Any], pod: Any) -> dict[str, Any]:
    """`ipFamilies` (pod, else namespace): ["IPv4"], ["IPv6"] or both choose the families."""
    text = pod.annotations.get(ANN_IPFAMILIES) or pod.ns_annotations.get(ANN_IPFAMILIES)
    if not text:
        return doc
    fams = json_list(text, ANN_IPFAMILIES)
    bad = [f for f in fams if f not in ("IPv4", "IPv6")]
    if bad or not fams:
        raise CNIError(spec.INVALID_NETWORK_CONFIG,
                       f"annotation {ANN_IPFAMILIES}: {bad or fams!r} is not a list of "
                       "\"IPv4\" and/or \"IPv6\"")
    ipam = dict(doc.get("ipam") or {})
    ipam["assign_ipv4"] = "true" if "IPv4" in fams else "false"
    ipam["assign_ipv6"] = "true" if "IPv6" in fams else "false"
    out = dict(doc)
    out["ipam"] = ipam
    return out


def pools(doc: dict[str, Any], info: Any) -> dict[str, Any]:
    """Pod annotations override namespace annotations, which override the netconf lists."""
    ipam = dict(doc.get("ipam") or {})
    changed = False
    for ann, key in ((ANN_IPV4POOLS, "ipv4_pools"), (ANN_IPV6POOLS, "ipv6_pools")):
        text = info.annotations.get(ann) or info.ns_annotations.get(ann)
        if text:
            ipam[key] = json_list(text, ann)
            changed = True
    if not changed:
        return doc
    out = dict(doc)
    out["ipam"] = ipam
    return out
