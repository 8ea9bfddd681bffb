"""The key space: Calico's confd cache, synthesised from the typed inputs of one node.

Calico's confd never reads `/calico/bgp/v1/...` from etcd; it builds those keys in memory from
v3 resources (confd.md c.1/c.2). This module does the same, purely:

    snapshot ──confd.inputs (typed cache, birdsafe)──► Inputs ──synthesise──► KeySpace.values

Keys produced (all under `/calico/`):

- `bgp/v1/global/{as_num,node_mesh,loglevel,listen_port,prefix_advertisements/ip_v4|ip_v6}`
- `bgp/v1/host/<n>/{ip_addr_v4,ip_addr_v6,network_v4,network_v6,as_num,rr_cluster_id,
  wireguard_addr_v4,wireguard_addr_v6,listen_port,loglevel,prefix_advertisements/...}`
- `bgp/v1/global/peer_v4|peer_v6/<ip>[-<port>]`, `bgp/v1/host/<n>/peer_v4|peer_v6/...` (JSON),
  from BGPPeers (confd.peerings)
- `v1/ipam/v4|v6/pool/<cidr ->`  (JSON, IPPoolV3ToV1 shape)
- `ipam/v2/host/<node>/ipv4|ipv6/block/<cidr ->` (this node's, pending ones dropped)
- `staticroutes[v6]/<cidr ->`, `rejectcidrs[v6]/<cidr ->` (BGPConfiguration service ranges),
  plus `staticroutes[v6]/<ip>-32|128` for each Service this node advertises (KDD: Calico's route
  generator, `service_routes`)
- `resources/v3/projectcalico.org/{nodes,bgppeers,bgpconfigurations,bgpfilters}/<name>` as stored

JSON values are also kept as Python values (`KeySpace.parsed`), which is what the view reads:
nothing is parsed back from text.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from confd import bgpfilter, peerings
from confd.inputs import SECRETS_PREFIX, Inputs
from libcalico.model.resources_bgp import (
    BGPConfigurationSpec,
    EnabledDisabled,
    PrefixAdvertisement,
    ServiceIPBlock,
)
from libcalico.model.types import IPAddress, IPNetwork

PURE = True

__all__ = ["SECRETS_PREFIX", "KeySpace", "KeySpaceBuilder", "synthesise"]

ROOT = "/calico/"
DEFAULT_AS = "64512"
LB_EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"
_ENCAP = {"": "", "Never": "", "Always": "always", "CrossSubnet": "cross-subnet"}


class KeySpace:
    """The synthesised keys (`values`) plus the inputs they came from. Read-only once built;
    `sorted_keys` is computed on first use and shared by every reader."""

    def __init__(self, values: Mapping[str, str], resources: Inputs,
                 warnings: tuple[str, ...],
                 hosts: Mapping[str, Mapping[str, str]] | None = None,
                 parsed: Mapping[str, Any] | None = None) -> None:
        self.values = values
        self.hosts: Mapping[str, Mapping[str, str]] = hosts or {}
        """Node name -> the leaf keys of `/calico/bgp/v1/host/<name>/` (ip_addr_v4, as_num,
        listen_port...): the same data as `values`, indexed for the view."""
        self.parsed: Mapping[str, Any] = parsed or {}
        """JSON key -> its value as Python data (peers, pools, blocks, node_mesh, prefix
        advertisements): the same data as `values`."""
        self.resources = resources
        self.warnings = warnings
        self._sorted: list[str] | None = None

    @property
    def sorted_keys(self) -> list[str]:
        if self._sorted is None:
            self._sorted = sorted(self.values)
        return self._sorted

    def keys_under(self, prefix: str) -> list[str]:
        """Keys starting with `prefix`, in byte order (memkv's order)."""
        keys = self.sorted_keys
        i = bisect.bisect_left(keys, prefix)
        j = bisect.bisect_left(keys, prefix + "\U0010ffff")
        return keys[i:j]

    def items_under(self, prefix: str) -> list[tuple[str, str]]:
        values = self.values
        return [(k, values[k]) for k in self.keys_under(prefix)]

    def parsed_under(self, prefix: str) -> list[Any]:
        """The parsed values of the JSON keys under `prefix`, in key order."""
        parsed = self.parsed
        return [parsed[k] for k in self.keys_under(prefix) if k in parsed]


class KeySpaceBuilder:
    """Builds key spaces, keeping the typed inputs (and so the decoded resources) between
    calls: only values that changed since the last build are decoded."""

    def __init__(self) -> None:
        self._inputs: Inputs | None = None

    def inputs(self, snapshot: Mapping[str, str], node: str) -> Inputs:
        if self._inputs is None or self._inputs.node != node:
            self._inputs = Inputs(node)
        self._inputs.sync(snapshot)
        return self._inputs

    def build(self, snapshot: Mapping[str, str], node: str,
              environ: Mapping[str, str]) -> KeySpace:
        return synthesise(self.inputs(snapshot, node), node, environ)


def _dumps(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _seg(net: IPNetwork) -> str:
    return str(net).replace("/", "-")


def _loglevel(level: object) -> str:
    text = str(level).lower() if level else ""
    return text if text in ("debug", "info") else "none"


def _prefix_advertisements(advs: tuple[PrefixAdvertisement, ...], named: Mapping[str, str],
                           version: int, where: str, warnings: list[str]) -> list[Any]:
    out = []
    for adv in advs:
        net = adv.cidr
        if net is None or net.version != version:
            continue
        values: set[str] = set()
        for c in adv.communities:
            value = named.get(c, c)
            try:
                bgpfilter.community(value, "")
            except bgpfilter.FilterError:
                warnings.append(f"BGPConfiguration {where!r}: community {c[:60]!r} of "
                                f"{net} is not defined; left out")
                continue
            values.add(value)
        out.append({"cidr": str(net), "communities": sorted(values)})
    return out


def _communities(*specs: BGPConfigurationSpec) -> dict[str, str]:
    return {c.name: c.value for s in specs for c in s.communities if c.name and c.value}


def synthesise(res: Inputs, node: str, environ: Mapping[str, str]) -> KeySpace:
    v: dict[str, str] = {}
    parsed: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        parsed[key] = value
        v[key] = _dumps(value)

    warnings = list(res.warnings)
    g = ROOT + "bgp/v1/global/"
    default = res.default_config
    v[g + "as_num"] = str(default.as_number) if default.as_number else DEFAULT_AS
    put(g + "node_mesh", {"enabled": default.node_to_node_mesh_enabled is not False})
    v[g + "loglevel"] = _loglevel(default.log_severity_screen or "info")
    if default.listen_port:
        v[g + "listen_port"] = str(default.listen_port)
    if default.prefix_advertisements:
        named = _communities(default)
        for ver in (4, 6):
            put(g + f"prefix_advertisements/ip_v{ver}", _prefix_advertisements(
                default.prefix_advertisements, named, ver, "default", warnings))
    for name, spec in res.configs.items():
        if not name.startswith("node."):
            continue
        h = f"{ROOT}bgp/v1/host/{name[5:]}/"
        if spec.listen_port:
            v[h + "listen_port"] = str(spec.listen_port)
        if spec.log_severity_screen:
            v[h + "loglevel"] = _loglevel(spec.log_severity_screen)
        if spec.prefix_advertisements:
            named = _communities(default, spec)
            for ver in (4, 6):
                put(h + f"prefix_advertisements/ip_v{ver}", _prefix_advertisements(
                    spec.prefix_advertisements, named, ver, name, warnings))
    hosts: dict[str, Mapping[str, str]] = {}
    for n in res.nodes.values():
        hosts[n.name] = n.host_fields
        v.update(n.host_keys)
    for name in res.configs:
        if name.startswith("node.") and name[5:] in hosts:
            prefix = f"{ROOT}bgp/v1/host/{name[5:]}/"
            fields = dict(hosts[name[5:]])
            for leaf in ("listen_port", "loglevel"):
                if prefix + leaf in v:
                    fields[leaf] = v[prefix + leaf]
            hosts[name[5:]] = fields
    for pool in res.pools.values():
        ipip = _ENCAP.get(str(pool.ipip_mode or ""), "")
        put(f"{ROOT}v1/ipam/v{pool.cidr.version}/pool/{_seg(pool.cidr)}", {
            "cidr": str(pool.cidr),
            "ipip": "tunl0" if ipip else "",
            "ipip_mode": ipip,
            "vxlan_mode": _ENCAP.get(str(pool.vxlan_mode or ""), ""),
            "masquerade": pool.nat_outgoing,
            "ipam": not pool.disabled,
            "disabled": pool.disabled,
            "disableBGPExport": pool.disable_bgp_export,
            "assignment_mode": str(pool.assignment_mode or "Automatic"),
        })
    for key, state in res.affinities.items():
        put(key, {"state": state, "deleted": False})
    _static_routes(v, res, node, environ)
    for key, fields in peerings.peerings(res, warnings).items():
        parsed[key] = fields
        v[key] = json.dumps(fields, separators=(",", ":"), sort_keys=True)
    v.update(res.raw)
    return KeySpace(values=v, resources=res, warnings=tuple(warnings), hosts=hosts,
                    parsed=parsed)


def _static_routes(v: dict[str, str], res: Inputs, node: str,
                   environ: Mapping[str, str]) -> None:
    default = res.default_config
    cluster = [t.strip() for t in environ.get("CALICO_ADVERTISE_CLUSTER_IPS", "").split(",")
               if t.strip()]
    sources: list[IPNetwork | None] = []
    for text in cluster:
        try:
            sources.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            continue
    blocks: list[ServiceIPBlock] = []
    if not cluster:
        blocks += default.service_cluster_ips
    blocks += default.service_external_ips
    if default.service_load_balancer_aggregation != EnabledDisabled.DISABLED:
        blocks += default.service_load_balancer_ips
    sources += [b.cidr for b in blocks]
    me = res.nodes.get(node)
    excluded = me is not None and me.labels.get(LB_EXCLUDE_LABEL) == "true"
    for net in sources:
        if net is None or net.prefixlen == net.max_prefixlen:
            continue
        suffix = "v6" if net.version == 6 else ""
        v[f"{ROOT}rejectcidrs{suffix}/{_seg(net)}"] = str(net)
        if not excluded:
            v[f"{ROOT}staticroutes{suffix}/{_seg(net)}"] = str(net)
    if excluded or not res.services:
        return
    from_env = len(sources) - len(blocks)  # the parsed $CALICO_ADVERTISE_CLUSTER_IPS ranges
    advertise_cluster = from_env > 0 if cluster else any(
        b.cidr is not None for b in default.service_cluster_ips)
    node_ref = environ.get("CALICO_K8S_NODE_REF") or node
    for net in service_routes(res, node_ref, default, advertise_cluster):
        suffix = "v6" if net.version == 6 else ""
        v[f"{ROOT}staticroutes{suffix}/{_seg(net)}"] = str(net)


def _nets(blocks: tuple[ServiceIPBlock, ...]) -> list[IPNetwork]:
    return [b.cidr for b in blocks if b.cidr is not None]


def _within(ip: IPAddress | None, nets: list[IPNetwork], single: bool = False) -> bool:
    return ip is not None and any(
        ip in n and (not single or n.prefixlen == n.max_prefixlen) for n in nets)


def service_routes(res: Inputs, node_ref: str, config: BGPConfigurationSpec,
                   advertise_cluster: bool) -> list[IPNetwork]:
    """The /32 and /128 routes this node advertises for Kubernetes Services, as Calico's route
    generator decides (`advertiseThisService`, `getAllRoutesForService`):

    - only Services of type ClusterIP, NodePort or LoadBalancer with a cluster IP;
    - `externalTrafficPolicy: Cluster`: only when a LoadBalancer IP or an external IP falls in
      a single-address (/32, /128) entry of serviceLoadBalancerIPs / serviceExternalIPs;
    - `externalTrafficPolicy: Local`: only with a ready endpoint on this node (`nodeName` =
      CALICO_K8S_NODE_REF or the node name) of the cluster IP's family, from the Service's
      EndpointSlices;
    - the routes: the cluster IP (when cluster IPs are advertised at all), the external IPs
      within serviceExternalIPs, the LoadBalancer ingress IPs within serviceLoadBalancerIPs.
    """
    external = _nets(config.service_external_ips)
    balancers = _nets(config.service_load_balancer_ips)
    families: dict[tuple[str, str], set[int]] = {}
    """(namespace, service) -> the IP versions of its ready endpoints on this node."""
    for sl in res.slices.values():
        for ep in sl.endpoints:
            if ep.ready and ep.node == node_ref:
                families.setdefault((sl.namespace, sl.service), set()).update(
                    a.version for a in ep.addresses)
    out: set[IPNetwork] = set()
    for svc in res.services.values():
        if svc.type not in ("ClusterIP", "NodePort", "LoadBalancer") or svc.cluster_ip is None:
            continue
        advertise = False
        if svc.external_traffic_policy == "Cluster":
            advertise = (svc.type == "LoadBalancer" and any(
                _within(ip, balancers, single=True)
                for ip in (svc.load_balancer_ip, *svc.ingress_ips))) or any(
                _within(ip, external, single=True) for ip in svc.external_ips)
        if not advertise:
            ident = (svc.namespace, svc.name)
            advertise = (svc.external_traffic_policy == "Local"
                         and svc.cluster_ip.version in families.get(ident, ()))
        if not advertise:
            continue
        ips: list[IPAddress] = [svc.cluster_ip] if advertise_cluster else []
        ips += [ip for ip in svc.external_ips if _within(ip, external)]
        ips += [ip for ip in svc.ingress_ips if _within(ip, balancers)]
        out.update(ipaddress.ip_network(ip) for ip in ips)
    return sorted(out, key=lambda n: (n.version, int(n.network_address)))
