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

This module holds the backend's dispatch (get/list/create/update/apply/delete/watch) and the
custom resource, Node and WorkloadEndpoint paths; the kind table and key mapping are in
`kubernetes_kinds`, the paging and the IPAM, Secret, Service, Profile and Kubernetes
NetworkPolicy handlers in `kubernetes_backend_base`, the watch streams in `kubernetes_watch`
and `kubernetes_mergedwatch`, and the API server access from the configuration in
`kubernetes_access`.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any

from libcalico.datastore import kubernetes_convert as convert
from libcalico.datastore import kubernetes_ipam as kipam
from libcalico.datastore import kubernetes_knp as kknp
from libcalico.datastore import kubernetes_node as nodes
from libcalico.datastore import kubernetes_pod as pods
from libcalico.datastore import kubernetes_profile as profiles
from libcalico.datastore import kubernetes_secret as secrets
from libcalico.datastore import kubernetes_service as kservice
from libcalico.datastore.api import KVPair, Listing, Revision
from libcalico.datastore.kubernetes_access import access
from libcalico.datastore.kubernetes_backend_base import KubernetesBackendBase
from libcalico.datastore.kubernetes_client import KubeClient, name_path
from libcalico.datastore.kubernetes_kinds import (
    IPAM,
    KNP,
    PROFILE_NS,
    PROFILE_SA,
    WEP,
    Kind,
    OperationNotSupported,
    is_node,
    is_profile,
    is_wep,
    pair_of,
    pair_or_none,
    refuse_node,
    refuse_wep,
    resource,
    scope,
    service_scope,
    unsupported,
)
from libcalico.datastore.kubernetes_mergedwatch import MergedWatchStream
from libcalico.datastore.kubernetes_watch import KubernetesWatchStream, SecretWatchStream
from libcalico.errors import (
    AlreadyExists,
    Compacted,
    Conflict,
    DatastoreError,
    NotFound,
    ValidationError,
)
from libcalico.model import keys

if TYPE_CHECKING:
    from libcalico.datastore.config import DatastoreConfig

__all__ = ["STRATEGIC_MERGE", "KubernetesBackend", "KubernetesWatchStream",
           "OperationNotSupported", "SecretWatchStream", "access", "connect"]

STRATEGIC_MERGE = "application/strategic-merge-patch+json"
APPLY_RETRIES = 10


def connect(cfg: DatastoreConfig) -> KubernetesBackend:
    return KubernetesBackend(KubeClient(access(cfg), timeout=cfg.timeout),
                             os.environ.get("NAMESPACE") or secrets.DEFAULT_NAMESPACE)


class KubernetesBackend(KubernetesBackendBase):
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

    def _path(self, key: str) -> tuple[Kind, str]:
        info, namespace, name = resource(key)
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
        if is_profile(key):
            return self._get_profile(key)
        if kknp.is_knp_key(key):
            return self._get_knp(key)
        info, path = self._path(key)
        pair = pair_of(info, self.client.request("GET", path, what=key))
        if pair.key != key:  # a WorkloadEndpoint name whose node is not the pod's
            raise NotFound(key)
        return pair

    def list(self, prefix: str) -> Listing:
        if prefix.startswith(secrets.PREFIX):
            return self._secret_list(prefix)
        if prefix.startswith(keys.IPAM_ROOT):
            return self._ipam_list(prefix)
        if is_profile(prefix):
            return self._list_profiles(prefix)
        info, namespace = service_scope(prefix) if prefix.startswith(kservice.PREFIX) \
            else scope(prefix)
        path = info.collection(namespace)
        try:
            items, revision = self._pages(path, prefix)
        except Compacted:
            items, revision = self._page(path, {}, prefix)[:2]
        except NotFound:
            return Listing((), "")
        kvs = [p for p in (pair_or_none(info, cr) for cr in items)
               if p is not None and p.key.startswith(prefix)]
        kvs.sort(key=lambda p: p.key)
        if kknp.covers(prefix):
            return self._with_knps(Listing(tuple(kvs), revision), namespace, prefix)
        return Listing(tuple(kvs), revision)

    # -- writes -----------------------------------------------------------------------------

    def _cr(self, key: str, value: str, resource_version: str | None) -> tuple[Kind, str, Any]:
        info, namespace, name = resource(key)
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
        if self.cni_patch_mode and is_wep(key):
            return self._patch_pod(key, value)
        refuse_node(key, "Create")
        info, coll, cr = self._cr(key, value, None)
        cr["metadata"].pop("uid", None)  # the API server assigns it
        return pair_of(info, self.client.request("POST", coll, body=cr, what=key))

    def update(self, key: str, value: str, revision: Revision) -> KVPair:
        if key.startswith(keys.IPAM_ROOT):
            info, path = self._ipam_path(key)
            try:
                return self._ipam_reply(info, key, self.client.request(
                    "PUT", path, body=kipam.to_cr(key, value, revision), what=key))
            except Conflict:
                raise Conflict(key, revision) from None
        if self.cni_patch_mode and is_wep(key):
            return self._patch_pod(key, value)
        refuse_wep(key, "Update")
        if is_node(key):
            return self._update_node(key, value)
        info, coll, cr = self._cr(key, value, revision)
        path = f"{coll}/{name_path(cr['metadata']['name'])}"
        try:
            return pair_of(info, self.client.request("PUT", path, body=cr, what=key))
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
                return pair_of(info, self.client.request("PUT", f"{path}/status", body=merged,
                                                       what=key))
            except Conflict:
                continue
        raise Conflict(key)

    def apply(self, key: str, value: str) -> KVPair:
        if self.cni_patch_mode and is_wep(key):
            return self._patch_pod(key, value)
        refuse_wep(key, "Apply")
        if is_node(key):
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
        if self.cni_patch_mode and is_wep(key):
            return self._blank_pod(key, revision)
        refuse_node(key, "Delete")
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
        return pair_of(info, gone)

    # -- watch ------------------------------------------------------------------------------

    def watch(self, prefix: str, after: Revision
              ) -> KubernetesWatchStream | MergedWatchStream:
        if prefix.startswith(secrets.PREFIX):
            return SecretWatchStream(self.client, self.secrets_namespace, prefix, after)
        if prefix.startswith(keys.IPAM_ROOT):
            plural = kipam.scope(prefix)
            if plural is None:
                raise unsupported(prefix)
            return KubernetesWatchStream(self.client, IPAM[plural], None, prefix, after)
        if is_profile(prefix):
            halves = profiles.split_revision(after)
            if halves is None:
                raise ValidationError(f"profile revision {after!r} is not <ns rv>/<sa rv>")
            return MergedWatchStream(
                [lambda rev: KubernetesWatchStream(self.client, PROFILE_NS, None, prefix, rev),
                 lambda rev: KubernetesWatchStream(self.client, PROFILE_SA, None, prefix, rev)],
                list(halves), after, profiles.join_revisions, "profile")
        info, namespace = service_scope(prefix) if prefix.startswith(kservice.PREFIX) \
            else scope(prefix)
        if kknp.covers(prefix):
            return MergedWatchStream(
                [lambda rev: KubernetesWatchStream(self.client, info, namespace, prefix, rev),
                 lambda rev: KubernetesWatchStream(self.client, KNP, namespace, prefix, rev)],
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
        return pair_of(info, reply)

    def _blank_pod(self, key: str, revision: Revision | None) -> KVPair:
        """The CNI's delete: podIP and podIPs blanked (containerID kept), conditional on the
        pod's UID and, when given, its resourceVersion (a recreated pod is NotFound)."""
        info, path = self._path(key)
        current = self.client.request("GET", path, what=key)
        gone = pair_of(info, current)
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

    def close(self) -> None:
        self.client.close()
