"""The key space: Calico's confd cache synthesised from a snapshot of raw etcd keys.

Calico's confd never reads `/calico/bgp/v1/...` from etcd; it builds those keys in memory from
v3 resources (confd.md c.1/c.2). This module does the same, purely:

    snapshot (raw etcd key → JSON as stored)  ──►  KeySpace.values (Calico cache key → string)

Keys produced (all under `/calico/`):

- `bgp/v1/global/{as_num,node_mesh,loglevel,listen_port,prefix_advertisements/ip_v4|ip_v6}`
- `bgp/v1/host/<n>/{ip_addr_v4,ip_addr_v6,network_v4,network_v6,as_num,rr_cluster_id,
  wireguard_addr_v4,wireguard_addr_v6,listen_port,loglevel,prefix_advertisements/...}`
- `bgp/v1/global/peer_v4|peer_v6/<ip>[-<port>]`, `bgp/v1/host/<n>/peer_v4|peer_v6/...` (JSON),
  from BGPPeers (peerIP, peerSelector), first writer wins, plus reverse peerings
- `v1/ipam/v4|v6/pool/<cidr ->`  (JSON, IPPoolV3ToV1 shape)
- `ipam/v2/host/<node>/ipv4|ipv6/block/<cidr ->` (this node's, pending ones dropped)
- `staticroutes[v6]/<cidr ->`, `rejectcidrs[v6]/<cidr ->` (BGPConfiguration service ranges)
- `resources/v3/projectcalico.org/{nodes,bgppeers,bgpconfigurations,bgpfilters}/<name>` as stored

Decoding of v3 resources lives in confd.decode. Values are untrusted: a resource that cannot
be decoded, or whose fields would be unsafe in BIRD (addresses, AS numbers, names), is left
out and reported in `KeySpace.warnings` naming the resource and the field; it never reaches a
template. Decoded resources are cached by (key, value text) across builds.
"""

from __future__ import annotations

import bisect
import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confd import bgpfilter
from confd.decode import (
    KINDS,
    DecodeError,
    IPNetwork,
    Node,
    Peer,
    Pool,
    asn,
    decode_resource,
    duration_seconds,
)
from confd.functions import is_bird_string_safe
from libcalico.model import keys as calico_keys
from libcalico.model import selector as calico_selector

PURE = True

ROOT = "/calico/"
V3 = calico_keys.RESOURCE_ROOT
IPAM_HOST = calico_keys.IPAM_ROOT + "host/"
SECRETS_PREFIX = "/calico/secrets/"
"""Our etcd-mode stand-in for Kubernetes Secrets (Calico reads BGP passwords from Secrets in
$NAMESPACE): `/calico/secrets/<secret name>/<key>` holds the secret value as plain text."""
DEFAULT_AS = "64512"
DEFAULT_PORT = 179
LB_EXCLUDE_LABEL = "node.kubernetes.io/exclude-from-external-load-balancers"


# ----------------------------------------------------------------------------------------------
# The decoded resources, with a cache keyed by (key, value text)
# ----------------------------------------------------------------------------------------------


@dataclass
class Resources:
    nodes: dict[str, Node] = field(default_factory=dict)
    peers: dict[str, Peer] = field(default_factory=dict)
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    """BGPConfiguration name → spec (`default`, `node.<name>`)."""
    filters: dict[str, dict[str, Any]] = field(default_factory=dict)
    """BGPFilter name → spec."""
    pools: dict[str, Pool] = field(default_factory=dict)
    affinities: dict[str, str] = field(default_factory=dict)
    """Affinity key (raw etcd) → state, this node's only, pending dropped."""
    secrets: dict[str, str] = field(default_factory=dict)
    """`<secret name>/<key>` → secret value (BGP passwords), from SECRETS_PREFIX keys."""
    raw: dict[str, str] = field(default_factory=dict)
    """Raw v3 keys (nodes, bgppeers, bgpconfigurations, bgpfilters) copied into the key space."""
    warnings: list[str] = field(default_factory=list)


class KeySpaceBuilder:
    """Builds key spaces, remembering decoded resources between calls."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[str, object, str]] = {}

    def decode(self, snapshot: Mapping[str, str], node: str) -> Resources:
        res = Resources()
        cache = self._cache
        seen: set[str] = set()
        aff_prefix = f"{IPAM_HOST}{node}/"
        for key, text in snapshot.items():
            if key.startswith(aff_prefix):
                _affinity(res, key, text)
                continue
            if key.startswith(SECRETS_PREFIX):
                res.secrets[key[len(SECRETS_PREFIX):]] = text
                continue
            if not key.startswith(V3):
                continue
            parts = key[len(V3):].split("/")
            if len(parts) != 2 or parts[0] not in KINDS:
                continue
            plural, name = parts
            seen.add(key)
            hit = cache.get(key)
            if hit is not None and hit[0] == text:
                obj, err = hit[1], hit[2]
            else:
                try:
                    obj, err = decode_resource(plural, name, text), ""
                except DecodeError as exc:
                    obj, err = None, f"{KINDS[plural]} {name[:80]!r} ignored: {exc}"
                cache[key] = (text, obj, err)
            if err:
                res.warnings.append(err)
                continue
            if obj is None:
                continue
            if plural != "ippools":
                res.raw[key] = text
            if isinstance(obj, Node):
                res.nodes[name] = obj
            elif isinstance(obj, Peer):
                res.peers[name] = obj
            elif isinstance(obj, Pool):
                res.pools[name] = obj
            elif plural == "bgpconfigurations":
                res.configs[name] = obj  # type: ignore[assignment]
            else:
                res.filters[name] = obj  # type: ignore[assignment]
        if len(cache) > len(seen) * 2 + 64:
            for k in [k for k in cache if k not in seen]:
                del cache[k]
        res.warnings.sort()
        return res

    def build(self, snapshot: Mapping[str, str], node: str,
              environ: Mapping[str, str]) -> KeySpace:
        res = self.decode(snapshot, node)
        return synthesise(res, node, environ)


def _affinity(res: Resources, key: str, text: str) -> None:
    parsed = calico_keys.parse_affinity_key(key)
    if parsed is None:
        return
    try:
        value = json.loads(text)
    except ValueError:
        res.warnings.append(f"block affinity {key} ignored: not JSON")
        return
    if not isinstance(value, dict):
        res.warnings.append(f"block affinity {key} ignored: not a JSON object")
        return
    state = value.get("state", "")
    if not isinstance(state, str) or state == "pending" or value.get("deleted") is True:
        return
    res.affinities[key] = state


# ----------------------------------------------------------------------------------------------
# Synthesis
# ----------------------------------------------------------------------------------------------


class KeySpace:
    """The synthesised keys (`values`) plus the decoded resources they came from. Read-only
    once built; `sorted_keys` is computed on first use and shared by every reader."""

    def __init__(self, values: Mapping[str, str], resources: Resources,
                 warnings: tuple[str, ...],
                 hosts: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self.values = values
        self.hosts: Mapping[str, Mapping[str, str]] = hosts or {}
        """Node name → the leaf keys of `/calico/bgp/v1/host/<name>/` (ip_addr_v4, as_num,
        listen_port...): the same data as `values`, indexed for the view."""
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


def _seg(net: IPNetwork) -> str:
    return str(net).replace("/", "-")


def _loglevel(v: Any) -> str:
    text = v.lower() if isinstance(v, str) else ""
    return text if text in ("debug", "info") else "none"


def _prefix_advertisements(spec: Mapping[str, Any], version: int, where: str,
                           warnings: list[str]) -> str:
    named: dict[str, str] = {}
    for c in spec.get("communities") or []:
        named[c["name"]] = c["value"]
    out = []
    for adv in spec.get("prefixAdvertisements") or []:
        net = ipaddress.ip_network(adv["cidr"], strict=False)
        if net.version != version:
            continue
        values: set[str] = set()
        for c in adv.get("communities") or []:
            value = named.get(c, c)
            try:
                bgpfilter._community(value, "")
            except bgpfilter.FilterError:
                warnings.append(f"BGPConfiguration {where!r}: community {c[:60]!r} of "
                                f"{net} is not defined; left out")
                continue
            values.add(value)
        out.append({"cidr": str(net), "communities": sorted(values)})
    return json.dumps(out, separators=(",", ":"))


def _global_port(res: Resources) -> int:
    port = res.configs.get("default", {}).get("listenPort")
    return port if isinstance(port, int) and port else DEFAULT_PORT


def _node_port(res: Resources, name: str) -> int:
    port = res.configs.get(f"node.{name}", {}).get("listenPort")
    return port if isinstance(port, int) and port else _global_port(res)


def synthesise(res: Resources, node: str, environ: Mapping[str, str]) -> KeySpace:
    v: dict[str, str] = {}
    warnings = list(res.warnings)
    g = ROOT + "bgp/v1/global/"
    default = res.configs.get("default", {})
    gas = asn(default.get("asNumber"), "asNumber")
    v[g + "as_num"] = str(gas) if gas else DEFAULT_AS
    mesh = default.get("nodeToNodeMeshEnabled")
    v[g + "node_mesh"] = json.dumps({"enabled": mesh is not False}, separators=(",", ":"))
    v[g + "loglevel"] = _loglevel(default.get("logSeverityScreen") or "info")
    if default.get("listenPort"):
        v[g + "listen_port"] = str(default["listenPort"])
    if default.get("prefixAdvertisements"):
        for ver in (4, 6):
            v[g + f"prefix_advertisements/ip_v{ver}"] = _prefix_advertisements(
                default, ver, "default", warnings)
    for name, spec in res.configs.items():
        if not name.startswith("node."):
            continue
        h = f"{ROOT}bgp/v1/host/{name[5:]}/"
        if spec.get("listenPort"):
            v[h + "listen_port"] = str(spec["listenPort"])
        if spec.get("logSeverityScreen"):
            v[h + "loglevel"] = _loglevel(spec["logSeverityScreen"])
        if spec.get("prefixAdvertisements"):
            merged = dict(spec)
            merged["communities"] = [*(default.get("communities") or []),
                                     *(spec.get("communities") or [])]
            for ver in (4, 6):
                v[h + f"prefix_advertisements/ip_v{ver}"] = _prefix_advertisements(
                    merged, ver, name, warnings)
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
        key = f"{ROOT}v1/ipam/v{pool.cidr.version}/pool/{_seg(pool.cidr)}"
        v[key] = json.dumps({
            "cidr": str(pool.cidr),
            "ipip": "tunl0" if pool.ipip_mode else "",
            "ipip_mode": pool.ipip_mode,
            "vxlan_mode": pool.vxlan_mode,
            "masquerade": pool.nat_outgoing,
            "ipam": not pool.disabled,
            "disabled": pool.disabled,
            "disableBGPExport": pool.disable_bgp_export,
            "assignment_mode": pool.assignment_mode,
        }, separators=(",", ":"))
    for key, state in res.affinities.items():
        v["/calico/" + key[len("/calico/"):]] = json.dumps(
            {"state": state, "deleted": False}, separators=(",", ":"))
    _static_routes(v, res, node, environ)
    _peerings(v, res, warnings)
    v.update(res.raw)
    return KeySpace(values=v, resources=res, warnings=tuple(warnings), hosts=hosts)


def _static_routes(v: dict[str, str], res: Resources, node: str,
                   environ: Mapping[str, str]) -> None:
    default = res.configs.get("default", {})
    cidrs: list[IPNetwork] = []
    cluster = [c.strip() for c in environ.get("CALICO_ADVERTISE_CLUSTER_IPS", "").split(",")
               if c.strip()]
    sources: list[Any] = [{"cidr": c} for c in cluster] or list(
        default.get("serviceClusterIPs") or [])
    sources += list(default.get("serviceExternalIPs") or [])
    if default.get("serviceLoadBalancerAggregation", "Enabled") != "Disabled":
        sources += list(default.get("serviceLoadBalancerIPs") or [])
    for item in sources:
        text = item.get("cidr") if isinstance(item, dict) else None
        if not text:
            continue
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            continue
        if net.prefixlen == net.max_prefixlen:
            continue
        cidrs.append(net)
    me = res.nodes.get(node)
    excluded = me is not None and me.labels.get(LB_EXCLUDE_LABEL) == "true"
    for net in cidrs:
        suffix = "v6" if net.version == 6 else ""
        v[f"{ROOT}rejectcidrs{suffix}/{_seg(net)}"] = str(net)
        if not excluded:
            v[f"{ROOT}staticroutes{suffix}/{_seg(net)}"] = str(net)


# ----------------------------------------------------------------------------------------------
# Peerings (Calico's updatePeersV1, confd.md c.3)
# ----------------------------------------------------------------------------------------------


def _matching(res: Resources, sel: calico_selector.Selector) -> list[Node]:
    return [n for _, n in sorted(res.nodes.items()) if sel.evaluate(n.labels)]


def _node_as(res: Resources, n: Node) -> int:
    return n.as_number or int(res.configs.get("default", {}).get("asNumber") or DEFAULT_AS)


def _node_peer(res: Resources, n: Node, version: int) -> dict[str, Any] | None:
    ip = n.ip(version)
    if ip is None:
        return None
    port = _node_port(res, n.name)
    return {
        "ip": str(ip),
        "as_num": str(_node_as(res, n)),
        "rr_cluster_id": n.rr_cluster_id,
        "port": port if port != DEFAULT_PORT else 0,
    }


def secret(res: Resources, ref: Any) -> str | None:
    """The value a `secretKeyRef` names, or None when it is absent."""
    if not isinstance(ref, dict):
        return None
    return res.secrets.get(f"{ref.get('name', '')}/{ref.get('key', '')}")


def _peer_fields(res: Resources, p: Peer, data: dict[str, Any],
                 warnings: list[str] | None = None) -> dict[str, Any]:
    spec = p.raw
    base: dict[str, Any] = {
        "ip": "",
        "as_num": "",
        "local_as_num": "",
        "rr_cluster_id": "",
        "password": None,
        "source_addr": spec.get("sourceAddress") or "UseNodeIP",
        "restart_time": "",
        "keepalive_time": "",
        "port": 0,
        "keep_next_hop": False,
        "calico_node": False,
        "num_allow_local_as": 0,
        "ttl_security": 0,
        "filters": list(spec.get("filters") or []),
        "reachable_by": "",
        "passive_mode": False,
        "local_bgp_peer": False,
        "next_hop_mode": "",
        "peer_name": p.name,
    }
    nhm = spec.get("nextHopMode") or ""
    local_as = asn(spec.get("localASNumber"), "spec.localASNumber")
    base.update({
        "local_as_num": str(local_as or ""),
        "ttl_security": int(spec.get("ttlSecurity") or 0),
        "num_allow_local_as": int(spec.get("numAllowedLocalASNumbers") or 0),
        "keep_next_hop": bool(spec.get("keepOriginalNextHop")) and not nhm,
        "next_hop_mode": nhm,
    })
    rt = duration_seconds(spec.get("maxRestartTime"), "spec.maxRestartTime")
    if rt is not None:
        base["restart_time"] = str(rt)
    ka = duration_seconds(spec.get("keepaliveTime"), "spec.keepaliveTime")
    if ka is not None:
        base["keepalive_time"] = str(ka)
    pw = spec.get("password")
    if isinstance(pw, dict) and isinstance(pw.get("secretKeyRef"), dict):
        value = secret(res, pw["secretKeyRef"])
        if value is None:
            if warnings is not None:
                warnings.append(f"BGPPeer {p.name!r}: password secret not found; "
                                "peering rendered without a password")
        elif not is_bird_string_safe(value):
            if warnings is not None:
                warnings.append(f"BGPPeer {p.name!r}: password holds a character BIRD cannot "
                                "quote (double quote, newline or control character); "
                                "peering skipped")
            return {}
        else:
            base["password"] = value
    base.update(data)
    return base


def _explicit_peers(res: Resources, p: Peer, warnings: list[str]) -> list[dict[str, Any]]:
    spec = p.raw
    if p.peer_selector is not None:
        out = []
        for n in _matching(res, p.peer_selector):
            for ver in (4, 6):
                d = _node_peer(res, n, ver)
                if d is not None:
                    d = _peer_fields(res, p, d, warnings)
                    if d:
                        out.append(d)
        return out
    if p.peer_ip is None:
        return []
    ip = p.peer_ip
    port = p.peer_port or 0
    calico_node = False
    for n in res.nodes.values():
        if n.ip(ip.version) == ip:
            calico_node = True
            if not port and p.as_number == _node_as(res, n):
                np = _node_port(res, n.name)
                port = np if np != DEFAULT_PORT else 0
    reach = spec.get("reachableBy") or ""
    if reach and ipaddress.ip_address(reach).version != ip.version:
        return []
    d = _peer_fields(res, p, {
        "ip": str(ip),
        "as_num": str(p.as_number or ""),
        "port": port if port != DEFAULT_PORT else 0,
        "calico_node": calico_node,
        "reachable_by": reach,
    }, warnings)
    return [d] if d else []


def _peer_key(d: Mapping[str, Any]) -> str:
    ip = ipaddress.ip_address(d["ip"])
    fam = f"peer_v{ip.version}"
    port = d.get("port") or 0
    return f"{fam}/{ip}" + (f"-{port}" if port and port != DEFAULT_PORT else "")


def _local_nodes(res: Resources, p: Peer) -> list[str]:
    if p.node_selector is not None:
        return [n.name for n in _matching(res, p.node_selector)]
    return [p.node] if p.node else []


def _peerings(v: dict[str, str], res: Resources, warnings: list[str]) -> None:
    out: dict[str, dict[str, Any]] = {}
    ordered = sorted(res.peers.values(), key=lambda p: (not p.is_global, p.name))
    for p in ordered:
        if p.local_workload_selector:
            warnings.append(f"BGPPeer {p.name!r}: localWorkloadSelector peers need endpoint "
                            "status files and are not rendered")
            continue
        peers = _explicit_peers(res, p, warnings)
        if p.is_global:
            for d in peers:
                out.setdefault(f"{ROOT}bgp/v1/global/{_peer_key(d)}", d)
            continue
        for name in _local_nodes(res, p):
            for d in peers:
                gk = f"{ROOT}bgp/v1/global/{_peer_key(d)}"
                if gk in out:
                    continue
                out.setdefault(f"{ROOT}bgp/v1/host/{name}/{_peer_key(d)}", d)
    # Reverse peerings: the nodes a BGPPeer points at peer back to the nodes it applies to.
    for p in ordered:
        if p.local_workload_selector or p.raw.get("reversePeering") == "Manual":
            continue
        remote: list[tuple[Node, tuple[int, ...]]] = []
        if p.peer_selector is not None:
            remote = [(n, (4, 6)) for n in _matching(res, p.peer_selector)]
        elif p.peer_ip is not None:
            ip, port = p.peer_ip, p.peer_port
            for n in sorted(res.nodes.values(), key=lambda n: n.name):
                np = _node_port(res, n.name)
                if (n.ip(ip.version) == ip and p.as_number == _node_as(res, n)
                        and (port is None or port == np)):
                    remote.append((n, (ip.version,)))
        if not remote:
            continue
        if p.node_selector is not None:
            targets = _matching(res, p.node_selector)
        elif p.node:
            targets = [res.nodes[p.node]] if p.node in res.nodes else []
        else:
            targets = sorted(res.nodes.values(), key=lambda n: n.name)
        for n, versions in remote:
            for t in targets:
                for ver in versions:
                    data = _node_peer(res, t, ver)
                    if data is None:
                        continue
                    d = _peer_fields(res, p, data)
                    if not d:
                        continue
                    gk = f"{ROOT}bgp/v1/global/{_peer_key(d)}"
                    if gk in out:
                        continue
                    out.setdefault(f"{ROOT}bgp/v1/host/{n.name}/{_peer_key(d)}", d)
    for k, d in out.items():
        v[k] = json.dumps(d, separators=(",", ":"), sort_keys=True)


def iter_nodes_sorted(res: Resources) -> Iterable[Node]:
    return (res.nodes[k] for k in sorted(res.nodes))
