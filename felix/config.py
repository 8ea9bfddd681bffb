"""Felix configuration: Calico's parameter names, defaults and precedence.

Precedence (highest first), as Calico's `config_params.go`: environment `FELIX_<Name>`
(case-insensitive) > config file (`/etc/calico/felix.cfg`, INI `[global]`) > per-node
FelixConfiguration `node.<hostname>` > global FelixConfiguration `default` > default.
Parameters marked `local` are read only from the environment and the file.

PURE: parsing only; the caller hands in the environment, the file text and the resources.
"""

from __future__ import annotations

import configparser
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from libcalico.errors import ConfigError

PURE = True


@dataclass(frozen=True, slots=True)
class Port:
    protocol: str
    port: int
    net: str = ""


def _bool(v: str) -> bool:
    s = v.strip().lower()
    if s in ("true", "1", "yes", "y", "t", "enabled", "enable"):
        return True
    if s in ("false", "0", "no", "n", "f", "disabled", "disable"):
        return False
    raise ValueError(f"not a boolean: {v!r}")


def _int(lo: int, hi: int) -> Callable[[str], int]:
    def parse(v: str) -> int:
        n = int(v.strip(), 0)
        if not lo <= n <= hi:
            raise ValueError(f"{n} is outside {lo}..{hi}")
        return n
    return parse


def _seconds(v: str) -> float:
    """Calico accepts plain seconds in env/file and Go durations (`90s`, `1m30s`) in YAML."""
    s = v.strip()
    try:
        n = float(s)
    except ValueError:
        total = 0.0
        parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", s)
        if not parts or "".join(a + b for a, b in parts) != s:
            raise ValueError(f"not a duration: {v!r}") from None
        for num, unit in parts:
            total += float(num) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
        n = total
    if n < 0:
        raise ValueError("negative duration")
    return n


def _oneof(*choices: str, upper: bool = False) -> Callable[[str], str]:
    def parse(v: str) -> str:
        for c in choices:
            if v.strip().lower() == c.lower():
                return c.upper() if upper else c
        raise ValueError(f"{v!r} is not one of {', '.join(choices)}")
    return parse


def _str(v: str) -> str:
    return v.strip()


_IFACE_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,15}$")


def _prefixes(v: str) -> tuple[str, ...]:
    out = tuple(p.strip() for p in v.split(",") if p.strip())
    if not out:
        raise ValueError("empty interface prefix")
    for p in out:
        if not re.fullmatch(r"[a-zA-Z0-9_.-]{1,14}", p):
            raise ValueError(f"bad interface prefix {p!r}")
    return out


def _ports(v: str) -> tuple[Port, ...]:
    out: list[Port] = []
    s = v.strip()
    if s.lower() == "none" or not s:
        return ()
    for item in s.split(","):
        item = item.strip()
        parts = item.split(":")
        if len(parts) == 1:
            proto, port = "tcp", parts[0]
        elif len(parts) == 2:
            proto, port = parts
        else:
            raise ValueError(f"bad port spec {item!r}")
        proto = proto.lower()
        if proto not in ("tcp", "udp", "sctp"):
            raise ValueError(f"bad protocol in {item!r}")
        out.append(Port(proto, _int(0, 65535)(port)))
    return tuple(out)


def _yaml_ports(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(f"{p.get('protocol', 'tcp')}:{p['port']}" for p in value)
    return str(value)


def _mtu(v: str) -> int:
    return _int(0, 65535)(v)


@dataclass(frozen=True, slots=True)
class Param:
    name: str                       # Calico's name (env suffix, file key)
    attr: str                       # our attribute name
    parse: Callable[[str], Any]
    default: str
    yaml: str = ""                  # FelixConfiguration spec field ("" = not settable there)
    local: bool = False


_FAILSAFE_IN = "tcp:22,udp:68,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667"
_FAILSAFE_OUT = "udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667"

PARAMS: tuple[Param, ...] = (
    Param("FelixHostname", "hostname", _str, "", local=True),
    Param("DatastoreType", "datastore_type", _oneof("etcdv3", "kubernetes"), "etcdv3",
          local=True),
    Param("EtcdEndpoints", "etcd_endpoints", _str, "", local=True),
    Param("LogSeverityScreen", "log_severity_screen",
          _oneof("DEBUG", "INFO", "WARNING", "ERROR", "FATAL", "NONE", upper=True), "INFO",
          "logSeverityScreen"),
    Param("LogSeverityFile", "log_severity_file",
          _oneof("DEBUG", "INFO", "WARNING", "ERROR", "FATAL", "NONE", upper=True), "INFO",
          "logSeverityFile"),
    Param("LogFilePath", "log_file_path", _str, "/var/log/calico/felix.log", "logFilePath"),
    Param("InterfacePrefix", "interface_prefix", _prefixes, "cali", "interfacePrefix"),
    Param("InterfaceExclude", "interface_exclude", _str, "kube-ipvs0", "interfaceExclude"),
    Param("IptablesBackend", "iptables_backend", _oneof("auto", "nft", "legacy"), "auto",
          "iptablesBackend"),
    Param("ChainInsertMode", "chain_insert_mode", _oneof("insert", "append"), "insert",
          "chainInsertMode"),
    Param("IptablesRefreshInterval", "iptables_refresh_interval", _seconds, "180",
          "iptablesRefreshInterval"),
    Param("RouteRefreshInterval", "route_refresh_interval", _seconds, "90",
          "routeRefreshInterval"),
    Param("InterfaceRefreshInterval", "interface_refresh_interval", _seconds, "90",
          "interfaceRefreshInterval"),
    Param("IpsetsRefreshInterval", "ipsets_refresh_interval", _seconds, "90",
          "ipsetsRefreshInterval"),
    Param("DefaultEndpointToHostAction", "default_endpoint_to_host_action",
          _oneof("DROP", "RETURN", "ACCEPT", upper=True), "DROP",
          "defaultEndpointToHostAction"),
    Param("FailsafeInboundHostPorts", "failsafe_inbound_host_ports", _ports, _FAILSAFE_IN,
          "failsafeInboundHostPorts"),
    Param("FailsafeOutboundHostPorts", "failsafe_outbound_host_ports", _ports, _FAILSAFE_OUT,
          "failsafeOutboundHostPorts"),
    Param("IpInIpEnabled", "ipip_enabled", _oneof("", "true", "false"), "", "ipipEnabled"),
    Param("IpInIpMtu", "ipip_mtu", _mtu, "0", "ipipMTU"),
    Param("VXLANEnabled", "vxlan_enabled", _oneof("", "true", "false"), "", "vxlanEnabled"),
    Param("VXLANPort", "vxlan_port", _int(1, 65535), "4789", "vxlanPort"),
    Param("VXLANVNI", "vxlan_vni", _int(1, 16777215), "4096", "vxlanVNI"),
    Param("VXLANMTU", "vxlan_mtu", _mtu, "0", "vxlanMTU"),
    Param("MTUIfacePattern", "mtu_iface_pattern", _str,
          r"^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)", "mtuIfacePattern"),
    Param("ProgramClusterRoutes", "program_cluster_routes",
          _oneof("Disabled", "Enabled", "EnabledIPIPOnly", "EnabledNoEncapOnly"),
          "EnabledIPIPOnly", "programClusterRoutes"),
    Param("RemoveExternalRoutes", "remove_external_routes", _bool, "true",
          "removeExternalRoutes"),
    Param("DeviceRouteProtocol", "device_route_protocol", _int(0, 255), "3",
          "deviceRouteProtocol"),
    Param("IPForwarding", "ip_forwarding", _oneof("Enabled", "Disabled"), "Enabled",
          "ipForwarding"),
    Param("Ipv6Support", "ipv6_support", _bool, "true", "ipv6Support"),
    Param("HealthEnabled", "health_enabled", _bool, "false", "healthEnabled"),
    Param("HealthHost", "health_host", _str, "localhost", "healthHost"),
    Param("HealthPort", "health_port", _int(0, 65535), "9099", "healthPort"),
    Param("PrometheusMetricsEnabled", "prometheus_metrics_enabled", _bool, "false",
          "prometheusMetricsEnabled"),
    Param("PrometheusMetricsHost", "prometheus_metrics_host", _str, "",
          "prometheusMetricsHost"),
    Param("PrometheusMetricsPort", "prometheus_metrics_port", _int(0, 65535), "9091",
          "prometheusMetricsPort"),
    Param("IptablesMarkMask", "iptables_mark_mask", _int(0, 0xFFFFFFFF), "0xffff0000",
          "iptablesMarkMask"),
    Param("AllowVXLANPacketsFromWorkloads", "allow_vxlan_packets_from_workloads", _bool,
          "false", "allowVXLANPacketsFromWorkloads"),
    Param("AllowIPIPPacketsFromWorkloads", "allow_ipip_packets_from_workloads", _bool,
          "false", "allowIPIPPacketsFromWorkloads"),
    Param("DataplaneWatchdogTimeout", "dataplane_watchdog_timeout", _seconds, "90",
          "dataplaneWatchdogTimeout"),
)

PARAMS_BY_NAME = {p.name.lower(): p for p in PARAMS}
PARAMS_BY_YAML = {p.yaml: p for p in PARAMS if p.yaml}


@dataclass(frozen=True, slots=True)
class FelixConfig:
    hostname: str = ""
    datastore_type: str = "etcdv3"
    etcd_endpoints: str = ""
    log_severity_screen: str = "INFO"
    log_severity_file: str = "INFO"
    log_file_path: str = "/var/log/calico/felix.log"
    interface_prefix: tuple[str, ...] = ("cali",)
    interface_exclude: str = "kube-ipvs0"
    iptables_backend: str = "auto"
    chain_insert_mode: str = "insert"
    iptables_refresh_interval: float = 180.0
    route_refresh_interval: float = 90.0
    interface_refresh_interval: float = 90.0
    ipsets_refresh_interval: float = 90.0
    default_endpoint_to_host_action: str = "DROP"
    failsafe_inbound_host_ports: tuple[Port, ...] = ()
    failsafe_outbound_host_ports: tuple[Port, ...] = ()
    ipip_enabled: str = ""
    ipip_mtu: int = 0
    vxlan_enabled: str = ""
    vxlan_port: int = 4789
    vxlan_vni: int = 4096
    vxlan_mtu: int = 0
    mtu_iface_pattern: str = r"^((en|wl|ww|sl|ib)[Pcopsvx].*|(eth|wlan|wwan).*)"
    program_cluster_routes: str = "EnabledIPIPOnly"
    remove_external_routes: bool = True
    device_route_protocol: int = 3
    ip_forwarding: str = "Enabled"
    ipv6_support: bool = True
    health_enabled: bool = False
    health_host: str = "localhost"
    health_port: int = 9099
    prometheus_metrics_enabled: bool = False
    prometheus_metrics_host: str = ""
    prometheus_metrics_port: int = 9091
    iptables_mark_mask: int = 0xFFFF0000
    allow_vxlan_packets_from_workloads: bool = False
    allow_ipip_packets_from_workloads: bool = False
    dataplane_watchdog_timeout: float = 90.0
    sources: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    """(parameter, source) for every non-default value, for the startup log line."""
    warnings: tuple[str, ...] = field(default=(), compare=False)
    """Invalid datastore values that were ignored (the next source down applies)."""


def parse_file(text: str, path: str = "felix.cfg") -> dict[str, str]:
    """Calico's INI config file: `[global]` section, `Name = value` lines."""
    cp = configparser.ConfigParser(interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        cp.read_string(text, source=path)
    except configparser.Error as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    out: dict[str, str] = {}
    for section in cp.sections():
        out.update(cp[section])
    return out


def env_values(env: Mapping[str, str]) -> dict[str, str]:
    return {k[len("FELIX_"):]: v for k, v in env.items() if k.upper().startswith("FELIX_")}


def resource_values(spec: Mapping[str, Any] | None) -> dict[str, str]:
    """FelixConfiguration `spec` (Calico JSON) → {ParamName: text}. Unknown fields ignored."""
    out: dict[str, str] = {}
    for key, value in (spec or {}).items():
        p = PARAMS_BY_YAML.get(key)
        if p is None or value is None:
            continue
        if key.startswith("failsafe"):
            out[p.name] = _yaml_ports(value)
        elif isinstance(value, bool):
            out[p.name] = "true" if value else "false"
        else:
            out[p.name] = str(value)
    return out


def datastore_env(env: Mapping[str, str], file_values: Mapping[str, str]) -> dict[str, str]:
    """The variables Felix's datastore connection is read from, built as Calico's Felix builds
    it (`Config.DatastoreConfig`): libcalico-go's own (`DATASTORE_TYPE`, `KUBECONFIG`,
    `K8S_*`, `ETCD_*`, each also with a `CALICO_` prefix), then Felix's own parameters, when
    the environment (`FELIX_…`) or the config file sets them, override those: `DatastoreType`;
    `EtcdEndpoints`, else `EtcdScheme`://`EtcdAddr` (either selects etcdv3); `EtcdKeyFile`,
    `EtcdCertFile`, `EtcdCaFile`."""
    felix: dict[str, str] = {}
    for source in (file_values, env_values(env)):   # the environment wins
        for k, v in source.items():
            if k.lower() in _DATASTORE_PARAMS and v.strip():
                felix[k.lower()] = v.strip()
    out = dict(env)

    def put(var: str, value: str) -> None:
        out.pop(f"CALICO_{var}", None)      # the CALICO_ spelling would win otherwise
        out[var] = value

    if "datastoretype" in felix:
        put("DATASTORE_TYPE", _oneof("etcdv3", "kubernetes")(felix["datastoretype"]))
    endpoints = felix.get("etcdendpoints")
    if endpoints is None and "etcdaddr" in felix:
        endpoints = f"{felix.get('etcdscheme', 'http')}://{felix['etcdaddr']}"
    if endpoints is not None:
        put("DATASTORE_TYPE", "etcdv3")
        put("ETCD_ENDPOINTS", endpoints)
    for param, var in (("etcdkeyfile", "ETCD_KEY_FILE"), ("etcdcertfile", "ETCD_CERT_FILE"),
                       ("etcdcafile", "ETCD_CA_CERT_FILE")):
        if param in felix:
            put(var, felix[param])
    return out


_DATASTORE_PARAMS = frozenset({"datastoretype", "etcdendpoints", "etcdaddr", "etcdscheme",
                               "etcdkeyfile", "etcdcertfile", "etcdcafile"})


def load(
    env: Mapping[str, str] | None = None,
    file_values: Mapping[str, str] | None = None,
    per_node: Mapping[str, Any] | None = None,
    global_: Mapping[str, Any] | None = None,
) -> FelixConfig:
    """Merge the sources. Raises ConfigError naming the parameter, source and reason."""
    layers: list[tuple[str, Mapping[str, str]]] = [
        ("default", {p.name: p.default for p in PARAMS}),
        ("FelixConfiguration default", resource_values(global_)),
        ("FelixConfiguration node", resource_values(per_node)),
        ("config file", dict(file_values or {})),
        ("environment", env_values(env or {})),
    ]
    chosen: dict[str, tuple[str, str]] = {}
    warnings: list[str] = []
    for source, values in layers:
        for raw_name, text in values.items():
            p = PARAMS_BY_NAME.get(raw_name.lower())
            if p is None:
                continue
            if p.local and source.startswith("FelixConfiguration"):
                continue
            if source.startswith("FelixConfiguration"):
                # Datastore values are untrusted: a bad one is ignored (as Calico does), the
                # value from the next source down stays in force.
                try:
                    p.parse(text)
                except ValueError as exc:
                    warnings.append(f"{p.name} from {source}: {exc} (ignored)")
                    continue
            chosen[p.attr] = (source, text)
    kwargs: dict[str, Any] = {}
    sources: list[tuple[str, str]] = []
    by_attr = {p.attr: p for p in PARAMS}
    for attr, (source, text) in chosen.items():
        p = by_attr[attr]
        try:
            kwargs[attr] = p.parse(text)
        except ValueError as exc:
            raise ConfigError(f"{p.name} from {source}: {exc}") from exc
        if source != "default":
            sources.append((p.name, source))
    cfg = FelixConfig(**kwargs, sources=tuple(sorted(sources)), warnings=tuple(warnings))
    if cfg.health_host and cfg.health_host != "localhost":
        try:
            ipaddress.ip_address(cfg.health_host)
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9.-]+", cfg.health_host):
                raise ConfigError(f"HealthHost: bad host {cfg.health_host!r}") from None
    try:
        re.compile(cfg.mtu_iface_pattern)
    except re.error as exc:
        raise ConfigError(f"MTUIfacePattern: {exc}") from exc
    return cfg
