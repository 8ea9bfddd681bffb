"""Calico's CNI network configuration (the JSON on stdin), with its defaults."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from calico_cni.spec import INVALID_NETWORK_CONFIG, CNIError

PURE = True

DEFAULT_NODENAME_FILE = "/var/lib/calico/nodename"
DEFAULT_MTU_FILE = "/var/lib/calico/mtu"
DEFAULT_IPAM_LOCK = "/var/run/calico/ipam.lock"


def _bad(field_name: str, why: str) -> CNIError:
    return CNIError(INVALID_NETWORK_CONFIG, f"invalid network configuration: {field_name}: {why}")


def _obj(doc: Mapping[str, Any], key: str) -> dict[str, Any]:
    v = doc.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise _bad(key, "expected an object")
    return v


def _str(doc: Mapping[str, Any], key: str, default: str = "") -> str:
    v = doc.get(key, default)
    if v is None:
        return default
    if not isinstance(v, str):
        raise _bad(key, "expected a string")
    return v


def _strbool(doc: Mapping[str, Any], key: str, default: bool) -> bool:
    """Calico's `assign_ipv4`/`assign_ipv6` are strings "true"/"false" (booleans accepted)."""
    v = doc.get(key)
    if v is None or v == "":
        return default
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    raise _bad(f"ipam.{key}", f"expected \"true\" or \"false\", not {v!r}")


def _list_of_str(doc: Mapping[str, Any], key: str, where: str) -> tuple[str, ...]:
    v = doc.get(key)
    if v is None:
        return ()
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _bad(where, "expected a list of strings")
    return tuple(v)


@dataclass(frozen=True, slots=True)
class IPAMConf:
    """The `ipam` section as calico-ipam reads it."""

    type: str = ""
    assign_ipv4: bool = True
    assign_ipv6: bool = False
    ipv4_pools: tuple[str, ...] = ()
    ipv6_pools: tuple[str, ...] = ()
    subnet: str = ""
    routes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NetConf:
    """Calico's network configuration (stdin), checked and with its defaults."""

    raw: Mapping[str, Any]
    name: str
    cni_version: str
    type: str
    ipam: IPAMConf
    datastore_type: str = ""
    """`etcdv3`, `kubernetes`, or empty: then $DATASTORE_TYPE (Calico exports the field to
    it), else etcdv3."""
    etcd_endpoints: str = ""
    etcd_key_file: str = ""
    etcd_cert_file: str = ""
    etcd_ca_cert_file: str = ""
    nodename: str = ""
    nodename_file: str = DEFAULT_NODENAME_FILE
    nodename_file_optional: bool = False
    hostname: str = ""
    mtu: int = 0
    policy_type: str = ""
    k8s_api_root: str = ""
    k8s_auth_token: str = ""
    kubeconfig: str = ""
    kubernetes_api_root: str = ""
    """`kubernetes.k8s_api_root`: the API server for the Kubernetes datastore (wins over
    `policy.k8s_api_root`, which is cut at `/api/`)."""
    allow_ip_forwarding: bool = False
    ip_addrs_no_ipam: bool = False
    floating_ips: bool = False
    include_default_routes: bool = False
    ipam_lock_file: str = DEFAULT_IPAM_LOCK
    log_level: str = ""
    num_queues: int = 1
    prev_result: Mapping[str, Any] | None = None
    runtime_config: Mapping[str, Any] = field(default_factory=dict)


def parse(doc: Mapping[str, Any], cni_version: str) -> NetConf:
    ipam_doc = _obj(doc, "ipam")
    routes = []
    for r in ipam_doc.get("routes") or []:
        if not isinstance(r, dict) or not isinstance(r.get("dst"), str):
            raise _bad("ipam.routes", "each route needs a \"dst\" string")
        try:
            routes.append(str(ipaddress.ip_network(r["dst"], strict=False)))
        except ValueError as exc:
            raise _bad("ipam.routes", str(exc)) from None
    ipam = IPAMConf(
        type=_str(ipam_doc, "type"),
        assign_ipv4=_strbool(ipam_doc, "assign_ipv4", True),
        assign_ipv6=_strbool(ipam_doc, "assign_ipv6", False),
        ipv4_pools=_list_of_str(ipam_doc, "ipv4_pools", "ipam.ipv4_pools"),
        ipv6_pools=_list_of_str(ipam_doc, "ipv6_pools", "ipam.ipv6_pools"),
        subnet=_str(ipam_doc, "subnet"),
        routes=tuple(routes),
    )
    policy = _obj(doc, "policy")
    kube = _obj(doc, "kubernetes")
    features = _obj(doc, "feature_control")
    settings = _obj(doc, "container_settings")
    mtu = doc.get("mtu", 0) or 0
    if not isinstance(mtu, int) or isinstance(mtu, bool) or not (0 <= mtu <= 65535):
        raise _bad("mtu", "expected an integer 68-65535 (or 0 for the default)")
    if mtu and mtu < 68:
        raise _bad("mtu", f"{mtu} is below the IPv4 minimum of 68")
    queues = doc.get("num_queues", 1) or 1
    if not isinstance(queues, int) or queues < 1:
        raise _bad("num_queues", "expected a positive integer")
    device = _str(doc, "device_type")
    if device not in ("", "veth"):
        raise _bad("device_type", f"{device!r} is not supported here (use \"veth\")")
    ds = _str(doc, "datastore_type")
    if ds not in ("", "etcdv3", "kubernetes"):
        raise _bad("datastore_type", f"{ds!r} is not supported: set \"etcdv3\" (with "
                   "etcd_endpoints) or \"kubernetes\" (with kubernetes.kubeconfig)")
    prev = doc.get("prevResult")
    return NetConf(
        raw=doc, name=_str(doc, "name"), cni_version=cni_version, type=_str(doc, "type"),
        ipam=ipam, datastore_type=ds,
        etcd_endpoints=_str(doc, "etcd_endpoints"),
        etcd_key_file=_str(doc, "etcd_key_file"), etcd_cert_file=_str(doc, "etcd_cert_file"),
        etcd_ca_cert_file=_str(doc, "etcd_ca_cert_file"),
        nodename=_str(doc, "nodename"),
        nodename_file=_str(doc, "nodename_file") or DEFAULT_NODENAME_FILE,
        nodename_file_optional=bool(doc.get("nodename_file_optional", False)),
        hostname=_str(doc, "hostname"), mtu=mtu,
        policy_type=_str(policy, "type"),
        k8s_api_root=_str(policy, "k8s_api_root") or _str(kube, "k8s_api_root"),
        k8s_auth_token=_str(policy, "k8s_auth_token"),
        kubeconfig=_str(kube, "kubeconfig"),
        kubernetes_api_root=_str(kube, "k8s_api_root"),
        allow_ip_forwarding=bool(settings.get("allow_ip_forwarding", False)),
        ip_addrs_no_ipam=bool(features.get("ip_addrs_no_ipam", False)),
        floating_ips=bool(features.get("floating_ips", False)),
        include_default_routes=bool(doc.get("include_default_routes", False)),
        ipam_lock_file=_str(doc, "ipam_lock_file") or DEFAULT_IPAM_LOCK,
        log_level=_str(doc, "log_level"), num_queues=queues,
        prev_result=prev if isinstance(prev, dict) else None,
        runtime_config=_obj(doc, "runtimeConfig"),
    )
