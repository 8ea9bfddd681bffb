"""Addressing kinds: IPPool, IPReservation, Node."""

# ruff: noqa: RUF009 - fields.fld/opt are dataclass field specifiers (dataclasses.field)

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass, replace
from datetime import datetime
from typing import ClassVar

from libcalico.errors import FieldError
from libcalico.model import validate as v
from libcalico.model.fields import AS_NUMBER, fld, opt
from libcalico.model.metadata import KindSpec, Metadata, register
from libcalico.model.types import AddressOrInterface, IPAddress, IPNetwork

PURE = True


class EncapMode(enum.StrEnum):
    """ipipMode / vxlanMode."""

    ALWAYS = "Always"
    CROSS_SUBNET = "CrossSubnet"
    NEVER = "Never"


IPIPMode = EncapMode
VXLANMode = EncapMode


class AllowedUse(enum.StrEnum):
    WORKLOAD = "Workload"
    TUNNEL = "Tunnel"
    LOAD_BALANCER = "LoadBalancer"


class AssignmentMode(enum.StrEnum):
    AUTOMATIC = "Automatic"
    MANUAL = "Manual"


@dataclass(frozen=True, slots=True, kw_only=True)
class IPPoolSpec:
    cidr: IPNetwork = fld(omitempty=False, strict=True, canonical=True)
    vxlan_mode: EncapMode | None = opt("vxlanMode")
    ipip_mode: EncapMode | None = opt("ipipMode")
    nat_outgoing: bool = fld("natOutgoing", default=False)
    disabled: bool = fld(default=False)
    disable_bgp_export: bool = fld("disableBGPExport", default=False)
    block_size: int | None = opt()
    node_selector: str | None = opt(check=v.selector)
    namespace_selector: str | None = opt(check=v.selector)
    allowed_uses: tuple[AllowedUse, ...] = fld(default=())
    assignment_mode: AssignmentMode | None = opt(ptr=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Condition:
    """metav1.Condition."""

    type: str = fld(omitempty=False)
    status: str = fld(omitempty=False, check=v.one_of("True", "False", "Unknown"))
    observed_generation: int | None = opt()
    last_transition_time: datetime | None = opt(omitempty=False)
    reason: str = fld(default="", omitempty=False)
    message: str = fld(default="", omitempty=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class IPPoolStatus:
    conditions: tuple[Condition, ...] = fld(default=())


@dataclass(frozen=True, slots=True)
class IPPool:
    KIND: ClassVar[str] = "IPPool"
    metadata: Metadata
    spec: IPPoolSpec
    status: IPPoolStatus | None = opt()
    """Written by Calico's controllers (e.g. condition Allocatable=False); None when absent."""

    @property
    def allocatable(self) -> bool:
        """False when the pool is disabled or has the condition Allocatable=False (Calico's
        filter for pools IPAM may use)."""
        if self.spec.disabled:
            return False
        conds = self.status.conditions if self.status else ()
        return not any(c.type == "Allocatable" and c.status == "False" for c in conds)


DEFAULT_BLOCK_SIZE = {4: 26, 6: 122}
BLOCK_SIZE_RANGE = {4: (20, 32), 6: (116, 128)}


def ippool_defaults(pool: IPPool) -> IPPool:
    """Calico's clientv3 defaults for an IPPool (applied on write and on read)."""
    s = pool.spec
    if s.block_size and s.node_selector and s.allowed_uses and s.ipip_mode \
            and s.vxlan_mode and s.assignment_mode:
        return pool  # all set already (every pool read back from the datastore)
    return replace(
        pool,
        spec=replace(
            s,
            block_size=s.block_size or DEFAULT_BLOCK_SIZE[s.cidr.version],
            node_selector=s.node_selector or "all()",
            allowed_uses=s.allowed_uses or (AllowedUse.WORKLOAD, AllowedUse.TUNNEL),
            ipip_mode=s.ipip_mode or EncapMode.NEVER,
            vxlan_mode=s.vxlan_mode or EncapMode.NEVER,
            assignment_mode=s.assignment_mode or AssignmentMode.AUTOMATIC,
        ),
    )


def ippool_check(pool: IPPool) -> list[FieldError]:
    s = pool.spec
    errs: list[FieldError] = []
    ver = s.cidr.version
    lo, hi = BLOCK_SIZE_RANGE[ver]
    if s.block_size is not None:
        if not lo <= s.block_size <= hi:
            errs.append(
                FieldError("spec.blockSize", f"{s.block_size} is out of range {lo}-{hi} for an"
                           f" IPv{ver} pool")
            )
        elif not s.disabled and s.cidr.prefixlen > s.block_size:
            errs.append(
                FieldError("spec.cidr", f"the pool {s.cidr} is smaller than its blockSize"
                           f" /{s.block_size}: the prefix length must not exceed the block size")
            )
    if v.overlaps_link_local(s.cidr):
        errs.append(FieldError("spec.cidr", f"{s.cidr} overlaps the link-local range"))
    ipip = s.ipip_mode not in (None, EncapMode.NEVER)
    vxlan = s.vxlan_mode not in (None, EncapMode.NEVER)
    if ipip and ver == 6:
        errs.append(FieldError("spec.ipipMode", "IPIP is not supported on an IPv6 pool"))
    if ipip and vxlan:
        errs.append(
            FieldError("spec.vxlanMode", "ipipMode and vxlanMode cannot both be enabled on one"
                       " pool")
        )
    if AllowedUse.LOAD_BALANCER in s.allowed_uses:
        if any(u != AllowedUse.LOAD_BALANCER for u in s.allowed_uses):
            errs.append(FieldError("spec.allowedUses", "LoadBalancer cannot be combined with"
                                   " other uses"))
        if s.node_selector not in (None, "all()"):
            errs.append(FieldError("spec.nodeSelector", "a LoadBalancer pool must have"
                                   " nodeSelector all()"))
        if ipip or vxlan:
            errs.append(FieldError("spec.ipipMode" if ipip else "spec.vxlanMode",
                                   "neither ipipMode nor vxlanMode can be enabled on a"
                                   " LoadBalancer pool"))
        if s.disable_bgp_export:
            errs.append(FieldError("spec.disableBGPExport", "cannot be true on a LoadBalancer"
                                   " pool"))
    return errs


register(KindSpec(IPPool, check=ippool_check, defaults=ippool_defaults, has_status=True))


@dataclass(frozen=True, slots=True, kw_only=True)
class IPReservationSpec:
    reserved_cidrs: tuple[IPNetwork, ...] = fld("reservedCIDRs", default=())
    """Kept as written, host bits included (Calico's `cidr`)."""


@dataclass(frozen=True, slots=True)
class IPReservation:
    KIND: ClassVar[str] = "IPReservation"
    metadata: Metadata
    spec: IPReservationSpec = fld(factory=IPReservationSpec)


register(KindSpec(IPReservation))


# ---------------------------------------------------------------------------------------------
# Node


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeBGPSpec:
    as_number: int | None = opt("asNumber", codec=AS_NUMBER, ptr=True)
    ipv4_address: AddressOrInterface | None = opt("ipv4Address", check=v.version(4))
    ipv6_address: AddressOrInterface | None = opt("ipv6Address", check=v.version(6))
    ipv4_ipip_tunnel_addr: IPAddress | None = opt("ipv4IPIPTunnelAddr", check=v.version(4))
    route_reflector_cluster_id: IPAddress | None = opt(
        "routeReflectorClusterID", check=v.version(4)
    )

    @property
    def ipv4_interface(self) -> ipaddress.IPv4Interface | None:
        """`ipv4Address` with its prefix (a bare address counts as /32)."""
        a = self.ipv4_address
        return None if a is None else ipaddress.IPv4Interface(str(a))

    @property
    def ipv6_interface(self) -> ipaddress.IPv6Interface | None:
        a = self.ipv6_address
        return None if a is None else ipaddress.IPv6Interface(str(a))


@dataclass(frozen=True, slots=True, kw_only=True)
class OrchRef:
    node_name: str | None = opt("nodeName")
    orchestrator: str = fld(omitempty=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeWireguardSpec:
    interface_ipv4_address: IPAddress | None = opt("interfaceIPv4Address", check=v.version(4))
    interface_ipv6_address: IPAddress | None = opt("interfaceIPv6Address", check=v.version(6))


class NodeAddressType(enum.StrEnum):
    INTERNAL_IP = "InternalIP"
    EXTERNAL_IP = "ExternalIP"
    CALICO_NODE_IP = "CalicoNodeIP"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeAddress:
    address: AddressOrInterface = fld(omitempty=False)
    type: NodeAddressType | None = opt()


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeInterface:
    name: str = fld(omitempty=False)
    addresses: tuple[str, ...] = fld(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeSpec:
    bgp: NodeBGPSpec | None = opt()
    ipv4_vxlan_tunnel_addr: IPAddress | None = opt("ipv4VXLANTunnelAddr", check=v.version(4))
    vxlan_tunnel_mac_addr: str | None = opt("vxlanTunnelMACAddr", check=v.mac)
    ipv6_vxlan_tunnel_addr: IPAddress | None = opt("ipv6VXLANTunnelAddr", check=v.version(6))
    vxlan_tunnel_mac_addr_v6: str | None = opt("vxlanTunnelMACAddrV6", check=v.mac)
    orch_refs: tuple[OrchRef, ...] = fld(default=())
    wireguard: NodeWireguardSpec | None = opt()
    addresses: tuple[NodeAddress, ...] = fld(default=())
    interfaces: tuple[NodeInterface, ...] = fld(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeStatus:
    wireguard_public_key: str | None = opt()
    wireguard_public_key_v6: str | None = opt("wireguardPublicKeyV6")
    pod_cidrs: tuple[str, ...] = fld("podCIDRs", default=())


@dataclass(frozen=True, slots=True)
class Node:
    KIND: ClassVar[str] = "Node"
    metadata: Metadata
    spec: NodeSpec = fld(factory=NodeSpec)
    status: NodeStatus = fld(factory=NodeStatus)


def node_check(node: Node) -> list[FieldError]:
    errs: list[FieldError] = []
    bgp = node.spec.bgp
    if bgp is not None and bgp == NodeBGPSpec():
        errs.append(FieldError("spec.bgp", "must not be empty when given"))
    return errs


register(KindSpec(Node, check=node_check, has_status=True))
