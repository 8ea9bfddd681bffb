"""calico-node startup: the Node resource, default pools and configuration, tunnel addresses.

Follows Calico's sequence (node/pkg/lifecycle/startup): node name → wait for the datastore →
read the Node → IP addresses (given or autodetected) → refuse an address another node has →
AS → write the Node → default IP pools → ClusterInformation / FelixConfiguration defaults →
tunnel addresses from IPAM (handles `ipip-tunnel-addr-<node>`, `vxlan-tunnel-addr-<node>`)
→ write the nodename file. Raises CalicoError subclasses; never exits.

Every resource goes through `libcalico.client.Client` as a typed resource: read, changed with
`dataclasses.replace`, written only when changed, as a compare-and-swap on its
resourceVersion (re-read and retried on Conflict). On the Kubernetes datastore the same code
writes the Kubernetes Node's projectcalico.org annotations (the backend's mapping), makes no
Node (kubelet registers it) and no `node.<name>` FelixConfiguration, appends `kdd` to the
cluster type, and finally sets the Node's NetworkUnavailable=False condition (`kubenode`).
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from calico_node import autodetect, kubenode, nodename, resources, settings
from calico_node.autodetect import Interface, RouteLookup
from libcalico.client import Client
from libcalico.datastore.api import Backend
from libcalico.errors import AlreadyExists, ConfigError, Conflict, NotFound, Unavailable
from libcalico.ipam.client import AutoAssignArgs, IPAMClient
from libcalico.model import keys, selector
from libcalico.model.resources import (
    AllowedUse,
    ClusterInformation,
    ClusterInformationSpec,
    EncapMode,
    EndpointToHostAction,
    FelixConfiguration,
    FelixConfigurationSpec,
    IPPool,
    LogLevel,
    Metadata,
    Node,
    NodeAddressType,
    Resource,
)
from libcalico.model.types import IPAddress

if TYPE_CHECKING:
    from libcalico.datastore.kubernetes_client import KubeClient

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Resource)

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

    kube: KubeClient | None = None
    """On the Kubernetes datastore: the API client that sets the Node's NetworkUnavailable
    condition (Calico's plain clientset beside the Calico client)."""
    client: Client = field(init=False)
    kdd: bool = field(init=False, default=False)

    def run(self) -> Result:
        cfg = settings.parse(self.env)
        name = nodename.determine(self.env, nodename.read(self.env), self.hostname)
        self.client = Client(self.backend, clock=lambda: self.now().replace(microsecond=0),
                             new_uid=self.new_uid)
        self.kdd = datastore_type(self.env) == "kubernetes"
        if cfg.backend != "none" or _bool_env(self.env, "WAIT_FOR_DATASTORE", True):
            self._wait_for_datastore()
        node = self._get(Node, name)
        if node is None and self.kdd:
            raise StartupError(_NO_K8S_NODE.format(name=name))
        base = node or Node(metadata=Metadata(name=name))
        internal = tuple(ipaddress.ip_interface(str(a.address)).ip for a in base.spec.addresses
                         if a.type == NodeAddressType.INTERNAL_IP)
        v4 = self._address(cfg.ip, 4, cfg.ip_method, internal)
        v6 = self._address(cfg.ip6, 6, cfg.ip6_method, internal) if cfg.ip6 else None
        if cfg.ip == "none" and cfg.ip6 in ("", "none") and cfg.backend == "bird" \
                and resources.node_ip(base, 4) is None and resources.node_ip(base, 6) is None:
            raise StartupError("IP=none and the Node has no address: BGP needs one "
                               "(set IP, IP6 or an autodetection method)")
        if not cfg.disable_node_ip_check:
            self._check_conflicts(name, v4, v6)
        as_number = cfg.as_number if cfg.backend != "none" else None
        written = self._modify_node(name, node, lambda n: resources.update_node(
            n, ipv4=v4, ipv6=v6, as_number=as_number,
            keep_v4=cfg.ip == "none", keep_v6=cfg.ip6 == "none"))
        self._ensure_pools(cfg)
        self._ensure_defaults(name, cfg)
        ipam = IPAMClient(self.backend)
        for kind in ("ipip", "vxlan"):
            written = self._tunnel(ipam, name, written, kind)
        nodename.write(self.env, name)
        if self.kdd and self.kube is not None and cfg.backend != "none":
            kubenode.mark_network_available(self.kube, name, self.now())
        result = Result(name, resources.node_address(written, 4),
                        resources.node_address(written, 6),
                        resources.tunnel_addr(written, "ipip"),
                        resources.tunnel_addr(written, "vxlan"))
        log.info("startup done node=%s ipv4=%s ipv6=%s ipip_tunnel=%s vxlan_tunnel=%s",
                 result.node, result.ipv4, result.ipv6, result.ipip_tunnel, result.vxlan_tunnel)
        return result

    # ---- datastore helpers ---------------------------------------------------------------
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

    def _get(self, kind: type[R], name: str) -> R | None:
        try:
            return self.client.get(kind, name)
        except NotFound:
            return None

    def _modify_node(self, name: str, first: Node | None,
                     change: Callable[[Node], Node]) -> Node:
        """Read-modify-write of this host's Node: `change` applied to the stored Node (to a
        new one when there is none), written only if it changed, as a compare-and-swap on
        its resourceVersion, re-read and retried on Conflict."""
        cur = first
        for attempt in range(RETRIES):
            if attempt:
                cur = self._get(Node, name)
            if cur is None:
                if self.kdd:
                    raise StartupError(_NO_K8S_NODE.format(name=name))
                try:
                    return self.client.create(change(Node(metadata=Metadata(name=name))))
                except AlreadyExists:
                    continue
            new = change(cur)
            if new == cur:
                return cur
            try:
                return self.client.update(new)
            except (Conflict, NotFound):
                continue
        raise StartupError(f"could not update Node {name}: too many conflicts")

    # ---- addresses -----------------------------------------------------------------------
    def _address(self, value: str, version: int, method: autodetect.Method,
                 internal_ips: Sequence[IPAddress] = ()) -> str | None:
        var = "IP" if version == 4 else "IP6"
        if value == "none":
            return None
        if value and value != "autodetect":
            return str(autodetect.parse_given(value, version, var))
        found = autodetect.detect(method, list(self.interfaces()), version, self.route_lookup,
                                  internal_ips)
        if found is None and method.kind == autodetect.K8S_INTERNAL_IP:
            raise StartupError(
                f"could not autodetect an IPv{version} address with {var}_AUTODETECTION_METHOD="
                f"{method.kind}: the Node has no IPv{version} InternalIP address (set {var} "
                "explicitly or choose another method)")
        if found is None:
            raise StartupError(
                f"could not autodetect an IPv{version} address with "
                f"{var}_AUTODETECTION_METHOD={method.kind}"
                f"{'=' + ','.join(method.args) if method.args else ''}: no interface matched "
                f"(set {var} explicitly or choose another method)")
        log.info("autodetected IPv%d address %s using %s", version, found, method.kind)
        return str(found)

    def _check_conflicts(self, name: str, v4: str | None, v6: str | None) -> None:
        mine4 = ipaddress.ip_interface(v4).ip if v4 else None
        mine6 = ipaddress.ip_interface(v6).ip if v6 else None
        for other in self.client.list(Node):
            oname = other.metadata.name
            if oname == name:
                continue
            for mine, theirs in ((mine4, resources.node_ip(other, 4)),
                                 (mine6, resources.node_ip(other, 6))):
                if mine is not None and mine == theirs:
                    raise StartupError(
                        f"address {mine} is already in use by node {oname!r}: if that node is "
                        f"gone, remove it (calicoctl delete node {oname}); otherwise set "
                        "IP/IP_AUTODETECTION_METHOD or NODENAME correctly for this node")

    # ---- pools and defaults --------------------------------------------------------------
    def _ensure_pools(self, cfg: settings.Settings) -> None:
        if cfg.no_default_pools:
            return
        versions = {p.spec.cidr.version for p in self.client.list(IPPool)}
        for pool in cfg.pools:
            if pool.cidr.version in versions:
                continue
            try:
                self.client.create(resources.pool_resource(pool))
                log.info("created default pool name=%s cidr=%s ipip=%s vxlan=%s", pool.name,
                         pool.cidr, pool.ipip_mode, pool.vxlan_mode)
            except AlreadyExists:
                pass

    def _cluster_type(self, cfg: settings.Settings) -> str | None:
        """CLUSTER_TYPE; on the Kubernetes datastore with `kdd` last, as Calico's
        EnsureInitialized appends it."""
        if not self.kdd:
            return cfg.cluster_type or None
        types = [t for t in (cfg.cluster_type or "bgp").split(",") if t and t != "kdd"]
        return ",".join([*types, "kdd"])

    def _ensure_defaults(self, name: str, cfg: settings.Settings) -> None:
        cluster_type = self._cluster_type(cfg)
        for _ in range(RETRIES):
            cur = self._get(ClusterInformation, "default")
            if cur is None:
                try:
                    self.client.create(ClusterInformation(
                        metadata=Metadata(name="default"), spec=ClusterInformationSpec(
                            cluster_guid=uuid.uuid4().hex, cluster_type=cluster_type or "bgp",
                            calico_version=VERSION, datastore_ready=True)))
                    break
                except AlreadyExists:
                    continue
            spec = cur.spec
            if spec.datastore_ready is False:
                log.warning("ClusterInformation datastoreReady is false: left as it is")
            new = replace(
                spec, cluster_guid=spec.cluster_guid or uuid.uuid4().hex,
                calico_version=VERSION, cluster_type=cluster_type or spec.cluster_type,
                datastore_ready=True if spec.datastore_ready is None else spec.datastore_ready)
            if new == spec:
                break
            try:
                self.client.update(replace(cur, spec=new))
                break
            except (Conflict, NotFound):
                continue
        felix = [FelixConfiguration(metadata=Metadata(name="default"),
                                    spec=FelixConfigurationSpec(
                                        reporting_interval=timedelta(0),
                                        log_severity_screen=LogLevel.INFO))]
        if not self.kdd:  # Calico makes no per-node FelixConfiguration on KDD
            felix.append(FelixConfiguration(
                metadata=Metadata(name=f"node.{name}"),
                spec=FelixConfigurationSpec(
                    default_endpoint_to_host_action=EndpointToHostAction.RETURN)))
        for fc in felix:
            with contextlib.suppress(AlreadyExists):
                self.client.create(fc)

    # ---- tunnel addresses ----------------------------------------------------------------
    def _tunnel(self, ipam: IPAMClient, name: str, node: Node, kind: str) -> Node:
        labels = node.metadata.labels
        wanted = []
        for p in self.client.list(IPPool):
            spec = p.spec
            mode = spec.ipip_mode if kind == "ipip" else spec.vxlan_mode
            sel = spec.node_selector or "all()"
            if (spec.cidr.version == 4 and mode not in (None, EncapMode.NEVER)
                    and not spec.disabled
                    and AllowedUse.TUNNEL in (spec.allowed_uses or _DEFAULT_USES)
                    and (sel.strip() == "all()" or selector.parse(sel).evaluate(labels))):
                wanted.append(spec.cidr)
        handle = f"{kind}-tunnel-addr-{name}"
        current = resources.tunnel_addr(node, kind)
        held = [str(ip) for ip in _quiet(lambda: ipam.ips_by_handle(handle), [])]
        if wanted and current in held and any(
                ipaddress.ip_address(current) in c for c in wanted):
            return node
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
            return node
        mac = resources.vxlan_mac(name) if kind == "vxlan" else None
        return self._modify_node(name, node,
                                 lambda n: resources.set_tunnel(n, kind, addr, mac))


_NO_K8S_NODE = (
    "Node {name!r} not found in the Kubernetes datastore: there calico-node's Node is the "
    "Kubernetes Node (registered by kubelet), and calico-node cannot create it; check that "
    "NODENAME is the Kubernetes node name")
_DEFAULT_USES = (AllowedUse.WORKLOAD, AllowedUse.TUNNEL)


def datastore_type(env: Mapping[str, str]) -> str:
    """DATASTORE_TYPE as libcalico reads it (CALICO_DATASTORE_TYPE wins), lowercased."""
    return (env.get("CALICO_DATASTORE_TYPE") or env.get("DATASTORE_TYPE") or "etcdv3").lower()


def _quiet(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except NotFound:
        return default


def _bool_env(env: Mapping[str, str], var: str, default: bool) -> bool:
    raw = env.get(var, "").strip().lower()
    return default if not raw else raw in ("true", "1", "yes")
