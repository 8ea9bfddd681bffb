"""Which workload a CNI call is about: its identity, Calico's names for it, and what its
endpoint carries besides addresses and wiring (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field

from calico_cni import naming, spec

PURE = True


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """What the endpoint carries besides addresses and wiring (from the pod for k8s)."""

    profiles: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    floating_ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()


@dataclass(frozen=True, slots=True)
class Workload:
    """The container a call is about, as Calico names it (k8s pod or plain CNI)."""

    node: str
    orchestrator: str  # "k8s" or "cni"
    namespace: str
    pod: str
    container_id: str
    endpoint: str

    @property
    def wep_name(self) -> str:
        workload = self.pod if self.orchestrator == "k8s" else self.container_id
        return naming.wep_name(self.node, self.orchestrator, workload, self.endpoint)

    def host_veth(self, environ: Mapping[str, str]) -> str:
        if self.orchestrator == "k8s":
            prefix = naming.interface_prefix(environ.get("FELIX_INTERFACEPREFIX"))
            return naming.veth_name_k8s(self.namespace, self.pod, prefix)
        return naming.veth_name_cni(self.container_id)


def workload(env: spec.Env, node: str, environ: Mapping[str, str]) -> Workload:
    ns, pod = env.args.get("K8S_POD_NAMESPACE", ""), env.args.get("K8S_POD_NAME", "")
    if ns and pod:
        return Workload(node, "k8s", ns, pod, env.container_id, env.ifname)
    return Workload(node, "cni", environ.get("CNI_TEST_NAMESPACE", "default"), "",
                    env.container_id, env.ifname)
