"""calico-node startup: the Node resource, default pools and configuration, tunnel addresses.

Follows Calico's sequence (node/pkg/lifecycle/startup): node name → wait for the datastore →
read the Node → IP addresses (given or autodetected) → refuse an address another node has →
AS → write the Node → default IP pools → ClusterInformation / FelixConfiguration defaults →
tunnel addresses from IPAM (handles `ipip-tunnel-addr-<node>`, `vxlan-tunnel-addr-<node>`)
→ write the nodename file. Raises CalicoError subclasses; never exits.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from calico_node import autodetect, nodename, resources, settings
from calico_node.autodetect import Interface, RouteLookup
from libcalico.datastore.api import Backend, Revision
from libcalico.errors import (
    AlreadyExists,
    ConfigError,
    Conflict,
    NotFound,
    Unavailable,
    ValidationError,
)
from libcalico.ipam.client import AutoAssignArgs, IPAMClient
from libcalico.model import keys

log = logging.getLogger(__name__)

VERSION = "v3.30.0-py"
RETRIES = 10


class StartupError(ConfigError):
    """calico-node cannot start with this configuration (the message says why)."""


@dataclass(frozen=True, slots=True)
class Result:
    node: str
    ipv4: str | None
    ipv6: str | None
    ipip_tunnel: str | None
    vxlan_tunnel: str | None


@dataclass
class Startup:
    backend: Backend
    env: Mapping[str, str]
    interfaces: Callable[[], Sequence[Interface]]
    route_lookup: RouteLookup
    hostname: str
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    new_uid: Callable[[], str] = lambda: str(uuid.uuid4())
    sleep: Callable[[float], None] = time.sleep
    wait_timeout: float | None = None

    def run(self) -> Result:
        cfg = settings.parse(self.env)
        name = nodename.determine(self.env, nodename.read(self.env), self.hostname)
        if cfg.backend != "none" or _bool_env(self.env, "WAIT_FOR_DATASTORE", True):
            self._wait_for_datastore()
        node = self._get(keys.resource_key("Node", name))
        doc: resources.Doc = node[0] if node else resources.new_doc(
            "Node", name, {}, self.new_uid(), self._stamp())
        v4 = self._address(cfg.ip, 4, cfg.ip_method, doc)
        v6 = self._address(cfg.ip6, 6, cfg.ip6_method, doc) if cfg.ip6 else None
        if cfg.ip == "none" and cfg.ip6 in ("", "none") and cfg.backend == "bird" \
                and resources.node_ipv4(doc) is None and resources.node_ipv6(doc) is None:
            raise StartupError("IP=none and the Node has no address: BGP needs one "
                               "(set IP, IP6 or an autodetection method)")
        if not cfg.disable_node_ip_check:
            self._check_conflicts(name, v4, v6)
        doc = resources.update_node(doc, ipv4=v4, ipv6=v6,
                                    as_number=cfg.as_number if cfg.backend != "none" else None,
                                    keep_v4=cfg.ip == "none", keep_v6=cfg.ip6 == "none")
        doc = self._write(keys.resource_key("Node", name), doc, node)
        self._ensure_pools(cfg)
        self._ensure_defaults(name, cfg)
        ipam = IPAMClient(self.backend)
        for kind in ("ipip", "vxlan"):
            doc = self._tunnel(ipam, name, doc, kind)
        nodename.write(self.env, name)
        result = Result(name, resources.node_address(doc, 4), resources.node_address(doc, 6),
                        resources.tunnel_addr(doc, "ipip"), resources.tunnel_addr(doc, "vxlan"))
        log.info("startup done node=%s ipv4=%s ipv6=%s ipip_tunnel=%s vxlan_tunnel=%s",
                 result.node, result.ipv4, result.ipv6, result.ipip_tunnel, result.vxlan_tunnel)
        return result

    # ---- datastore helpers ---------------------------------------------------------------
    def _stamp(self) -> str:
        return self.now().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _wait_for_datastore(self) -> None:
        start = time.monotonic()
        delay = 0.5
        while True:
            try:
                self.backend.list(keys.resource_prefix("ClusterInformation"))
                return
            except Unavailable as exc:
                if self.wait_timeout is not None and time.monotonic() - start > self.wait_timeout:
                    raise
                log.warning("waiting for the datastore: %s", exc)
                self.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _get(self, key: str) -> tuple[resources.Doc, Revision] | None:
        try:
            kv = self.backend.get(key)
        except NotFound:
            return None
        try:
            doc = json.loads(kv.value)
        except ValueError as exc:
            raise ValidationError(f"stored value is not JSON: {exc}", key) from exc
        if not isinstance(doc, dict):
            raise ValidationError("stored value is not an object", key)
        return doc, kv.revision

    def _write(self, key: str, doc: resources.Doc,
               old: tuple[resources.Doc, Revision] | None) -> resources.Doc:
        text = _dumps(doc)
        if old is None:
            self.backend.create(key, text)
        elif old[0] != doc:
            self.backend.update(key, text, old[1])
        return doc

    def _list(self, kind: str) -> list[resources.Doc]:
        out = []
        for kv in self.backend.list(keys.resource_prefix(kind)).kvs:
            try:
                doc = json.loads(kv.value)
            except ValueError:
                log.warning("skipping unreadable %s at %s", kind, kv.key)
                continue
            if isinstance(doc, dict):
                out.append(doc)
        return out

    # ---- addresses -----------------------------------------------------------------------
    def _address(self, value: str, version: int, method: autodetect.Method,
                 doc: resources.Doc) -> str | None:
        var = "IP" if version == 4 else "IP6"
        if value == "none":
            return None
        if value and value != "autodetect":
            return str(autodetect.parse_given(value, version, var))
        found = autodetect.detect(method, list(self.interfaces()), version, self.route_lookup)
        if found is None:
            raise StartupError(
                f"could not autodetect an IPv{version} address with "
                f"{var}_AUTODETECTION_METHOD={method.kind}"
                f"{'=' + ','.join(method.args) if method.args else ''}: no interface matched "
                f"(set {var} explicitly or choose another method)")
        log.info("autodetected IPv%d address %s using %s", version, found, method.kind)
        return str(found)

    def _check_conflicts(self, name: str, v4: str | None, v6: str | None) -> None:
        mine4 = resources.node_ipv4({"spec": {"bgp": {"ipv4Address": v4}}}) if v4 else None
        mine6 = resources.node_ipv6({"spec": {"bgp": {"ipv6Address": v6}}}) if v6 else None
        for other in self._list("Node"):
            oname = (other.get("metadata") or {}).get("name")
            if oname == name:
                continue
            for mine, theirs in ((mine4, resources.node_ipv4(other)),
                                 (mine6, resources.node_ipv6(other))):
                if mine is not None and mine == theirs:
                    raise StartupError(
                        f"address {mine} is already in use by node {oname!r}: if that node is "
                        f"gone, remove it (calicoctl delete node {oname}); otherwise set "
                        "IP/IP_AUTODETECTION_METHOD or NODENAME correctly for this node")

    # ---- pools and defaults --------------------------------------------------------------
    def _ensure_pools(self, cfg: settings.Settings) -> None:
        if cfg.no_default_pools:
            return
        existing = self._list("IPPool")
        versions = set()
        for p in existing:
            try:
                import ipaddress
                versions.add(ipaddress.ip_network((p.get("spec") or {}).get("cidr", "")).version)
            except ValueError:
                continue
        for pool in cfg.pools:
            if pool.cidr.version in versions:
                continue
            doc = resources.new_doc("IPPool", pool.name, resources.pool_spec(pool),
                                    self.new_uid(), self._stamp())
            try:
                self.backend.create(keys.resource_key("IPPool", pool.name), _dumps(doc))
                log.info("created default pool name=%s cidr=%s ipip=%s vxlan=%s", pool.name,
                         pool.cidr, pool.ipip_mode, pool.vxlan_mode)
            except AlreadyExists:
                pass

    def _ensure_defaults(self, name: str, cfg: settings.Settings) -> None:
        key = keys.resource_key("ClusterInformation", "default")
        for _ in range(RETRIES):
            cur = self._get(key)
            if cur is None:
                spec: dict[str, Any] = {"clusterGUID": uuid.uuid4().hex,
                                        "clusterType": cfg.cluster_type or "bgp",
                                        "calicoVersion": VERSION, "datastoreReady": True}
                try:
                    self.backend.create(key, _dumps(resources.new_doc(
                        "ClusterInformation", "default", spec, self.new_uid(), self._stamp())))
                    break
                except AlreadyExists:
                    continue
            doc, rev = cur
            spec = dict(doc.get("spec") or {})
            new = dict(spec)
            new.setdefault("clusterGUID", uuid.uuid4().hex)
            new["calicoVersion"] = VERSION
            if cfg.cluster_type:
                new["clusterType"] = cfg.cluster_type
            if "datastoreReady" not in new:
                new["datastoreReady"] = True
            elif new["datastoreReady"] is not True:
                log.warning("ClusterInformation datastoreReady is false: left as it is")
            if new == spec:
                break
            try:
                self.backend.update(key, _dumps({**doc, "spec": new}), rev)
                break
            except Conflict:
                continue
        for fname, fspec in (("default", {"reportingInterval": "0s",
                                          "logSeverityScreen": "Info"}),
                             (f"node.{name}", {"defaultEndpointToHostAction": "Return"})):
            with contextlib.suppress(AlreadyExists):
                self.backend.create(keys.resource_key("FelixConfiguration", fname), _dumps(
                    resources.new_doc("FelixConfiguration", fname, fspec, self.new_uid(),
                                      self._stamp())))

    # ---- tunnel addresses ----------------------------------------------------------------
    def _tunnel(self, ipam: IPAMClient, name: str, doc: resources.Doc,
                kind: str) -> resources.Doc:
        import ipaddress

        from libcalico.model import selector

        mode_field = "ipipMode" if kind == "ipip" else "vxlanMode"
        labels = (doc.get("metadata") or {}).get("labels") or {}
        wanted = []
        for p in self._list("IPPool"):
            spec = p.get("spec") or {}
            try:
                cidr = ipaddress.ip_network(spec.get("cidr", ""))
            except ValueError:
                continue
            sel = str(spec.get("nodeSelector") or "all()")
            if (cidr.version == 4 and spec.get(mode_field, "Never") not in ("Never", "")
                    and not spec.get("disabled")
                    and "Tunnel" in (spec.get("allowedUses") or ["Workload", "Tunnel"])
                    and (sel.strip() == "all()" or selector.parse(sel).evaluate(labels))):
                wanted.append(cidr)
        handle = f"{kind}-tunnel-addr-{name}"
        current = resources.tunnel_addr(doc, kind)
        held = [str(ip) for ip in _quiet(lambda: ipam.ips_by_handle(handle), [])]
        key = keys.resource_key("Node", name)
        if wanted and current in held and any(
                ipaddress.ip_address(current) in c for c in wanted):
            return doc
        if held:
            _quiet(lambda: ipam.release_by_handle(handle), 0)
        addr: str | None = None
        if wanted:
            v4, _ = ipam.auto_assign(AutoAssignArgs(
                hostname=name, num4=1, handle_id=handle,
                attrs={"node": name, "type": f"{kind}TunnelAddress"},
                ipv4_pools=tuple(wanted), intended_use="Tunnel"))
            if not v4.ips:
                raise StartupError(f"could not allocate a {kind} tunnel address: "
                                   f"{v4.shortfall_message('IPv4')}")
            addr = str(v4.ips[0].ip)
        if addr is None and current is None:
            return doc
        for _ in range(RETRIES):
            cur = self._get(key)
            if cur is None:
                raise StartupError(f"Node {name} vanished during startup")
            new = resources.set_tunnel(cur[0], kind, addr,
                                       resources.vxlan_mac(name) if kind == "vxlan" else None)
            try:
                return self._write(key, new, cur)
            except Conflict:
                continue
        raise StartupError(f"could not update Node {name}: too many conflicts")


def _quiet(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except NotFound:
        return default


def _bool_env(env: Mapping[str, str], var: str, default: bool) -> bool:
    raw = env.get(var, "").strip().lower()
    return default if not raw else raw in ("true", "1", "yes")


def _dumps(doc: resources.Doc) -> str:
    return json.dumps(doc, separators=(",", ":"))
