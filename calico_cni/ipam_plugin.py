"""calico-ipam: the CNI IPAM plugin (ADD, DEL, CHECK, GC, STATUS) over IPAMClient.

The `calico` plugin calls `add`/`delete` in-process when its `ipam.type` is `calico-ipam`
(same configuration and environment a separate process would get), which saves an
interpreter start on every container operation.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import time
from collections.abc import Mapping
from typing import Any

from calico_cni import context, netconf, spec
from calico_cni.naming import handle_id
from calico_cni.spec import CNIError, IPConfig, Result, Route
from libcalico.datastore.api import Backend
from libcalico.errors import AlreadyExists, NotFound
from libcalico.ipam import block as blk
from libcalico.ipam.client import AutoAssignArgs, IPAMClient, IPAMError
from libcalico.ipam.gojson import go_time_string
from libcalico.ipam.hints import HintFile
from libcalico.model import keys


def _workload_id(env: spec.Env) -> str:
    ns, pod = env.args.get("K8S_POD_NAMESPACE"), env.args.get("K8S_POD_NAME")
    return f"{ns}.{pod}" if ns and pod else env.container_id


def _resolve_pools(client: IPAMClient, names: tuple[str, ...], version: int
                   ) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """Pool entries are CIDRs or pool names (Calico's ResolvePools)."""
    if not names:
        return []
    by_name = {p.name: p for p in client.pools()}
    out = []
    for n in names:
        try:
            cidr = ipaddress.ip_network(n)
        except ValueError:
            if n not in by_name:
                raise CNIError(spec.INVALID_NETWORK_CONFIG,
                               f"error resolving pool {n!r}: no IPPool with that name or CIDR",
                               "ipv4_pools/ipv6_pools take pool names or CIDRs") from None
            cidr = by_name[n].cidr
        if cidr.version != version:
            raise CNIError(spec.INVALID_NETWORK_CONFIG,
                           f"pool {n!r} is not an IPv{version} pool but is listed in "
                           f"ipv{version}_pools")
        out.append(cidr)
    return out


def hint_file(conf: netconf.NetConf) -> HintFile:
    """The block this host last assigned from, kept beside the host lock so that the next
    call (a new process) reads it with the host's affinities: one round trip less."""
    return HintFile(os.path.join(os.path.dirname(conf.ipam_lock_file) or ".",
                                 "ipam-hints.json"))


def add(env: spec.Env, conf: netconf.NetConf, backend: Backend, node: str) -> Result:
    client = IPAMClient(backend, hints=hint_file(conf))
    handle = handle_id(conf.name, env.container_id)
    attrs = {"node": node, "timestamp": go_time_string(time.time_ns())}
    ns, pod = env.args.get("K8S_POD_NAMESPACE"), env.args.get("K8S_POD_NAME")
    if ns and pod:
        attrs.update(namespace=ns, pod=pod)
    ip_arg = env.args.get("IP", "")
    if ip_arg:
        got: list[ipaddress.IPv4Interface | ipaddress.IPv6Interface] = []
        with context.host_lock(conf.ipam_lock_file):
            for text in ip_arg.split(","):
                try:
                    ip = ipaddress.ip_address(text.strip())
                except ValueError:
                    raise CNIError(spec.INVALID_ENV, f"invalid IP {text!r} in CNI_ARGS",
                                   "IP= takes a bare address such as 10.0.0.5") from None
                try:
                    client.assign_ip(ip, handle_id=handle, attrs=attrs, hostname=node)
                except AlreadyExists as exc:
                    for done in got:
                        client.release_ips([done.ip])
                    raise CNIError(spec.INTERNAL, f"{exc}", "choose a free address") from None
                except IPAMError:
                    for done in got:
                        client.release_ips([done.ip])
                    raise
                got.append(ipaddress.ip_interface(f"{ip}/{ip.max_prefixlen}"))
        return Result(ips=tuple(IPConfig(str(i)) for i in got))
    v4_pools = _resolve_pools(client, conf.ipam.ipv4_pools, 4)
    v6_pools = _resolve_pools(client, conf.ipam.ipv6_pools, 6)
    if not conf.ipam.assign_ipv4 and not conf.ipam.assign_ipv6:
        raise CNIError(spec.INVALID_NETWORK_CONFIG, "no IP addresses requested",
                       "set ipam.assign_ipv4 or ipam.assign_ipv6 to \"true\"")
    args = AutoAssignArgs(hostname=node, num4=1 if conf.ipam.assign_ipv4 else 0,
                          num6=1 if conf.ipam.assign_ipv6 else 0, handle_id=handle,
                          attrs=attrs, ipv4_pools=v4_pools, ipv6_pools=v6_pools)
    with context.host_lock(conf.ipam_lock_file):
        v4, v6 = client.auto_assign(args)
        problem = v4.shortfall_message("IPv4")
        fam = "IPv4"
        if problem is None:
            problem, fam = v6.shortfall_message("IPv6"), "IPv6"
        if problem is not None:
            taken = [i.ip for i in v4.ips + v6.ips]
            if taken:
                client.release_ips(taken)
            raise CNIError(spec.INTERNAL, f"failed to request {fam} addresses: {problem}",
                           "add addresses to the IP pools (or free some) and retry")
    ips = v4.ips + v6.ips
    return Result(ips=tuple(IPConfig(str(i)) for i in ips),
                  routes=tuple(Route(str(i.network)) for i in ips))


def delete(env: spec.Env, conf: netconf.NetConf, backend: Backend) -> None:
    client = IPAMClient(backend)
    with context.host_lock(conf.ipam_lock_file):
        for h in dict.fromkeys((handle_id(conf.name, env.container_id), _workload_id(env))):
            with contextlib.suppress(NotFound):
                client.release_by_handle(h)


def check(env: spec.Env, conf: netconf.NetConf, backend: Backend) -> None:
    client = IPAMClient(backend)
    handle = handle_id(conf.name, env.container_id)
    try:
        held = set(client.ips_by_handle(handle))
    except NotFound:
        raise CNIError(spec.INTERNAL, f"no IPAM allocation for handle {handle}",
                       "the container's addresses were released: re-create the container"
                       ) from None
    if conf.prev_result:
        for ipc in spec.parse_result(conf.prev_result).ips:
            ip = ipaddress.ip_interface(ipc.address).ip
            if ip not in held:
                raise CNIError(spec.INTERNAL, f"address {ip} is not allocated to {handle}")


def gc(env: spec.Env, conf: netconf.NetConf, backend: Backend, node: str) -> int:
    """Release this node's allocations on this network whose container is not among
    `cni.dev/valid-attachments`. Returns how many handles were released."""
    valid = conf.raw.get("cni.dev/valid-attachments") or []
    if not isinstance(valid, list):
        raise CNIError(spec.INVALID_NETWORK_CONFIG, "cni.dev/valid-attachments must be a list")
    keep = {str(a.get("containerID")) for a in valid if isinstance(a, dict)}
    prefix = f"{conf.name}."
    stale: set[str] = set()
    for kv in backend.list(keys.block_prefix()).kvs:
        b = blk.decode(kv.value, kv.key)
        for _ip, attr in b.in_use():
            h = blk.sanitize_handle(attr.handle_id) or ""
            if not h.startswith(prefix) or (attr.secondary or {}).get("node") != node:
                continue
            if h[len(prefix):] not in keep:
                stale.add(h)
    client = IPAMClient(backend)
    with context.host_lock(conf.ipam_lock_file):
        for h in sorted(stale):
            with contextlib.suppress(NotFound):
                client.release_by_handle(h)
    return len(stale)


def status(backend: Backend) -> None:
    try:
        context.require_ready(backend)
        pools = IPAMClient(backend).pools()
    except CNIError as exc:
        raise CNIError(spec.NOT_AVAILABLE, f"plugin not available: {exc.msg}",
                       exc.details) from None
    if not any(p.usable() for p in pools):
        raise CNIError(spec.NOT_AVAILABLE, "plugin not available: no enabled IP pool",
                       "create an IPPool (calicoctl apply)")


def handle(env: spec.Env, doc: dict[str, Any], version: str,
           environ: Mapping[str, str]) -> str | None:
    conf = netconf.parse(doc, version)
    with context.datastore(conf, environ) as backend:
        if env.command == "STATUS":
            status(backend)
            return None
        node = context.nodename(conf, environ)
        if env.command == "ADD":
            return json.dumps(spec.format_result(add(env, conf, backend, node), version))
        if env.command == "DEL":
            delete(env, conf, backend)
        elif env.command == "CHECK":
            check(env, conf, backend)
        elif env.command == "GC":
            gc(env, conf, backend, node)
        return None
