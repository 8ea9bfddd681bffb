"""The typed inputs of one node's render, kept up to date change by change.

    inputs = Inputs("node-a")
    inputs.sync(snapshot)        # raw etcd key -> value as stored; only what changed is decoded

Values are decoded once, by `libcalico.model.codec`, in the typed cache
(`libcalico.datastore.resourcecache.ResourceCache`); confd parses no stored JSON itself. Each
change is then checked by `confd.birdsafe` for what Calico accepts but BIRD cannot take. A value
the codec or birdsafe refuses is left out as a whole and a warning names the resource, the field
and the reason (`warnings`, until the value changes again).

What confd reads (`Inputs`): Nodes (with the `/calico/bgp/v1/host/<n>/` leaves they produce,
computed once per change), BGPPeers, BGPConfigurations `default` and `node.<name>`, BGPFilters,
IPPools, this node's block affinities (pending ones dropped), the BGP password secrets, the
Kubernetes Services and EndpointSlices (KDD: service IP advertisement), the endpoint-status
entries (`localWorkloadSelector` peers, from Felix's files) and, on KDD, this node's
WorkloadEndpoints (pods: `localWorkloadSelector` peers where no status file names them).
"""

from __future__ import annotations

import dataclasses
import ipaddress
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import libcalico.datastore.kubernetes_service as kservice
from confd import birdsafe, epstatus
from libcalico.datastore.resourcecache import Change, Decoder, ResourceCache, default_decoders
from libcalico.datastore.snapshot import Update
from libcalico.errors import ValidationError
from libcalico.ipam.records import Affinity, AffinityState
from libcalico.model import codec
from libcalico.model import keys as calico_keys
from libcalico.model import selector as calico_selector
from libcalico.model.resources import (
    BGPConfiguration,
    BGPFilter,
    BGPPeer,
    IPPool,
    Node,
    WorkloadEndpoint,
)
from libcalico.model.resources_bgp import BGPConfigurationSpec, BGPFilterSpec, BGPPeerSpec
from libcalico.model.resources_net import IPPoolSpec
from libcalico.model.types import AddressOrInterface, IPAddress

PURE = True

V3 = calico_keys.RESOURCE_ROOT
IPAM_HOST = calico_keys.IPAM_ROOT + "host/"
SECRETS_PREFIX = "/calico/secrets/"
"""Our etcd-mode stand-in for Kubernetes Secrets (Calico reads BGP passwords from Secrets in
$NAMESPACE): `/calico/secrets/<secret name>/<key>` holds the secret value as plain text."""

KINDS = {"nodes": "Node", "bgppeers": "BGPPeer", "bgpconfigurations": "BGPConfiguration",
         "bgpfilters": "BGPFilter", "ippools": "IPPool"}
"""The v3 kinds confd reads, by the plural their keys use."""

WEP_PLURAL = calico_keys.KINDS["WorkloadEndpoint"].plural

_NO_REVISION: Any = ""
"""An offline snapshot has no revisions; the cache only passes them through."""


def seconds(d: timedelta | None) -> int | None:
    """A duration in whole seconds, rounded as Calico rounds (None stays None)."""
    return None if d is None else int(d.total_seconds() + 0.5)


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """What a Node contributes: addresses, AS, route-reflector cluster, WireGuard addresses,
    and the `/calico/bgp/v1/host/<name>/` leaves they make (computed once per change)."""

    name: str
    labels: Mapping[str, str]
    ipv4: ipaddress.IPv4Interface | None
    ipv6: ipaddress.IPv6Interface | None
    as_number: int | None
    rr_cluster_id: str
    wireguard_v4: str
    wireguard_v6: str
    host_fields: Mapping[str, str]
    """Leaf name (ip_addr_v4, network_v4, as_num, ...) -> value."""
    host_keys: tuple[tuple[str, str], ...]
    """The same as full keys -> values, ready to copy into the key space."""

    def ip(self, version: int) -> IPAddress | None:
        iface = self.ipv4 if version == 4 else self.ipv6
        return iface.ip if iface is not None else None


def _v4(a: AddressOrInterface | None) -> ipaddress.IPv4Interface | None:
    """`ipv4Address` with its prefix (a bare address counts as /32), reusing the decoded
    interface instead of parsing its text again."""
    if a is None or isinstance(a, ipaddress.IPv4Interface):
        return a
    return ipaddress.IPv4Interface(a)


def _v6(a: AddressOrInterface | None) -> ipaddress.IPv6Interface | None:
    if a is None or isinstance(a, ipaddress.IPv6Interface):
        return a
    return ipaddress.IPv6Interface(a)


def node_info(name: str, node: Node) -> NodeInfo:
    bgp = node.spec.bgp
    v4 = _v4(bgp.ipv4_address) if bgp is not None else None
    v6 = _v6(bgp.ipv6_address) if bgp is not None else None
    rr = bgp.route_reflector_cluster_id if bgp is not None else None
    wg = node.spec.wireguard
    wg4 = wg.interface_ipv4_address if wg is not None else None
    wg6 = wg.interface_ipv6_address if wg is not None else None
    as_number = (bgp.as_number if bgp is not None else None) or None
    fields = [("ip_addr_v4", str(v4.ip) if v4 else ""), ("ip_addr_v6", str(v6.ip) if v6 else "")]
    if v4:
        fields.append(("network_v4", str(v4.network)))
    if v6:
        fields.append(("network_v6", str(v6.network)))
    if as_number:
        fields.append(("as_num", str(as_number)))
    fields += [("rr_cluster_id", str(rr) if rr else ""),
               ("wireguard_addr_v4", str(wg4) if wg4 else ""),
               ("wireguard_addr_v6", str(wg6) if wg6 else "")]
    return NodeInfo(
        name=name, labels=node.metadata.labels, ipv4=v4, ipv6=v6, as_number=as_number,
        rr_cluster_id=str(rr) if rr else "", wireguard_v4=str(wg4) if wg4 else "",
        wireguard_v6=str(wg6) if wg6 else "", host_fields=dict(fields),
        host_keys=tuple((f"/calico/bgp/v1/host/{name}/{leaf}", value) for leaf, value in fields),
    )


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """A BGPPeer with its selectors parsed."""

    name: str
    spec: BGPPeerSpec
    node_selector: calico_selector.Selector | None
    peer_selector: calico_selector.Selector | None

    @property
    def is_global(self) -> bool:
        return not self.spec.node and self.node_selector is None


def _selector(text: str | None) -> calico_selector.Selector | None:
    return calico_selector.parse(text) if text else None


def peer_info(name: str, peer: BGPPeer) -> PeerInfo:
    s = peer.spec
    return PeerInfo(name, s, _selector(s.node_selector), _selector(s.peer_selector))


_DEFAULT_CONFIG = BGPConfigurationSpec()


def _labels_as_stored(decode: Decoder) -> Decoder:
    """The codec's Node decoder, except that label values (and keys) are taken as stored.

    Calico validates labels when a resource is written, never when it is read, and labels only
    feed selectors here: they never reach BIRD. A Node whose only problems are its labels is
    decoded (by the codec, labels aside) with its labels as they are stored, so a hostile
    label cannot take a node out of the mesh.
    """
    def decode_node(key: str, value: str) -> object:
        try:
            return decode(key, value)
        except ValidationError as exc:
            if not exc.errors or not all(e.path.startswith("metadata.labels")
                                         for e in exc.errors):
                raise
            docs = codec.load_documents(value)
            meta = docs[0].get("metadata") if len(docs) == 1 else None
            if not isinstance(meta, dict):
                raise
            labels = meta.get("labels")
            if not isinstance(labels, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in labels.items()):
                raise
            bare = codec.decode({**docs[0], "metadata": {**meta, "labels": {}}}, key)
            if not isinstance(bare, Node):
                raise
            return dataclasses.replace(
                bare, metadata=dataclasses.replace(bare.metadata, labels=dict(labels)))

    return decode_node


def decoders() -> dict[str, Decoder]:
    """The cache's decoders (libcalico's defaults: the codec, IPAM records), with Node labels
    taken as stored."""
    out = default_decoders()
    prefix = calico_keys.resource_prefix("Node")
    out[prefix] = _labels_as_stored(out[prefix])
    out[kservice.SERVICES_PREFIX] = kservice.decode_service
    out[kservice.SLICES_PREFIX] = kservice.decode_slice
    out[epstatus.PREFIX] = epstatus.decode
    return out


class Inputs:
    """The decoded, BIRD-safe resources of one node's render. One owner thread."""

    def __init__(self, node: str) -> None:
        self.node = node
        self.cache = ResourceCache(decoders())
        self.nodes: dict[str, NodeInfo] = {}
        self.peers: dict[str, PeerInfo] = {}
        self.configs: dict[str, BGPConfigurationSpec] = {}
        """BGPConfiguration name (`default`, `node.<name>`) -> spec."""
        self.filters: dict[str, BGPFilterSpec] = {}
        self.pools: dict[str, IPPoolSpec] = {}
        self.affinities: dict[str, str] = {}
        """Affinity key (raw etcd) -> state: this node's only, pending ones dropped."""
        self.secrets: dict[str, str] = {}
        """`<secret name>/<key>` -> secret value (BGP passwords), from SECRETS_PREFIX keys."""
        self.services: dict[str, kservice.Service] = {}
        """Service key -> Service (KDD)."""
        self.slices: dict[str, kservice.EndpointSlice] = {}
        """EndpointSlice key -> EndpointSlice (KDD)."""
        self.endpoint_status: dict[str, epstatus.EndpointStatus] = {}
        """Endpoint-status file name -> entry (Felix's files)."""
        self.workloads: dict[str, WorkloadEndpoint] = {}
        """This node's WorkloadEndpoints (KDD: its pods), by key."""
        self.raw: dict[str, str] = {}
        """v3 keys (nodes, bgppeers, bgpconfigurations, bgpfilters) -> value as stored: Calico's
        confd cache holds them too, so templates may read them."""
        self._warnings: dict[str, str] = {}
        self._seen: dict[str, str] = {}
        self._affinity_prefix = f"{IPAM_HOST}{node}/"

    @property
    def default_config(self) -> BGPConfigurationSpec:
        return self.configs.get("default", _DEFAULT_CONFIG)

    @property
    def warnings(self) -> list[str]:
        """A line per value left out (sorted)."""
        return sorted(self._warnings.values())

    def sync(self, snapshot: Mapping[str, str]) -> None:
        """Bring the inputs to `snapshot` (raw key -> value as stored): the keys that changed
        since the last call are decoded, the others are kept."""
        seen = self._seen
        get = seen.get
        updates = [Update(k, v, _NO_REVISION) for k, v in snapshot.items() if get(k) is not v]
        updates.extend(Update(k, None, _NO_REVISION) for k in seen.keys() - snapshot.keys())
        self._seen = dict(snapshot)
        for change in self.cache.apply(updates):
            self._take(change, snapshot.get(change.key))

    def _take(self, change: Change, text: str | None) -> None:
        key = change.key
        self._warnings.pop(key, None)
        if key.startswith(V3):
            self._resource(change, text)
        elif key.startswith(self._affinity_prefix):
            self._affinity(change)
        elif key.startswith(SECRETS_PREFIX):
            name = key[len(SECRETS_PREFIX):]
            if isinstance(change.resource, str):
                self.secrets[name] = change.resource
            else:
                self.secrets.pop(name, None)
        elif key.startswith(kservice.PREFIX):
            self.services.pop(key, None)
            self.slices.pop(key, None)
            if isinstance(change.resource, kservice.Service):
                self.services[key] = change.resource
            elif isinstance(change.resource, kservice.EndpointSlice):
                self.slices[key] = change.resource
        elif key.startswith(epstatus.PREFIX):
            name = key[len(epstatus.PREFIX):]
            self.endpoint_status.pop(name, None)
            if isinstance(change.resource, epstatus.EndpointStatus):
                self.endpoint_status[name] = change.resource
            elif change.dropped is not None:
                self._warnings[key] = f"endpoint status {name} ignored: {change.dropped}"

    def _resource(self, change: Change, text: str | None) -> None:
        key = change.key
        plural, _, name = key[len(V3):].partition("/")
        if plural == WEP_PLURAL:
            self.workloads.pop(key, None)
            wep = change.resource
            if isinstance(wep, WorkloadEndpoint) and wep.spec.node == self.node:
                self.workloads[key] = wep
            return
        kind = KINDS.get(plural)
        if kind is None or not name or "/" in name:
            return
        self._forget(plural, name)
        self.raw.pop(key, None)
        res = change.resource
        if res is None:
            if change.dropped is not None:
                self._warnings[key] = str(birdsafe.name_refusal(kind, name) or birdsafe.Refusal(
                    kind, name, "", _reason(change.dropped, key)))
            return
        if kind == "BGPConfiguration" and not birdsafe.CONFIG_NAME.match(name):
            return  # Calico reads `default` and `node.<name>` only
        bad = birdsafe.refusal(kind, name, res)
        if bad is not None:
            self._warnings[key] = str(bad)
            return
        if isinstance(res, Node):
            self.nodes[name] = node_info(name, res)
        elif isinstance(res, BGPPeer):
            self.peers[name] = peer_info(name, res)
        elif isinstance(res, BGPConfiguration):
            self.configs[name] = res.spec
        elif isinstance(res, BGPFilter):
            self.filters[name] = res.spec
        elif isinstance(res, IPPool):
            self.pools[name] = res.spec
            return  # Calico's cache holds pools in their v1 form only
        if text is not None:
            self.raw[key] = text

    def _forget(self, plural: str, name: str) -> None:
        tables: dict[str, dict[str, Any]] = {
            "nodes": self.nodes, "bgppeers": self.peers, "bgpconfigurations": self.configs,
            "bgpfilters": self.filters, "ippools": self.pools}
        tables[plural].pop(name, None)

    def _affinity(self, change: Change) -> None:
        key = change.key
        self.affinities.pop(key, None)
        res = change.resource
        if isinstance(res, Affinity):
            if res.state != AffinityState.PENDING and not res.deleted:
                self.affinities[key] = str(res.state)
        elif change.dropped is not None and calico_keys.parse_affinity_key(key) is not None:
            self._warnings[key] = f"block affinity {key} ignored: {_reason(change.dropped, key)}"


def other_nodes_workload(node: str) -> Callable[[str], bool]:
    """A test for keys of WorkloadEndpoints of other nodes (their names start with the node's
    name, each `-` doubled, then a single `-`): confd drops them before they reach the
    snapshot, so a pod elsewhere in the cluster costs no render."""
    prefix = calico_keys.resource_prefix("WorkloadEndpoint")
    mine = node.replace("-", "--") + "-"

    def other(key: str) -> bool:
        if not key.startswith(prefix):
            return False
        name = key[len(prefix):].partition("/")[2]
        return not name.startswith(mine) or name.startswith(mine + "-")

    return other


def _reason(dropped: str, key: str) -> str:
    """The codec's reason without the key it starts with (the warning names the resource)."""
    return dropped.removeprefix(f"{key}: ")
