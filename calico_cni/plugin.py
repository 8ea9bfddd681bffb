"""The `calico` CNI plugin: ADD, DEL, CHECK, GC, STATUS.

ADD: check the cluster is ready, get addresses (calico-ipam in-process, another IPAM plugin
through CNI_PATH, or fixed addresses), wire the workload, write its WorkloadEndpoint, create
the network's Profile when no policy type is configured. ADD is transactional: any failure
after IPAM releases the addresses and removes the wiring. DEL releases everything and is
idempotent, but fails while the datastore cannot be reached (so the runtime retries).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from calico_cni import context, ipam_plugin, naming, netconf, spec, wiring
from calico_cni.spec import CNIError, Interface, IPConfig, Result
from libcalico import proc
from libcalico.datastore.api import Backend, KVPair
from libcalico.errors import AlreadyExists, CommandFailed, Conflict, NotFound
from libcalico.ipam import gojson
from libcalico.ipam.client import IPAMClient
from libcalico.model import keys

log = logging.getLogger("calico_cni")

Iface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

ANN_IPV4POOLS = "cni.projectcalico.org/ipv4pools"
ANN_IPV6POOLS = "cni.projectcalico.org/ipv6pools"
ANN_IPADDRS = "cni.projectcalico.org/ipAddrs"
ANN_IPADDRS_NO_IPAM = "cni.projectcalico.org/ipAddrsNoIpam"
ANN_IPFAMILIES = "cni.projectcalico.org/ipFamilies"
ANN_FLOATING_IPS = "cni.projectcalico.org/floatingIPs"


@dataclass(frozen=True, slots=True)
class EndpointInfo:
    """What the endpoint carries besides addresses and wiring (from the pod for k8s)."""

    profiles: tuple[str, ...]
    labels: Mapping[str, str] = field(default_factory=dict)
    service_account: str = "default"
    floating_ips: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...] = ()


@dataclass(frozen=True, slots=True)
class Workload:
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


# ---- IPAM: in-process calico-ipam or a delegated plugin ----------------------------------------

def _find_plugin(name: str, path: tuple[str, ...]) -> str:
    for d in path:
        cand = os.path.join(d, name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    raise CNIError(spec.INVALID_NETWORK_CONFIG,
                   f"failed to find plugin {name!r} in path {list(path)}",
                   "install the IPAM plugin in a CNI_PATH directory or fix ipam.type")


def _delegate(command: str, env: spec.Env, doc: Mapping[str, Any], environ: Mapping[str, str],
              args_override: str | None = None) -> str:
    """Run the IPAM plugin named by ipam.type with the same environment and the full
    network configuration. A 1.1.0 configuration is offered as 1.0.0 when the delegate
    does not speak 1.1.0 (Debian's plugins stop at 1.0.0)."""
    ipam_type = str((doc.get("ipam") or {}).get("type") or "")
    binary = _find_plugin(ipam_type, env.path)
    child_env = dict(environ)
    child_env["CNI_COMMAND"] = command
    if args_override is not None:
        child_env["CNI_ARGS"] = args_override
    args = child_env.get("CNI_ARGS", "")
    if args and "IgnoreUnknown=" not in args:
        # our K8S_* arguments would make a delegate without IgnoreUnknown refuse the call
        child_env["CNI_ARGS"] = "IgnoreUnknown=1;" + args
    body = dict(doc)
    for attempt in range(2):
        try:
            r = proc.run([binary], input=json.dumps(body), env=child_env, timeout=60,
                         check=False)
        except CommandFailed as exc:
            raise CNIError(spec.INTERNAL, f"IPAM plugin {ipam_type} failed: {exc}") from None
        if r.returncode == 0:
            return r.stdout
        try:
            err = json.loads(r.stdout)
        except json.JSONDecodeError:
            raise CNIError(spec.INTERNAL, f"IPAM plugin {ipam_type} failed (exit "
                           f"{r.returncode}): {r.stderr.strip() or r.stdout.strip()}"
                           ) from None
        if attempt == 0 and err.get("code") == spec.INCOMPATIBLE_VERSION \
                and body.get("cniVersion") == "1.1.0":
            body["cniVersion"] = "1.0.0"
            continue
        raise CNIError(int(err.get("code", spec.INTERNAL)), str(err.get("msg", "")),
                       str(err.get("details", "")))
    raise AssertionError("unreachable")


class Ipam:
    def __init__(self, env: spec.Env, doc: dict[str, Any], conf: netconf.NetConf,
                 environ: Mapping[str, str], backend: Backend, node: str) -> None:
        self.env, self.doc, self.conf, self.environ = env, doc, conf, environ
        self.backend, self.node = backend, node

    @property
    def in_process(self) -> bool:
        return self.conf.ipam.type == "calico-ipam"

    def add(self, doc: dict[str, Any] | None = None, ip: str | None = None) -> Result:
        doc = doc if doc is not None else self.doc
        env = self.env
        if ip is not None:
            args = dict(env.args)
            args["IP"] = ip
            env = replace(env, args=args,
                          raw_args=";".join(f"{k}={v}" for k, v in args.items()))
        if self.in_process:
            conf = netconf.parse(doc, self.conf.cni_version)
            return ipam_plugin.add(env, conf, self.backend, self.node)
        out = _delegate("ADD", env, doc, self.environ,
                        args_override=env.raw_args if ip is not None else None)
        try:
            return spec.parse_result(json.loads(out))
        except (json.JSONDecodeError, KeyError, TypeError) as exc:
            raise CNIError(spec.DECODING_FAILURE,
                           f"cannot parse the IPAM plugin's result: {exc}") from None

    def delete(self) -> None:
        if self.in_process:
            ipam_plugin.delete(self.env, self.conf, self.backend)
        else:
            doc = dict(self.doc)
            ipam = dict(doc.get("ipam") or {})
            if ipam.get("subnet") in ("usePodCidr", "usePodCidrIPv6"):
                ipam["subnet"] = "0.0.0.0/0" if ipam["subnet"] == "usePodCidr" else "::/0"
                doc["ipam"] = ipam
            _delegate("DEL", self.env, doc, self.environ)

    def release_quietly(self) -> None:
        try:
            self.delete()
        except Exception as exc:  # already failing: report the first error
            log.error("releasing addresses after a failed ADD: %s", exc)


# ---- datastore records ------------------------------------------------------------------------

def _meta(name: str, namespace: str | None, labels: Mapping[str, str] | None,
          old: Mapping[str, Any] | None) -> dict[str, Any]:
    m: dict[str, Any] = {"name": name}
    if namespace is not None:
        m["namespace"] = namespace
    om = (old or {}).get("metadata") or {}
    m["uid"] = om.get("uid") or _uuid4()
    m["creationTimestamp"] = om.get("creationTimestamp") or gojson.rfc3339(time.time_ns())
    if labels:
        m["labels"] = dict(sorted(labels.items()))
    return m


def _uuid4() -> str:
    """A random (version 4) UUID without importing uuid (which imports platform)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def ip_nats(ips: list[Iface], floating: tuple[ipaddress.IPv4Address | ipaddress.IPv6Address,
                                              ...]) -> list[dict[str, str]]:
    """spec.ipNATs: each floating IP mapped to the workload address of its family."""
    out = []
    for fip in floating:
        inner = next((i for i in ips if i.version == fip.version), None)
        if inner is None:
            raise CNIError(spec.INVALID_NETWORK_CONFIG,
                           f"floating IP {fip} has no IPv{fip.version} workload address to "
                           "map to", "request an address of that family for the pod")
        out.append({"internalIP": str(inner.ip), "externalIP": str(fip)})
    return out


def wep_document(w: Workload, ips: list[Iface], info: EndpointInfo, veth: str, mac: str,
                 old: Mapping[str, Any] | None) -> dict[str, Any]:
    labels, service_account, profiles = info.labels, info.service_account, list(info.profiles)
    all_labels = dict(labels)
    all_labels["projectcalico.org/namespace"] = w.namespace
    all_labels["projectcalico.org/orchestrator"] = w.orchestrator
    if w.orchestrator == "k8s":
        all_labels["projectcalico.org/serviceaccount"] = service_account
    s: dict[str, Any] = {"orchestrator": w.orchestrator, "node": w.node,
                         "containerID": w.container_id}
    if w.orchestrator == "k8s":
        s["pod"] = w.pod
    s["endpoint"] = w.endpoint
    if w.orchestrator == "k8s":
        s["serviceAccountName"] = service_account
    s["ipNetworks"] = [f"{i.ip}/{i.max_prefixlen}" for i in ips]
    if info.floating_ips:
        s["ipNATs"] = ip_nats(ips, info.floating_ips)
    s["profiles"] = profiles
    s["interfaceName"] = veth
    s["mac"] = mac
    return {"kind": "WorkloadEndpoint", "apiVersion": keys.API_VERSION,
            "metadata": _meta(w.wep_name, w.namespace, all_labels, old), "spec": s}


def ensure_profile(backend: Backend, name: str, orchestrator: str) -> None:
    """The network's Profile, created if absent and never updated (as Calico does)."""
    ingress: dict[str, Any] = {"action": "Allow", "source": {}, "destination": {}}
    if orchestrator != "k8s":
        ingress["source"] = {"selector": f"has({name})"}
    doc = {"kind": "Profile", "apiVersion": keys.API_VERSION,
           "metadata": _meta(name, None, None, None),
           "spec": {"ingress": [ingress],
                    "egress": [{"action": "Allow", "source": {}, "destination": {}}],
                    "labelsToApply": {name: ""}}}
    with contextlib.suppress(AlreadyExists):
        backend.create(keys.resource_key("Profile", name), gojson.dumps(doc))


def _ready_workload(backend: Backend, env: spec.Env, node: str, environ: Mapping[str, str]
                    ) -> tuple[Workload, KVPair | None]:
    """DEL's and CHECK's start: the datastore is ready, this container's workload and its
    stored WorkloadEndpoint (None when there is none)."""
    context.require_ready(backend)
    w = workload(env, node, environ)
    return w, _get_wep(backend, w)


def _get_wep(backend: Backend, w: Workload) -> KVPair | None:
    try:
        return backend.get(keys.resource_key("WorkloadEndpoint", w.wep_name, w.namespace))
    except NotFound:
        return None


def _json_list(text: str, what: str) -> list[str]:
    try:
        v = json.loads(text)
    except json.JSONDecodeError:
        v = None
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise CNIError(spec.INVALID_NETWORK_CONFIG, f"annotation {what} must be a JSON list "
                       f"of strings, not {text!r}")
    return v


def _fixed_ips(text: str, what: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    items = _json_list(text, what)
    if not items:
        raise CNIError(spec.INVALID_NETWORK_CONFIG, f"annotation {what} is empty")
    out = []
    for t in items:
        try:
            out.append(ipaddress.ip_address(t))
        except ValueError:
            raise CNIError(spec.INVALID_NETWORK_CONFIG,
                           f"annotation {what}: {t!r} is not an IP address") from None
    if sum(1 for i in out if i.version == 4) > 1 or sum(1 for i in out if i.version == 6) > 1:
        raise CNIError(spec.INVALID_NETWORK_CONFIG,
                       f"annotation {what}: at most one IPv4 and one IPv6 address")
    return out


# ---- commands -----------------------------------------------------------------------------------

def cmd_add(env: spec.Env, doc: dict[str, Any], version: str,
            environ: Mapping[str, str]) -> str:
    conf = netconf.parse(doc, version)
    node = context.nodename(conf, environ)
    mtu = context.mtu(conf)
    with context.datastore(conf, environ) as backend:
        w = workload(env, node, environ)
        wep_key = keys.resource_key("WorkloadEndpoint", w.wep_name, w.namespace)
        prof_key = keys.resource_key("Profile", conf.name)
        first = context.read(backend, [context.CLUSTER_INFO_KEY, wep_key, prof_key])
        context.require_ready(backend, first.get(context.CLUSTER_INFO_KEY))
        veth = w.host_veth(environ)
        existing = first.get(wep_key)
        old_doc = json.loads(existing.value) if existing else None
        info = EndpointInfo(profiles=(conf.name,))
        ipam_doc = doc
        fixed: list[ipaddress.IPv4Address | ipaddress.IPv6Address] = []
        no_ipam = False
        if w.orchestrator == "k8s" and conf.policy_type == "k8s":
            from calico_cni import kube

            pod = kube.pod_info(conf, w.namespace, w.pod)
            info = EndpointInfo(
                profiles=(f"kns.{w.namespace}", f"ksa.{w.namespace}.{pod.service_account}"),
                labels=dict(pod.labels), service_account=pod.service_account,
                floating_ips=_floating_ips(pod.annotations, conf))
            ipam_doc = _families_from_annotations(_pools_from_annotations(doc, pod), pod)
            if ANN_IPADDRS in pod.annotations and ANN_IPADDRS_NO_IPAM in pod.annotations:
                raise CNIError(spec.INVALID_NETWORK_CONFIG,
                               f"can't have both annotations: '{ANN_IPADDRS}' and "
                               f"'{ANN_IPADDRS_NO_IPAM}' in use at the same time")
            if ANN_IPADDRS_NO_IPAM in pod.annotations:
                if not conf.ip_addrs_no_ipam:
                    raise CNIError(spec.INVALID_NETWORK_CONFIG,
                                   "requested feature is not enabled: ip_addrs_no_ipam",
                                   "set feature_control.ip_addrs_no_ipam to true")
                fixed = _fixed_ips(pod.annotations[ANN_IPADDRS_NO_IPAM], ANN_IPADDRS_NO_IPAM)
                no_ipam = True
            elif ANN_IPADDRS in pod.annotations:
                fixed = _fixed_ips(pod.annotations[ANN_IPADDRS], ANN_IPADDRS)
            if fixed and conf.ipam.type != "calico-ipam":
                raise CNIError(spec.INVALID_NETWORK_CONFIG,
                               "ipAddrs annotations need ipam.type calico-ipam")
        if conf.ipam.subnet in ("usePodCidr", "usePodCidrIPv6"):
            ipam_doc = _use_pod_cidr(ipam_doc, conf, node)
        ipam = Ipam(env, ipam_doc, conf, environ, backend, node)
        ips = _addresses(ipam, existing, old_doc, w, fixed, no_ipam)
        try:
            return _wire_and_record(conf, env, w, veth, ips, mtu, info, backend, version,
                                    existing, prof_key in first)
        except BaseException:
            if not no_ipam:
                ipam.release_quietly()
            raise


def _use_pod_cidr(doc: dict[str, Any], conf: netconf.NetConf, node: str) -> dict[str, Any]:
    """host-local's `subnet: usePodCidr` (or `usePodCidrIPv6`) becomes the Node's pod CIDR of
    that family, read from the Kubernetes API."""
    from calico_cni import kube

    want6 = conf.ipam.subnet == "usePodCidrIPv6"
    cidrs = [c for c in kube.node_pod_cidrs(conf, node) if (":" in c) == want6]
    if not cidrs:
        raise CNIError(spec.INVALID_NETWORK_CONFIG,
                       f"node {node} has no IPv{6 if want6 else 4} podCIDR for "
                       f"subnet {conf.ipam.subnet}")
    ipam = dict(doc.get("ipam") or {})
    ipam["subnet"] = cidrs[0]
    out = dict(doc)
    out["ipam"] = ipam
    return out


def _floating_ips(annotations: Mapping[str, str], conf: netconf.NetConf
                  ) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    text = annotations.get(ANN_FLOATING_IPS)
    if not text:
        return ()
    if not conf.floating_ips:
        raise CNIError(spec.INVALID_NETWORK_CONFIG,
                       "requested feature is not enabled: floating_ips",
                       "set feature_control.floating_ips to true")
    out = []
    for t in _json_list(text, ANN_FLOATING_IPS):
        try:
            out.append(ipaddress.ip_address(t))
        except ValueError:
            raise CNIError(spec.INVALID_NETWORK_CONFIG,
                           f"annotation {ANN_FLOATING_IPS}: {t!r} is not an IP address") from None
    return tuple(out)


def _families_from_annotations(doc: dict[str, Any], pod: Any) -> dict[str, Any]:
    """`ipFamilies` (pod, else namespace): ["IPv4"], ["IPv6"] or both choose the families."""
    text = pod.annotations.get(ANN_IPFAMILIES) or pod.ns_annotations.get(ANN_IPFAMILIES)
    if not text:
        return doc
    fams = _json_list(text, ANN_IPFAMILIES)
    bad = [f for f in fams if f not in ("IPv4", "IPv6")]
    if bad or not fams:
        raise CNIError(spec.INVALID_NETWORK_CONFIG,
                       f"annotation {ANN_IPFAMILIES}: {bad or fams!r} is not a list of "
                       "\"IPv4\" and/or \"IPv6\"")
    ipam = dict(doc.get("ipam") or {})
    ipam["assign_ipv4"] = "true" if "IPv4" in fams else "false"
    ipam["assign_ipv6"] = "true" if "IPv6" in fams else "false"
    out = dict(doc)
    out["ipam"] = ipam
    return out


def _pools_from_annotations(doc: dict[str, Any], info: Any) -> dict[str, Any]:
    """Pod annotations override namespace annotations, which override the netconf lists."""
    ipam = dict(doc.get("ipam") or {})
    changed = False
    for ann, key in ((ANN_IPV4POOLS, "ipv4_pools"), (ANN_IPV6POOLS, "ipv6_pools")):
        text = info.annotations.get(ann) or info.ns_annotations.get(ann)
        if text:
            ipam[key] = _json_list(text, ann)
            changed = True
    if not changed:
        return doc
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
                     version: str, existing: KVPair | None, have_profile: bool) -> str:
    ip_nats(ips, info.floating_ips)  # fail before wiring when a floating IP cannot map
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
        _write_wep(backend, w, ips, info, veth, mac, existing)
        if not conf.policy_type and not have_profile:
            ensure_profile(backend, conf.name, w.orchestrator)
    except BaseException:
        wiring.teardown(env.netns, env.ifname, veth)
        raise
    res = Result(
        interfaces=(Interface(veth), Interface(env.ifname, mac, mtu, env.netns)),
        ips=tuple(IPConfig(str(i), 1) for i in ips),
    )
    log.info("ADD %s: %s on %s (%s)", w.wep_name, [str(i) for i in ips], veth, env.netns)
    return json.dumps(spec.format_result(res, version))


def _write_wep(backend: Backend, w: Workload, ips: list[Iface], info: EndpointInfo,
               veth: str, mac: str, existing: KVPair | None) -> None:
    """Create or update (CAS) the endpoint, starting from the value read at the start of
    ADD; a lost swap re-reads."""
    key = keys.resource_key("WorkloadEndpoint", w.wep_name, w.namespace)
    for attempt in range(5):
        if attempt:
            existing = _get_wep(backend, w)
        old = json.loads(existing.value) if existing else None
        text = gojson.dumps(wep_document(w, ips, info, veth, mac, old))
        try:
            if existing is None:
                backend.create(key, text)
            else:
                backend.update(key, text, existing.revision)
            return
        except (AlreadyExists, Conflict, NotFound):
            continue
    raise CNIError(spec.TRY_AGAIN_LATER, f"could not write WorkloadEndpoint {w.wep_name}: "
                   "concurrent updates")


def cmd_del(env: spec.Env, doc: dict[str, Any], version: str,
            environ: Mapping[str, str]) -> str | None:
    conf = netconf.parse(doc, version)
    node = context.nodename(conf, environ)
    with context.datastore(conf, environ) as backend:
        w, kv = _ready_workload(backend, env, node, environ)  # errors but NotFound fail DEL
        if kv is not None:
            old = json.loads(kv.value)
            if ((old.get("spec") or {}).get("containerID") or w.container_id) == w.container_id:
                with contextlib.suppress(NotFound, Conflict):
                    backend.delete(kv.key, kv.revision)
        try:
            wiring.teardown(env.netns, env.ifname,
                            w.host_veth(environ) if w.orchestrator == "cni" else None)
        except wiring.WiringError as exc:
            raise CNIError(spec.INTERNAL, str(exc)) from None
        Ipam(env, doc, conf, environ, backend, node).delete()
        log.info("DEL %s (%s)", w.wep_name, env.container_id)
        return None


def cmd_check(env: spec.Env, doc: dict[str, Any], version: str,
              environ: Mapping[str, str]) -> str | None:
    conf = netconf.parse(doc, version)
    node = context.nodename(conf, environ)
    with context.datastore(conf, environ) as backend:
        w, kv = _ready_workload(backend, env, node, environ)
        if kv is None:
            raise CNIError(spec.INTERNAL, f"WorkloadEndpoint {w.wep_name} does not exist")
        wspec = json.loads(kv.value).get("spec") or {}
        want = set(wspec.get("ipNetworks") or [])
        try:
            have, routes = wiring.inspect(env.netns, env.ifname)
        except wiring.WiringError as exc:
            raise CNIError(spec.INTERNAL, str(exc)) from None
        if want != have:
            raise CNIError(spec.INTERNAL, f"{env.ifname} has addresses {sorted(have)}, "
                           f"expected {sorted(want)}")
        veth = w.host_veth(environ)
        if not wiring.host_link_exists(veth):
            raise CNIError(spec.INTERNAL, f"host interface {veth} is missing")
        if any(":" not in a for a in want) and not any(
                r.get("gateway") == wiring.GW4 for r in routes):
            raise CNIError(spec.INTERNAL, f"no route via {wiring.GW4} in the container")
        if conf.prev_result:
            for ipc in spec.parse_result(conf.prev_result).ips:
                if ipc.address not in want:
                    raise CNIError(spec.INTERNAL, f"prevResult address {ipc.address} is not "
                                   f"on endpoint {w.wep_name}")
        if conf.ipam.type == "calico-ipam":
            ipam_plugin.check(env, conf, backend)
        return None


def cmd_gc(env: spec.Env, doc: dict[str, Any], version: str,
           environ: Mapping[str, str]) -> str | None:
    conf = netconf.parse(doc, version)
    node = context.nodename(conf, environ)
    with context.datastore(conf, environ) as backend:
        if conf.ipam.type == "calico-ipam":
            ipam_plugin.gc(env, conf, backend, node)
        elif conf.ipam.type:
            _delegate("GC", env, doc, environ)
        return None


def cmd_status(env: spec.Env, doc: dict[str, Any], version: str,
               environ: Mapping[str, str]) -> str | None:
    conf = netconf.parse(doc, version)
    with context.datastore(conf, environ) as backend:
        ipam_plugin.status(backend)
        return None


def handle(env: spec.Env, doc: dict[str, Any], version: str,
           environ: Mapping[str, str]) -> str | None:
    return {"ADD": cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc,
            "STATUS": cmd_status}[env.command](env, doc, version, environ)
