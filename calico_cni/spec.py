"""The CNI spec as this plugin speaks it: versions, environment, errors, result shapes.

Supported spec versions: 0.1.0 through 1.1.0 (1.1.0 adds GC and STATUS). Errors are the
spec's JSON object on stdout (`{"code":N,"msg":…,"details":…}`) with exit status 1.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PURE = True

SUPPORTED_VERSIONS = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

# Error codes (spec "Error" section).
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENV = 4
IO_FAILURE = 5
DECODING_FAILURE = 6
INVALID_NETWORK_CONFIG = 7
TRY_AGAIN_LATER = 11
NOT_AVAILABLE = 50
INTERNAL = 999

_ID_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$")
_NAME_RE = re.compile(r"^[a-zA-Z0-9_.\-]+$")


class CNIError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_json(self) -> str:
        doc: dict[str, Any] = {"code": self.code, "msg": self.msg}
        if self.details:
            doc["details"] = self.details
        return json.dumps(doc)


def version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        raise CNIError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {json.dumps(v)}, which is not a version") from None


def version_output(cni_version: str = "1.1.0") -> str:
    return json.dumps({"cniVersion": cni_version, "supportedVersions": list(SUPPORTED_VERSIONS)})


_REQUIRED = {
    "ADD": ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "CHECK": ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"),
    "DEL": ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"),
    "GC": ("CNI_COMMAND", "CNI_PATH"),
    "STATUS": ("CNI_COMMAND", "CNI_PATH"),
    "VERSION": ("CNI_COMMAND",),
}


@dataclass(frozen=True, slots=True)
class Env:
    """The CNI_* environment of one call (CNI_ARGS parsed into `args`)."""

    command: str
    container_id: str = ""
    netns: str = ""
    ifname: str = ""
    args: Mapping[str, str] = field(default_factory=dict)
    path: tuple[str, ...] = ()
    raw_args: str = ""


def parse_cni_args(text: str) -> dict[str, str]:
    """`K=V;K=V` (CNI_ARGS). A pair without `=` is a decoding error."""
    out: dict[str, str] = {}
    for part in text.split(";"):
        if not part:
            continue
        k, sep, v = part.partition("=")
        if not sep:
            raise CNIError(INVALID_ENV, f"invalid CNI_ARGS pair {part!r}: expected KEY=VALUE")
        out[k] = v
    return out


def parse_env(environ: Mapping[str, str]) -> Env:
    command = environ.get("CNI_COMMAND", "")
    if not command:
        raise CNIError(INVALID_ENV, "required env variables [CNI_COMMAND] missing")
    if command not in _REQUIRED:
        raise CNIError(INVALID_ENV, f"unknown CNI_COMMAND: {command}",
                       "expected one of ADD, DEL, CHECK, GC, STATUS, VERSION")
    missing = [v for v in _REQUIRED[command]
               if not environ.get(v) and not (v == "CNI_CONTAINERID" and v in environ)]
    if missing:
        raise CNIError(INVALID_ENV, f"required env variables [{','.join(missing)}] missing")
    cid = environ.get("CNI_CONTAINERID", "")
    if command in ("ADD", "CHECK", "DEL"):
        if not cid:
            raise CNIError(UNKNOWN_CONTAINER, "missing containerID")
        if not _ID_RE.match(cid):
            raise CNIError(INVALID_ENV, "invalid characters in containerID", cid)
        ifname = environ.get("CNI_IFNAME", "")
        if len(ifname) > 15 or ifname in (".", "..") or any(c in ifname for c in "/: \t\n"):
            raise CNIError(INVALID_ENV, f"invalid interface name {ifname!r}",
                           "CNI_IFNAME must be 1-15 characters without '/', ':' or spaces")
    netns = environ.get("CNI_NETNS", "")
    bad_netns = any(c.isspace() or c in "\"'\\" for c in netns) or not netns.startswith("/")
    if command in ("ADD", "CHECK", "DEL") and netns and bad_netns:
        raise CNIError(INVALID_ENV, f"invalid CNI_NETNS {netns!r}",
                       "CNI_NETNS must be an absolute path without spaces or quotes")
    raw = environ.get("CNI_ARGS", "")
    return Env(command=command, container_id=cid, netns=environ.get("CNI_NETNS", ""),
               ifname=environ.get("CNI_IFNAME", ""), args=parse_cni_args(raw),
               path=tuple(p for p in environ.get("CNI_PATH", "").split(":") if p),
               raw_args=raw)


def decode_config(stdin: bytes | str) -> dict[str, Any]:
    try:
        doc = json.loads(stdin)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CNIError(DECODING_FAILURE, f"error parsing network configuration: {exc}",
                       "stdin must be the network configuration as a JSON object") from None
    if not isinstance(doc, dict):
        raise CNIError(DECODING_FAILURE, "network configuration must be a JSON object")
    return doc


def check_config(doc: Mapping[str, Any], command: str) -> str:
    """Validate name and version; return the configured cniVersion."""
    name = doc.get("name")
    if command not in ("VERSION",) and (not isinstance(name, str) or not _NAME_RE.match(name)):
        raise CNIError(INVALID_NETWORK_CONFIG, f"invalid network name {name!r}",
                       "'name' must be set and match ^[a-zA-Z0-9_.\\-]+$")
    version = doc.get("cniVersion") or "0.1.0"
    if not isinstance(version, str) or version not in SUPPORTED_VERSIONS:
        raise CNIError(INCOMPATIBLE_VERSION, "incompatible CNI versions",
                       f"config is {json.dumps(version)}, plugin supports "
                       f"{json.dumps(list(SUPPORTED_VERSIONS))}")
    vt = version_tuple(version)
    if command == "CHECK" and vt < (0, 4, 0):
        raise CNIError(INCOMPATIBLE_VERSION, "config version does not allow CHECK",
                       "CHECK needs cniVersion 0.4.0 or later")
    if command in ("GC", "STATUS") and vt < (1, 1, 0):
        raise CNIError(INCOMPATIBLE_VERSION, f"config version does not allow {command}",
                       f"{command} needs cniVersion 1.1.0 or later")
    return version


# ---- results ---------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Interface:
    """An interface of a result (`sandbox`: the namespace path of a container one)."""

    name: str
    mac: str = ""
    mtu: int = 0
    sandbox: str = ""


@dataclass(frozen=True, slots=True)
class IPConfig:
    """An address of a result, with the index of its interface."""

    address: str  # "10.0.0.5/32"
    interface: int | None = None
    gateway: str = ""

    @property
    def version(self) -> int:
        return 6 if ":" in self.address else 4


@dataclass(frozen=True, slots=True)
class Route:
    """A route of a result."""

    dst: str
    gw: str = ""


@dataclass(frozen=True, slots=True)
class Result:
    """What ADD prints, in any spec version (`format_result`)."""

    interfaces: tuple[Interface, ...] = ()
    ips: tuple[IPConfig, ...] = ()
    routes: tuple[Route, ...] = ()
    dns: Mapping[str, Any] = field(default_factory=dict)


def _route(r: Route) -> dict[str, str]:
    d = {"dst": r.dst}
    if r.gw:
        d["gw"] = r.gw
    return d


def format_result(res: Result, cni_version: str) -> dict[str, Any]:
    """The result in the shape of `cni_version` (1.x; 0.3.x/0.4.0 with `version`; 0.1/0.2
    with ip4/ip6)."""
    vt = version_tuple(cni_version)
    if vt < (0, 3, 0):
        out: dict[str, Any] = {"cniVersion": cni_version}
        for fam, key in ((4, "ip4"), (6, "ip6")):
            ip = next((i for i in res.ips if i.version == fam), None)
            if ip is None:
                continue
            entry: dict[str, Any] = {"ip": ip.address}
            if ip.gateway:
                entry["gateway"] = ip.gateway
            routes = [_route(r) for r in res.routes if (":" in r.dst) == (fam == 6)]
            if routes:
                entry["routes"] = routes
            out[key] = entry
        out["dns"] = dict(res.dns)
        return out
    out = {"cniVersion": cni_version}
    if res.interfaces:
        ifs = []
        for i in res.interfaces:
            d: dict[str, Any] = {"name": i.name}
            if i.mac:
                d["mac"] = i.mac
            if i.mtu and vt >= (1, 1, 0):
                d["mtu"] = i.mtu
            if i.sandbox:
                d["sandbox"] = i.sandbox
            ifs.append(d)
        out["interfaces"] = ifs
    if res.ips:
        ips = []
        for ip in res.ips:
            e: dict[str, Any] = {}
            if vt < (1, 0, 0):
                e["version"] = str(ip.version)
            if ip.interface is not None:
                e["interface"] = ip.interface
            e["address"] = ip.address
            if ip.gateway:
                e["gateway"] = ip.gateway
            ips.append(e)
        out["ips"] = ips
    if res.routes:
        out["routes"] = [_route(r) for r in res.routes]
    out["dns"] = dict(res.dns)
    return out


def parse_result(doc: Mapping[str, Any]) -> Result:
    """Read a result of any version (a delegated IPAM plugin's output, a prevResult)."""
    ips: list[IPConfig] = []
    routes: list[Route] = []
    if "ip4" in doc or "ip6" in doc:
        for key in ("ip4", "ip6"):
            e = doc.get(key)
            if isinstance(e, dict) and e.get("ip"):
                ips.append(IPConfig(str(e["ip"]), None, str(e.get("gateway") or "")))
                routes += [Route(str(r["dst"]), str(r.get("gw") or ""))
                           for r in e.get("routes") or []]
    else:
        for e in doc.get("ips") or []:
            ips.append(IPConfig(str(e["address"]), e.get("interface"),
                                str(e.get("gateway") or "")))
        routes = [Route(str(r["dst"]), str(r.get("gw") or "")) for r in doc.get("routes") or []]
    ifaces = tuple(Interface(str(i.get("name", "")), str(i.get("mac") or ""),
                             int(i.get("mtu") or 0), str(i.get("sandbox") or ""))
                   for i in doc.get("interfaces") or [])
    dns = doc.get("dns") if isinstance(doc.get("dns"), dict) else {}
    return Result(ifaces, tuple(ips), tuple(routes), dns or {})
