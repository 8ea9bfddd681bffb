"""The etcd-mode controllers that mirror Kubernetes into the Calico datastore, as Calico's
namespace, serviceaccount, workloadendpoint (pod) and policy controllers do:

- `ProfileMirror`: Namespaces -> Profiles `kns.<ns>`, ServiceAccounts -> `ksa.<ns>.<sa>`;
  a profile whose object is gone is deleted (only profiles with the controller's prefix
  are touched).
- `WorkloadEndpointMirror`: the labels and service account of an existing Kubernetes
  WorkloadEndpoint follow its Pod's (the CNI plugin creates and deletes WEPs; this only
  updates them, and waits for a WEP that does not exist yet).
- `PolicyMirror`: Kubernetes NetworkPolicies -> Calico NetworkPolicies named
  `knp.default.<name>` through a converter hook (`policy.converter`); without a converter it
  writes and deletes nothing.

Each is a full reconcile of the informer's cache against a listing of the datastore, run by
one owner loop, so a relist after 410 Gone, a restart or a missed event heals on the next
pass. Each pass logs one INFO summary line.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from calico_kube_controllers import convert
from calico_kube_controllers.informer import Informer
from calico_kube_controllers.policy import KNP_PREFIX, PolicyConverter
from libcalico.client import Client
from libcalico.datastore.api import Backend
from libcalico.datastore.kubernetes_client import KubeClient
from libcalico.errors import AlreadyExists, Conflict, NotFound, ValidationError
from libcalico.model import codec
from libcalico.model.resources import NetworkPolicy, Profile, WorkloadEndpoint

log = logging.getLogger(__name__)

_Mirrored = TypeVar("_Mirrored", Profile, NetworkPolicy)


class _Mirror:
    name = ""

    def __init__(self, backend: Backend, kube: KubeClient, path: str) -> None:
        self.client = Client(backend)
        self.informer = Informer(kube, path, self._on_event)
        self.kick: Callable[[str], None] = lambda reason: None

    def _on_event(self, kind: str, obj: dict[str, Any]) -> None:
        self.kick(kind.lower())

    def synced(self) -> bool:
        return self.informer.synced.is_set()

    def start(self, loop_kick: Callable[[str], None]) -> None:
        self.kick = loop_kick
        self.informer.start()

    def stop(self) -> None:
        self.informer.stop()

    def _write(self, desired: Mapping[tuple[str, str], _Mirrored],
               existing: Mapping[tuple[str, str], _Mirrored]) -> tuple[int, int, int]:
        """Make the datastore's `existing` objects (keyed by (namespace or "", name)) the
        `desired` ones: create the missing, update a changed spec, delete the rest; returns
        (created, updated, deleted). An object changed under us kicks the loop (the next
        pass re-reads); one already gone counts as deleted by someone else."""
        created = updated = deleted = 0
        for key, want in sorted(desired.items()):
            cur = existing.get(key)
            try:
                if cur is None:
                    self.client.create(want)
                    created += 1
                elif cur.spec != want.spec:
                    self.client.update(dataclasses.replace(cur, spec=want.spec))
                    updated += 1
            except (AlreadyExists, Conflict):
                self.kick("conflict")  # changed under us: the next pass re-reads
        for ns, name in sorted(set(existing) - set(desired)):
            try:
                self.client.delete(type(existing[(ns, name)]), name, ns or None)
                deleted += 1
            except NotFound:
                pass
        return created, updated, deleted


class ProfileMirror(_Mirror):
    def __init__(self, name: str, backend: Backend, kube: KubeClient, path: str, prefix: str,
                 to_profile: Callable[[Mapping[str, Any]], dict[str, Any]]) -> None:
        super().__init__(backend, kube, path)
        self.name = name
        self.prefix = prefix
        self.to_profile = to_profile

    def reconcile(self) -> tuple[int, int, int]:
        desired: dict[str, Profile] = {}
        for obj in self.informer.items().values():
            try:
                res = codec.decode(self.to_profile(obj))
            except ValidationError as exc:
                log.warning("%s: cannot convert %s: %s", self.name,
                            (obj.get("metadata") or {}).get("name"), exc)
                continue
            assert isinstance(res, Profile)
            desired[res.metadata.name] = res
        existing = {p.metadata.name: p for p in self.client.list(Profile)
                    if p.metadata.name.startswith(self.prefix)}
        created, updated, deleted = self._write(
            {("", n): p for n, p in desired.items()}, {("", n): p for n, p in existing.items()})
        log.info("%s controller pass: objects=%d profiles=%d created=%d updated=%d "
                 "deleted=%d", self.name, len(desired), len(existing), created, updated,
                 deleted)
        return created, updated, deleted


def namespace_mirror(backend: Backend, kube: KubeClient) -> ProfileMirror:
    return ProfileMirror("namespace", backend, kube, "/api/v1/namespaces", convert.NS_PREFIX,
                         convert.namespace_profile)


def serviceaccount_mirror(backend: Backend, kube: KubeClient) -> ProfileMirror:
    return ProfileMirror("serviceaccount", backend, kube, "/api/v1/serviceaccounts",
                         convert.SA_PREFIX, convert.serviceaccount_profile)


class WorkloadEndpointMirror(_Mirror):
    name = "workloadendpoint"

    def __init__(self, backend: Backend, kube: KubeClient) -> None:
        super().__init__(backend, kube, "/api/v1/pods")

    def reconcile(self) -> int:
        pods = self.informer.items()
        updated = checked = 0
        for wep in self.client.list(WorkloadEndpoint):
            if wep.spec.orchestrator != "k8s" or not wep.spec.pod:
                continue
            pod = pods.get(f"{wep.metadata.namespace}/{wep.spec.pod}")
            data = None if pod is None else convert.wep_data(pod)
            if data is None:
                continue
            checked += 1
            labels, sa = data
            if wep.metadata.labels == labels and wep.spec.service_account_name == sa:
                continue
            new = dataclasses.replace(
                wep, metadata=dataclasses.replace(wep.metadata, labels=labels),
                spec=dataclasses.replace(wep.spec, service_account_name=sa))
            try:
                self.client.update(new)
                updated += 1
            except Conflict:
                self.kick("conflict")
            except NotFound:
                pass
        log.info("workloadendpoint controller pass: pods=%d endpoints_checked=%d updated=%d",
                 len(pods), checked, updated)
        return updated


class PolicyMirror(_Mirror):
    name = "policy"

    def __init__(self, backend: Backend, kube: KubeClient,
                 converter: PolicyConverter | None) -> None:
        super().__init__(backend, kube, "/apis/networking.k8s.io/v1/networkpolicies")
        self.converter = converter
        self._warned = False

    def reconcile(self) -> tuple[int, int, int]:
        if self.converter is None:
            if not self._warned:
                log.warning("policy controller: no Kubernetes NetworkPolicy converter is "
                            "installed yet; Kubernetes NetworkPolicies are not mirrored")
                self._warned = True
            return 0, 0, 0
        desired: dict[tuple[str, str], NetworkPolicy] = {}
        for obj in self.informer.items().values():
            try:
                res = self.converter(obj)
            except ValidationError as exc:
                log.warning("policy: cannot convert %s: %s", obj.get("metadata"), exc)
                continue
            if res is not None:
                desired[(res.metadata.namespace or "", res.metadata.name)] = res
        existing = {(p.metadata.namespace or "", p.metadata.name): p
                    for p in self.client.list(NetworkPolicy)
                    if p.metadata.name.startswith(KNP_PREFIX)}
        created, updated, deleted = self._write(desired, existing)
        log.info("policy controller pass: objects=%d policies=%d created=%d updated=%d "
                 "deleted=%d", len(desired), len(existing), created, updated, deleted)
        return created, updated, deleted
