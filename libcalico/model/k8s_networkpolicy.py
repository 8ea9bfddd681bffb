"""Kubernetes NetworkPolicy (networking.k8s.io/v1) -> Calico NetworkPolicy, as Calico v3.32
converts it (libcalico-go `lib/backend/k8s/conversion`, `K8sNetworkPolicyToCalico`).

- name `knp.default.<name>` in the policy's namespace, tier default, order 1000;
  uid the Kubernetes uid with its bits reversed (Calico's `ConvertUID`), creationTimestamp
  and resourceVersion carried over;
- selector: `projectcalico.org/orchestrator == 'k8s'`, then `matchLabels` in key order
  (`k == 'v'`), then `matchExpressions` in order (`k in { 'a', 'b' }`, `k not in {…}`,
  `has(k)`, `! has(k)`), joined by ` && ` (Felix adds the namespace term);
- each rule: one Calico Allow rule per protocol (sorted; "" when any port entry is empty or
  there are none) × per peer; a port without protocol is TCP, `endPort` makes `port:endPort`,
  a port entry without `port` means every port of its protocol, numeric ports of one protocol
  merged into ranges after the named ones (`SimplifyPorts`);
- peers: `ipBlock` → `nets` (the CIDR's network) and `notNets` (`except`); else the pod
  selector (orchestrator term, also for a missing podSelector) and the namespace selector
  (`{}` → `all()`, missing → none); ingress puts the peer in `source` and the ports in
  `destination`, egress both in `destination`;
- policyTypes as given (Ingress, then Egress), `[Ingress]` when none;
- a rule that cannot be converted (a bad port, `endPort` on a named port) is dropped and
  named in `Converted.dropped`; the rest of the policy is kept, as Calico does.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from libcalico.errors import ValidationError
from libcalico.model import codec, keys
from libcalico.model.metadata import Metadata
from libcalico.model.resources import NetworkPolicy

PURE = True

NAME_PREFIX = "knp.default."
ORDER = 1000.0
ORCHESTRATOR_TERM = "projectcalico.org/orchestrator == 'k8s'"
_NAMED_PORT = re.compile(r"^[a-zA-Z0-9_.\-]{1,128}$")


class RuleError(ValueError):
    """One Kubernetes rule Calico cannot convert (it drops that rule)."""


@dataclass(frozen=True, slots=True)
class Converted:
    policy: NetworkPolicy
    dropped: tuple[str, ...] = ()
    """One line per dropped rule: `ingress[i]: why` / `egress[i]: why`."""


def policy_name(k8s_name: str) -> str:
    return NAME_PREFIX + k8s_name


def convert_uid(uid: str) -> str:
    """Calico's ConvertUID: the UUID with the bits of each byte reversed, except bytes 6
    (version) and 8 (variant)."""
    try:
        raw = bytearray(uuid.UUID(uid).bytes)
    except ValueError as exc:
        raise ValidationError(f"metadata.uid: failed to parse UID for resource: {exc}") from exc
    for i in (*range(6), 7, *range(9, 16)):
        raw[i] = int(f"{raw[i]:08b}"[::-1], 2)
    return str(uuid.UUID(bytes=bytes(raw)))


def selector(sel: Mapping[str, Any] | None, *, pod: bool) -> str:
    """k8sSelectorToCalico: a pod selector always starts with the orchestrator term; a
    namespace selector that is present but empty is `all()`, a missing one is ``."""
    terms = [ORCHESTRATOR_TERM] if pod else []
    if sel is None:
        return " && ".join(terms)
    labels = sel.get("matchLabels") or {}
    exprs = sel.get("matchExpressions") or []
    if not pod and not labels and not exprs:
        return "all()"
    for k in sorted(labels):
        terms.append(f"{k} == '{labels[k]}'")
    for e in exprs:
        key = e.get("key", "")
        values = "', '".join(str(x) for x in e.get("values") or [])
        op = e.get("operator")
        if op == "In":
            terms.append(f"{key} in {{ '{values}' }}")
        elif op == "NotIn":
            terms.append(f"{key} not in {{ '{values}' }}")
        elif op == "Exists":
            terms.append(f"has({key})")
        elif op == "DoesNotExist":
            terms.append(f"! has({key})")
    return " && ".join(terms)


# A port as Calico's numorstring.Port: (min, max, name); a named port has min = max = 0.
_Port = tuple[int, int, str]


def _parse_port(text: str) -> _Port:
    """numorstring.PortFromString: `N`, `N:M` or a port name."""
    if ":" in text:
        lo, _, hi = text.partition(":")
        if not (lo.isdigit() and hi.isdigit()):
            raise RuleError(f"invalid port {text}: port range must be two numbers")
        a, b = int(lo), int(hi)
        if not (0 <= a <= 65535 and 0 <= b <= 65535) or a > b:
            raise RuleError(f"invalid port {text}: bad port range")
        return (a, b, "")
    if text.isdigit():
        n = int(text)
        if n > 65535:
            raise RuleError(f"invalid port {text}: out of range")
        return (n, n, "")
    if not _NAMED_PORT.match(text):
        raise RuleError(f"invalid port {text}: not a valid port name")
    return (0, 0, text)


def simplify_ports(ports: Sequence[_Port]) -> list[_Port]:
    """SimplifyPorts: named ports first (in order), then the numeric ones merged into the
    fewest ranges; unchanged when there is at most one numeric port."""
    if len(ports) <= 1:
        return list(ports)
    named = [p for p in ports if p[2]]
    numbers = sorted(n for p in ports if not p[2] for n in range(p[0], p[1] + 1))
    if len(numbers) <= 1:
        return list(ports)
    out = list(named)
    i = 0
    while i < len(numbers):
        first = last = numbers[i]
        i += 1
        while i < len(numbers) and numbers[i] <= last + 1:
            last = numbers[i]
            i += 1
        out.append((first, last, ""))
    return out


def _port_json(p: _Port) -> int | str:
    if p[2]:
        return p[2]
    return p[0] if p[0] == p[1] else f"{p[0]}:{p[1]}"


def _cidr(text: str) -> str:
    """cnet.ParseCIDR then .String(): the network of the CIDR (host bits cleared)."""
    return str(ipaddress.ip_network(text, strict=False))


def _peer(peer: Mapping[str, Any] | None) -> dict[str, Any]:
    """k8sPeerToCalicoFields: the EntityRule fields of one peer (none for no peer)."""
    if peer is None:
        return {}
    block = peer.get("ipBlock")
    if block is not None:
        out: dict[str, Any] = {}
        try:
            out["nets"] = [_cidr(block.get("cidr", ""))]
        except ValueError:
            return {}  # Calico logs it and leaves the fields empty
        not_nets: list[str] = []
        for exc in block.get("except") or []:
            try:
                not_nets.append(_cidr(exc))
            except ValueError:
                break
        if not_nets:
            out["notNets"] = not_nets
        return out
    out = {"selector": selector(peer.get("podSelector"), pod=True)}
    ns_sel = selector(peer.get("namespaceSelector"), pod=False)
    if ns_sel:
        out["namespaceSelector"] = ns_sel
    return out


def rules(peers: Sequence[Mapping[str, Any]] | None, ports: Sequence[Mapping[str, Any]] | None,
          *, ingress: bool) -> list[dict[str, Any]]:
    """k8sRuleToCalico: the Calico rules (v3 JSON) of one Kubernetes rule."""
    peer_list: list[Mapping[str, Any] | None] = list(peers or []) or [None]
    by_proto: dict[str, list[_Port] | None] = {}
    for p in ports or [None]:  # type: ignore[list-item]
        if p is None:
            by_proto = {"": None}
            break
        proto = str(p.get("protocol") or "TCP")
        if p.get("port") is None:
            by_proto[proto] = None  # every port of that protocol
            continue
        text = str(p["port"])
        if p.get("endPort") is not None:
            text = f"{text}:{p['endPort']}"
        parsed = _parse_port(text)
        if proto not in by_proto:
            by_proto[proto] = [parsed]
        else:
            have = by_proto[proto]
            if have:  # never widen an all-ports entry
                have.append(parsed)
    out: list[dict[str, Any]] = []
    for proto in sorted(by_proto):
        plist = by_proto[proto]
        port_json = [_port_json(x) for x in simplify_ports(plist)] if plist else []
        for peer in peer_list:
            rule: dict[str, Any] = {"action": "Allow"}
            if proto:
                rule["protocol"] = proto
            fields = _peer(peer)
            if ingress:
                if fields:
                    rule["source"] = fields
                if port_json:
                    rule["destination"] = {"ports": port_json}
            else:
                dest = dict(fields)
                if port_json:
                    dest["ports"] = port_json
                if dest:
                    rule["destination"] = dest
            out.append(rule)
    return out


def convert(obj: Mapping[str, Any]) -> Converted:
    """The Calico NetworkPolicy of a Kubernetes NetworkPolicy object (decoded JSON).
    Raises ValidationError when the result is not a valid Calico policy (or the uid is not a
    UUID); rules Calico would drop are dropped and listed."""
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    name = meta.get("name") or ""
    namespace = meta.get("namespace") or "default"
    dropped: list[str] = []
    directions: dict[str, list[dict[str, Any]]] = {"ingress": [], "egress": []}
    for direction, peers_key in (("ingress", "from"), ("egress", "to")):
        for i, r in enumerate(spec.get(direction) or []):
            try:
                directions[direction] += rules(r.get(peers_key), r.get("ports"),
                                               ingress=direction == "ingress")
            except RuleError as exc:
                dropped.append(f"{direction}[{i}]: k8s rule couldn't be converted: {exc}")
    given = set(spec.get("policyTypes") or [])
    types = [t for t in ("Ingress", "Egress") if t in given] or ["Ingress"]
    out_meta: dict[str, Any] = {"name": policy_name(name), "namespace": namespace}
    if meta.get("uid"):
        out_meta["uid"] = convert_uid(str(meta["uid"]))
    if meta.get("creationTimestamp"):
        out_meta["creationTimestamp"] = meta["creationTimestamp"]
    if meta.get("resourceVersion"):
        out_meta["resourceVersion"] = str(meta["resourceVersion"])
    out_spec: dict[str, Any] = {"tier": "default", "order": ORDER,
                                "selector": selector(spec.get("podSelector") or {}, pod=True),
                                "types": types}
    if directions["ingress"]:
        out_spec["ingress"] = directions["ingress"]
    if directions["egress"]:
        out_spec["egress"] = directions["egress"]
    doc = {"kind": "NetworkPolicy", "apiVersion": keys.API_VERSION, "metadata": out_meta,
           "spec": out_spec}
    res = codec.decode(doc, document=f"NetworkPolicy {namespace}/{name}")
    assert isinstance(res, NetworkPolicy)
    return Converted(res, tuple(dropped))


def to_calico(obj: Mapping[str, Any]) -> NetworkPolicy:
    """The converter hook's shape (`calico_kube_controllers.policy.set_converter`): the
    policy only; dropped rules are left out (Calico logs them)."""
    return convert(obj).policy


def etcd_mirror(obj: Mapping[str, Any]) -> NetworkPolicy:
    """What calico-kube-controllers writes to etcd for a Kubernetes NetworkPolicy
    (`kube-controllers/pkg/converter/networkpolicy_converter.go`): the converted policy with
    only its name and namespace as metadata (no uid, resourceVersion or creationTimestamp, so
    an unchanged policy is never rewritten); dropped rules are left out silently, as there.
    The converter for `calico_kube_controllers.policy.set_converter`."""
    pol = convert(obj).policy
    meta = Metadata(pol.metadata.name, namespace=pol.metadata.namespace)
    return NetworkPolicy(meta, pol.spec)


def is_kubernetes_policy(obj: Mapping[str, Any]) -> bool:
    return (obj.get("kind") == "NetworkPolicy"
            and str(obj.get("apiVersion", "")).startswith("networking.k8s.io/"))
