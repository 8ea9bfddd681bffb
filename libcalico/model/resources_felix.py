"""FelixConfiguration (`default`, `node.<nodename>`): every datastore parameter Felix reads.

Values are what the resource says, not Felix's effective defaults (None = not set here; Felix
falls back to its own default, see felix/config). Durations are timedelta, written back in Go's
duration syntax.
"""

from __future__ import annotations

# ruff: noqa: RUF009 - fields.fld/opt are dataclass field specifiers (dataclasses.field)
import enum
import ipaddress
import re
from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar

from libcalico.errors import FieldError
from libcalico.model import validate as v
from libcalico.model.fields import PORT, fld, opt
from libcalico.model.metadata import KindSpec, Metadata, register
from libcalico.model.resources_bgp import EnabledDisabled, LogLevel, ProgramClusterRoutes
from libcalico.model.types import IPAddress, Port

PURE = True


class IptablesBackend(enum.StrEnum):
    LEGACY = "Legacy"
    NFT = "NFT"
    AUTO = "Auto"


class ChainInsertMode(enum.StrEnum):
    INSERT = "Insert"
    APPEND = "Append"


class EndpointToHostAction(enum.StrEnum):
    DROP = "Drop"
    RETURN = "Return"
    ACCEPT = "Accept"


class AllowAction(enum.StrEnum):
    ACCEPT = "Accept"
    RETURN = "Return"


class DenyAction(enum.StrEnum):
    DROP = "Drop"
    REJECT = "Reject"


class RouteSource(enum.StrEnum):
    CALICO_IPAM = "CalicoIPAM"
    WORKLOAD_IPS = "WorkloadIPs"


class ServiceLoopPrevention(enum.StrEnum):
    DROP = "Drop"
    REJECT = "Reject"
    DISABLED = "Disabled"


class WorkloadSourceSpoofing(enum.StrEnum):
    DISABLED = "Disabled"
    ANY = "Any"


class NFTablesMode(enum.StrEnum):
    ENABLED = "Enabled"
    DISABLED = "Disabled"
    AUTO = "Auto"


class BPFLogLevel(enum.StrEnum):
    OFF = "Off"
    INFO = "Info"
    DEBUG = "Debug"


class BPFExternalServiceMode(enum.StrEnum):
    TUNNEL = "Tunnel"
    DSR = "DSR"


class BPFConnectTimeLB(enum.StrEnum):
    TCP = "TCP"
    ENABLED = "Enabled"
    DISABLED = "Disabled"


class BPFEnforceRPF(enum.StrEnum):
    DISABLED = "Disabled"
    STRICT = "Strict"
    LOOSE = "Loose"


class AWSSrcDstCheck(enum.StrEnum):
    DO_NOTHING = "DoNothing"
    ENABLE = "Enable"
    DISABLE = "Disable"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProtoPort:
    protocol: str = fld(omitempty=False, check=v.one_of("TCP", "UDP", "SCTP"))
    port: int = fld(omitempty=False, check=v.int_range(0, 65535))
    net: str | None = opt()


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteTableIDRange:
    min: int = fld(omitempty=False, check=v.int_range(1, 2**32 - 1))
    max: int = fld(omitempty=False, check=v.int_range(1, 2**32 - 1))


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthTimeoutOverride:
    name: str = fld(omitempty=False)
    timeout: timedelta = fld(omitempty=False)


_PORT = v.int_range(0, 65535)
_MTU = v.int_range(0, 65535)
_WG_PORT = v.int_range(1, 65535)
_GE_MINUS_1 = v.int_range(-1, 2**63 - 1)


@dataclass(frozen=True, slots=True, kw_only=True)
class FelixConfigurationSpec:
    use_internal_dataplane_driver: bool | None = opt(ptr=True)
    dataplane_driver: str | None = opt()
    dataplane_watchdog_timeout: timedelta | None = opt(ptr=True)
    ipv6_support: bool | None = opt("ipv6Support", ptr=True)
    route_refresh_interval: timedelta | None = opt(ptr=True)
    interface_refresh_interval: timedelta | None = opt(ptr=True)
    iptables_refresh_interval: timedelta | None = opt(ptr=True)
    iptables_post_write_check_interval: timedelta | None = opt(ptr=True)
    iptables_lock_file_path: str | None = opt()
    iptables_lock_timeout: timedelta | None = opt(ptr=True)
    iptables_lock_probe_interval: timedelta | None = opt(ptr=True)
    feature_detect_override: str | None = opt(check=v.key_value_list)
    feature_gates: str | None = opt(check=v.key_value_list)
    ipsets_refresh_interval: timedelta | None = opt(ptr=True)
    max_ipset_size: int | None = opt(ptr=True, check=v.int_range(0, 2**31 - 1))
    iptables_backend: IptablesBackend | None = opt(ptr=True)
    xdp_refresh_interval: timedelta | None = opt("xdpRefreshInterval", ptr=True)
    netlink_timeout: timedelta | None = opt(ptr=True)
    metadata_addr: str | None = opt()
    metadata_port: int | None = opt(ptr=True, check=_PORT)
    openstack_region: str | None = opt()
    interface_prefix: str | None = opt()
    interface_exclude: str | None = opt()
    chain_insert_mode: str | None = opt(check=v.one_of_ci(*ChainInsertMode))
    """Any case (the CRD's `(?i)` pattern; no validator rule), kept as written."""
    default_endpoint_to_host_action: EndpointToHostAction | None = opt()
    iptables_filter_allow_action: AllowAction | None = opt()
    iptables_mangle_allow_action: AllowAction | None = opt()
    iptables_filter_deny_action: DenyAction | None = opt()
    log_prefix: str | None = opt()
    log_file_path: str | None = opt()
    log_severity_file: LogLevel | None = opt()
    log_severity_screen: LogLevel | None = opt()
    log_severity_sys: LogLevel | None = opt()
    log_debug_filename_regex: str | None = opt(check=v.regexp)
    ipip_enabled: bool | None = opt("ipipEnabled", ptr=True)
    ipip_mtu: int | None = opt("ipipMTU", ptr=True, check=_MTU)
    vxlan_enabled: bool | None = opt("vxlanEnabled", ptr=True)
    vxlan_mtu: int | None = opt("vxlanMTU", ptr=True, check=_MTU)
    vxlan_mtu_v6: int | None = opt("vxlanMTUV6", ptr=True, check=_MTU)
    vxlan_port: int | None = opt("vxlanPort", ptr=True, check=_PORT)
    vxlan_vni: int | None = opt("vxlanVNI", ptr=True, check=v.int_range(0, 2**24 - 1))
    allow_vxlan_packets_from_workloads: bool | None = opt(
        "allowVXLANPacketsFromWorkloads", ptr=True)
    allow_ipip_packets_from_workloads: bool | None = opt(
        "allowIPIPPacketsFromWorkloads", ptr=True)
    reporting_interval: timedelta | None = opt(ptr=True)
    reporting_ttl: timedelta | None = opt("reportingTTL", ptr=True)
    endpoint_reporting_enabled: bool | None = opt(ptr=True)
    endpoint_reporting_delay: timedelta | None = opt(ptr=True)
    endpoint_status_path_prefix: str | None = opt()
    iptables_mark_mask: int | None = opt(ptr=True, check=v.int_range(0, 2**32 - 1))
    disable_conntrack_invalid_check: bool | None = opt(ptr=True)
    health_enabled: bool | None = opt(ptr=True)
    health_host: str | None = opt(ptr=True)
    health_port: int | None = opt(ptr=True, check=_PORT)
    health_timeout_overrides: tuple[HealthTimeoutOverride, ...] = fld(default=())
    prometheus_metrics_enabled: bool | None = opt(ptr=True)
    prometheus_metrics_host: str | None = opt(check=v.prometheus_host)
    prometheus_metrics_port: int | None = opt(ptr=True, check=_PORT)
    prometheus_go_metrics_enabled: bool | None = opt(ptr=True)
    prometheus_process_metrics_enabled: bool | None = opt(ptr=True)
    prometheus_wire_guard_metrics_enabled: bool | None = opt(
        "prometheusWireGuardMetricsEnabled", ptr=True)
    failsafe_inbound_host_ports: tuple[ProtoPort, ...] | None = opt(ptr=True)
    failsafe_outbound_host_ports: tuple[ProtoPort, ...] | None = opt(ptr=True)
    kube_node_port_ranges: tuple[Port, ...] | None = opt(ptr=True, codec=PORT)
    policy_sync_path_prefix: str | None = opt()
    usage_reporting_enabled: bool | None = opt(ptr=True)
    usage_reporting_initial_delay: timedelta | None = opt(ptr=True)
    usage_reporting_interval: timedelta | None = opt(ptr=True)
    nat_port_range: Port | None = opt("natPortRange", ptr=True, codec=PORT)
    nat_outgoing_address: IPAddress | None = opt("natOutgoingAddress", check=v.version(4))
    device_route_source_address: IPAddress | None = opt(check=v.version(4))
    device_route_source_address_ipv6: IPAddress | None = opt(
        "deviceRouteSourceAddressIPv6", check=v.version(6))
    device_route_protocol: int | None = opt(ptr=True, check=v.int_range(0, 255))
    remove_external_routes: bool | None = opt(ptr=True)
    iptables_nat_outgoing_interface_filter: str | None = opt(
        "iptablesNATOutgoingInterfaceFilter", check=v.iface_filter)
    external_nodes_cidr_list: tuple[str, ...] | None = opt("externalNodesList", ptr=True)
    debug_memory_profile_path: str | None = opt()
    debug_disable_log_dropping: bool | None = opt(ptr=True)
    debug_simulate_calc_graph_hang_after: timedelta | None = opt(ptr=True)
    debug_simulate_dataplane_hang_after: timedelta | None = opt(ptr=True)
    debug_simulate_dataplane_apply_delay: timedelta | None = opt(ptr=True)
    debug_host: str | None = opt(ptr=True)
    debug_port: int | None = opt(ptr=True, check=_PORT)
    sidecar_acceleration_enabled: bool | None = opt(ptr=True)
    xdp_enabled: bool | None = opt("xdpEnabled", ptr=True)
    generic_xdp_enabled: bool | None = opt("genericXDPEnabled", ptr=True)
    bpf_enabled: bool | None = opt("bpfEnabled", ptr=True)
    bpf_disable_unprivileged: bool | None = opt("bpfDisableUnprivileged", ptr=True)
    bpf_log_level: BPFLogLevel | None = opt("bpfLogLevel")
    bpf_data_iface_pattern: str | None = opt("bpfDataIfacePattern", check=v.regexp)
    bpf_l3_iface_pattern: str | None = opt("bpfL3IfacePattern", check=v.regexp)
    bpf_connect_time_load_balancing_enabled: bool | None = opt(
        "bpfConnectTimeLoadBalancingEnabled", ptr=True)
    bpf_connect_time_load_balancing: BPFConnectTimeLB | None = opt(
        "bpfConnectTimeLoadBalancing", ptr=True)
    bpf_host_networked_nat_without_ctlb: EnabledDisabled | None = opt(
        "bpfHostNetworkedNATWithoutCTLB", ptr=True)
    bpf_external_service_mode: BPFExternalServiceMode | None = opt("bpfExternalServiceMode")
    bpf_dsr_optout_cidrs: tuple[str, ...] | None = opt("bpfDSROptoutCIDRs", ptr=True,
                                                       check=v.cidrs)
    bpf_ext_to_service_connmark: int | None = opt("bpfExtToServiceConnmark", ptr=True,
                                                  check=v.int_range(0, 2**32 - 1))
    bpf_kube_proxy_iptables_cleanup_enabled: bool | None = opt(
        "bpfKubeProxyIptablesCleanupEnabled", ptr=True)
    bpf_kube_proxy_min_sync_period: timedelta | None = opt("bpfKubeProxyMinSyncPeriod", ptr=True)
    bpf_kube_proxy_endpoint_slices_enabled: bool | None = opt(
        "bpfKubeProxyEndpointSlicesEnabled", ptr=True)
    bpf_psnat_ports: Port | None = opt("bpfPSNATPorts", ptr=True, codec=PORT)
    bpf_map_size_nat_frontend: int | None = opt("bpfMapSizeNATFrontend", ptr=True)
    bpf_map_size_nat_backend: int | None = opt("bpfMapSizeNATBackend", ptr=True)
    bpf_map_size_nat_affinity: int | None = opt("bpfMapSizeNATAffinity", ptr=True)
    bpf_map_size_route: int | None = opt("bpfMapSizeRoute", ptr=True)
    bpf_map_size_conntrack: int | None = opt("bpfMapSizeConntrack", ptr=True)
    bpf_map_size_ipsets: int | None = opt("bpfMapSizeIPSets", ptr=True)
    bpf_map_size_if_state: int | None = opt("bpfMapSizeIfState", ptr=True)
    bpf_host_conntrack_bypass: bool | None = opt("bpfHostConntrackBypass", ptr=True)
    bpf_enforce_rpf: str | None = opt("bpfEnforceRPF", check=v.one_of_ci(*BPFEnforceRPF))
    bpf_policy_debug_enabled: bool | None = opt("bpfPolicyDebugEnabled", ptr=True)
    route_source: str | None = opt(check=v.one_of_ci(*RouteSource))
    route_table_ranges: tuple[RouteTableIDRange, ...] | None = opt(ptr=True)
    route_table_range: RouteTableIDRange | None = opt()
    route_sync_disabled: bool | None = opt(ptr=True)
    wireguard_enabled: bool | None = opt(ptr=True)
    wireguard_enabled_v6: bool | None = opt("wireguardEnabledV6", ptr=True)
    wireguard_listening_port: int | None = opt(ptr=True, check=_WG_PORT)
    wireguard_listening_port_v6: int | None = opt(
        "wireguardListeningPortV6", ptr=True, check=_WG_PORT)
    wireguard_routing_rule_priority: int | None = opt(ptr=True, check=v.int_range(1, 32765))
    wireguard_interface_name: str | None = opt(check=v.interface_name)
    wireguard_interface_name_v6: str | None = opt("wireguardInterfaceNameV6",
                                                  check=v.interface_name)
    wireguard_mtu: int | None = opt("wireguardMTU", ptr=True, check=_MTU)
    wireguard_mtu_v6: int | None = opt("wireguardMTUV6", ptr=True, check=_MTU)
    wireguard_host_encryption_enabled: bool | None = opt(ptr=True)
    wireguard_persistent_keep_alive: timedelta | None = opt(ptr=True)
    wireguard_threading_enabled: bool | None = opt(ptr=True)
    aws_src_dst_check: AWSSrcDstCheck | None = opt("awsSrcDstCheck", ptr=True)
    service_loop_prevention: ServiceLoopPrevention | None = opt()
    workload_source_spoofing: WorkloadSourceSpoofing | None = opt()
    mtu_iface_pattern: str | None = opt("mtuIfacePattern", check=v.regexp)
    floating_ips: EnabledDisabled | None = opt("floatingIPs", ptr=True)
    windows_manage_firewall_rules: EnabledDisabled | None = opt(ptr=True)
    go_gc_threshold: int | None = opt("goGCThreshold", ptr=True, check=_GE_MINUS_1)
    go_memory_limit_mb: int | None = opt("goMemoryLimitMB", ptr=True, check=_GE_MINUS_1)
    go_max_procs: int | None = opt(ptr=True, check=_GE_MINUS_1)
    ip_forwarding: EnabledDisabled | None = opt("ipForwarding")
    program_cluster_routes: ProgramClusterRoutes | None = opt(ptr=True)
    nftables_mode: NFTablesMode | None = opt("nftablesMode", ptr=True)
    nftables_refresh_interval: timedelta | None = opt("nftablesRefreshInterval", ptr=True)
    nftables_filter_allow_action: AllowAction | None = opt("nftablesFilterAllowAction")
    nftables_mangle_allow_action: AllowAction | None = opt("nftablesMangleAllowAction")
    nftables_filter_deny_action: DenyAction | None = opt("nftablesFilterDenyAction")
    nftables_mark_mask: int | None = opt("nftablesMarkMask", ptr=True)
    flow_logs_flush_interval: timedelta | None = opt(ptr=True)
    flow_logs_goldmane_server: str | None = opt(ptr=True)


@dataclass(frozen=True, slots=True)
class FelixConfiguration:
    KIND: ClassVar[str] = "FelixConfiguration"
    metadata: Metadata
    spec: FelixConfigurationSpec = fld(factory=FelixConfigurationSpec)


_HTO_NAME = re.compile(r"^[a-zA-Z0-9_ -]+$")
_REGION_MAX = 63 - len("openstack-region-")


def felixconfig_check(cfg: FelixConfiguration) -> list[FieldError]:
    """validateFelixConfigSpec, validateRouteTableRange, validateRouteTableIDRange and
    validateHealthTimeoutOverride."""
    s = cfg.spec
    errs: list[FieldError] = []
    for i, r in enumerate(s.route_table_ranges or ()):
        if r.min > r.max:
            errs.append(FieldError(f"spec.routeTableRanges[{i}]", "min is greater than max"))
    if s.route_table_ranges and sum(r.max - r.min + 1 for r in s.route_table_ranges) > 0xFFFF:
        errs.append(FieldError("spec.routeTableRanges", "targets too many tables (at most"
                               " 65535)"))
    rtr = s.route_table_range
    if rtr is not None and not 1 <= rtr.min <= rtr.max <= 250:
        errs.append(FieldError("spec.routeTableRange", "must be a range of route table indices"
                               " within 1..250"))
    if rtr is not None and s.route_table_ranges is not None:
        errs.append(FieldError("spec.routeTableRange", "routeTableRange and routeTableRanges"
                               " cannot both be set"))
    ranges = s.kube_node_port_ranges or ()
    if len(ranges) > 7:
        errs.append(FieldError("spec.kubeNodePortRanges", "node port ranges list is too long"
                               " (max 7)"))
    if any(p.name for p in ranges):
        errs.append(FieldError("spec.kubeNodePortRanges", "node port ranges should not contain"
                               " named ports"))
    for i, cidr in enumerate(s.external_nodes_cidr_list or ()):
        try:
            ok = ipaddress.ip_network(cidr, strict=False).version == 4
        except ValueError:
            ok = False
        if not ok:
            errs.append(FieldError(f"spec.externalNodesList[{i}]", f"{cidr!r} is not an IPv4"
                                   " CIDR"))
    region = s.openstack_region
    if region and (len(region) > _REGION_MAX or v.dns1123_label(region, "")):
        errs.append(FieldError("spec.openstackRegion", f"must be a DNS label of at most"
                               f" {_REGION_MAX} characters"))
    for i, hto in enumerate(s.health_timeout_overrides):
        if not _HTO_NAME.match(hto.name):
            errs.append(FieldError(f"spec.healthTimeoutOverrides[{i}].name",
                                   "letters, digits, '_', '-' and spaces only"))
        if hto.timeout < timedelta(0):
            errs.append(FieldError(f"spec.healthTimeoutOverrides[{i}].timeout",
                                   "must not be negative"))
    return errs


register(KindSpec(FelixConfiguration, check=felixconfig_check))
