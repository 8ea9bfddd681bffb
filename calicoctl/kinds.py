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


def go_float(value: object) -> str:
    """A float64 as Go's `%v` prints it (strconv 'g' with the shortest digits, exponent form
    below 1e-4 and from 1e6): 100, 1.5, 123456, 1e+06, 1.234567e+06."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return text(value)
    if value == 0:
        return "0"
    digits, exp = _shortest(float(value))
    sign = "-" if value < 0 else ""
    if exp < -4 or exp >= 6:
        mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    if exp + 1 >= len(digits):
        return sign + digits + "0" * (exp + 1 - len(digits))
    return f"{sign}{digits[:exp + 1]}.{digits[exp + 1:]}"


def _shortest(value: float) -> tuple[str, int]:
    """The shortest round-trip decimal digits of |value| and its decimal exponent."""
    mant, _, e = f"{abs(value):.17e}".partition("e")
    for prec in range(1, 18):
        cand = f"{abs(value):.{prec - 1}e}"
        if float(cand) == abs(value):
            mant, _, e = cand.partition("e")
            break
    return mant.replace(".", "").rstrip("0") or "0", int(e)


def _pointer(dotted: str) -> Getter:
    """A Go pointer column (`*bool`): `<nil>` when unset."""
    def get(doc: Doc) -> str:
        value = _path(doc, dotted)
        return "<nil>" if value is None else text(value)

    return get


def order(dotted: str) -> Getter:
    """A Go `*float64` column: `<nil>` when unset, else Go's `%v`."""

    def get(doc: Doc) -> str:
        value = _path(doc, dotted)
        return "<nil>" if value is None else go_float(value)

    return get


def _nets(doc: Doc) -> str:
    """calicoctl's `joinAndTruncate .Spec.Nets "," 80`."""
    joined = text(_path(doc, "spec.nets"))
    return joined if len(joined) <= 80 else joined[:77] + "..."


K8S_POLICY_PREFIX = "knp.default."
_OPERATIONS = {"create": "create or apply", "apply": "create or apply",
               "replace": "apply or replace", "delete": "delete"}


def refusal(verb: str, kind: str, name: str, namespace: str | None) -> str | None:
    """Why calicoctl refuses `verb` on this resource, in Calico's words, or None: in etcd mode
    `knp.default.` NetworkPolicies are kube-controllers' copies of Kubernetes policies."""
    if kind == "NetworkPolicy" and name.startswith(K8S_POLICY_PREFIX):
        who = f"{kind}({namespace}/{name})" if namespace else f"{kind}({name})"
        return (f"operation {_OPERATIONS.get(verb, verb)} is not supported on {who}:"
                " kubernetes network policies must be managed through the kubernetes API")
    return None


def tier_sort_key(tier: object) -> tuple[bool, float]:
    """calicoctl's tier list order: by spec.order, tiers without one last (stable)."""
    value = getattr(getattr(tier, "spec", None), "order", None)
    return (value is None, 0.0 if value is None else float(value))


def _pod_selector(doc: Doc) -> str:
    """`{{.Spec.PodSelector}}`: metav1.LabelSelector's generated String()."""
    ps = _path(doc, "spec.podSelector")
    ps = ps if isinstance(ps, Mapping) else {}
    labels = ps.get("matchLabels")
    labels = labels if isinstance(labels, Mapping) else {}
    exprs = ps.get("matchExpressions")
    exprs = exprs if isinstance(exprs, list) else []
    ml = "".join(f"{k}: {text(labels[k])}," for k in sorted(labels))
    me = "".join(
        f"LabelSelectorRequirement{{Key:{text(e.get('key'))},Operator:{text(e.get('operator'))},"
        f"Values:[{' '.join(str(x) for x in e.get('values') or [])}],}},"
        for e in exprs if isinstance(e, Mapping))
    return (f"&LabelSelector{{MatchLabels:map[string]string{{{ml}}},"
            f"MatchExpressions:[]LabelSelectorRequirement{{{me}}},}}")


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
                 ("clusterinformation", "clusterinformations", "clusterinfo", "clusterinfos"),
                 ps=(NAME, ("CLUSTERGUID", col("spec.clusterGUID")),
                     ("CLUSTERTYPE", col("spec.clusterType")),
                     ("CALICOVERSION", col("spec.calicoVersion")),
                     ("DATASTOREREADY", _pointer("spec.datastoreReady")))),
    ResourceKind("FelixConfiguration",
                 ("felixconfiguration", "felixconfigurations", "felixconfig", "felixconfigs")),
    ResourceKind("GlobalNetworkPolicy",
                 ("globalnetworkpolicy", "globalnetworkpolicies", "gnp", "gnps"),
                 wide=(NAME, ("ORDER", order("spec.order")),
                       ("SELECTOR", col("spec.selector")))),
    ResourceKind("GlobalNetworkSet", ("globalnetworkset", "globalnetworksets", "gnetsets"),
                 wide=(NAME, ("NETS", _nets))),
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
                 ("networkpolicy", "networkpolicies", "policy", "np", "policies", "pol",
                  "pols"), namespaced=True,
                 ps=(NAME, ("TIER", col("spec.tier"))),
                 wide=(NAME, ("TIER", col("spec.tier")), ("ORDER", order("spec.order")),
                       ("SELECTOR", col("spec.selector")))),
    ResourceKind("NetworkSet", ("networkset", "networksets", "netsets"), namespaced=True,
                 wide=(NAME, ("NETS", _nets))),
    ResourceKind("Node", ("node", "nodes", "no", "nos"),
                 wide=(NAME, ("ASN", node_asn("64512")),
                       ("IPV4", col("spec.bgp.ipv4Address")),
                       ("IPV6", col("spec.bgp.ipv6Address")))),
    ResourceKind("Profile", ("profile", "profiles", "pro", "pros"),
                 wide=(NAME, ("LABELS", col("spec.labelsToApply")))),
    ResourceKind("StagedGlobalNetworkPolicy",
                 ("stagedglobalnetworkpolicy", "stagedglobalnetworkpolicies", "sgnp", "sgnps"),
                 ps=(NAME, ("TIER", col("spec.tier"))),
                 wide=(NAME, ("TIER", col("spec.tier")), ("ORDER", order("spec.order")),
                       ("SELECTOR", col("spec.selector")))),
    ResourceKind("StagedKubernetesNetworkPolicy",
                 ("stagedkubernetesnetworkpolicy", "stagedkubernetesnetworkpolicies",
                  "stagedkubernetespolicy", "sknp", "stagedkubernetespolicies", "skpol",
                  "skpols"), namespaced=True,
                 wide=(NAME, ("PODSELECTOR", _pod_selector))),
    ResourceKind("StagedNetworkPolicy",
                 ("stagednetworkpolicy", "stagednetworkpolicies", "stagedpolicy", "snp",
                  "stagedpolicies", "spol", "spols"), namespaced=True,
                 ps=(NAME, ("TIER", col("spec.tier"))),
                 wide=(NAME, ("TIER", col("spec.tier")), ("ORDER", order("spec.order")),
                       ("SELECTOR", col("spec.selector")))),
    ResourceKind("Tier", ("tier", "tiers"), ps=(NAME, ("ORDER", order("spec.order")))),
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
