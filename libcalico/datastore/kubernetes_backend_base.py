"""The part of the Kubernetes backend (`kubernetes.KubernetesBackend`) that pages lists and
serves the keys that are not v3 custom resources: Secrets, Services/EndpointSlices, the IPAM
custom resources (KDD's two-phase delete), Profiles (Namespaces and ServiceAccounts) and
Kubernetes NetworkPolicies. `kubernetes` dispatches to these; see its docstring."""

from __future__ import annotations

import builtins
import contextlib
from typing import Any

from libcalico.datastore import kubernetes_ipam as kipam
from libcalico.datastore import kubernetes_knp as kknp
from libcalico.datastore import kubernetes_profile as profiles
from libcalico.datastore import kubernetes_secret as secrets
from libcalico.datastore import kubernetes_service as kservice
from libcalico.datastore.api import KVPair, Listing, Revision
from libcalico.datastore.kubernetes_client import KubeClient, name_path
from libcalico.datastore.kubernetes_kinds import (
    IPAM,
    KNP,
    PROFILE_NS,
    PROFILE_SA,
    SECRETS,
    SERVICES,
    Kind,
    ipam_pair,
    pair_of,
    pair_or_none,
    unsupported,
)
from libcalico.errors import Compacted, Conflict, NotFound
from libcalico.model import keys

PAGE = 500


class KubernetesBackendBase:
    """Paging and the handlers of the keys kept outside v3 custom resources."""

    client: KubeClient
    secrets_namespace: str

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

    # -- secrets ----------------------------------------------------------------------------

    def _secret_get(self, key: str) -> KVPair:
        ids = secrets.parse_key(key)
        if ids is None or ids[1] is None:
            raise NotFound(key)
        obj = self.client.request(
            "GET", f"{SECRETS.collection(self.secrets_namespace)}/{name_path(ids[0])}",
            what=key)
        value = secrets.values(obj).get(key)
        if value is None:
            raise NotFound(key)
        return KVPair(key, value, str((obj.get("metadata") or {}).get("resourceVersion")))

    def _secret_list(self, prefix: str) -> Listing:
        path = SECRETS.collection(self.secrets_namespace)
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
            "GET", f"{SERVICES[kind].collection(namespace)}/{name_path(name)}", what=key)
        pair = kservice.to_pair(kind, obj)
        if pair is None:
            raise NotFound(key)
        return pair

    # -- IPAM -------------------------------------------------------------------------------

    def _ipam_path(self, key: str) -> tuple[Kind, str]:
        found = kipam.target(key)
        if found is None:
            raise NotFound(key)  # e.g. the IPAM host key: KDD keeps no such object
        plural, name = found
        info = IPAM[plural]
        return info, f"{info.collection(None)}/{name_path(name)}"

    def _ipam_reply(self, info: Kind, key: str, obj: Any) -> KVPair:
        pair = ipam_pair(info, obj)
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
            raise unsupported(prefix)
        info = IPAM[plural]
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
        kvs = [p for p in (ipam_pair(info, o) for o in items
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
            pair = pair_of(PROFILE_NS, self.client.request(
                "GET", f"/api/v1/namespaces/{name_path(ns)}", what=key))
            return KVPair(pair.key, pair.value, profiles.join_revisions(pair.revision, ""))
        pair = pair_of(PROFILE_SA, self.client.request(
            "GET", f"/api/v1/namespaces/{name_path(ns)}/serviceaccounts/{name_path(sa)}",
            what=key))
        return KVPair(pair.key, pair.value, profiles.join_revisions("", pair.revision))

    def _list_profiles(self, prefix: str) -> Listing:
        kvs: builtins.list[KVPair] = []
        revs: builtins.list[str] = []
        for info in (PROFILE_NS, PROFILE_SA):
            path = info.collection(None)
            try:
                items, revision = self._pages(path, prefix)
            except Compacted:
                items, revision = self._page(path, {}, prefix)[:2]
            revs.append(revision)
            kvs.extend(p for p in (pair_or_none(info, o) for o in items)
                       if p is not None and p.key.startswith(prefix))
        kvs.sort(key=lambda p: p.key)
        return Listing(tuple(kvs), profiles.join_revisions(*revs))

    # -- Kubernetes NetworkPolicies (read-only, `kubernetes_knp`) ---------------------------

    def _get_knp(self, key: str) -> KVPair:
        namespace, name = kknp.target(key)
        pair = kknp.to_pair(self.client.request(
            "GET", f"{KNP.collection(namespace)}/{name_path(name)}", what=key))
        if pair is None or pair.key != key:
            raise NotFound(key)
        return pair

    def _with_knps(self, crds: Listing, namespace: str | None, prefix: str) -> Listing:
        path = KNP.collection(namespace)
        try:
            items, revision = self._pages(path, prefix)
        except Compacted:
            items, revision = self._page(path, {}, prefix)[:2]
        pairs = (p for p in (kknp.to_pair(o) for o in items) if p is not None)
        return kknp.merge_listings(crds, pairs, revision, prefix)
