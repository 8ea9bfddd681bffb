"""Endpoint kinds and their rules: WorkloadEndpoint, HostEndpoint, Profile."""

from __future__ import annotations

# ruff: noqa: RUF009 - fields.fld/opt are dataclass field specifiers (dataclasses.field)
import enum
from dataclasses import dataclass
from typing import ClassVar

from libcalico.errors import FieldError
from libcalico.model import selector as sel
from libcalico.model import validate as v
from libcalico.model.fields import PORT, PROTOCOL, fld, opt
from libcalico.model.metadata import KindSpec, Metadata, register
from libcalico.model.types import IPAddress, IPNetwork, Port, ProtocolValue, network_text

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
    nets: tuple[IPNetwork, ...] = fld(default=(), strict=True, check=v.each(v.with_prefix))
    """Kept as written; Calico's `net`: no host bits, a prefix length given."""
    selector: str | None = opt(check=v.selector)
    namespace_selector: str | None = opt(check=v.selector)
    services: ServiceMatch | None = opt()
    ports: tuple[Port, ...] = fld(default=(), codec=PORT)
    not_nets: tuple[IPNetwork, ...] = fld(default=(), strict=True, check=v.each(v.with_prefix))
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
    annotations: dict[str, str] = fld(factory=dict, check=v.annotation_map)


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


_PORT_PROTOCOLS = frozenset({"TCP", "UDP", "SCTP", "6", "17", "132", 6, 17, 132})
"""numorstring.Protocol.SupportsPorts."""


def rule_check(rule: Rule, path: str) -> list[FieldError]:
    """Calico's rule-level rules: validateRule, validateEntityRule (both sides),
    validateICMPFields, validateHTTPRule (in newer Calico partly CEL rules of the Rule CRD, with
    the same meaning). Rules that depend on where the rule is (services only in ingress
    sources, HTTP only in ingress, ...) belong to the policy kinds."""
    errs: list[FieldError] = []
    for side, ent in (("source", rule.source), ("destination", rule.destination)):
        for name, ports in (("ports", ent.ports), ("notPorts", ent.not_ports)):
            if rule.protocol is None and any(not p.name for p in ports):
                errs.append(FieldError(f"{path}.{side}.{name}", "rules with numeric port or"
                                       " port range must set protocol to TCP or UDP or SCTP"))
            elif rule.protocol is not None and ports and rule.protocol not in _PORT_PROTOCOLS:
                errs.append(FieldError(f"{path}.{side}.{name}", "rules that specify ports must"
                                       " set protocol to TCP or UDP or SCTP"))
        errs += _entity_check(ent, f"{path}.{side}")
    if rule.destination.services is not None and (rule.destination.ports
                                                  or rule.destination.not_ports):
        errs.append(FieldError(f"{path}.destination.ports", "cannot specify ports or notPorts"
                               " with a service selector"))
    errs += _nets_check(rule, path)
    if rule.icmp is not None and rule.protocol not in ("ICMP", "ICMPv6"):
        errs.append(FieldError(f"{path}.icmp", "rules that specify ICMP fields must set"
                               " protocol to ICMP or ICMPv6"))
    for name, icmp in (("icmp", rule.icmp), ("notICMP", rule.not_icmp)):
        if icmp is not None and icmp.code is not None and icmp.type is None:
            errs.append(FieldError(f"{path}.{name}.code", "ICMP code specified without an ICMP"
                                   " type"))
    for proto, version in (("ICMP", 4), ("ICMPv6", 6)):
        if proto in (rule.protocol, rule.not_protocol) and rule.ip_version not in (None, version):
            errs.append(FieldError(f"{path}.ipVersion", f"must be {version} with protocol"
                                   f" {proto}"))
    if rule.http is not None:
        errs += _http_check(rule, f"{path}.http")
    return errs


def _entity_check(ent: EntityRule, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    if ent.selector and "global(" in ent.selector:
        errs.append(FieldError(f"{path}.selector", "global() can only be used in an EntityRule"
                               " namespaceSelector"))
    ns = ent.namespace_selector
    if ns and "global(" in ns and ns != "global()":
        try:
            only_global = isinstance(sel.parse(ns), sel.Global)
        except sel.SelectorError:
            only_global = False
        if not only_global:
            errs.append(FieldError(f"{path}.namespaceSelector", "global() cannot be combined"
                                   " with other selectors"))
    if ent.services is not None:
        p = f"{path}.services"
        if not ent.services.name:
            errs.append(FieldError(f"{p}.name", "must specify a service name"))
        for what, used in (("namespaceSelector", ent.namespace_selector),
                           ("selector/notSelector", ent.selector or ent.not_selector),
                           ("serviceAccounts", ent.service_accounts is not None),
                           ("nets/notNets", ent.nets or ent.not_nets)):
            if used:
                errs.append(FieldError(p, f"cannot specify {what} and services on the same"
                                       " rule"))
    return errs


def _nets_check(rule: Rule, path: str) -> list[FieldError]:
    errs: list[FieldError] = []
    seen4 = seen6 = False
    for side, ent in (("source", rule.source), ("destination", rule.destination)):
        for name, nets in (("nets", ent.nets), ("notNets", ent.not_nets)):
            v4 = any(n.version == 4 for n in nets)
            v6 = any(n.version == 6 for n in nets)
            if name == "notNets":
                for i, n in enumerate(nets):
                    if network_text(n) == "0.0.0.0/0" or (n.version == 6 and n.prefixlen == 0):
                        errs.append(FieldError(f"{path}.{side}.{name}[{i}]", "catch-all CIDR in"
                                               " negation creates logical contradiction"
                                               " (matches no traffic)"))
            if rule.ip_version is not None and ((v4 and rule.ip_version != 4)
                                                or (v6 and rule.ip_version != 6)):
                errs.append(FieldError(f"{path}.{side}.{name}", "rule IP version doesn't match"
                                       " CIDR version"))
            if (v4 and seen6) or (v6 and seen4) or (v4 and v6):
                errs.append(FieldError(f"{path}.{side}.{name}", "rule contains both IPv4 and"
                                       " IPv6 CIDRs"))
            seen4, seen6 = seen4 or v4, seen6 or v6
    return errs


def _http_check(rule: Rule, path: str) -> list[FieldError]:
    http = rule.http
    assert http is not None
    errs: list[FieldError] = []
    if rule.action != Action.ALLOW:
        errs.append(FieldError(path, "only valid for Allow rules"))
    if rule.protocol is not None and rule.protocol != "TCP":
        errs.append(FieldError(f"{path[:-len('.http')]}.protocol", "rules that specify HTTP"
                               " fields must set protocol to TCP or empty"))
    if len(set(http.methods)) != len(http.methods):
        errs.append(FieldError(f"{path}.methods", f"duplicate methods {list(http.methods)}"))
    for i, hp in enumerate(http.paths):
        value = hp.exact or hp.prefix
        if hp.exact and hp.prefix:
            reason = "both 'exact' and 'prefix' are set"
        elif not value:
            reason = "either 'exact' or 'prefix' must be set"
        elif not value.startswith("/") or any(c in value for c in "? #"):
            reason = f"invalid path {value!r}: must start with '/' and not contain '?', '#' or ' '"
        else:
            continue
        errs.append(FieldError(f"{path}.paths[{i}]", reason))
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


register(KindSpec(Profile, check=profile_check))


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
    orchestrator: str | None = opt(check=v.dns1123_subdomain)
    workload: str | None = opt(check=v.dns1123_subdomain)
    node: str | None = opt(check=v.dns1123_subdomain)
    container_id: str | None = opt("containerID", check=v.container_id)
    pod: str | None = opt(check=v.dns1123_subdomain)
    endpoint: str | None = opt(check=v.dns1123_subdomain)
    service_account_name: str | None = opt(check=v.dns1123_subdomain)
    ip_networks: tuple[IPNetwork, ...] = fld("ipNetworks", default=(), strict=True,
                                             check=v.single_addresses)
    ip_nats: tuple[IPNAT, ...] = fld("ipNATs", default=())
    ipv4_gateway: IPAddress | None = opt("ipv4Gateway", check=v.version(4))
    ipv6_gateway: IPAddress | None = opt("ipv6Gateway", check=v.version(6))
    profiles: tuple[str, ...] = fld(default=(), check=v.names)
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
    """The name derived from the spec, validateWorkloadEndpointSpec (NATs inside the
    endpoint's networks, of one family each) and validateWorkloadEndpointPort."""
    errs: list[FieldError] = []
    s = wep.spec
    expected = workload_endpoint_name(s)
    if expected is not None and wep.metadata.name != expected:
        errs.append(FieldError("metadata.name", f"{wep.metadata.name!r} does not match the name"
                               f" computed from the spec's node, orchestrator, workload and"
                               f" endpoint: expected {expected!r}"))
    if s.ip_nats:
        errs += _nats_check(s)
    for i, port in enumerate(s.ports):
        p = f"spec.ports[{i}]"
        if port.protocol not in _PORT_PROTOCOLS:
            errs.append(FieldError(f"{p}.protocol", "protocol does not support ports"))
        if port.name:
            errs += v.port_name(port.name, f"{p}.name")
        elif not port.host_port:
            errs.append(FieldError(f"{p}.name", "must not be empty if no hostPort is given"))
    return errs


def _nats_check(s: WorkloadEndpointSpec) -> list[FieldError]:
    errs: list[FieldError] = []
    for i, nat in enumerate(s.ip_nats):
        if nat.internal_ip.version != nat.external_ip.version:
            errs.append(FieldError(f"spec.ipNATs[{i}].externalIP", "mismatched IP versions"))
    if not all(any(nat.internal_ip in n for n in s.ip_networks) for nat in s.ip_nats):
        errs.append(FieldError("spec.ipNATs", "NAT is not in the endpoint networks"))
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
    profiles: tuple[str, ...] = fld(default=(), check=v.names)
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
        if port.protocol not in _PORT_PROTOCOLS:
            errs.append(FieldError(f"spec.ports[{i}].protocol", "protocol does not support"
                                   " ports"))
        errs += v.port_name(port.name, f"spec.ports[{i}].name")
    return errs


register(KindSpec(HostEndpoint, check=hep_check))
