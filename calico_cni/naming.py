"""Calico's names for what the CNI plugin creates: endpoint, host veth, IPAM handle."""

from __future__ import annotations

PURE = True


def _segment(text: str) -> str:
    return text.replace("-", "--")


def wep_name(node: str, orchestrator: str, workload: str, endpoint: str) -> str:
    """`<node>-<orch>-<workload>-<endpoint>` with every `-` inside a segment doubled
    (k8s: workload is the pod name; cni: the container ID)."""
    return "-".join(_segment(s) for s in (node, orchestrator, workload, endpoint))


def wep_prefix(node: str, orchestrator: str, workload: str) -> str:
    return "-".join(_segment(s) for s in (node, orchestrator, workload)) + "-"


def veth_name_k8s(namespace: str, pod: str, prefix: str = "cali") -> str:
    """Felix's name for a pod's host veth: prefix + sha1("<ns>.<pod>")[:11]."""
    import hashlib  # only k8s workloads need it

    digest = hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()
    return prefix + digest[:11]


def veth_name_cni(container_id: str) -> str:
    return "cali" + container_id[:11]


def handle_id(network: str, container_id: str) -> str:
    return f"{network}.{container_id}"


def interface_prefix(env_value: str | None) -> str:
    """First element of FELIX_INTERFACEPREFIX (default `cali`)."""
    first = (env_value or "").split(",")[0].strip()
    return first or "cali"
