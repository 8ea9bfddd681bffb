"""What the policy lab writes for one step (pure): the namespaces' and service accounts'
profiles as calico-kube-controllers writes them on etcd (`kns.<ns>` with the namespace's
labels as `pcns.` labels, `ksa.<ns>.default`; the shape of
libcalico.datastore.kubernetes_profile, not imported because that package does I/O), each
pod's WorkloadEndpoint labels, profiles and named ports as Calico's Kubernetes conversion
gives them, and the step's policies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from calico_node.policylab.labfile import LabFile, PodSpec, Step
from libcalico.model import codec, keys
from libcalico.model.resources import (
    Profile,
    WorkloadEndpoint,
    WorkloadEndpointPort,
)

PURE = True

SERVICE_ACCOUNT = "default"
NAME_LABEL = "kubernetes.io/metadata.name"
"""The label the API server puts on every namespace (its name)."""


def namespace_labels(ns: str, labels: Mapping[str, str]) -> dict[str, str]:
    return {**labels, NAME_LABEL: ns}


def profiles(lab: LabFile, step: Step) -> list[Profile]:
    out: list[Profile] = []
    for ns in sorted(lab.namespaces):
        labels = {f"pcns.{k}": x for k, x in
                  namespace_labels(ns, step.namespace_labels[ns]).items()}
        labels["pcns.projectcalico.org/name"] = ns
        for name, spec in (
            (f"kns.{ns}", {"ingress": [{"action": "Allow"}], "egress": [{"action": "Allow"}],
                           "labelsToApply": labels}),
            (f"ksa.{ns}.{SERVICE_ACCOUNT}",
             {"labelsToApply": {"pcsa.projectcalico.org/name": SERVICE_ACCOUNT}}),
        ):
            res = codec.decode({"kind": "Profile", "apiVersion": keys.API_VERSION,
                                "metadata": {"name": name}, "spec": spec})
            assert isinstance(res, Profile)
            out.append(res)
    return out


def endpoint(wep: WorkloadEndpoint, pod: PodSpec, labels: Mapping[str, str]) -> WorkloadEndpoint:
    """The endpoint the CNI plugin made, with the pod's labels, profiles and named ports as
    on a Kubernetes cluster."""
    all_labels = {**labels, "projectcalico.org/namespace": pod.namespace,
                  "projectcalico.org/orchestrator": "k8s",
                  "projectcalico.org/serviceaccount": SERVICE_ACCOUNT}
    ports = tuple(WorkloadEndpointPort(name=p.name, protocol=p.protocol, port=p.port)
                  for p in pod.ports if p.name)
    return replace(wep, metadata=replace(wep.metadata, labels=dict(sorted(all_labels.items()))),
                   spec=replace(wep.spec, profiles=(f"kns.{pod.namespace}",
                                                    f"ksa.{pod.namespace}.{SERVICE_ACCOUNT}"),
                                service_account_name=SERVICE_ACCOUNT, ports=ports))
