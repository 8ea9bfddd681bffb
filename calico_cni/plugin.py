"""The `calico` CNI plugin: ADD (`plugin_add`), DEL, CHECK, GC, STATUS.

DEL releases everything and is idempotent, but fails while the datastore cannot be reached
(so the runtime retries). CHECK prints nothing when the workload is as ADD left it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from calico_cni import context, endpoint, ipam_plugin, netconf, plugin_add, spec, wiring
from calico_cni.ipam_call import Ipam, delegate
from calico_cni.spec import CNIError
from calico_cni.workload import Workload, workload
from libcalico import logger
from libcalico.datastore.api import Backend, KVPair
from libcalico.errors import Conflict, NotFound

log = logger.get("calico_cni")


def _ready_workload(backend: Backend, env: spec.Env, node: str, environ: Mapping[str, str]
                    ) -> tuple[Workload, KVPair | None]:
    """DEL's and CHECK's start: the datastore is ready, this container's workload and its
    stored WorkloadEndpoint (None when there is none)."""
    context.require_ready(backend)
    w = workload(env, node, environ)
    return w, endpoint.get_wep(backend, w)


def cmd_del(env: spec.Env, doc: dict[str, Any], version: str,
            environ: Mapping[str, str]) -> str | None:
    conf = netconf.parse(doc, version)
    node = context.nodename(conf, environ)
    with context.datastore(conf, environ) as backend:
        w, kv = _ready_workload(backend, env, node, environ)  # errors but NotFound fail DEL
        for _attempt in range(5):  # Calico's DEL retries an endpoint changed meanwhile
            if kv is None:
                break
            old = json.loads(kv.value)
            if ((old.get("spec") or {}).get("containerID") or w.container_id) != w.container_id:
                break  # a newer container owns the endpoint: release only our addresses
            try:
                _delete_endpoint(backend, kv, old)
                break
            except NotFound:
                break
            except Conflict:
                kv = endpoint.get_wep(backend, w)
        try:
            wiring.teardown(env.netns, env.ifname,
                            w.host_veth(environ) if w.orchestrator == "cni" else None)
        except wiring.WiringError as exc:
            raise CNIError(spec.INTERNAL, str(exc)) from None
        Ipam(env, doc, conf, environ, backend, node).delete()
        log.info("DEL %s (%s)", w.wep_name, env.container_id)
        return None


def _delete_endpoint(backend: Backend, kv: KVPair, old: dict[str, Any]) -> None:
    """The endpoint's delete at the revision read; on KDD the pod's IP annotations blanked,
    conditional on the UID and resourceVersion read (as libcalico-go's KDD client does)."""
    if getattr(backend, "cni_patch_mode", False):
        from calico_cni import kdd

        kdd.patch_ips(backend, kv.key, [], container_id=None,
                      uid=(old.get("metadata") or {}).get("uid"), resource_version=kv.revision)
    else:
        backend.delete(kv.key, kv.revision)


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
            delegate("GC", env, doc, environ)
        return None


def cmd_status(env: spec.Env, doc: dict[str, Any], version: str,
               environ: Mapping[str, str]) -> str | None:
    conf = netconf.parse(doc, version)
    with context.datastore(conf, environ) as backend:
        ipam_plugin.status(backend)
        return None


def handle(env: spec.Env, doc: dict[str, Any], version: str,
           environ: Mapping[str, str]) -> str | None:
    return {"ADD": plugin_add.cmd_add, "DEL": cmd_del, "CHECK": cmd_check, "GC": cmd_gc,
            "STATUS": cmd_status}[env.command](env, doc, version, environ)
