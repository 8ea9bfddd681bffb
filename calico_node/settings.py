"""calico-node's environment, parsed and checked once (Calico's variable names)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from calico_node import autodetect
from libcalico.errors import ConfigError

PURE = True

BACKENDS = ("bird", "vxlan", "none")
ENCAP_MODES = ("Never", "Always", "CrossSubnet")


@dataclass(frozen=True, slots=True)
class PoolSettings:
    cidr: ipaddress.IPv4Network | ipaddress.IPv6Network
    block_size: int
    ipip_mode: str
    vxlan_mode: str
    nat_outgoing: bool
    node_selector: str
    disable_bgp_export: bool

    @property
    def name(self) -> str:
        return f"default-ipv{self.cidr.version}-ippool"


@dataclass(frozen=True, slots=True)
class Settings:
    backend: str
    ip: str
    """"" or "autodetect" ⇒ autodetect; "none" ⇒ keep/none; else an address."""
    ip6: str
    ip_method: autodetect.Method
    ip6_method: autodetect.Method
    as_number: int | None
    pools: tuple[PoolSettings, ...]
    no_default_pools: bool
    cluster_type: str
    disable_node_ip_check: bool
    disable_felix: bool


def _bool(env: Mapping[str, str], var: str, default: bool) -> bool:
    raw = env.get(var, "").strip().lower()
    if raw == "":
        return default
    if raw in ("true", "1", "yes", "on"):
        return True
    if raw in ("false", "0", "no", "off"):
        return False
    raise ConfigError(f"{var}={env[var]!r}: expected true or false")


def _mode(env: Mapping[str, str], var: str) -> str:
    raw = env.get(var, "").strip()
    if raw == "":
        return "Never"
    for m in ENCAP_MODES:
        if raw.lower() == m.lower():
            return m
    if raw.lower() == "off":
        return "Never"
    raise ConfigError(f"{var}={raw!r}: expected Never, Always or CrossSubnet")


def _pool(env: Mapping[str, str], version: int, default_cidr: str | None) -> PoolSettings | None:
    p = f"CALICO_IPV{version}POOL_"
    raw = env.get(p + "CIDR", "").strip() or default_cidr
    if raw is None:
        return None
    try:
        cidr = ipaddress.ip_network(raw, strict=True)
    except ValueError as exc:
        raise ConfigError(f"{p}CIDR={raw!r}: not a network CIDR ({exc})") from exc
    if cidr.version != version:
        raise ConfigError(f"{p}CIDR={raw!r}: not an IPv{version} network")
    lo, hi, dflt = (20, 32, 26) if version == 4 else (116, 128, 122)
    bs_raw = env.get(p + "BLOCK_SIZE", "").strip()
    try:
        bs = int(bs_raw) if bs_raw else dflt
    except ValueError as exc:
        raise ConfigError(f"{p}BLOCK_SIZE={bs_raw!r}: not a number") from exc
    if not lo <= bs <= hi:
        raise ConfigError(f"{p}BLOCK_SIZE={bs}: must be between {lo} and {hi}")
    if bs < cidr.prefixlen:
        raise ConfigError(f"{p}BLOCK_SIZE={bs}: smaller than the pool's prefix /{cidr.prefixlen}")
    ipip, vxlan = _mode(env, p + "IPIP"), _mode(env, p + "VXLAN")
    if version == 6 and ipip != "Never":
        raise ConfigError(f"{p}IPIP: IPIP is not supported for IPv6 pools")
    if ipip != "Never" and vxlan != "Never":
        raise ConfigError(f"{p}IPIP={ipip} and {p}VXLAN={vxlan}: choose one encapsulation")
    selector = env.get(p + "NODE_SELECTOR", "").strip() or "all()"
    return PoolSettings(cidr, bs, ipip, vxlan, _bool(env, p + "NAT_OUTGOING", version == 4),
                        selector, _bool(env, p + "DISABLE_BGP_EXPORT", False))


def parse(env: Mapping[str, str]) -> Settings:
    backend = (env.get("CALICO_NETWORKING_BACKEND") or "bird").strip()
    if backend not in BACKENDS:
        raise ConfigError(f"CALICO_NETWORKING_BACKEND={backend!r}: expected bird, vxlan or none")
    as_raw = env.get("AS", "").strip()
    as_number: int | None = None
    if as_raw:
        try:
            if "." in as_raw:  # asdot
                hi, lo = as_raw.split(".", 1)
                as_number = int(hi) * 65536 + int(lo)
            else:
                as_number = int(as_raw)
        except ValueError as exc:
            raise ConfigError(f"AS={as_raw!r}: not an AS number") from exc
        if not 0 < as_number < 2**32:
            raise ConfigError(f"AS={as_raw!r}: out of range")
    no_default = _bool(env, "NO_DEFAULT_POOLS", False)
    pools: list[PoolSettings] = []
    if no_default:
        set_vars = [v for v in ("CALICO_IPV4POOL_CIDR", "CALICO_IPV6POOL_CIDR") if env.get(v)]
        if set_vars:
            raise ConfigError(f"NO_DEFAULT_POOLS=true but {', '.join(set_vars)} is set: "
                              "unset one of them")
    else:
        v4 = _pool(env, 4, "192.168.0.0/16")
        assert v4 is not None
        pools.append(v4)
        ip6 = env.get("IP6", "").strip()
        if ip6 and ip6 != "none":
            v6 = _pool(env, 6, env.get("CALICO_IPV6POOL_CIDR") or None)
            if v6 is not None:
                pools.append(v6)
    ip = env.get("IP", "").strip()
    ip6 = env.get("IP6", "").strip()
    for var, val, ver in (("IP", ip, 4), ("IP6", ip6, 6)):
        if val not in ("", "autodetect", "none"):
            autodetect.parse_given(val, ver, var)
    return Settings(
        backend=backend, ip=ip, ip6=ip6,
        ip_method=autodetect.parse_method(env.get("IP_AUTODETECTION_METHOD", "")),
        ip6_method=autodetect.parse_method(env.get("IP6_AUTODETECTION_METHOD", ""),
                                           "IP6_AUTODETECTION_METHOD"),
        as_number=as_number, pools=tuple(pools), no_default_pools=no_default,
        cluster_type=env.get("CLUSTER_TYPE", "").strip(),
        disable_node_ip_check=_bool(env, "DISABLE_NODE_IP_CHECK", False),
        disable_felix=_bool(env, "CALICO_DISABLE_FELIX", False),
    )
