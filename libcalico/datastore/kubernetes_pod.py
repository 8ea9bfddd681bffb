"""Kubernetes Pod -> Calico WorkloadEndpoint, as libcalico-go's KDD derives it
(`conversion/workload_endpoint_default.go`, `podToDefaultWorkloadEndpoint`).

- One endpoint per pod, named `<node>-k8s-<pod>-eth0` with each `-` inside a part doubled; pods
  with `hostNetwork` or no `nodeName` have none (`valid`).
- IPs, first source that has any: `status.podIPs`, `status.podIP`, the annotations
  `cni.projectcalico.org/podIPs` (comma-separated), `cni.projectcalico.org/podIP`,
  `vpc.amazonaws.com/pod-ips`; bare addresses become /32 or /128; a malformed one fails the
  conversion (`PodError`). A finished pod (phase Failed/Succeeded/Completed, or being deleted
  after the CNI blanked its podIP annotation) has no IPs.
- Metadata: the pod's namespace, creationTimestamp, generateName and UID (not converted);
  labels = the pod's plus `projectcalico.org/namespace`, `projectcalico.org/orchestrator: k8s`
  and `projectcalico.org/serviceaccount` (a name under 63 characters); the Multus
  `k8s.v1.cni.cncf.io/network-status` annotation is copied.
- Spec: orchestrator k8s, node, pod, endpoint eth0, containerID (annotation
  `cni.projectcalico.org/containerID`), interfaceName = the first FELIX_INTERFACEPREFIX (default
  `cali`) + sha1("<ns>.<pod>")[:11], profiles `kns.<ns>` (+ `ksa.<ns>.<sa>`), serviceAccountName,
  named ports of containers and init containers (TCP/UDP/SCTP), ipNATs from
  `cni.projectcalico.org/floatingIPs`, allowSpoofedSourcePrefixes from
  `cni.projectcalico.org/allowedSourcePrefixes`. (QoS controls from bandwidth annotations are
  not derived yet.)
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
from collections.abc import Mapping
from typing import Any

PURE = True

ANN_POD_IP = "cni.projectcalico.org/podIP"
ANN_POD_IPS = "cni.projectcalico.org/podIPs"
ANN_CONTAINER_ID = "cni.projectcalico.org/containerID"
ANN_AWS_IPS = "vpc.amazonaws.com/pod-ips"
ANN_FLOATING_IPS = "cni.projectcalico.org/floatingIPs"
ANN_SOURCE_PREFIXES = "cni.projectcalico.org/allowedSourcePrefixes"
ANN_NETWORK_STATUS = "k8s.v1.cni.cncf.io/network-status"
LABEL_NAMESPACE = "projectcalico.org/namespace"
LABEL_ORCHESTRATOR = "projectcalico.org/orchestrator"
LABEL_SERVICE_ACCOUNT = "projectcalico.org/serviceaccount"
FINISHED_PHASES = frozenset({"Failed", "Succeeded", "Completed"})


class PodError(ValueError):
    """The pod cannot be converted (a malformed IP or annotation), as Calico fails it."""


def wep_name(node: str, pod: str, endpoint: str = "eth0") -> str:
    return "-".join(p.replace("-", "--") for p in (node, "k8s", pod, endpoint))


def parse_wep_name(name: str) -> tuple[str, str, str, str] | None:
    """(node, orchestrator, workload, endpoint) of a WorkloadEndpoint name: single `-`
    separates, `--` is a dash in a part. None unless it has exactly four parts."""
    parts: list[str] = []
    cur: list[str] = []
    i = 0
    while i < len(name):
        if name[i] == "-":
            if name.startswith("--", i):
                cur.append("-")
                i += 2
                continue
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(name[i])
        i += 1
    parts.append("".join(cur))
    if len(parts) != 4 or not all(parts):
        return None
    return parts[0], parts[1], parts[2], parts[3]


def valid(pod: Mapping[str, Any]) -> bool:
    spec = pod.get("spec") or {}
    return bool(spec.get("nodeName")) and not spec.get("hostNetwork")


def veth_name(namespace: str, pod: str, prefix: str = "cali") -> str:
    first = (prefix or "cali").split(",")[0]
    return first + hashlib.sha1(f"{namespace}.{pod}".encode()).hexdigest()[:11]


def _net(text: str) -> ipaddress.IPv4Interface | ipaddress.IPv6Interface:
    try:
        return ipaddress.ip_interface(text)
    except ValueError:
        raise PodError(f"pod IP {text!r} is not an IP address or CIDR") from None


def pod_ips(pod: Mapping[str, Any]) -> list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]:
    status = pod.get("status") or {}
    ann: Mapping[str, str] = (pod.get("metadata") or {}).get("annotations") or {}
    sources: list[list[str]] = [
        [str(p.get("ip")) for p in status.get("podIPs") or [] if p.get("ip")],
        [status["podIP"]] if status.get("podIP") else [],
        [s for s in (ann.get(ANN_POD_IPS) or "").split(",") if s],
        [ann[ANN_POD_IP]] if ann.get(ANN_POD_IP) else [],
        [s for s in (ann.get(ANN_AWS_IPS) or "").split(",") if s],
    ]
    for found in sources:
        if found:
            return [_net(s) for s in found]
    return []


def finished(pod: Mapping[str, Any]) -> bool:
    if (pod.get("status") or {}).get("phase") in FINISHED_PHASES:
        return True
    md = pod.get("metadata") or {}
    ann: Mapping[str, str] = md.get("annotations") or {}
    if md.get("deletionTimestamp"):
        return (ANN_POD_IP in ann and ann[ANN_POD_IP] == "") or \
            (ANN_AWS_IPS in ann and ann[ANN_AWS_IPS] == "")
    return False


def _ports(spec: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
        for p in c.get("ports") or []:
            port = int(p.get("containerPort") or 0)
            host_port = int(p.get("hostPort") or 0)
            if not port or not (host_port or p.get("name")):
                continue
            proto = p.get("protocol") or "TCP"
            if proto not in ("TCP", "UDP", "SCTP"):
                continue
            entry: dict[str, Any] = {"name": p.get("name") or "", "protocol": proto,
                                     "port": port, "hostPort": host_port}
            if p.get("hostIP"):
                entry["hostIP"] = p["hostIP"]
            out.append(entry)
    return out


def _json_list(ann: Mapping[str, str], key: str) -> list[str]:
    try:
        value = json.loads(ann[key])
    except ValueError:
        raise PodError(f"failed to parse {ann[key]!r} as JSON") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PodError(f"annotation {key} must be a JSON list of strings")
    return value


def pod_to_wep(pod: Mapping[str, Any], interface_prefix: str = "cali") -> dict[str, Any]:
    """The v3 WorkloadEndpoint (JSON object, no resourceVersion) of a `valid` pod."""
    md: Mapping[str, Any] = pod.get("metadata") or {}
    spec: Mapping[str, Any] = pod.get("spec") or {}
    ann: Mapping[str, str] = md.get("annotations") or {}
    ns, name, node = str(md.get("namespace") or "default"), str(md["name"]), spec["nodeName"]
    sa = str(spec.get("serviceAccountName") or "")
    profiles = [f"kns.{ns}"] + ([f"ksa.{ns}.{sa}"] if sa else [])
    ips = pod_ips(pod)
    if finished(pod):
        ips = []

    nats: list[dict[str, str]] = []
    if ANN_FLOATING_IPS in ann and ips:
        v4 = v6 = None
        for ip in ips:
            if ip.version == 4:
                if ip.network.prefixlen != 32:
                    raise PodError(f"PodIP {ip} is not a valid IPv4: Mask size is "
                                   f"{ip.network.prefixlen}, not 32")
                v4 = ip
            else:
                if ip.network.prefixlen != 128:
                    raise PodError(f"PodIP {ip} is not a valid IPv6: Mask size is "
                                   f"{ip.network.prefixlen}, not 128")
                v6 = ip
        for ext in _json_list(ann, ANN_FLOATING_IPS):
            inside = v6 if ":" in ext else v4
            if inside is not None:
                nats.append({"internalIP": str(inside.ip), "externalIP": ext})
    prefixes: list[str] = []
    if ann.get(ANN_SOURCE_PREFIXES):
        for p in _json_list(ann, ANN_SOURCE_PREFIXES):
            try:
                prefixes.append(str(ipaddress.ip_network(p, strict=False)))
            except ValueError:
                raise PodError(f"failed to parse {p!r} as a CIDR") from None

    labels = dict(md.get("labels") or {})
    labels[LABEL_NAMESPACE] = ns
    labels[LABEL_ORCHESTRATOR] = "k8s"
    if sa and len(sa) < 63:
        labels[LABEL_SERVICE_ACCOUNT] = sa
    meta: dict[str, Any] = {"name": wep_name(node, name)}
    if md.get("generateName"):
        meta["generateName"] = md["generateName"]
    meta["namespace"] = ns
    if md.get("uid"):
        meta["uid"] = md["uid"]
    meta["creationTimestamp"] = md.get("creationTimestamp")
    meta["labels"] = labels
    if ann.get(ANN_NETWORK_STATUS):
        meta["annotations"] = {ANN_NETWORK_STATUS: ann[ANN_NETWORK_STATUS]}

    wspec: dict[str, Any] = {"orchestrator": "k8s", "node": node, "pod": name}
    if ann.get(ANN_CONTAINER_ID):
        wspec["containerID"] = ann[ANN_CONTAINER_ID]
    wspec["endpoint"] = "eth0"
    if sa:
        wspec["serviceAccountName"] = sa
    if ips:
        wspec["ipNetworks"] = [str(i) for i in ips]
    if nats:
        wspec["ipNATs"] = nats
    wspec["profiles"] = profiles
    wspec["interfaceName"] = veth_name(ns, name, interface_prefix)
    if ports := _ports(spec):
        wspec["ports"] = ports
    if prefixes:
        wspec["allowSpoofedSourcePrefixes"] = prefixes
    return {"kind": "WorkloadEndpoint", "apiVersion": "projectcalico.org/v3",
            "metadata": meta, "spec": wspec}
