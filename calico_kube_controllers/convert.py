"""Kubernetes objects -> what the etcd-mode controllers write, as Calico's converters do
(`kube-controllers/pkg/converter/`): Namespaces -> Profiles `kns.<ns>` (allow/allow,
`pcns.` labels), ServiceAccounts -> Profiles `ksa.<ns>.<sa>` (`pcsa.` labels), both with
only a name in their metadata; a Pod -> the WorkloadEndpoint data the pod controller keeps
in step (labels as the WEP carries them, service account name), for scheduled,
non-host-networked pods that have an IP."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from libcalico.datastore.kubernetes_pod import PodError, pod_to_wep
from libcalico.datastore.kubernetes_profile import (
    NS_PREFIX,
    SA_PREFIX,
    namespace_to_profile,
    serviceaccount_to_profile,
)

PURE = True

__all__ = ["NS_PREFIX", "SA_PREFIX", "namespace_profile", "ready_pod",
           "serviceaccount_profile", "wep_data"]


def namespace_profile(ns: Mapping[str, Any]) -> dict[str, Any]:
    doc = namespace_to_profile(ns)
    doc["metadata"] = {"name": doc["metadata"]["name"]}
    return doc


def serviceaccount_profile(sa: Mapping[str, Any]) -> dict[str, Any]:
    doc = serviceaccount_to_profile(sa)
    doc["metadata"] = {"name": doc["metadata"]["name"]}
    return doc


def ready_pod(pod: Mapping[str, Any]) -> bool:
    """Calico's isReadyCalicoPod: not host-networked, has an IP, scheduled."""
    spec: Mapping[str, Any] = pod.get("spec") or {}
    status: Mapping[str, Any] = pod.get("status") or {}
    return not spec.get("hostNetwork") and bool(status.get("podIP")) \
        and bool(spec.get("nodeName"))


def wep_data(pod: Mapping[str, Any]) -> tuple[dict[str, str], str | None] | None:
    """(labels, serviceAccountName) the pod's WorkloadEndpoint should carry; None for a pod
    the controller leaves alone (not ready, or not convertible)."""
    if not ready_pod(pod):
        return None
    try:
        wep = pod_to_wep(pod)
    except PodError:
        return None
    return dict(wep["metadata"].get("labels") or {}), wep["spec"].get("serviceAccountName")
