"""What Felix checks beyond Calico's validation: values Calico accepts but that are unsafe, or
unusable, in a route, a neighbour entry or an iptables rule.

The codec (libcalico.model) has already decoded and validated every resource as Calico does.
These checks run over those typed values; a resource that fails one is treated as absent, and
the refusal names the resource (its datastore key), the field and the reason.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from libcalico.ipam.block import Block
from libcalico.model import keys
from libcalico.model.resources import Node, Profile, Rule, WorkloadEndpoint

PURE = True

_IFACE = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")
_MAC48 = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_CHAIN_PART = re.compile(r"^[a-zA-Z0-9_.:/-]{1,253}$")
_PROTO = re.compile(r"^([a-zA-Z][a-zA-Z0-9-]{0,15}|\d{1,3})$")


@dataclass(frozen=True, slots=True)
class Refusal:
    resource: str
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.resource}: {self.field}: {self.reason}"


def kernel_mac(text: str) -> str:
    """A MAC as `ip neigh`/`bridge fdb` take it: lower case, colon separated (Calico also
    accepts `-` separators)."""
    return text.lower().replace("-", ":")


def check(key: str, res: object) -> Refusal | None:
    """None when `res` (stored at `key`) is safe to program; else the first refusal."""
    if isinstance(res, WorkloadEndpoint):
        return _endpoint(key, res)
    if isinstance(res, Node):
        return _mac(key, "spec.vxlanTunnelMACAddr", res.spec.vxlan_tunnel_mac_addr)
    if isinstance(res, Profile):
        return _profile(key, res)
    if isinstance(res, Block):
        cidr = keys.parse_block_key(key)
        if cidr is not None and cidr != res.cidr:
            return Refusal(key, "cidr", f"{res.cidr} does not match the key")
    return None


def _mac(key: str, field: str, value: str | None) -> Refusal | None:
    if value is not None and not _MAC48.match(kernel_mac(value)):
        return Refusal(key, field, f"{value!r} is not a 48-bit MAC address (needed for a "
                                   "neighbour or FDB entry)")
    return None


def _endpoint(key: str, wep: WorkloadEndpoint) -> Refusal | None:
    s = wep.spec
    if not s.interface_name or not _IFACE.match(s.interface_name):
        return Refusal(key, "spec.interfaceName",
                       f"bad interface name {s.interface_name!r} (1-15 of a-z A-Z 0-9 _ . -)")
    for i, p in enumerate(s.profiles):
        if not _CHAIN_PART.match(p):
            return Refusal(key, f"spec.profiles[{i}]", f"{p!r} cannot name an iptables chain")
    return _mac(key, "spec.mac", s.mac)


def _profile(key: str, prof: Profile) -> Refusal | None:
    if not _CHAIN_PART.match(prof.metadata.name):
        return Refusal(key, "metadata.name",
                       f"{prof.metadata.name!r} cannot name an iptables chain")
    for direction, rules in (("ingress", prof.spec.ingress), ("egress", prof.spec.egress)):
        for i, r in enumerate(rules):
            bad = rule_refusal(key, f"spec.{direction}[{i}]", r)
            if bad is not None:
                return bad
    return None


def rule_refusal(key: str, path: str, rule: Rule) -> Refusal | None:
    """A rule's values that reach iptables arguments (used for profiles and policies)."""
    for name, proto in (("protocol", rule.protocol), ("notProtocol", rule.not_protocol)):
        if proto is not None and not _PROTO.match(str(proto)):
            return Refusal(key, f"{path}.{name}", f"bad protocol {proto!r}")
    for side, ent in (("source", rule.source), ("destination", rule.destination)):
        for name, ports in (("ports", ent.ports), ("notPorts", ent.not_ports)):
            for j, p in enumerate(ports):
                if not p.name and not 0 <= p.min_port <= p.max_port <= 65535:
                    return Refusal(key, f"{path}.{side}.{name}[{j}]", f"bad port range {p}")
    return None


__all__ = ["Refusal", "check", "kernel_mac", "rule_refusal"]
