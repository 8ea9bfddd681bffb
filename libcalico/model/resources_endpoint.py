"""Endpoint kinds and their rules: WorkloadEndpoint, HostEndpoint, Profile."""

from __future__ import annotations

# ruff: noqa: RUF009 - fields.fld/opt are dataclass field specifiers (dataclasses.field)
import enum
from dataclasses import dataclass
from typing import ClassVar

from libcalico.errors import FieldError
from libcalico.model import validate as v
from libcalico.model.fields import PORT, PROTOCOL, fld, opt
from libcalico.model.metadata import KindSpec, Metadata, register
from libcalico.model.types import IPAddress, IPNetwork, Port, ProtocolValue

PURE = True


# ---------------------------------------------------------------------------------------------
# Rules (Profile ingress/egress)


class Action(enum.StrEnum):
    ALLOW = "Allow"
    DENY = "Deny"
    LOG = "Log"
    PASS = "Pass"


@dataclass(frozen=True, slots=True, kw_only=True)
class ICMPFields:
    type: int | None = opt(ptr=True, check=v.int_range(0, 254))
    code: int | None = opt(ptr=True, check=v.int_range(0, 255))


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceMatch:
    name: str | None = opt()
    namespace: str | None = opt()


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceAccountMatch:
    names: tuple[str, ...] = fld(default=())
    selector: str | None = opt(check=v.selector)


@dataclass(frozen=True, slots=True, kw_only=True)
class EntityRule:
    nets: tuple[IPNetwork, ...] = fld(default=())
    selector: str | None = opt(check=v.selector)
    namespace_selector: str | None = opt(check=v.selector)
    services: ServiceMatch | None = opt()
    ports: tuple[Port, ...] = fld(default=(), codec=PORT)
    not_nets: tuple[IPNetwork, ...] = fld(default=())
    not_selector: str | None = opt(check=v.selector)
    not_ports: tuple[Port, ...] = fld(default=(), codec=PORT)
    service_accounts: ServiceAccountMatch | None = opt()


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPPath:
    exact: str | None = opt()
    prefix: str | None = opt()


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPMatch:
    methods: tuple[str, ...] = fld(default=())
    paths: tuple[HTTPPath, ...] = fld(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleMetadata:
    annotations: dict[str, str] = fld(factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Rule:
    action: Action = fld(omitempty=False)
    ip_version: int | None = opt("ipVersion", ptr=True, check=v.int_range(4, 6))
    protocol: ProtocolValue | None = opt(codec=PROTOCOL, ptr=True)
    icmp: ICMPFields | None = opt("icmp")
    not_protocol: ProtocolValue | None = opt(codec=PROTOCOL, ptr=True)
    not_icmp: ICMPFields | None = opt("notICMP")
    source: EntityRule = fld(factory=EntityRule)
    destination: EntityRule = fld(factory=EntityRule)
    http: HTTPMatch | None = opt()
    metadata: RuleMetadata | None = opt()


_PORT_PROTOCOLS = ("TCP", "UDP", "SCTP", "6", "17", "132", 6, 17, 132)
_ICMP_PROTOCOLS = ("ICMP", "ICMPv6", "1", "58", 1, 58)


def rule_check(rule: Rule, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if rule.ip_version not in (None, 4, 6):
        errs.append(FieldError(f"{path}.ipVersion", "must be 4 or 6"))
    for side, ent in (("source", rule.source), ("destination", rule.destination)):
        if (ent.ports or ent.not_ports) and rule.protocol not in _PORT_PROTOCOLS:
            errs.append(FieldError(f"{path}.{side}.ports", "ports may only be used with protocol"
                                   " TCP, UDP or SCTP"))
        if rule.ip_version is not None:
            for name, nets in (("nets", ent.nets), ("notNets", ent.not_nets)):
                for i, n in enumerate(nets):
                    if n.version != rule.ip_version:
                        errs.append(FieldError(f"{path}.{side}.{name}[{i}]",
                                               f"{n} does not match ipVersion {rule.ip_version}"))
    for name, icmp in (("icmp", rule.icmp), ("notICMP", rule.not_icmp)):
        if icmp is None:
            continue
        if rule.protocol not in _ICMP_PROTOCOLS:
            errs.append(FieldError(f"{path}.{name}", "may only be used with protocol ICMP or"
                                   " ICMPv6"))
        if icmp.code is not None and icmp.type is None:
            errs.append(FieldError(f"{path}.{name}.code", "requires type"))
    return errs


# ---------------------------------------------------------------------------------------------
# Profile


@dataclass(frozen=True, slots=True, kw_only=True)
class ProfileSpec:
    ingress: tuple[Rule, ...] = fld(default=())
    egress: tuple[Rule, ...] = fld(default=())
    labels_to_apply: dict[str, str] = fld(factory=dict, check=v.label_map)


@dataclass(frozen=True, slots=True)
class Profile:
    KIND: ClassVar[str] = "Profile"
    metadata: Metadata
    spec: ProfileSpec = fld(factory=ProfileSpec)


DEFAULT_ALLOW_PROFILE = "projectcalico-default-allow"


def default_allow_profile() -> Profile:
    """The profile Calico returns for `projectcalico-default-allow` (never stored)."""
    return Profile(
        Metadata(DEFAULT_ALLOW_PROFILE),
        ProfileSpec(ingress=(Rule(action=Action.ALLOW),), egress=(Rule(action=Action.ALLOW),)),
    )


def _rules_check(prefix: str, rules: tuple[Rule, ...]) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, r in enumerate(rules):
        errs += rule_check(r, f"{prefix}[{i}]")
    return errs


def profile_check(p: Profile) -> list[FieldError]:
    return _rules_check("spec.ingress", p.spec.ingress) + _rules_check("spec.egress", p.spec.egress)


register(KindSpec(Profile, name_check=v.profile_name, check=profile_check))


# ---------------------------------------------------------------------------------------------
# WorkloadEndpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class IPNAT:
    internal_ip: IPAddress = fld("internalIP", omitempty=False)
    external_ip: IPAddress = fld("externalIP", omitempty=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadEndpointPort:
    name: str = fld(default="", omitempty=False)
    """May be empty for a bare host port."""
    protocol: ProtocolValue = fld(codec=PROTOCOL, omitempty=False)
    port: int = fld(omitempty=False, check=v.int_range(1, 65535))
    host_port: int | None = opt(check=v.int_range(1, 65535))
    host_ip: IPAddress | None = opt("hostIP")


@dataclass(frozen=True, slots=True, kw_only=True)
class QoSControls:
    ingress_bandwidth: int | None = opt()
    egress_bandwidth: int | None = opt()
    ingress_burst: int | None = opt()
    egress_burst: int | None = opt()
    ingress_peakrate: int | None = opt()
    egress_peakrate: int | None = opt()
    ingress_minburst: int | None = opt()
    egress_minburst: int | None = opt()
    ingress_packet_rate: int | None = opt()
    egress_packet_rate: int | None = opt()
    ingress_packet_burst: int | None = opt()
    egress_packet_burst: int | None = opt()
    ingress_max_connections: int | None = opt()
    egress_max_connections: int | None = opt()


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkloadEndpointSpec:
    orchestrator: str | None = opt()
    workload: str | None = opt()
    node: str | None = opt(check=v.dns1123_subdomain)
    container_id: str | None = opt("containerID", check=v.container_id)
    pod: str | None = opt(check=v.dns1123_subdomain)
    endpoint: str | None = opt(check=v.interface_name)
    service_account_name: str | None = opt()
    ip_networks: tuple[IPNetwork, ...] = fld("ipNetworks", default=(), strict=True)
    ip_nats: tuple[IPNAT, ...] = fld("ipNATs", default=())
    ipv4_gateway: IPAddress | None = opt("ipv4Gateway", check=v.version(4))
    ipv6_gateway: IPAddress | None = opt("ipv6Gateway", check=v.version(6))
    profiles: tuple[str, ...] = fld(default=(), check=v.each(v.profile_name))
    interface_name: str | None = opt(check=v.interface_name)
    mac: str | None = opt(check=v.mac)
    ports: tuple[WorkloadEndpointPort, ...] = fld(default=())
    allow_spoofed_source_prefixes: tuple[IPNetwork, ...] = fld(default=())
    qos_controls: QoSControls | None = opt("qosControls")


@dataclass(frozen=True, slots=True)
class WorkloadEndpoint:
    KIND: ClassVar[str] = "WorkloadEndpoint"
    metadata: Metadata
    spec: WorkloadEndpointSpec = fld(factory=WorkloadEndpointSpec)


LABEL_NAMESPACE = "projectcalico.org/namespace"
LABEL_ORCHESTRATOR = "projectcalico.org/orchestrator"
LABEL_SERVICE_ACCOUNT = "projectcalico.org/serviceaccount"


def _escape(part: str) -> str:
    return part.replace("-", "--")


def workload_endpoint_name(spec: WorkloadEndpointSpec) -> str | None:
    """The name Calico derives from the spec's identifiers, or None if some are missing:
    `<node>-k8s-<pod>-<endpoint>` (k8s), `<node>-cni-<containerID>-<endpoint>` (cni),
    `<node>-<orchestrator>-<workload>-<endpoint>` otherwise; each '-' in a part doubled."""
    orch = spec.orchestrator
    if orch == "k8s":
        workload = spec.pod
    elif orch == "cni":
        workload = spec.container_id
    elif orch == "libnetwork":
        workload = "libnetwork"
    else:
        workload = spec.workload
    parts = (spec.node, orch, workload, spec.endpoint)
    if not all(parts):
        return None
    return "-".join(_escape(str(p)) for p in parts)


def wep_check(wep: WorkloadEndpoint) -> list[FieldError]:
    errs: list[FieldError] = []
    expected = workload_endpoint_name(wep.spec)
    if expected is not None and wep.metadata.name != expected:
        errs.append(FieldError("metadata.name", f"{wep.metadata.name!r} does not match the name"
                               f" computed from the spec's node, orchestrator, workload and"
                               f" endpoint: expected {expected!r}"))
    for i, port in enumerate(wep.spec.ports):
        errs += v.dns1123_label(port.name, f"spec.ports[{i}].name") if port.name else []
    return errs


register(KindSpec(WorkloadEndpoint, namespaced=True, check=wep_check))


# ---------------------------------------------------------------------------------------------
# HostEndpoint


@dataclass(frozen=True, slots=True, kw_only=True)
class EndpointPort:
    name: str = fld(omitempty=False)
    protocol: ProtocolValue = fld(codec=PROTOCOL, omitempty=False)
    port: int = fld(omitempty=False, check=v.int_range(1, 65535))


@dataclass(frozen=True, slots=True, kw_only=True)
class HostEndpointSpec:
    node: str | None = opt(check=v.dns1123_subdomain)
    interface_name: str | None = opt()
    expected_ips: tuple[IPAddress, ...] = fld("expectedIPs", default=())
    profiles: tuple[str, ...] = fld(default=(), check=v.each(v.profile_name))
    ports: tuple[EndpointPort, ...] = fld(default=())


@dataclass(frozen=True, slots=True)
class HostEndpoint:
    KIND: ClassVar[str] = "HostEndpoint"
    metadata: Metadata
    spec: HostEndpointSpec = fld(factory=HostEndpointSpec)


def hep_check(hep: HostEndpoint) -> list[FieldError]:
    s = hep.spec
    errs: list[FieldError] = []
    if not s.node:
        errs.append(FieldError("spec.node", "required field is missing"))
    if not s.interface_name and not s.expected_ips:
        errs.append(FieldError("spec.interfaceName", "interfaceName or expectedIPs must be"
                               " specified"))
    if s.interface_name and s.interface_name != "*":
        errs += v.interface_name(s.interface_name, "spec.interfaceName")
    for i, port in enumerate(s.ports):
        errs += v.dns1123_label(port.name, f"spec.ports[{i}].name")
    return errs


register(KindSpec(HostEndpoint, check=hep_check))
