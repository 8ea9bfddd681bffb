"""The typed resources Felix reads, by datastore key, with the per-resource views the
calculation uses (taken once when a resource arrives, not on every computation). Pure."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import TypeVar

from felix.calc.kernelsafe import kernel_mac
from felix.calc.policy_chains import EndpointOptions
from felix.calc.policy_entries import key_of
from felix.calc.policy_index import PolicyIndex
from felix.calc.policy_state import PolicyState
from libcalico.model import codec
from libcalico.model.resources import (
    BGPConfiguration,
    FelixConfiguration,
    GlobalNetworkPolicy,
    GlobalNetworkSet,
    HostEndpoint,
    NetworkPolicy,
    NetworkSet,
    Node,
    Profile,
    StagedGlobalNetworkPolicy,
    StagedNetworkPolicy,
    Tier,
    WorkloadEndpoint,
)

PURE = True

DEFAULT_NORMAL_ROUTE_PRIORITY = 1024


@dataclass(frozen=True, slots=True)
class EndpointView:
    """The facts of one WorkloadEndpoint that the calculation reads, taken once per resource
    (the resource itself has passed the codec and kernelsafe)."""

    key: str
    node: str
    iface: str
    mac: str | None
    ipv4: tuple[ipaddress.IPv4Network, ...]
    ipv6: tuple[ipaddress.IPv6Network, ...]
    profiles: tuple[str, ...]
    labels: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class NodeView:
    name: str
    ipv4: ipaddress.IPv4Interface | None
    ipv6: ipaddress.IPv6Interface | None
    vxlan_addr: ipaddress.IPv4Address | None
    vxlan_mac: str | None
    ipip_addr: ipaddress.IPv4Address | None


def endpoint_view(key: str, wep: WorkloadEndpoint) -> EndpointView:
    s = wep.spec
    v4 = sorted({n for n in s.ip_networks if isinstance(n, ipaddress.IPv4Network)})
    v6 = sorted({n for n in s.ip_networks if isinstance(n, ipaddress.IPv6Network)})
    return EndpointView(key, s.node or "", s.interface_name or "",
                        kernel_mac(s.mac) if s.mac else None, tuple(v4), tuple(v6),
                        s.profiles, tuple(sorted(wep.metadata.labels.items())))


def node_view(node: Node) -> NodeView:
    s = node.spec
    bgp = s.bgp
    v4 = bgp.ipv4_interface if bgp is not None else None
    v6 = bgp.ipv6_interface if bgp is not None else None
    if v4 is None:
        for a in s.addresses:
            cand = ipaddress.ip_interface(str(a.address))
            if isinstance(cand, ipaddress.IPv4Interface):
                v4 = cand
                break
    vx = s.ipv4_vxlan_tunnel_addr
    ipip = bgp.ipv4_ipip_tunnel_addr if bgp is not None else None
    return NodeView(node.metadata.name, v4, v6,
                    vx if isinstance(vx, ipaddress.IPv4Address) else None,
                    kernel_mac(s.vxlan_tunnel_mac_addr) if s.vxlan_tunnel_mac_addr else None,
                    ipip if isinstance(ipip, ipaddress.IPv4Address) else None)


T = TypeVar("T")


class Snapshot:
    """The typed resources Felix reads (libcalico.model resources and IPAM blocks), by
    datastore key. `apply` is the only mutator."""

    def __init__(self) -> None:
        self.objects: dict[str, object] = {}
        self._by_type: dict[type, dict[str, object]] = {}
        self._endpoints_by_node: dict[str, dict[str, EndpointView]] = {}
        self._endpoints: dict[str, EndpointView] = {}
        self._nodes: dict[str, NodeView] = {}
        self._felix_specs: dict[str, dict[str, object]] = {}
        self._policy: PolicyIndex | None = None
        self._policy_states: dict[int, PolicyState] = {}

    def apply(self, key: str, obj: object | None) -> None:
        old = self.objects.get(key)
        if self._policy is not None:
            _feed_policy(self._policy, old, obj)
        self.objects.pop(key, None)
        if old is not None:
            self._by_type[type(old)].pop(key, None)
            view = self._endpoints.pop(key, None)
            if view is not None:
                self._endpoints_by_node.get(view.node, {}).pop(key, None)
            self._nodes.pop(key, None)
            if isinstance(old, FelixConfiguration):     # kept by name, not by key
                self._felix_specs.pop(old.metadata.name, None)
        if obj is None:
            return
        self.objects[key] = obj
        self._by_type.setdefault(type(obj), {})[key] = obj
        if isinstance(obj, WorkloadEndpoint):
            view = self._endpoints[key] = endpoint_view(key, obj)
            self._endpoints_by_node.setdefault(view.node, {})[key] = view
        elif isinstance(obj, Node):
            self._nodes[key] = node_view(obj)
        elif isinstance(obj, FelixConfiguration):
            spec = codec.encode(obj).get("spec")
            self._felix_specs[obj.metadata.name] = dict(spec) if isinstance(spec, dict) else {}

    def policy_states(self, hostname: str, versions: list[int], opts: EndpointOptions
                      ) -> dict[int, PolicyState]:
        """The policy chains and IP sets of each IP version (felix/calc/policy_*.py), kept
        incrementally: the index is fed by `apply`, each state updated by what changed."""
        if self._policy is None or self._policy.hostname != hostname:
            self._policy = PolicyIndex(hostname)
            self._policy_states = {}
            for obj in self.objects.values():
                _feed_policy(self._policy, None, obj)
        index = self._policy
        dirty = index.take_dirty()
        states: dict[int, PolicyState] = {}
        for v in versions:
            state = self._policy_states.get(v)
            if state is None or state.opts != opts:
                state = PolicyState(v, opts)
                state.update(index, index.everything())
            else:
                state.update(index, dirty)
            states[v] = state
        self._policy_states = states
        return states

    def policy_index(self, hostname: str) -> PolicyIndex:
        """The policy index `policy_states` keeps (host endpoints' plans come from it)."""
        if self._policy is None or self._policy.hostname != hostname:
            self.policy_states(hostname, [], EndpointOptions())
        assert self._policy is not None
        return self._policy

    def of(self, cls: type[T]) -> list[T]:
        return list(self._by_type.get(cls, {}).values())  # type: ignore[arg-type]

    def endpoints_on(self, node: str) -> list[EndpointView]:
        """Endpoints of one node (indexed: other nodes' endpoints cost nothing)."""
        return list(self._endpoints_by_node.get(node, {}).values())

    def endpoints(self) -> list[EndpointView]:
        return list(self._endpoints.values())

    def nodes(self) -> dict[str, NodeView]:
        return {n.name: n for n in self._nodes.values()}

    def felix_config(self, hostname: str) -> tuple[dict[str, object] | None,
                                                   dict[str, object] | None]:
        """(FelixConfiguration `node.<hostname>` spec, `default` spec) in Calico's JSON
        shape, as felix.config reads them."""
        return (self._felix_specs.get(f"node.{hostname}"), self._felix_specs.get("default"))

    def normal_route_priorities(self) -> tuple[int, int]:
        """(IPv4, IPv6) normal route priority: BGPConfiguration `default`'s
        ipv4NormalRoutePriority / ipv6NormalRoutePriority, else 1024 (Calico's default). The
        same values confd writes as NRP into BIRD's `krt_metric < NRP` export test."""
        v4 = v6 = DEFAULT_NORMAL_ROUTE_PRIORITY
        for o in self.of(BGPConfiguration):
            if o.metadata.name == "default":
                v4 = o.spec.ipv4_normal_route_priority or v4
                v6 = o.spec.ipv6_normal_route_priority or v6
        return v4, v6


_POLICY_KINDS = (NetworkPolicy, GlobalNetworkPolicy, StagedNetworkPolicy,
                 StagedGlobalNetworkPolicy)


def _feed_policy(index: PolicyIndex, old: object | None, new: object | None) -> None:
    """One datastore change, to the policy index (`new` None: deleted)."""
    res = new if new is not None else old
    if isinstance(res, WorkloadEndpoint):
        index.update_endpoint(key_of(res), new if isinstance(new, WorkloadEndpoint) else None)
    elif isinstance(res, HostEndpoint):
        index.update_host_endpoint(key_of(res), new if isinstance(new, HostEndpoint) else None)
    elif isinstance(res, _POLICY_KINDS):
        index.update_policy(key_of(res), new if isinstance(new, _POLICY_KINDS) else None)
    elif isinstance(res, Tier):
        index.update_tier(res.metadata.name, new if isinstance(new, Tier) else None)
    elif isinstance(res, Profile):
        index.update_profile(res.metadata.name, new if isinstance(new, Profile) else None)
    elif isinstance(res, NetworkSet | GlobalNetworkSet):
        index.update_networkset(key_of(res), new if isinstance(new, NetworkSet | GlobalNetworkSet)
                                else None)
