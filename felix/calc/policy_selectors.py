"""The selectors Felix actually matches on and the IP sets they become (the update
processors' selector composition, `hash.MakeUniqueID`, `NameForMainIPSet`). Pure.

- `policy_selector` / `entity_selectors`: §1.5 of ../shared/reference/policy.md: a
  NetworkPolicy is limited to its namespace, `namespaceSelector` labels become `pcns.`,
  service accounts `pcsa.` / `projectcalico.org/serviceaccount`, a negated selector folds into
  the positive one.
- `selector_uid` / `named_port_uid` / `set_name` and `IPSetSpec`: what each IP set is and holds.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from dataclasses import dataclass, replace

from libcalico.model import selector as sel
from libcalico.model.resources import EntityRule

PURE = True

LABEL_NAMESPACE = "projectcalico.org/namespace"
LABEL_SERVICE_ACCOUNT = "projectcalico.org/serviceaccount"
NS_PREFIX = "pcns."
SA_PREFIX = "pcsa."
ALL_SELECTOR = "all()"


# ---------------------------------------------------------------------------------------------
# IP set identities (hash.MakeUniqueID) and names (ipsets.IPVersionConfig.NameForMainIPSet)


def unique_id(prefix: str, content: str) -> str:
    digest = hashlib.sha224(f"{prefix}:{content}".encode()).digest()
    return f"{prefix}:" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


@functools.lru_cache(maxsize=16384)
def selector_uid(canonical: str) -> str:
    """`s:<hash>`: the IP set of every address a selector matches."""
    return unique_id("s", canonical)


def named_port_uid(selector_canonical: str, protocol: str, port_name: str) -> str:
    """`n:<hash>` over `<selector UID>,<tcp|udp|sctp>,<name>`."""
    return unique_id("n", f"{selector_uid(selector_canonical)},{protocol},{port_name}")


def set_name(version: int, uid: str) -> str:
    """The kernel name of a set: `cali40s:…` / `cali60n:…`, at most 31 characters."""
    return f"cali{version}0{uid}"[:31]


@dataclass(frozen=True, slots=True)
class IPSetSpec:
    """What an IP set holds: the addresses of what `selector` matches, or (with a
    `port_name`) `IP,proto:port` of the endpoints that declare that named port."""

    uid: str
    selector: str
    protocol: str = ""
    port_name: str = ""

    @property
    def set_type(self) -> str:
        return "hash:ip,port" if self.port_name else "hash:net"


# ---------------------------------------------------------------------------------------------
# Selector composition (update processors: networkpolicyprocessor.go, rules.go)


@functools.lru_cache(maxsize=16384)
def canonical(text: str) -> str:
    return str(sel.parse(text))


def _prefixed(node: sel.Selector, prefix: str, all_to: str | None = None) -> sel.Selector:
    """`node` with every label key prefixed (and all() replaced by `all_to`, if given)."""
    if isinstance(node, sel.All):
        return sel.parse(all_to) if all_to else node
    if isinstance(node, sel.Not):
        return sel.Not(_prefixed(node.operand, prefix, all_to))
    if isinstance(node, sel.And | sel.Or):
        return type(node)(tuple(_prefixed(op, prefix, all_to) for op in node.operands))
    key = getattr(node, "key", None)
    if isinstance(key, str):
        return replace(node, key=prefix + key)  # type: ignore[type-var]
    return node


def _ns_term(namespace: str) -> str:
    return f"{LABEL_NAMESPACE} == '{namespace}'"


def _and(*parts: str) -> str:
    present = [p for p in parts if p]
    if len(present) == 1:
        return present[0]
    return " && ".join(f"({p})" for p in present)


def prefixed_text(text: str, prefix: str, all_to: str | None = None) -> str:
    return str(_prefixed(sel.parse(text), prefix, all_to))


def policy_selector(selector: str, namespace: str | None, namespace_selector: str = "",
                    service_account_selector: str = "") -> str:
    """The canonical selector of the endpoints a policy applies to."""
    return canonical(policy_selector_text(selector, namespace, namespace_selector,
                                          service_account_selector))


def policy_selector_text(selector: str, namespace: str | None, namespace_selector: str = "",
                         service_account_selector: str = "") -> str:
    """The selector text the update processors compose for a policy. `namespace` for
    namespaced kinds (NetworkPolicy): `(<selector>) && projectcalico.org/namespace == '<ns>'`;
    for GlobalNetworkPolicy the namespaceSelector is ANDed on with `pcns.` keys (and all() ->
    has(projectcalico.org/namespace)); a serviceAccountSelector with `pcsa.` keys."""
    text = selector.strip()
    if namespace is not None:
        text = f"({text}) && {_ns_term(namespace)}" if text else _ns_term(namespace)
    elif namespace_selector:
        pre = prefixed_text(namespace_selector, NS_PREFIX)
        text = _and(text, pre)
        text = text.replace("all()", f"has({LABEL_NAMESPACE})")
    if service_account_selector:
        pre = prefixed_text(service_account_selector, SA_PREFIX)
        text = _and(text, pre).replace("all()", f"has({LABEL_SERVICE_ACCOUNT})")
    return text or ALL_SELECTOR


def _sa_text(ent: EntityRule) -> str:
    sa = ent.service_accounts
    if sa is None:
        return ""
    out = prefixed_text(sa.selector, SA_PREFIX) if sa.selector else ""
    if sa.names:
        names = "', '".join(sa.names)
        out = _and(out, f"{LABEL_SERVICE_ACCOUNT} in {{ '{names}' }}")
    return out


def entity_selectors(ent: EntityRule, namespace: str | None) -> tuple[str, str]:
    """(positive, negated) canonical selectors of one side of a rule ("" when absent), as
    GetEntityRuleSelector composes them and Felix folds them (combineMatchesIfPossible)."""
    if ent.namespace_selector:
        ns = prefixed_text(ent.namespace_selector, NS_PREFIX, f"has({LABEL_NAMESPACE})")
        ns = re.sub(r"global\(\)", f"!has({LABEL_NAMESPACE})", ns)
    elif namespace is not None:
        ns = _ns_term(namespace)
    else:
        ns = ""
    positive = _and(ent.selector or "", _sa_text(ent))
    if ns and (ent.selector or ent.not_selector or ent.namespace_selector):
        positive = _and(ns, positive)
    negated = ent.not_selector or ""
    if positive and negated:
        positive = f"({positive}) && (!({negated}))"
        negated = ""
    return (canonical(positive) if positive else "", canonical(negated) if negated else "")
