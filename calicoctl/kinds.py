"""The resource kinds calicoctl knows: canonical kind, aliases, and table columns.

Aliases are matched case-insensitively, as calicoctl does (`ippool`, `ippools`, `ipp`, `IPPool`).
Columns are computed from the resource's Calico JSON shape (the codec's `encode` output), so
this module needs nothing but plain dicts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

PURE = True

Doc = Mapping[str, object]
Getter = Callable[[Doc], str]


def _path(doc: Doc, dotted: str) -> object:
    cur: object = doc
    for part in dotted.split("."):
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def text(value: object) -> str:
    """A value as calicoctl's Go templates print it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return ",".join(text(v) for v in value)
    if isinstance(value, Mapping):
        return ",".join(f"{k}={text(v)}" for k, v in sorted(value.items()))
    return str(value)


def col(dotted: str, default: str = "") -> Getter:
    def get(doc: Doc) -> str:
        return text(_path(doc, dotted)) or default

    return get


def _bgppeer_peer(doc: Doc) -> str:
    return text(_path(doc, "spec.peerSelector")) or text(_path(doc, "spec.peerIP"))


def _bgppeer_node(doc: Doc) -> str:
    return (text(_path(doc, "spec.nodeSelector")) or text(_path(doc, "spec.node"))
            or "(global)")


def _wep_workload(doc: Doc) -> str:
    """`workload`, or the pod name for Kubernetes endpoints (calicoctl's WORKLOAD column)."""
    return text(_path(doc, "spec.workload")) or text(_path(doc, "spec.pod"))


def node_asn(default_asn: str) -> Getter:
    """Node ASN for `-o wide`: its own, else the global one in parentheses, as calicoctl."""

    def get(doc: Doc) -> str:
        own = text(_path(doc, "spec.bgp.asNumber"))
        if own:
            return own
        return f"({default_asn})" if isinstance(_path(doc, "spec.bgp"), Mapping) else ""

    return get


def _wep_nats(doc: Doc) -> str:
    nats = _path(doc, "spec.ipNATs")
    if not isinstance(nats, list):
        return ""
    return ",".join(f"{text(n.get('internalIP'))}:{text(n.get('externalIP'))}"
                    for n in nats if isinstance(n, Mapping))


Column = tuple[str, Getter]
NAME: Column = ("NAME", col("metadata.name"))


@dataclass(frozen=True, slots=True)
class ResourceKind:
    kind: str
    aliases: tuple[str, ...]
    namespaced: bool = False
    ps: tuple[Column, ...] = (NAME,)
    wide: tuple[Column, ...] = field(default=())

    def columns(self, wide: bool) -> tuple[Column, ...]:
        return (self.wide or self.ps) if wide else self.ps


_KINDS = (
    ResourceKind("BGPConfiguration",
                 ("bgpconfiguration", "bgpconfigurations", "bgpconfig", "bgpconfigs"),
                 ps=(NAME, ("LOGSEVERITY", col("spec.logSeverityScreen")),
                     ("MESHENABLED", col("spec.nodeToNodeMeshEnabled")),
                     ("ASNUMBER", col("spec.asNumber", "-")))),
    ResourceKind("BGPFilter", ("bgpfilter", "bgpfilters")),
    ResourceKind("BGPPeer", ("bgppeer", "bgppeers", "bgpp", "bgpps", "bp", "bps"),
                 ps=(NAME, ("PEERIP", _bgppeer_peer), ("NODE", _bgppeer_node),
                     ("ASN", col("spec.asNumber")))),
    ResourceKind("ClusterInformation",
                 ("clusterinformation", "clusterinformations", "clusterinfo", "clusterinfos")),
    ResourceKind("FelixConfiguration",
                 ("felixconfiguration", "felixconfigurations", "felixconfig", "felixconfigs")),
    ResourceKind("GlobalNetworkPolicy",
                 ("globalnetworkpolicy", "globalnetworkpolicies", "gnp", "gnps")),
    ResourceKind("GlobalNetworkSet", ("globalnetworkset", "globalnetworksets")),
    ResourceKind("HostEndpoint", ("hostendpoint", "hostendpoints", "hep", "heps"),
                 ps=(NAME, ("NODE", col("spec.node"))),
                 wide=(NAME, ("NODE", col("spec.node")),
                       ("INTERFACE", col("spec.interfaceName")),
                       ("IPS", col("spec.expectedIPs")), ("PROFILES", col("spec.profiles")))),
    ResourceKind("IPAMConfiguration",
                 ("ipamconfiguration", "ipamconfigurations", "ipamconfig", "ipamconfigs")),
    ResourceKind("IPPool", ("ippool", "ippools", "ipp", "ipps", "pool", "pools"),
                 ps=(NAME, ("CIDR", col("spec.cidr")), ("SELECTOR", col("spec.nodeSelector"))),
                 wide=(NAME, ("CIDR", col("spec.cidr")),
                       ("NAT", col("spec.natOutgoing", "false")),
                       ("IPIPMODE", col("spec.ipipMode", "Never")),
                       ("VXLANMODE", col("spec.vxlanMode", "Never")),
                       ("DISABLED", col("spec.disabled", "false")),
                       ("DISABLEBGPEXPORT", col("spec.disableBGPExport", "false")),
                       ("SELECTOR", col("spec.nodeSelector")))),
    ResourceKind("IPReservation", ("ipreservation", "ipreservations"),
                 ps=(NAME, ("CIDRS", col("spec.reservedCIDRs")))),
    ResourceKind("KubeControllersConfiguration",
                 ("kubecontrollersconfiguration", "kubecontrollersconfigurations",
                  "kubecontrollersconfig", "kubecontrollersconfigs")),
    ResourceKind("NetworkPolicy",
                 ("networkpolicy", "networkpolicies", "policy", "policies", "np", "nps",
                  "pol", "pols"), namespaced=True),
    ResourceKind("NetworkSet", ("networkset", "networksets", "netset", "netsets"),
                 namespaced=True),
    ResourceKind("Node", ("node", "nodes", "no", "nos"),
                 wide=(NAME, ("ASN", node_asn("64512")),
                       ("IPV4", col("spec.bgp.ipv4Address")),
                       ("IPV6", col("spec.bgp.ipv6Address")))),
    ResourceKind("Profile", ("profile", "profiles", "pro", "pros"),
                 wide=(NAME, ("LABELS", col("spec.labelsToApply")))),
    ResourceKind("Tier", ("tier", "tiers")),
    ResourceKind("WorkloadEndpoint",
                 ("workloadendpoint", "workloadendpoints", "wep", "weps"), namespaced=True,
                 ps=(("WORKLOAD", _wep_workload), ("NODE", col("spec.node")),
                     ("NETWORKS", col("spec.ipNetworks")),
                     ("INTERFACE", col("spec.interfaceName"))),
                 wide=(NAME, ("WORKLOAD", _wep_workload), ("NODE", col("spec.node")),
                       ("NETWORKS", col("spec.ipNetworks")),
                       ("INTERFACE", col("spec.interfaceName")),
                       ("PROFILES", col("spec.profiles")), ("NATS", _wep_nats))),
)

BY_KIND: dict[str, ResourceKind] = {k.kind: k for k in _KINDS}
_BY_ALIAS: dict[str, ResourceKind] = {
    alias: k for k in _KINDS for alias in (*k.aliases, k.kind.lower())
}


class UnknownKind(LookupError):
    pass


def resolve(name: str) -> ResourceKind:
    """The kind named by `name` (any alias, any case) if the resource model supports it;
    raises UnknownKind."""
    from libcalico.model.resources import KINDS as MODEL_KINDS

    found = _BY_ALIAS.get(name.lower())
    if found is None or found.kind not in MODEL_KINDS:
        raise UnknownKind(f"resource type '{name}' is not supported")
    return found


def plural(kind: ResourceKind) -> str:
    """The lower-case plural calicoctl uses in messages (`nodes`, `ippools`)."""
    from libcalico.model.keys import KINDS as KEY_KINDS

    info = KEY_KINDS.get(kind.kind)
    return info.plural if info is not None else kind.kind.lower() + "s"


def lookup(kind: str) -> ResourceKind | None:
    """The entry for a canonical kind as written in a document (`IPPool`)."""
    return BY_KIND.get(kind)
