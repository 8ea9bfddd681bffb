"""The little of the Kubernetes API the plugin reads with `policy.type: k8s`: the Pod and its
Namespace (labels, annotations, service account)."""

from __future__ import annotations

import http.client
import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

from calico_cni import spec
from calico_cni.netconf import NetConf
from calico_cni.spec import CNIError


@dataclass(frozen=True, slots=True)
class PodInfo:
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    service_account: str = "default"
    ns_labels: dict[str, str] = field(default_factory=dict)
    ns_annotations: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class APIConfig:
    server: str
    token: str = ""
    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""


def api_config(conf: NetConf) -> APIConfig:
    if conf.k8s_api_root:
        return APIConfig(conf.k8s_api_root, conf.k8s_auth_token)
    if conf.kubeconfig:
        import yaml

        try:
            with open(conf.kubeconfig) as f:
                kc = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
            cluster = kc["clusters"][0]["cluster"]
            user = (kc.get("users") or [{}])[0].get("user") or {}
        except (OSError, KeyError, IndexError, TypeError, yaml.YAMLError) as exc:
            raise CNIError(spec.INVALID_NETWORK_CONFIG,
                           f"cannot read kubeconfig {conf.kubeconfig}: {exc}") from None
        return APIConfig(str(cluster["server"]), str(user.get("token") or ""),
                         str(cluster.get("certificate-authority") or ""),
                         str(user.get("client-certificate") or ""),
                         str(user.get("client-key") or ""))
    raise CNIError(spec.INVALID_NETWORK_CONFIG,
                   "policy.type is k8s but no Kubernetes API is configured",
                   "set policy.k8s_api_root or kubernetes.kubeconfig")


def _get(cfg: APIConfig, path: str) -> dict[str, Any]:
    parts = urlsplit(cfg.server)
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        ctx = ssl.create_default_context(cafile=cfg.ca_file or None)
        if cfg.cert_file:
            ctx.load_cert_chain(cfg.cert_file, cfg.key_file or None)
        conn = http.client.HTTPSConnection(parts.hostname or "", parts.port or 443,
                                           timeout=10, context=ctx)
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port or 80, timeout=10)
    headers = {"Accept": "application/json"}
    if cfg.token:
        headers["Authorization"] = f"Bearer {cfg.token}"
    try:
        conn.request("GET", parts.path.rstrip("/") + path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
    except OSError as exc:
        raise CNIError(spec.TRY_AGAIN_LATER, f"cannot reach the Kubernetes API at "
                       f"{cfg.server}: {exc}") from None
    finally:
        conn.close()
    if resp.status != 200:
        raise CNIError(spec.INTERNAL, f"Kubernetes API GET {path}: HTTP {resp.status}",
                       body[:300].decode(errors="replace"))
    try:
        doc = json.loads(body)
    except json.JSONDecodeError as exc:
        raise CNIError(spec.INTERNAL, f"Kubernetes API GET {path}: not JSON: {exc}") from None
    return dict(doc)


def _strmap(v: Any) -> dict[str, str]:
    return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else {}


def pod_info_from(p: Mapping[str, Any], n: Mapping[str, Any]) -> PodInfo:
    """PodInfo of a Pod and its Namespace object."""
    pm, nm = p.get("metadata") or {}, n.get("metadata") or {}
    return PodInfo(labels=_strmap(pm.get("labels")), annotations=_strmap(pm.get("annotations")),
                   service_account=str((p.get("spec") or {}).get("serviceAccountName")
                                       or "default"),
                   ns_labels=_strmap(nm.get("labels")),
                   ns_annotations=_strmap(nm.get("annotations")))


def pod_info(conf: NetConf, namespace: str, pod: str) -> PodInfo:
    cfg = api_config(conf)
    return pod_info_from(_get(cfg, f"/api/v1/namespaces/{quote(namespace)}/pods/{quote(pod)}"),
                         _get(cfg, f"/api/v1/namespaces/{quote(namespace)}"))


def node_pod_cidrs(conf: NetConf, node: str) -> list[str]:
    """The Node's spec.podCIDRs (or podCIDR), for host-local's `subnet: usePodCidr`."""
    doc = _get(api_config(conf), f"/api/v1/nodes/{quote(node)}")
    spec_ = doc.get("spec") or {}
    cidrs = spec_.get("podCIDRs") or ([spec_["podCIDR"]] if spec_.get("podCIDR") else [])
    if not cidrs:
        raise CNIError(spec.INVALID_NETWORK_CONFIG,
                       f"node {node} has no podCIDR in the Kubernetes API",
                       "subnet usePodCidr needs the node's spec.podCIDR (controller-manager "
                       "--allocate-node-cidrs)")
    return [str(c) for c in cidrs]
