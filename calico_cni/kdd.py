"""The plugins on the Kubernetes datastore (`datastore_type: kubernetes`), as Calico's do it.

- The connection: Calico's CNI exports netconf fields to the environment before loading its
  client configuration (`datastore_type` -> DATASTORE_TYPE, `kubernetes.kubeconfig` ->
  KUBECONFIG, `kubernetes.k8s_api_root` -> K8S_API_ENDPOINT, `policy.k8s_auth_token` ->
  K8S_API_TOKEN); the same resolution as every other tool then applies
  (`libcalico.datastore.kubernetes.access`). `policy.k8s_api_root` (cut at `/api/`) is the
  server when `kubernetes.k8s_api_root` is not set. The backend is in `cni_patch_mode`
  (Calico's PatchModeCNI). The plugin writes its result itself (`patch_ips`), as
  libcalico-go's KDD WorkloadEndpoint client does: the pod-status PATCH of the `podIP`,
  `podIPs` and `containerID` annotations, conditional on the pod's UID as read at the start
  of ADD; DEL blanks the IPs conditional on the UID and resourceVersion it read (no second
  read).
- One client for everything: the Pod is read once (its endpoint and its labels and
  annotations come from the same object), the Namespace only with `policy.type: k8s`, the
  Node only for `usePodCidr`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from calico_cni import spec
from calico_cni.kube import PodInfo, pod_info_from
from calico_cni.netconf import NetConf
from calico_cni.spec import CNIError
from libcalico.datastore.api import Backend, KVPair
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.kubernetes import STRATEGIC_MERGE, KubernetesBackend
from libcalico.datastore.kubernetes import connect as kube_connect
from libcalico.datastore.kubernetes_client import name_path
from libcalico.datastore.kubernetes_pod import (
    ANN_CONTAINER_ID,
    ANN_POD_IP,
    ANN_POD_IPS,
    parse_wep_name,
    pod_to_wep,
    valid,
)
from libcalico.errors import ConfigError, NotFound
from libcalico.model import keys

_ENV = ("KUBECONFIG", "K8S_API_ENDPOINT", "K8S_API_TOKEN", "K8S_CA_FILE", "K8S_CERT_FILE",
        "K8S_KEY_FILE", "K8S_INSECURE_SKIP_TLS_VERIFY", "K8S_CURRENT_CONTEXT", "HOME",
        "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")


def client_env(conf: NetConf, environ: Mapping[str, str]) -> dict[str, str]:
    """The environment Calico's CNI loads its client configuration from: the runtime's,
    with the netconf fields exported over it (when set)."""
    env = {k: v for k in _ENV for v in (environ.get(f"CALICO_{k}") or environ.get(k),) if v}
    env["DATASTORE_TYPE"] = "kubernetes"
    if conf.kubeconfig:
        env["KUBECONFIG"] = conf.kubeconfig
    root = conf.kubernetes_api_root or conf.k8s_api_root.split("/api/")[0]
    if root:
        env["K8S_API_ENDPOINT"] = root
    if conf.k8s_auth_token:
        env["K8S_API_TOKEN"] = conf.k8s_auth_token
    return env


def connect(conf: NetConf, environ: Mapping[str, str]) -> KubernetesBackend:
    env = client_env(conf, environ)
    try:
        backend = kube_connect(DatastoreConfig.from_env(env))
    except ConfigError as exc:
        raise CNIError(spec.INVALID_NETWORK_CONFIG, str(exc),
                       "set kubernetes.kubeconfig (or kubernetes.k8s_api_root) in the network "
                       "configuration") from None
    backend.cni_patch_mode = True
    return backend


def is_kdd(backend: object) -> bool:
    return isinstance(backend, KubernetesBackend)


def get(backend: Backend, path: str, what: str) -> dict[str, Any]:
    assert isinstance(backend, KubernetesBackend)
    reply = backend.client.request("GET", path, what=what)
    return dict(reply) if isinstance(reply, dict) else {}


def pod(backend: Backend, namespace: str, name: str) -> dict[str, Any]:
    """The Pod (ADD needs it: no pod, no endpoint to write)."""
    try:
        return get(backend, f"/api/v1/namespaces/{name_path(namespace)}/pods/{name_path(name)}",
                   f"pod {namespace}/{name}")
    except NotFound:
        raise CNIError(spec.INTERNAL, f"pods \"{name}\" not found in namespace {namespace}",
                       "the pod was deleted before its network was set up") from None


def endpoint_of(pod_obj: Mapping[str, Any], key: str, interface_prefix: str) -> KVPair | None:
    """The WorkloadEndpoint the backend derives from the pod (None when the pod has none
    under this key: hostNetwork, another node, another interface)."""
    if not valid(pod_obj):
        return None
    doc = pod_to_wep(pod_obj, interface_prefix)
    md = doc["metadata"]
    if keys.resource_key("WorkloadEndpoint", md["name"], md.get("namespace")) != key:
        return None
    return KVPair(key, json.dumps(doc, separators=(",", ":")),
                  str((pod_obj.get("metadata") or {}).get("resourceVersion")))


def pod_info(backend: Backend, pod_obj: Mapping[str, Any], namespace: str
             ) -> PodInfo:
    """Labels, annotations and service account of the pod, with its namespace's."""
    ns = get(backend, f"/api/v1/namespaces/{name_path(namespace)}", f"namespace {namespace}")
    return pod_info_from(pod_obj, ns)


def node_pod_cidrs(backend: Backend, node: str) -> list[str]:
    doc = get(backend, f"/api/v1/nodes/{name_path(node)}", f"node {node}")
    s = doc.get("spec") or {}
    return [str(c) for c in s.get("podCIDRs") or ([s["podCIDR"]] if s.get("podCIDR") else [])]


def patch_ips(backend: Backend, key: str, ips: list[str], *, container_id: str | None,
              uid: str | None, resource_version: str | None = None) -> None:
    """Calico's CNI write on KDD: a strategic-merge PATCH of the pod's status setting the
    `podIP` (first address) and `podIPs` annotations (and `containerID` when given),
    conditional on the pod's UID (a pod deleted and made again under the same name is not
    touched: NotFound) and, when given, its resourceVersion (Conflict). An empty `ips` blanks
    them (DEL)."""
    assert isinstance(backend, KubernetesBackend)
    parsed = keys.parse_resource_key(key)
    assert parsed is not None and parsed[1] is not None
    ids = parse_wep_name(parsed[2])
    if ids is None:
        raise NotFound(key)
    ann = {ANN_POD_IP: ips[0] if ips else "", ANN_POD_IPS: ",".join(ips)}
    if container_id is not None:
        ann[ANN_CONTAINER_ID] = container_id
    md: dict[str, Any] = {"annotations": ann}
    if uid:
        md["uid"] = uid
    if resource_version:
        md["resourceVersion"] = resource_version
    backend.client.request(
        "PATCH", f"/api/v1/namespaces/{name_path(parsed[1])}/pods/{name_path(ids[2])}/status",
        body={"metadata": md}, content_type=STRATEGIC_MERGE, what=key)
