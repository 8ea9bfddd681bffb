"""The Kubernetes datastore (KDD) behind the Backend seam: Calico's v3 kinds as
crd.projectcalico.org/v1 custom resources, as libcalico-go's KDD stores them.

Keys stay the etcd-style paths of `libcalico.model.keys`; this backend maps a resource key
`/calico/resources/v3/projectcalico.org/<plural>[/<namespace>]/<name>` to the custom resource
`/apis/crd.projectcalico.org/v1[/namespaces/<namespace>]/<plural>/<name>` and each value
through `kubernetes_convert` (metadata annotation, converted UIDs). Revisions are
resourceVersions, opaque: an object's for compare-and-swap, a list's for the watch after it.

- `create` POSTs; `update` PUTs with `metadata.resourceVersion` = the revision (409 ->
  Conflict); `apply` creates, else PUTs over the current resourceVersion (retrying a lost
  race); `delete` reads the object, then DELETEs with a UID precondition (a recreated object is
  NotFound) and, when a revision is given, a resourceVersion precondition too (Conflict).
- `list` pages 500 at a time (`limit`/`continue`); a continue token that expired (410) falls
  back to one unpaged list, as Calico's pager does. A CRD that is not installed lists empty.
- `watch(prefix, after)` watches `resourceVersion=after` with bookmarks; a stream the server
  ends (its timeout) is resumed after the last event or bookmark without a relist; an ERROR
  event or answer with 410 Expired raises Compacted (the syncer relists and diffs); a lost
  connection raises Unavailable. `progress` is the last bookmark's resourceVersion.

Node is the Kubernetes Node (`kubernetes_node`): get/list/watch convert it; update and apply
merge the v3 Node into the annotations of a fresh copy and PUT `nodes/<name>/status`; create
and delete are refused, as Calico refuses them.

WorkloadEndpoint is derived from its Pod (`kubernetes_pod`): get/list/watch; pods without an
endpoint (hostNetwork, unscheduled) and pods Calico cannot convert (logged) are left out. With
`cni_patch_mode` (the CNI plugin's), a write is Calico's PATCH of the pod's status annotations
and a delete blanks its IPs; without it WorkloadEndpoint writes are refused.

Profiles are derived from Namespaces (`kns.<ns>`) and ServiceAccounts (`ksa.<ns>.<sa>`)
(`kubernetes_profile`), read-only, with composite revisions `<ns rv>/<sa rv>`; a watch runs
one watch of each, merged.

Kubernetes NetworkPolicies are read-only NetworkPolicies `knp.default.<name>` beside the
NetworkPolicy custom resources (`kubernetes_knp`): a list of the NetworkPolicy prefix merges
both, with a composite revision `<crd rv>/<k8s rv>`; a watch runs one watch of each, merged.

The IPAM keys are Calico's IPAM custom resources (`kubernetes_ipam`: ipamblocks,
blockaffinities, ipamhandles, ipamconfigs, with Calico's object names and labels). A delete is
KDD's two-phase one (mark `deleted` at the revision, then DELETE with a UID precondition);
marked objects read as absent (a get finishes their delete) and a watch reports the mark as
the delete.

The v3 IPAMConfiguration is the same `ipamconfigs/default` object (kind IPAMConfig), in the
v3 form with its metadata annotation.

Secrets: `/calico/secrets/<secret>/<data key>` (confd's BGP passwords) are the decoded
data of Secrets in calico-node's namespace ($NAMESPACE, default kube-system), read-only; a
watch first reads the Secrets exactly at its start revision, so that a data key that goes
away is reported deleted.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import logging
import os
import queue
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from libcalico.datastore import kubernetes_convert as convert
from libcalico.datastore import kubernetes_ipam as kipam
from libcalico.datastore import kubernetes_knp as kknp
from libcalico.datastore import kubernetes_node as nodes
from libcalico.datastore import kubernetes_pod as pods
from libcalico.datastore import kubernetes_profile as profiles
from libcalico.datastore import kubernetes_secret as secrets
from libcalico.datastore import kubernetes_service as kservice
from libcalico.datastore.api import EventType, KVPair, Listing, Revision, WatchEvent
from libcalico.datastore.kubernetes_client import (
    KubeAccess,
    KubeClient,
    WatchConnection,
    access_from_kubeconfig,
    access_from_kubeconfig_text,
    access_in_cluster,
    name_path,
)
from libcalico.errors import (
    AlreadyExists,
    Compacted,
    ConfigError,
    Conflict,
    DatastoreError,
    NotFound,
    Unavailable,
    ValidationError,
)
from libcalico.model import keys

if TYPE_CHECKING:
    from libcalico.datastore.config import DatastoreConfig

log = logging.getLogger(__name__)

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
PAGE = 500
WATCH_TIMEOUT = 300
"""Seconds the server keeps one watch request open (then it is resumed, not relisted)."""
APPLY_RETRIES = 10

NOT_YET = frozenset({"Profile"})
"""(Profile is served, by the two _Kinds below, not through _BY_PLURAL.)"""
_V1_NAMES = {"IPAMConfiguration": ("ipamconfigs", "IPAMConfig")}
"""v3 kinds whose crd.projectcalico.org/v1 resource has another plural and kind."""
"""v3 kinds that KDD derives from other objects (or converts); not served here yet."""
NODE = "Node"
WEP = "WorkloadEndpoint"
_CORE = {NODE: "nodes", WEP: "pods"}
"""v3 kinds kept in core Kubernetes objects -> their resource."""


@dataclass(frozen=True, slots=True)
class _Kind:
    kind: str
    plural: str
    namespaced: bool
    resource: str = ""
    """The core resource (nodes, pods) holding this kind; empty for a custom resource."""
    ipam: bool = False
    """One of the IPAM custom resources (keys under /calico/ipam/v2/)."""
    cr_plural: str = ""
    cr_kind: str = ""
    """The v1 resource's plural and kind where they differ from the v3 ones."""
    api: str = "/api/v1"
    """Where the core resource is served (EndpointSlices: /apis/discovery.k8s.io/v1)."""

    @property
    def core(self) -> bool:
        return bool(self.resource)

    def collection(self, namespace: str | None) -> str:
        ns = f"/namespaces/{name_path(namespace)}" if namespace else ""
        if self.core:
            return f"{self.api}{ns}/{self.resource}"
        return f"/apis/{convert.GROUP_VERSION}{ns}/{self.cr_plural or self.plural}"


_BY_PLURAL = {i.plural: _Kind(i.kind, i.plural, i.namespaced, _CORE.get(i.kind, ""),
                              cr_plural=_V1_NAMES.get(i.kind, ("", ""))[0],
                              cr_kind=_V1_NAMES.get(i.kind, ("", ""))[1])
              for i in keys.KINDS.values() if i.kind not in NOT_YET}
_INTERFACE_PREFIX = os.environ.get("FELIX_INTERFACEPREFIX") or "cali"
_IPAM = {p: _Kind(k, p, False, ipam=True) for p, k in kipam.KINDS.items()}
_SECRETS = _Kind("Secret", "secrets", True, "secrets")
_PROFILE_NS = _Kind("Profile", "profiles", False, "namespaces")
_PROFILE_SA = _Kind("Profile", "profiles", False, "serviceaccounts")
_SERVICES = {k: _Kind(k, plural, True, plural, api=api)
             for k, (plural, api) in kservice.KINDS.items()}
"""Services and EndpointSlices, read-only (`kubernetes_service`, for confd)."""
_KNP = _Kind("NetworkPolicy", kknp.RESOURCE, True, kknp.RESOURCE, api=kknp.API)
"""Kubernetes NetworkPolicies as `knp.default.<name>` NetworkPolicies (`kubernetes_knp`)."""


def _unsupported(what: str) -> DatastoreError:
    return DatastoreError(f"{what}: not supported by the Kubernetes datastore yet")


def _resource(key: str) -> tuple[_Kind, str | None, str]:
    parsed = keys.parse_resource_key(key)
    if parsed is None:
        raise _unsupported(key)
    kind, namespace, name = parsed
    info = _BY_PLURAL.get(keys.KINDS[kind].plural)
    if info is None:
        raise _unsupported(key)
    return info, namespace, name


def _scope(prefix: str) -> tuple[_Kind, str | None]:
    """The kind (and namespace) a list/watch prefix covers; the prefix may go on into names."""
    if not prefix.startswith(keys.RESOURCE_ROOT):
        raise _unsupported(prefix)
    parts = prefix[len(keys.RESOURCE_ROOT):].split("/")
    info = _BY_PLURAL.get(parts[0])
    if info is None or len(parts) < 2:
        raise _unsupported(prefix)
    if info.namespaced and len(parts) >= 3:
        return info, parts[1]
    return info, None


def _service_scope(prefix: str) -> tuple[_Kind, str | None]:
    found = kservice.scope(prefix)
    if found is None:
        raise _unsupported(prefix)
    return _SERVICES[found[0]], found[1]


def _key(info: _Kind, cr: dict[str, Any]) -> str:
    md = cr.get("metadata") or {}
    return keys.resource_key(info.kind, str(md.get("name")), md.get("namespace"))


def _v3(info: _Kind, obj: dict[str, Any]) -> dict[str, Any] | None:
    """The v3 resource an object holds; None for a pod that has no WorkloadEndpoint. Raises
    PodError for a pod Calico cannot convert."""
    if info.kind == NODE:
        return nodes.node_to_v3(obj)
    if info.kind == WEP:
        return pods.pod_to_wep(obj, _INTERFACE_PREFIX) if pods.valid(obj) else None
    if info is _PROFILE_NS:
        return profiles.namespace_to_profile(obj)
    if info is _PROFILE_SA:
        return profiles.serviceaccount_to_profile(obj)
    obj["kind"] = info.kind  # the v1 kind may differ (IPAMConfig)
    return convert.from_cr(obj)


def _ipam_pair(info: _Kind, obj: dict[str, Any]) -> KVPair | None:
    try:
        key, value = kipam.from_cr(info.plural, obj)
    except (ValueError, TypeError) as exc:
        log.warning("skipping %s %s: %s", info.plural, (obj.get("metadata") or {}).get("name"),
                    exc)
        return None
    return KVPair(key, value, str((obj.get("metadata") or {}).get("resourceVersion")))


def _pair_or_none(info: _Kind, obj: dict[str, Any]) -> KVPair | None:
    if info.kind in kservice.KINDS:
        return kservice.to_pair(info.kind, obj)
    if info is _KNP:
        return kknp.to_pair(obj)
    if info.ipam:
        return _ipam_pair(info, obj)
    try:
        doc = _v3(info, obj)
    except pods.PodError as exc:
        md = obj.get("metadata") or {}
        log.warning("skipping pod %s/%s: %s", md.get("namespace"), md.get("name"), exc)
        return None
    if doc is None:
        return None
    md = doc["metadata"]
    return KVPair(keys.resource_key(info.kind, md["name"], md.get("namespace")),
                  json.dumps(doc, separators=(",", ":")),
                  str((obj.get("metadata") or {}).get("resourceVersion")))


def _pair(info: _Kind, obj: dict[str, Any]) -> KVPair:
    try:
        doc = _v3(info, obj)
    except pods.PodError as exc:
        raise DatastoreError(f"{info.kind} of pod {_key(info, obj)}: {exc}") from None
    if doc is None:
        raise NotFound(_key(info, obj))
    md = doc["metadata"]
    return KVPair(keys.resource_key(info.kind, md["name"], md.get("namespace")),
                  json.dumps(doc, separators=(",", ":")),
                  str((obj.get("metadata") or {}).get("resourceVersion")))


def _is_profile(key: str) -> bool:
    return key.startswith(keys.resource_prefix("Profile")[:-1])


def _is_wep(key: str) -> bool:
    return key.startswith(keys.resource_prefix(WEP))


def _is_node(key: str) -> bool:
    return key.startswith(keys.resource_prefix(NODE))


class OperationNotSupported(DatastoreError):
    """What KDD cannot do (Calico's ErrorOperationNotSupported), with Calico's message:
    `operation Create is not supported on Node(node-1)`."""

    def __init__(self, op: str, key: str) -> None:
        parsed = keys.parse_resource_key(key)
        if parsed is None:
            ident = key
        else:
            kind, namespace, name = parsed
            ident = f"{kind}({namespace}/{name})" if namespace else f"{kind}({name})"
        self.operation = op
        self.key = key
        super().__init__(f"operation {op} is not supported on {ident}")


def _refuse_node(key: str, op: str) -> None:
    """Node: Create and Delete are refused (a Calico Node is its Kubernetes Node)."""
    if _is_node(key):
        raise OperationNotSupported(op, key)
    _refuse_wep(key, op)


def _refuse_wep(key: str, op: str) -> None:
    """Profile and WorkloadEndpoint writes are refused (they are derived from Namespaces,
    ServiceAccounts and Pods)."""
    if _is_profile(key) or key.startswith(keys.resource_prefix(WEP)) or kknp.is_knp_key(key):
        raise OperationNotSupported(op, key)


def access(cfg: DatastoreConfig, env: Mapping[str, str] | None = None) -> KubeAccess:
    """Where and how to reach the API server, as libcalico-go resolves it: `kubeconfigInline`,
    else `kubeconfig` (a `:`-list), else `$HOME/.kube/config` when no endpoint is given; then
    the overrides (`k8sAPIEndpoint`, `k8sCAFile`, `k8sCertFile`/`k8sKeyFile`, `k8sAPIToken`,
    `k8sInsecureSkipTLSVerify`); with no kubeconfig and no endpoint, the in-cluster service
    account."""
    env = os.environ if env is None else env
    k = dict(cfg.k8s)
    context = k.get("k8sCurrentContext")
    base: KubeAccess | None = None
    if k.get("kubeconfigInline"):
        base = access_from_kubeconfig_text(k["kubeconfigInline"], context)
    elif k.get("kubeconfig"):
        base = access_from_kubeconfig(k["kubeconfig"], context)
    elif not k.get("k8sAPIEndpoint"):
        home = Path(env.get("HOME") or "/root") / ".kube" / "config"
        base = access_from_kubeconfig(str(home), context) if home.exists() else None
        if base is None:
            base = access_in_cluster(env)
        if base is None:
            raise ConfigError(
                f"{cfg.source}: DATASTORE_TYPE=kubernetes needs KUBECONFIG, K8S_API_ENDPOINT "
                "or an in-cluster service account")
    if base is None:
        base = KubeAccess(server=k["k8sAPIEndpoint"].rstrip("/"), source=cfg.source)

    def read(field: str) -> bytes:
        try:
            return Path(k[field]).read_bytes()
        except OSError as exc:
            raise ConfigError(f"{cfg.source}: cannot read {field} {k[field]}: "
                              f"{exc.strerror or exc}") from exc

    over: dict[str, Any] = {}
    if k.get("k8sAPIEndpoint"):
        over["server"] = k["k8sAPIEndpoint"].rstrip("/")
    if k.get("k8sCAFile"):
        over["ca_pem"] = read("k8sCAFile")
    if k.get("k8sCertFile"):
        over["cert_pem"] = read("k8sCertFile")
    if k.get("k8sKeyFile"):
        over["key_pem"] = read("k8sKeyFile")
    if k.get("k8sAPIToken"):
        over["token"] = k["k8sAPIToken"]
    if k.get("k8sInsecureSkipTLSVerify", "").lower() == "true":
        over["insecure"] = True
    return replace(base, **over) if over else base


def connect(cfg: DatastoreConfig) -> KubernetesBackend:
    return KubernetesBackend(KubeClient(access(cfg), timeout=cfg.timeout),
                             os.environ.get("NAMESPACE") or secrets.DEFAULT_NAMESPACE)


class KubernetesBackend:
    """A Backend over one Kubernetes API server (`KubeClient`). Secrets are read in
    `secrets_namespace` (calico-node's namespace, $NAMESPACE)."""

    def __init__(self, client: KubeClient,
                 secrets_namespace: str = secrets.DEFAULT_NAMESPACE) -> None:
        self.client = client
        self.secrets_namespace = secrets_namespace
        self.cni_patch_mode = False
        """Calico's PatchModeCNI: the CNI plugin sets it, and then a WorkloadEndpoint write is
        the PATCH of its pod's status annotations (podIP, podIPs, containerID) and its delete
        the PATCH that blanks the IPs. Without it such writes are refused."""

    # -- reads ------------------------------------------------------------------------------

    def _path(self, key: str) -> tuple[_Kind, str]:
        info, namespace, name = _resource(key)
        if info.kind == WEP:
            ids = pods.parse_wep_name(name)
            if ids is None or ids[1] != "k8s" or ids[3] != "eth0":
                raise NotFound(key)
            name = ids[2]
        return info, f"{info.collection(namespace)}/{name_path(name)}"

    def get(self, key: str) -> KVPair:
        if key.startswith(secrets.PREFIX):
            return self._secret_get(key)
        if key.startswith(kservice.PREFIX):
            return self._service_get(key)
        if key.startswith(keys.IPAM_ROOT):
            return self._ipam_get(key)
        if _is_profile(key):
            return self._get_profile(key)
        if kknp.is_knp_key(key):
            return self._get_knp(key)
        info, path = self._path(key)
        pair = _pair(info, self.client.request("GET", path, what=key))
        if pair.key != key:  # a WorkloadEndpoint name whose node is not the pod's
            raise NotFound(key)
        return pair

    def list(self, prefix: str) -> Listing:
        if prefix.startswith(secrets.PREFIX):
            return self._secret_list(prefix)
        if prefix.startswith(keys.IPAM_ROOT):
            return self._ipam_list(prefix)
        if _is_profile(prefix):
            return self._list_profiles(prefix)
        info, namespace = _service_scope(prefix) if prefix.startswith(kservice.PREFIX) \
            else _scope(prefix)
        path = info.collection(namespace)
        try:
            items, revision = self._pages(path, prefix)
        except Compacted:
            items, revision = self._page(path, {}, prefix)[:2]
        except NotFound:
            return Listing((), "")
        kvs = [p for p in (_pair_or_none(info, cr) for cr in items)
               if p is not None and p.key.startswith(prefix)]
        kvs.sort(key=lambda p: p.key)
        if kknp.covers(prefix):
            return self._with_knps(Listing(tuple(kvs), revision), namespace, prefix)
        return Listing(tuple(kvs), revision)

    def _page(self, path: str, query: dict[str, str], what: str
              ) -> tuple[builtins.list[dict[str, Any]], str, str]:
        reply = self.client.request("GET", path, query=query, what=what)
        md = reply.get("metadata") or {}
        return (list(reply.get("items") or []), str(md.get("resourceVersion") or ""),
                str(md.get("continue") or ""))

    def _pages(self, path: str, what: str, selector: str | None = None
               ) -> tuple[builtins.list[dict[str, Any]], str]:
        base = {"labelSelector": selector} if selector else {}
        items, revision, token = self._page(path, {**base, "limit": str(PAGE)}, what)
        while token:
            more, _, token = self._page(path, {**base, "limit": str(PAGE), "continue": token},
                                        what)
            items.extend(more)
        return items, revision

    # -- writes -----------------------------------------------------------------------------

    def _cr(self, key: str, value: str, resource_version: str | None) -> tuple[_Kind, str, Any]:
        info, namespace, name = _resource(key)
        doc = json.loads(value)
        md = doc.setdefault("metadata", {})
        if md.get("name") != name or (md.get("namespace") or None) != namespace:
            raise DatastoreError(f"{key}: value names {md.get('namespace')}/{md.get('name')}")
        cr = convert.to_cr(doc, resource_version=resource_version)
        if info.cr_kind:
            cr["kind"] = info.cr_kind
        return info, info.collection(namespace), cr

    def create(self, key: str, value: str) -> KVPair:
        if key.startswith(keys.IPAM_ROOT):
            info, _ = self._ipam_path(key)
            return self._ipam_reply(info, key, self.client.request(
                "POST", info.collection(None), body=kipam.to_cr(key, value), what=key))
        if self.cni_patch_mode and _is_wep(key):
            return self._patch_pod(key, value)
        _refuse_node(key, "Create")
        info, coll, cr = self._cr(key, value, None)
        cr["metadata"].pop("uid", None)  # the API server assigns it
        return _pair(info, self.client.request("POST", coll, body=cr, what=key))

    def update(self, key: str, value: str, revision: Revision) -> KVPair:
        if key.startswith(keys.IPAM_ROOT):
            info, path = self._ipam_path(key)
            try:
                return self._ipam_reply(info, key, self.client.request(
                    "PUT", path, body=kipam.to_cr(key, value, revision), what=key))
            except Conflict:
                raise Conflict(key, revision) from None
        if self.cni_patch_mode and _is_wep(key):
            return self._patch_pod(key, value)
        _refuse_wep(key, "Update")
        if _is_node(key):
            return self._update_node(key, value)
        info, coll, cr = self._cr(key, value, revision)
        path = f"{coll}/{name_path(cr['metadata']['name'])}"
        try:
            return _pair(info, self.client.request("PUT", path, body=cr, what=key))
        except Conflict:
            raise Conflict(key, revision) from None

    def _update_node(self, key: str, value: str) -> KVPair:
        """As Calico: a fresh GET of the Node, the v3 Node merged into its annotations, then a
        PUT of `nodes/<name>/status` at the fresh resourceVersion (so, unlike the other kinds,
        not conditional on the caller's revision; a race with another writer is retried)."""
        info, path = self._path(key)
        doc = json.loads(value)
        for _ in range(APPLY_RETRIES):
            fresh = self.client.request("GET", path, what=key)
            merged = nodes.merge_into_node(doc, fresh)
            try:
                return _pair(info, self.client.request("PUT", f"{path}/status", body=merged,
                                                       what=key))
            except Conflict:
                continue
        raise Conflict(key)

    def apply(self, key: str, value: str) -> KVPair:
        if self.cni_patch_mode and _is_wep(key):
            return self._patch_pod(key, value)
        _refuse_wep(key, "Apply")
        if _is_node(key):
            return self._update_node(key, value)
        for _ in range(APPLY_RETRIES):
            try:
                return self.create(key, value)
            except AlreadyExists:
                pass
            try:
                current = self.get(key)
            except NotFound:
                continue
            new = value
            if not key.startswith(keys.IPAM_ROOT):
                # An unconditional put keeps the object's identity (its UID).
                doc = json.loads(value)
                doc.setdefault("metadata", {})["uid"] = \
                    (json.loads(current.value).get("metadata") or {}).get("uid")
                new = json.dumps(doc)
            try:
                return self.update(key, new, current.revision)
            except (Conflict, NotFound):
                continue
        raise Conflict(key)

    def delete(self, key: str, revision: Revision | None = None) -> KVPair:
        if key.startswith(keys.IPAM_ROOT):
            return self._ipam_delete(key, revision)
        if self.cni_patch_mode and _is_wep(key):
            return self._blank_pod(key, revision)
        _refuse_node(key, "Delete")
        info, path = self._path(key)
        current = self.client.request("GET", path, what=key)
        md = current.get("metadata") or {}
        if revision is not None and str(md.get("resourceVersion")) != revision:
            raise Conflict(key, revision)
        pre: dict[str, str] = {"uid": str(md.get("uid"))}
        if revision is not None:
            pre["resourceVersion"] = revision
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": pre}
        try:
            reply = self.client.request("DELETE", path, body=body, what=key)
        except Conflict:
            if revision is None:
                raise NotFound(key) from None  # the UID changed: deleted and made again
            raise Conflict(key, revision) from None
        gone = reply if isinstance(reply, dict) and reply.get("kind") == info.kind else current
        return _pair(info, gone)

    # -- watch ------------------------------------------------------------------------------

    def watch(self, prefix: str, after: Revision
              ) -> KubernetesWatchStream | ProfileWatchStream | kknp.MergedWatchStream:
        if prefix.startswith(secrets.PREFIX):
            return SecretWatchStream(self.client, self.secrets_namespace, prefix, after)
        if prefix.startswith(keys.IPAM_ROOT):
            plural = kipam.scope(prefix)
            if plural is None:
                raise _unsupported(prefix)
            return KubernetesWatchStream(self.client, _IPAM[plural], None, prefix, after)
        if _is_profile(prefix):
            return ProfileWatchStream(self.client, prefix, after)
        info, namespace = _service_scope(prefix) if prefix.startswith(kservice.PREFIX) \
            else _scope(prefix)
        if kknp.covers(prefix):
            return kknp.MergedWatchStream(
                [lambda rev: KubernetesWatchStream(self.client, info, namespace, prefix, rev),
                 lambda rev: KubernetesWatchStream(self.client, _KNP, namespace, prefix, rev)],
                list(kknp.split_revision(after)), after, kknp.join_revisions, "policy")
        return KubernetesWatchStream(self.client, info, namespace, prefix, after)

    # -- the CNI's workload endpoint writes --------------------------------------------------

    def _patch_pod(self, key: str, value: str) -> KVPair:
        """As Calico's CNI: a strategic-merge PATCH of `pods/<pod>/status` setting the
        podIP (first network), podIPs and containerID annotations; no resourceVersion or UID
        (deliberately, as Calico). Returns the endpoint of the patched pod."""
        info, path = self._path(key)
        spec = json.loads(value).get("spec") or {}
        nets = [str(n) for n in spec.get("ipNetworks") or []]
        ann = {pods.ANN_POD_IP: nets[0] if nets else "", pods.ANN_POD_IPS: ",".join(nets),
               pods.ANN_CONTAINER_ID: str(spec.get("containerID") or "")}
        reply = self.client.request("PATCH", f"{path}/status",
                                    body={"metadata": {"annotations": ann}},
                                    content_type=STRATEGIC_MERGE, what=key)
        return _pair(info, reply)

    def _blank_pod(self, key: str, revision: Revision | None) -> KVPair:
        """The CNI's delete: podIP and podIPs blanked (containerID kept), conditional on the
        pod's UID and, when given, its resourceVersion (a recreated pod is NotFound)."""
        info, path = self._path(key)
        current = self.client.request("GET", path, what=key)
        gone = _pair(info, current)
        md: dict[str, Any] = {"uid": (current.get("metadata") or {}).get("uid"),
                              "annotations": {pods.ANN_POD_IP: "", pods.ANN_POD_IPS: ""}}
        if revision is not None:
            md["resourceVersion"] = revision
        try:
            self.client.request("PATCH", f"{path}/status", body={"metadata": md},
                                content_type=STRATEGIC_MERGE, what=key)
        except Conflict:
            raise Conflict(key, revision) from None
        return gone

    # -- secrets ----------------------------------------------------------------------------

    def _secret_get(self, key: str) -> KVPair:
        ids = secrets.parse_key(key)
        if ids is None or ids[1] is None:
            raise NotFound(key)
        obj = self.client.request(
            "GET", f"{_SECRETS.collection(self.secrets_namespace)}/{name_path(ids[0])}",
            what=key)
        value = secrets.values(obj).get(key)
        if value is None:
            raise NotFound(key)
        return KVPair(key, value, str((obj.get("metadata") or {}).get("resourceVersion")))

    def _secret_list(self, prefix: str) -> Listing:
        path = _SECRETS.collection(self.secrets_namespace)
        try:
            items, revision = self._pages(path, prefix)
        except Compacted:
            items, revision = self._page(path, {}, prefix)[:2]
        kvs = [KVPair(k, v, str((o.get("metadata") or {}).get("resourceVersion")))
               for o in items for k, v in secrets.values(o).items() if k.startswith(prefix)]
        kvs.sort(key=lambda p: p.key)
        return Listing(tuple(kvs), revision)

    # -- services (read-only) ---------------------------------------------------------------

    def _service_get(self, key: str) -> KVPair:
        found = kservice.target(key)
        if found is None:
            raise NotFound(key)
        kind, namespace, name = found
        obj = self.client.request(
            "GET", f"{_SERVICES[kind].collection(namespace)}/{name_path(name)}", what=key)
        pair = kservice.to_pair(kind, obj)
        if pair is None:
            raise NotFound(key)
        return pair

    # -- IPAM -------------------------------------------------------------------------------

    def _ipam_path(self, key: str) -> tuple[_Kind, str]:
        found = kipam.target(key)
        if found is None:
            raise NotFound(key)  # e.g. the IPAM host key: KDD keeps no such object
        plural, name = found
        info = _IPAM[plural]
        return info, f"{info.collection(None)}/{name_path(name)}"

    def _ipam_reply(self, info: _Kind, key: str, obj: Any) -> KVPair:
        pair = _ipam_pair(info, obj)
        if pair is None or pair.key != key:
            raise NotFound(key)  # e.g. a handle whose lower-cased name another id shares
        return pair

    def _finish_delete(self, path: str, obj: dict[str, Any], key: str) -> None:
        uid = str((obj.get("metadata") or {}).get("uid"))
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "preconditions": {"uid": uid}}
        with contextlib.suppress(NotFound, Conflict):
            self.client.request("DELETE", path, body=body, what=key)

    def _ipam_get(self, key: str) -> KVPair:
        info, path = self._ipam_path(key)
        obj = self.client.request("GET", path, what=key)
        if kipam.deleted(info.plural, obj):
            self._finish_delete(path, obj, key)
            raise NotFound(key)
        return self._ipam_reply(info, key, obj)

    def _ipam_list(self, prefix: str) -> Listing:
        if prefix == keys.IPAM_CONFIG_KEY:
            try:
                kv = self._ipam_get(prefix)
            except NotFound:
                return Listing((), "")
            return Listing((kv,), kv.revision)
        plural = kipam.scope(prefix)
        if plural is None:
            raise _unsupported(prefix)
        info = _IPAM[plural]
        path = info.collection(None)
        # One host's affinities are label-selected, as Calico lists them (calico#5664).
        selector = kipam.affinity_selector(prefix) if plural == kipam.AFFINITIES else None
        try:
            items, revision = self._pages(path, prefix, selector)
        except Compacted:
            items, revision = self._page(
                path, {"labelSelector": selector} if selector else {}, prefix)[:2]
        except NotFound:
            return Listing((), "")
        kvs = [p for p in (_ipam_pair(info, o) for o in items
                           if not kipam.deleted(plural, o))
               if p is not None and p.key.startswith(prefix)]
        kvs.sort(key=lambda p: p.key)
        return Listing(tuple(kvs), revision)

    def _ipam_delete(self, key: str, revision: Revision | None) -> KVPair:
        """KDD's two-phase delete: mark `deleted` with a PUT at the revision (the
        linearisation point: a stale revision is Conflict), then DELETE with a UID
        precondition."""
        info, path = self._ipam_path(key)
        current = self.client.request("GET", path, what=key)
        md = current.get("metadata") or {}
        if kipam.deleted(info.plural, current):
            self._finish_delete(path, current, key)
            raise NotFound(key)
        if revision is not None and str(md.get("resourceVersion")) != revision:
            raise Conflict(key, revision)
        gone = self._ipam_reply(info, key, current)
        try:
            marked = self.client.request("PUT", path, body=kipam.mark_deleted(
                info.plural, current), what=key)
        except Conflict:
            raise Conflict(key, revision) from None
        self._finish_delete(path, marked, key)
        return gone

    # -- profiles ---------------------------------------------------------------------------

    def _get_profile(self, key: str) -> KVPair:
        name = key[len(keys.resource_prefix("Profile")):]
        ids = profiles.parse_profile_name(name)
        if ids is None:
            raise NotFound(key)
        ns, sa = ids
        if sa is None:
            pair = _pair(_PROFILE_NS, self.client.request(
                "GET", f"/api/v1/namespaces/{name_path(ns)}", what=key))
            return KVPair(pair.key, pair.value, profiles.join_revisions(pair.revision, ""))
        pair = _pair(_PROFILE_SA, self.client.request(
            "GET", f"/api/v1/namespaces/{name_path(ns)}/serviceaccounts/{name_path(sa)}",
            what=key))
        return KVPair(pair.key, pair.value, profiles.join_revisions("", pair.revision))

    def _list_profiles(self, prefix: str) -> Listing:
        kvs: builtins.list[KVPair] = []
        revs: builtins.list[str] = []
        for info in (_PROFILE_NS, _PROFILE_SA):
            path = info.collection(None)
            try:
                items, revision = self._pages(path, prefix)
            except Compacted:
                items, revision = self._page(path, {}, prefix)[:2]
            revs.append(revision)
            kvs.extend(p for p in (_pair_or_none(info, o) for o in items)
                       if p is not None and p.key.startswith(prefix))
        kvs.sort(key=lambda p: p.key)
        return Listing(tuple(kvs), profiles.join_revisions(*revs))

    # -- Kubernetes NetworkPolicies (read-only, `kubernetes_knp`) ---------------------------

    def _get_knp(self, key: str) -> KVPair:
        namespace, name = kknp.target(key)
        pair = kknp.to_pair(self.client.request(
            "GET", f"{_KNP.collection(namespace)}/{name_path(name)}", what=key))
        if pair is None or pair.key != key:
            raise NotFound(key)
        return pair

    def _with_knps(self, crds: Listing, namespace: str | None, prefix: str) -> Listing:
        path = _KNP.collection(namespace)
        try:
            items, revision = self._pages(path, prefix)
        except Compacted:
            items, revision = self._page(path, {}, prefix)[:2]
        pairs = (p for p in (kknp.to_pair(o) for o in items) if p is not None)
        return kknp.merge_listings(crds, pairs, revision, prefix)

    def close(self) -> None:
        self.client.close()


class KubernetesWatchStream:
    """Events under one prefix after a resourceVersion; see the module docstring."""

    def __init__(self, client: KubeClient, info: _Kind, namespace: str | None, prefix: str,
                 after: Revision) -> None:
        self._client = client
        self._info = info
        self._path = info.collection(namespace)
        self._prefix = prefix
        self._after = after
        self._progress: Revision | None = None
        self._lock = threading.Lock()
        self._conn: WatchConnection | None = None
        self._closed = False
        self._open()  # a watch that cannot start fails here, as etcd's does

    @property
    def progress(self) -> Revision | None:
        return self._progress

    def _open(self) -> None:
        query = {"resourceVersion": self._after, "allowWatchBookmarks": "true",
                 "timeoutSeconds": str(WATCH_TIMEOUT)}
        try:
            conn = self._client.watch(self._path, query, what=self._prefix)
        except Compacted:
            raise Compacted(self._after) from None
        with self._lock:
            if self._closed:
                conn.close()
                return
            self._conn = conn

    def __iter__(self) -> Iterator[WatchEvent]:
        while not self._closed:
            conn = self._conn
            if conn is None:
                self._open()
                continue
            for event in conn:
                yield from self._events(event)
            with self._lock:
                self._conn = None
            # The server ended the request (its timeout): resume after the last event.

    def _events(self, event: dict[str, Any]) -> builtins.list[WatchEvent]:
        out = self._event(event)
        return [] if out is None else [out]

    def _event(self, event: dict[str, Any]) -> WatchEvent | None:
        kind = event.get("type")
        obj = event.get("object") or {}
        md = obj.get("metadata") or {}
        rv = str(md.get("resourceVersion") or "")
        if kind == "ERROR":
            code = obj.get("code")
            if code == 410 or obj.get("reason") in ("Expired", "Gone"):
                raise Compacted(self._after)
            raise Unavailable(f"watch {self._prefix}: {obj.get('message') or obj}")
        if kind == "BOOKMARK":
            if rv:
                self._after = rv
                self._progress = rv
            return None
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            log.warning("watch %s: unknown event type %r", self._prefix, kind)
            return None
        if rv:
            self._after = rv
        if self._info.ipam and kind != "DELETED" and kipam.deleted(self._info.plural, obj):
            kind = "DELETED"  # marked by a two-phase delete: gone for readers
        pair = _pair_or_none(self._info, obj)
        if pair is None or not pair.key.startswith(self._prefix):
            return None
        if kind == "DELETED":
            return WatchEvent(EventType.DELETE, pair.key, None, rv)
        return WatchEvent(EventType.PUT, pair.key, pair.value, rv)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()


class ProfileWatchStream:
    """Profiles under a prefix after a composite revision `<ns rv>/<sa rv>`: a watch of the
    Namespaces and one of the ServiceAccounts, merged (each in a thread of its own), every
    event stamped with both halves as they stand after it. A 410 on either is Compacted."""

    _END = object()

    def __init__(self, client: KubeClient, prefix: str, after: Revision) -> None:
        halves = profiles.split_revision(after)
        if halves is None:
            raise ValidationError(f"profile revision {after!r} is not <ns rv>/<sa rv>")
        self._after = after
        self._revs = list(halves)
        self._queue: queue.Queue[tuple[int, object]] = queue.Queue()
        self._streams: builtins.list[KubernetesWatchStream] = []
        try:
            for info, rev in ((_PROFILE_NS, halves[0]), (_PROFILE_SA, halves[1])):
                self._streams.append(KubernetesWatchStream(client, info, None, prefix, rev))
        except Compacted:
            self.close()
            raise Compacted(after) from None
        except BaseException:
            self.close()
            raise
        self._threads = [threading.Thread(target=self._pump, args=(i, s), daemon=True,
                                          name=f"profile-watch-{i}")
                         for i, s in enumerate(self._streams)]
        for t in self._threads:
            t.start()

    @property
    def progress(self) -> Revision | None:
        """None: bookmarks of one half say nothing about the other's events in between."""
        return None

    def _pump(self, half: int, stream: KubernetesWatchStream) -> None:
        try:
            for ev in stream:
                self._queue.put((half, ev))
            self._queue.put((half, self._END))
        except BaseException as exc:  # handed to the consumer's thread
            self._queue.put((half, exc))

    def __iter__(self) -> Iterator[WatchEvent]:
        ended = 0
        while ended < len(self._streams):
            half, item = self._queue.get()
            if item is self._END:
                ended += 1
                continue
            if isinstance(item, Compacted):
                self.close()
                raise Compacted(self._after) from item
            if isinstance(item, BaseException):
                self.close()
                raise item
            assert isinstance(item, WatchEvent)
            self._revs[half] = item.revision
            yield WatchEvent(item.type, item.key, item.value,
                             profiles.join_revisions(*self._revs))

    def close(self) -> None:
        for s in self._streams:
            s.close()


class SecretWatchStream(KubernetesWatchStream):
    """Secret changes as per-data-key events: the Secrets as they were at `after` (an exact
    list, 410 -> Compacted) give each Secret's keys, so that a MODIFIED Secret yields PUTs for
    its keys and DELETEs for those it no longer has, a DELETED one DELETEs for all."""

    def __init__(self, client: KubeClient, namespace: str, prefix: str, after: Revision
                 ) -> None:
        path = _SECRETS.collection(namespace)
        self._known: dict[str, set[str]] = {}
        if after not in ("", "0"):
            try:
                reply = client.request("GET", path, query={
                    "resourceVersion": after, "resourceVersionMatch": "Exact"}, what=prefix)
            except Compacted:
                raise Compacted(after) from None
            for o in reply.get("items") or []:
                self._known[str(o["metadata"]["name"])] = {
                    k for k in secrets.values(o) if k.startswith(prefix)}
        super().__init__(client, _SECRETS, namespace, prefix, after)

    def _events(self, event: dict[str, Any]) -> builtins.list[WatchEvent]:
        kind = event.get("type")
        obj = event.get("object") or {}
        if kind not in ("ADDED", "MODIFIED", "DELETED"):
            super()._event(event)  # ERROR raises; BOOKMARK moves the revision
            return []
        md = obj.get("metadata") or {}
        rv = str(md.get("resourceVersion") or "")
        if rv:
            self._after = rv
        name = str(md.get("name") or "")
        now = {} if kind == "DELETED" else {
            k: v for k, v in secrets.values(obj).items() if k.startswith(self._prefix)}
        before = self._known.pop(name, set())
        if now:
            self._known[name] = set(now)
        out = [WatchEvent(EventType.DELETE, k, None, rv) for k in sorted(before - set(now))]
        out += [WatchEvent(EventType.PUT, k, v, rv) for k, v in sorted(now.items())]
        return out
