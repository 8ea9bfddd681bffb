"""BGP kinds: BGPConfiguration, BGPPeer, BGPFilter."""

# ruff: noqa: RUF009 - fields.fld/opt are dataclass field specifiers (dataclasses.field)

from __future__ import annotations

import enum
import functools
import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from libcalico.errors import FieldError
from libcalico.model import validate as v
from libcalico.model.fields import AS_NUMBER, fld, opt
from libcalico.model.metadata import KindSpec, Metadata, register
from libcalico.model.types import IPAddress, IPNetwork

PURE = True

INT32_MAX = 2**31 - 1


class LogLevel(enum.StrEnum):
    TRACE = "Trace"
    DEBUG = "Debug"
    INFO = "Info"
    WARNING = "Warning"
    ERROR = "Error"
    FATAL = "Fatal"


class BindMode(enum.StrEnum):
    NONE = "None"
    NODE_IP = "NodeIP"


class ProgramClusterRoutes(enum.StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    ENABLED_IPIP_ONLY = "EnabledIPIPOnly"
    ENABLED_NO_ENCAP_ONLY = "EnabledNoEncapOnly"


class EnabledDisabled(enum.StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretKeySelector:
    name: str | None = opt(check=v.dns1123_subdomain)
    key: str = fld(omitempty=False)
    optional: bool | None = opt(ptr=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class BGPPassword:
    """Only a reference to a Kubernetes Secret key, as Calico: never the password itself."""

    secret_key_ref: SecretKeySelector | None = opt("secretKeyRef")


def _password_check(pw: BGPPassword, path: str) -> list[FieldError]:
    ref = pw.secret_key_ref
    if ref is None:
        return [FieldError(f"{path}.secretKeyRef", "a password must be given as secretKeyRef"
                           " (name and key of a Secret)")]
    errs = []
    if not ref.name:
        errs.append(FieldError(f"{path}.secretKeyRef.name", "required field is missing"))
    if not ref.key:
        errs.append(FieldError(f"{path}.secretKeyRef.key", "required field is missing"))
    return errs


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceIPBlock:
    cidr: IPNetwork | None = opt(strict=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class Community:
    name: str | None = opt(check=v.dns1123_subdomain)
    value: str | None = opt(check=v.community_value)


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixAdvertisement:
    cidr: IPNetwork | None = opt(strict=True)
    communities: tuple[str, ...] = fld(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class BGPConfigurationSpec:
    log_severity_screen: LogLevel | None = opt()
    node_to_node_mesh_enabled: bool | None = opt(ptr=True)
    as_number: int | None = opt("asNumber", codec=AS_NUMBER, ptr=True)
    service_load_balancer_ips: tuple[ServiceIPBlock, ...] = fld(
        "serviceLoadBalancerIPs", default=())
    service_external_ips: tuple[ServiceIPBlock, ...] = fld("serviceExternalIPs", default=())
    service_cluster_ips: tuple[ServiceIPBlock, ...] = fld("serviceClusterIPs", default=())
    communities: tuple[Community, ...] = fld(default=())
    prefix_advertisements: tuple[PrefixAdvertisement, ...] = fld(default=())
    listen_port: int | None = opt(check=v.int_range(1, 65535))
    node_mesh_password: BGPPassword | None = opt(check=_password_check)
    node_mesh_max_restart_time: timedelta | None = opt(ptr=True)
    bind_mode: BindMode | None = opt(ptr=True)
    ignored_interfaces: tuple[str, ...] = fld(default=(), check=v.each(v.ignored_interface))
    local_workload_peering_ipv4: IPAddress | None = opt(
        "localWorkloadPeeringIPV4", check=v.version(4))
    local_workload_peering_ipv6: IPAddress | None = opt(
        "localWorkloadPeeringIPV6", check=v.version(6))
    ipv4_normal_route_priority: int | None = opt(
        "ipv4NormalRoutePriority", ptr=True, check=v.int_range(1, INT32_MAX - 1))
    ipv6_normal_route_priority: int | None = opt(
        "ipv6NormalRoutePriority", ptr=True, check=v.int_range(1, INT32_MAX - 1))
    program_cluster_routes: ProgramClusterRoutes | None = opt(ptr=True)
    service_load_balancer_aggregation: EnabledDisabled | None = opt(ptr=True)


@dataclass(frozen=True, slots=True)
class BGPConfiguration:
    KIND: ClassVar[str] = "BGPConfiguration"
    metadata: Metadata
    spec: BGPConfigurationSpec = fld(factory=BGPConfigurationSpec)


def bgpconfig_check(cfg: BGPConfiguration) -> list[FieldError]:
    """validateBGPConfigurationSpec and clientv3's ValidateDefaultOnlyFields."""
    s = cfg.spec
    errs: list[FieldError] = []
    names = set()
    for i, c in enumerate(s.communities):
        p = f"spec.communities[{i}]"
        if not c.name:
            errs.append(FieldError(f"{p}.name", "required field is missing"))
        if not c.value:
            errs.append(FieldError(f"{p}.value", "required field is missing"))
        names.add(c.name)
    if s.communities and not s.prefix_advertisements:
        errs.append(FieldError("spec.communities", "communities are defined but not used in"
                               " spec.prefixAdvertisements"))
    for i, pa in enumerate(s.prefix_advertisements):
        p = f"spec.prefixAdvertisements[{i}]"
        if pa.cidr is None:
            errs.append(FieldError(f"{p}.cidr", "required field is missing"))
        if not pa.communities:
            errs.append(FieldError(f"{p}.communities", "required field is missing"))
        for j, ref in enumerate(pa.communities):
            if ref not in names and v.community_value(ref, ""):
                errs.append(FieldError(
                    f"{p}.communities[{j}]",
                    f"{ref!r} is neither a community defined in spec.communities nor a community"
                    " value (\"aa:nn\" or \"aa:nn:mm\")"))
    if s.node_to_node_mesh_enabled is False:
        if s.node_mesh_password is not None:
            errs.append(FieldError("spec.nodeMeshPassword", "cannot be set when"
                                   " nodeToNodeMeshEnabled is false"))
        if s.node_mesh_max_restart_time is not None:
            errs.append(FieldError("spec.nodeMeshMaxRestartTime", "cannot be set when"
                                   " nodeToNodeMeshEnabled is false"))
    if cfg.metadata.name != "default":
        for name, value in (("nodeToNodeMeshEnabled", s.node_to_node_mesh_enabled),
                            ("asNumber", s.as_number),
                            ("serviceLoadBalancerIPs", s.service_load_balancer_ips or None),
                            ("serviceExternalIPs", s.service_external_ips or None),
                            ("serviceClusterIPs", s.service_cluster_ips or None)):
            if value is not None:
                errs.append(FieldError(f"spec.{name}",
                                       "may only be set on the BGPConfiguration named default"))
    return errs


register(KindSpec(BGPConfiguration, check=bgpconfig_check))


# ---------------------------------------------------------------------------------------------
# BGPPeer


class SourceAddress(enum.StrEnum):
    USE_NODE_IP = "UseNodeIP"
    NONE = "None"


class NextHopMode(enum.StrEnum):
    AUTO = "Auto"
    SELF = "Self"
    KEEP = "Keep"


class ReversePeering(enum.StrEnum):
    AUTO = "Auto"
    MANUAL = "Manual"


_ip_address = functools.lru_cache(maxsize=16384)(ipaddress.ip_address)
_V6_PORT = re.compile(r"^\[([^\]]+)\]:(\d+)$")
_V4_PORT = re.compile(r"^([0-9.]+):(\d+)$")


def parse_peer_ip(text: str) -> tuple[IPAddress, int | None]:
    """`ip`, `ip:port` or `[ipv6]:port` as Calico's peerIP accepts."""
    m = _V6_PORT.match(text) or _V4_PORT.match(text)
    host, port = (m.group(1), int(m.group(2))) if m else (text, None)
    try:
        addr = _ip_address(host)
    except ValueError:
        raise ValueError(
            f"invalid peerIP {text!r}: expected an IP address, IP:port or [IPv6]:port"
        ) from None
    if m and addr.version == 6 and _V4_PORT.match(text):
        raise ValueError(f"invalid peerIP {text!r}")
    if port is not None and not 1 <= port <= 65535:
        raise ValueError(f"invalid peerIP {text!r}: port {port} is out of range 1-65535")
    return addr, port


@functools.lru_cache(maxsize=16384)
def _peer_ip_parts(text: str) -> tuple[str, int | None]:
    """parse_peer_ip with the address as text (cached: every BGPPeer read parses one)."""
    addr, port = parse_peer_ip(text)
    return str(addr), port


def format_peer_ip(addr: IPAddress, port: int | None) -> str:
    if port is None:
        return str(addr)
    return f"[{addr}]:{port}" if addr.version == 6 else f"{addr}:{port}"


@dataclass(frozen=True, slots=True, kw_only=True)
class BGPPeerSpec:
    node: str | None = opt(check=v.dns1123_subdomain)
    node_selector: str | None = opt(check=v.selector)
    peer_ip: IPAddress | None = opt("peerIP")
    port: int | None = opt("#port", hidden=True)
    """The port written after peerIP (`10.0.0.1:1179`, `[fd00::1]:1179`); None = 179."""
    as_number: int | None = opt("asNumber", codec=AS_NUMBER)
    peer_selector: str | None = opt(check=v.selector)
    local_workload_selector: str | None = opt(check=v.selector)
    keep_original_next_hop: bool = fld(default=False)
    next_hop_mode: NextHopMode | None = opt(ptr=True)
    password: BGPPassword | None = opt(check=_password_check)
    source_address: SourceAddress | None = opt()
    max_restart_time: timedelta | None = opt(ptr=True)
    num_allowed_local_as_numbers: int | None = opt(
        "numAllowedLocalASNumbers", ptr=True, check=v.int_range(0, INT32_MAX))
    ttl_security: int | None = opt("ttlSecurity", ptr=True, check=v.int_range(0, 255))
    keepalive_time: timedelta | None = opt(ptr=True)
    reachable_by: IPAddress | None = opt()
    filters: tuple[str, ...] = fld(default=(), check=v.names)
    local_as_number: int | None = opt("localASNumber", codec=AS_NUMBER, ptr=True)
    reverse_peering: ReversePeering | None = opt(ptr=True)

    @staticmethod
    def _json_in(raw: dict[str, object], path: str, errs: list[FieldError]) -> dict[str, object]:
        text = raw.get("peerIP")
        if not isinstance(text, str) or not text:
            return raw
        try:
            addr, port = _peer_ip_parts(text)
        except ValueError as exc:
            errs.append(FieldError(f"{path}.peerIP" if path else "peerIP", str(exc)))
            return {k: val for k, val in raw.items() if k != "peerIP"}
        if addr == text and port is None:
            return raw  # as stored: already canonical
        out = dict(raw)
        out["peerIP"] = addr
        if port is not None:
            out["#port"] = port
        return out

    @staticmethod
    def _json_out(obj: BGPPeerSpec, out: dict[str, object]) -> None:
        if obj.peer_ip is not None:
            out["peerIP"] = format_peer_ip(obj.peer_ip, obj.port)


@dataclass(frozen=True, slots=True)
class BGPPeer:
    KIND: ClassVar[str] = "BGPPeer"
    metadata: Metadata
    spec: BGPPeerSpec = fld(factory=BGPPeerSpec)


def bgppeer_check(peer: BGPPeer) -> list[FieldError]:
    """validateBGPPeerSpec. (A peer with none of peerIP, peerSelector and
    localWorkloadSelector, or a peerIP without asNumber, is valid for Calico.)"""
    s = peer.spec
    errs: list[FieldError] = []
    if s.node and s.node_selector:
        errs.append(FieldError("spec.node", "node and nodeSelector cannot both be set"))
    targets = [n for n, val in (("peerIP", s.peer_ip), ("peerSelector", s.peer_selector),
                                ("localWorkloadSelector", s.local_workload_selector)) if val]
    if len(targets) > 1:
        errs.append(FieldError(f"spec.{targets[1]}",
                               f"{' and '.join(targets)} cannot be used together"))
    if s.peer_selector and s.as_number is not None:
        errs.append(FieldError("spec.asNumber", "must be empty when peerSelector is set (the"
                               " AS numbers of the selected nodes are used)"))
    if s.local_workload_selector and s.as_number is None:
        errs.append(FieldError("spec.asNumber", "required when localWorkloadSelector is set"))
    if s.reachable_by is not None:
        if s.peer_ip is None:
            errs.append(FieldError("spec.reachableBy", "may only be set together with peerIP"))
        elif s.reachable_by.version != s.peer_ip.version:
            errs.append(FieldError("spec.reachableBy", f"{s.reachable_by} is not of the same IP"
                                   f" family as peerIP {s.peer_ip}"))
    if s.keep_original_next_hop and s.next_hop_mode is not None:
        errs.append(FieldError("spec.keepOriginalNextHop", "is deprecated and must not be true"
                               " when nextHopMode is set"))
    return errs


register(KindSpec(BGPPeer, check=bgppeer_check))


# ---------------------------------------------------------------------------------------------
# BGPFilter


class FilterAction(enum.StrEnum):
    ACCEPT = "Accept"
    REJECT = "Reject"


class MatchOperator(enum.StrEnum):
    EQUAL = "Equal"
    NOT_EQUAL = "NotEqual"
    IN = "In"
    NOT_IN = "NotIn"


class MatchSource(enum.StrEnum):
    REMOTE_PEERS = "RemotePeers"


class PeerType(enum.StrEnum):
    EBGP = "eBGP"
    IBGP = "iBGP"


@dataclass(frozen=True, slots=True, kw_only=True)
class PrefixLength:
    min: int | None = opt(ptr=True)
    max: int | None = opt(ptr=True)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommunityMatch:
    values: tuple[str, ...] = fld(default=(), check=v.each(v.community_value))
    """Exactly one value (the CRD's MinItems/MaxItems 1)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AddCommunity:
    value: str | None = opt(check=v.community_value)


@dataclass(frozen=True, slots=True, kw_only=True)
class PrependASPath:
    prefix: tuple[int, ...] = fld(default=(), codec=AS_NUMBER)


@dataclass(frozen=True, slots=True, kw_only=True)
class SetPriority:
    value: int = fld(omitempty=False, check=v.int_range(1, INT32_MAX - 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class FilterOperation:
    """Exactly one of the three."""

    add_community: AddCommunity | None = opt()
    prepend_as_path: PrependASPath | None = opt("prependASPath")
    set_priority: SetPriority | None = opt()


@dataclass(frozen=True, slots=True, kw_only=True)
class BGPFilterRule:
    """BGPFilterRuleV4 / V6 (same fields; the family is checked against the list)."""

    cidr: IPNetwork | None = opt(strict=True, check=v.with_prefix)
    """Kept as written (`9000::0/64`): Calico stores and renders the text."""
    prefix_length: PrefixLength | None = opt()
    source: MatchSource | None = opt()
    interface: str | None = opt(check=v.bgp_filter_interface)
    match_operator: MatchOperator | None = opt()
    action: FilterAction = fld(omitempty=False)
    peer_type: PeerType | None = opt()
    communities: CommunityMatch | None = opt()
    as_path_prefix: tuple[int, ...] = fld("asPathPrefix", default=(), codec=AS_NUMBER)
    priority: int | None = opt(ptr=True, check=v.int_range(1, INT32_MAX - 1))
    operations: tuple[FilterOperation, ...] = fld(default=())


@dataclass(frozen=True, slots=True, kw_only=True)
class BGPFilterSpec:
    export_v4: tuple[BGPFilterRule, ...] = fld("exportV4", default=())
    import_v4: tuple[BGPFilterRule, ...] = fld("importV4", default=())
    export_v6: tuple[BGPFilterRule, ...] = fld("exportV6", default=())
    import_v6: tuple[BGPFilterRule, ...] = fld("importV6", default=())


@dataclass(frozen=True, slots=True)
class BGPFilter:
    KIND: ClassVar[str] = "BGPFilter"
    metadata: Metadata
    spec: BGPFilterSpec = fld(factory=BGPFilterSpec)


def _rule_check(rule: BGPFilterRule, ver: int, path: str) -> list[FieldError]:
    """validateBGPFilterRuleV4/V6, the netv4/netv6 and prefix-length tags, and the CRD's
    rules (exactly one operation each; operations only with Accept; list sizes)."""
    errs: list[FieldError] = []
    if rule.cidr is not None and rule.cidr.version != ver:
        errs.append(FieldError(f"{path}.cidr", f"{rule.cidr} is not an IPv{ver} CIDR"))
    if (rule.cidr is None) != (rule.match_operator is None):
        errs.append(FieldError(f"{path}.matchOperator" if rule.cidr else f"{path}.cidr",
                               "cidr and matchOperator must be set together"))
    if rule.prefix_length is not None:
        pl = rule.prefix_length
        top = 32 if ver == 4 else 128
        if rule.cidr is None:
            errs.append(FieldError(f"{path}.prefixLength", "requires cidr"))
        for name, val in (("min", pl.min), ("max", pl.max)):
            if val is not None and not 0 <= val <= top:
                errs.append(FieldError(f"{path}.prefixLength.{name}",
                                       f"{val} is out of range 0-{top}"))
    if rule.communities is not None and len(rule.communities.values) != 1:
        errs.append(FieldError(f"{path}.communities.values", "exactly one community value is"
                               " required"))
    if rule.operations and rule.action != FilterAction.ACCEPT:
        errs.append(FieldError(f"{path}.operations", "operations may only be used with action"
                               " Accept"))
    if len(rule.operations) > 10:
        errs.append(FieldError(f"{path}.operations", "at most 10 operations"))
    for i, op in enumerate(rule.operations):
        n = sum(x is not None for x in (op.add_community, op.prepend_as_path, op.set_priority))
        if n != 1:
            errs.append(FieldError(f"{path}.operations[{i}]", "exactly one of addCommunity,"
                                   " prependASPath and setPriority must be set"))
        if op.add_community is not None and not op.add_community.value:
            errs.append(FieldError(f"{path}.operations[{i}].addCommunity.value",
                                   "required field is missing"))
        if op.prepend_as_path is not None and not 1 <= len(op.prepend_as_path.prefix) <= 10:
            errs.append(FieldError(f"{path}.operations[{i}].prependASPath.prefix",
                                   "1 to 10 AS numbers are required"))
    return errs


def bgpfilter_check(f: BGPFilter) -> list[FieldError]:
    errs: list[FieldError] = []
    for field, ver, rules in (("exportV4", 4, f.spec.export_v4), ("importV4", 4, f.spec.import_v4),
                              ("exportV6", 6, f.spec.export_v6), ("importV6", 6, f.spec.import_v6)):
        for i, rule in enumerate(rules):
            errs += _rule_check(rule, ver, f"spec.{field}[{i}]")
    return errs


register(KindSpec(BGPFilter, check=bgpfilter_check))
