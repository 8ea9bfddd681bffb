"""The `calico` plugin's ADD.

Check the cluster is ready, get addresses (calico-ipam in-process, another IPAM plugin
through CNI_PATH, or fixed addresses), wire the workload, write its WorkloadEndpoint, create
the network's Profile when no policy type is configured. ADD is transactional: any failure
after IPAM releases the addresses and removes the wiring. A repeated ADD for the same
container keeps its addresses and replaces the wiring.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from calico_cni import context, endpoint, naming, netconf, spec, wiring
from calico_cni.ipam_call import Ipam
from calico_cni.spec import CNIError, Interface, IPConfig, Result
from calico_cni.workload import EndpointInfo, Workload, workload
from libcalico import logger
from libcalico.datastore.api import Backend, KVPair
from libcalico.errors import Conflict, NotFound
from libcalico.ipam.client import IPAMClient
from libcalico.model import keys

log = logger.get("calico_cni")

Iface = ipaddress.IPv4Interface | ipaddress.IPv6Interface


def cmd_add(env: spec.Env, doc: dict[str, Any], version: str,
            environ: Mapping[str, str]) -> str:
    conf = netconf.parse(doc, version)
    node = context.nodename(conf, environ)
    mtu = context.mtu(conf)
    with context.datastore(conf, environ) as backend:
        w = workload(env, node, environ)
        wep_key = keys.resource_key("WorkloadEndpoint", w.wep_name, w.namespace)
        prof_key = keys.resource_key("Profile", conf.name)
        veth = w.host_veth(environ)
        kdd = _kdd_module(backend)
        pod_obj: dict[str, Any] = {}
        if kdd is not None:
            # KDD: the endpoint is derived from the Pod; no Profile of the network is kept.
            if w.orchestrator != "k8s":
                raise CNIError(spec.INVALID_NETWORK_CONFIG,
                               "the Kubernetes datastore keeps endpoints of pods only",
                               "run the plugin with K8S_POD_NAMESPACE and K8S_POD_NAME in "
                               "CNI_ARGS (as the kubelet does), or use datastore_type etcdv3")
            first = context.read(backend, [context.CLUSTER_INFO_KEY])
            context.require_ready(backend, first.get(context.CLUSTER_INFO_KEY))
            pod_obj = kdd.pod(backend, w.namespace, w.pod)
            found = kdd.endpoint_of(pod_obj, wep_key, environ.get("FELIX_INTERFACEPREFIX")
                                    or "cali")
            if found is not None:
                first[wep_key] = found
        else:
            first = context.read(backend, [context.CLUSTER_INFO_KEY, wep_key, prof_key])
            context.require_ready(backend, first.get(context.CLUSTER_INFO_KEY))
        existing = first.get(wep_key)
        old_doc = json.loads(existing.value) if existing else None
        info = EndpointInfo(profiles=(conf.name,))
        ipam_doc = doc
        fixed: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        no_ipam = False
        if w.orchestrator == "k8s" and conf.policy_type == "k8s":
            from calico_cni import annotations as ann  # k8s policy only
            from calico_cni import kube

            if kdd is not None:
                pod = kdd.pod_info(backend, pod_obj, w.namespace)
            else:
                pod = kube.pod_info(conf, w.namespace, w.pod)
            info = EndpointInfo(
                profiles=(f"kns.{w.namespace}", f"ksa.{w.namespace}.{pod.service_account}"),
                labels=dict(pod.labels), service_account=pod.service_account,
                floating_ips=ann.floating_ips(pod.annotations, conf))
            ipam_doc = ann.families(ann.pools(doc, pod), pod)
            if ann.ANN_IPADDRS in pod.annotations and ann.ANN_IPADDRS_NO_IPAM in pod.annotations:
                raise CNIError(spec.INVALID_NETWORK_CONFIG,
                               f"can't have both annotations: '{ann.ANN_IPADDRS}' and "
                               f"'{ann.ANN_IPADDRS_NO_IPAM}' in use at the same time")
            if ann.ANN_IPADDRS_NO_IPAM in pod.annotations:
                if not conf.ip_addrs_no_ipam:
                    raise CNIError(spec.INVALID_NETWORK_CONFIG,
                                   "requested feature is not enabled: ip_addrs_no_ipam",
                                   "set feature_control.ip_addrs_no_ipam to true")
                fixed = ann.fixed_ips(pod.annotations[ann.ANN_IPADDRS_NO_IPAM],
                                      ann.ANN_IPADDRS_NO_IPAM)
                no_ipam = True
            elif ann.ANN_IPADDRS in pod.annotations:
                fixed = ann.fixed_ips(pod.annotations[ann.ANN_IPADDRS], ann.ANN_IPADDRS)
            if fixed and conf.ipam.type != "calico-ipam":
                raise CNIError(spec.INVALID_NETWORK_CONFIG,
                               "ipAddrs annotations need ipam.type calico-ipam")
        if conf.ipam.subnet in ("usePodCidr", "usePodCidrIPv6"):
            ipam_doc = _use_pod_cidr(ipam_doc, conf, node, backend)
        ipam = Ipam(env, ipam_doc, conf, environ, backend, node)
        ips = _addresses(ipam, existing, old_doc, w, fixed, no_ipam)
        pod_uid = str((pod_obj.get("metadata") or {}).get("uid") or "") or None
        try:
            return _wire_and_record(conf, env, w, veth, ips, mtu, info, backend, version,
                                    existing, prof_key in first or kdd is not None,
                                    pod_uid if kdd is not None else None)
        except BaseException:
            if not no_ipam:
                ipam.release_quietly()
            raise


def _record_on_pod(backend: Backend, w: Workload, ips: list[Iface], uid: str) -> None:
    from calico_cni import kdd

    key = keys.resource_key("WorkloadEndpoint", w.wep_name, w.namespace)
    try:
        kdd.patch_ips(backend, key, [f"{i.ip}/{i.max_prefixlen}" for i in ips],
                      container_id=w.container_id, uid=uid)
    except (NotFound, Conflict):
        raise CNIError(spec.INTERNAL, f"pod {w.namespace}/{w.pod} was deleted (or deleted and "
                       "made again) while its network was set up", "the kubelet retries with "
                       "the current pod") from None


def _kdd_module(backend: Backend) -> Any:
    """calico_cni.kdd when the backend is the Kubernetes datastore (imported only then)."""
    if not getattr(backend, "cni_patch_mode", False):
        return None
    from calico_cni import kdd

    return kdd


def _use_pod_cidr(doc: dict[str, Any], conf: netconf.NetConf, node: str,
                  backend: Backend) -> dict[str, Any]:
    """host-local's `subnet: usePodCidr` (or `usePodCidrIPv6`) becomes the Node's pod CIDR of
    that family, read from the Kubernetes API (the datastore's client on KDD)."""
    from calico_cni import kube

    kdd = _kdd_module(backend)
    if kdd is not None:
        all_cidrs = kdd.node_pod_cidrs(backend, node)
    else:
        all_cidrs = kube.node_pod_cidrs(conf, node)
    want6 = conf.ipam.subnet == "usePodCidrIPv6"
    cidrs = [c for c in all_cidrs if (":" in c) == want6]
    if not cidrs:
        raise CNIError(spec.INVALID_NETWORK_CONFIG,
                       f"node {node} has no IPv{6 if want6 else 4} podCIDR for "
                       f"subnet {conf.ipam.subnet}")
    ipam = dict(doc.get("ipam") or {})
    ipam["subnet"] = cidrs[0]
    out = dict(doc)
    out["ipam"] = ipam
    return out


def _addresses(ipam: Ipam, existing: KVPair | None, old_doc: Mapping[str, Any] | None,
               w: Workload, fixed: list[Any], no_ipam: bool) -> list[Iface]:
    if no_ipam:
        return [ipaddress.ip_interface(f"{i}/{i.max_prefixlen}") for i in fixed]
    old_spec = (old_doc or {}).get("spec") or {}
    if fixed:
        if old_spec.get("ipNetworks") and ipam.in_process:
            IPAMClient(ipam.backend).release_ips(
                [ipaddress.ip_interface(n).ip for n in old_spec["ipNetworks"]])
        got: list[Iface] = []
        try:
            for ip in fixed:
                r = ipam.add(ip=str(ip))
                got += [ipaddress.ip_interface(c.address) for c in r.ips]
        except BaseException:
            ipam.release_quietly()
            raise
        return [ipaddress.ip_interface(f"{i.ip}/{i.max_prefixlen}") for i in got]
    if existing and old_spec.get("containerID") == w.container_id and ipam.in_process:
        # Repeated ADD for the same container: keep the addresses it already holds.
        try:
            held = set(IPAMClient(ipam.backend).ips_by_handle(
                naming.handle_id(ipam.conf.name, w.container_id)))
        except NotFound:
            held = set()
        old = [ipaddress.ip_interface(n) for n in old_spec.get("ipNetworks") or []]
        if old and all(i.ip in held for i in old):
            return old
    result = ipam.add()
    if not result.ips:
        ipam.release_quietly()
        raise CNIError(spec.INTERNAL, "IPAM plugin returned no addresses")
    return [ipaddress.ip_interface(f"{ipaddress.ip_interface(c.address).ip}/"
                                   f"{ipaddress.ip_interface(c.address).max_prefixlen}")
            for c in result.ips]


def _wire_and_record(conf: netconf.NetConf, env: spec.Env, w: Workload, veth: str,
                     ips: list[Iface], mtu: int, info: EndpointInfo, backend: Backend,
                     version: str, existing: KVPair | None, have_profile: bool,
                     pod_uid: str | None) -> str:
    """Wire the workload and record it: the WorkloadEndpoint (and the network's Profile);
    on KDD (`pod_uid` given) the pod's IP annotations, conditional on its UID."""
    endpoint.ip_nats(ips, info.floating_ips)  # fail before wiring when a floating IP cannot map
    routes4 = tuple(r for r in conf.ipam.routes if ":" not in r) or ("0.0.0.0/0",)
    routes6 = tuple(r for r in conf.ipam.routes if ":" in r) or ("::/0",)
    if conf.include_default_routes:
        routes4 = tuple(dict.fromkeys((*routes4, "0.0.0.0/0")))
        routes6 = tuple(dict.fromkeys((*routes6, "::/0")))
    spec_w = wiring.Wiring(netns=env.netns, ifname=env.ifname, host_veth=veth, ips=tuple(ips),
                           mtu=mtu, routes4=routes4, routes6=routes6,
                           allow_ip_forwarding=conf.allow_ip_forwarding,
                           num_queues=conf.num_queues)
    try:
        mac = wiring.setup(spec_w)
    except wiring.WiringError as exc:
        raise CNIError(spec.INTERNAL, f"error setting up the workload's network: {exc}"
                       ) from None
    try:
        if pod_uid is not None:
            _record_on_pod(backend, w, ips, pod_uid)
        else:
            endpoint.write_wep(backend, w, ips, info, veth, mac, existing)
            if not conf.policy_type and not have_profile:
                endpoint.ensure_profile(backend, conf.name, w.orchestrator)
    except BaseException:
        wiring.teardown(env.netns, env.ifname, veth)
        raise
    res = Result(
        interfaces=(Interface(veth), Interface(env.ifname, mac, mtu, env.netns)),
        ips=tuple(IPConfig(str(i), 1) for i in ips),
    )
    log.info("ADD %s: %s on %s (%s)", w.wep_name, [str(i) for i in ips], veth, env.netns)
    return json.dumps(spec.format_result(res, version))
