"""The policy kinds' name checks (NetworkPolicy, GlobalNetworkPolicy, Tier) and the
checks of a policy rule that depend on where the rule is (ingress or egress list, namespaced
or global policy). Moved out of resources_policy, which re-exports them."""

from __future__ import annotations

import re

from libcalico.errors import FieldError
from libcalico.model import validate as v
from libcalico.model.resources_endpoint import Rule, rule_check

PURE = True


# ---------------------------------------------------------------------------------------------
# Names

_LABEL = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_SUBDOMAIN = _LABEL + r"(\." + _LABEL + ")*"
_NP_NAME = re.compile(rf"^(({_LABEL})(\.{_LABEL})?|((knp|ossg)\.default\.({_SUBDOMAIN})))$")
_GNP_NAME = re.compile(rf"^({_LABEL}\.)?{_LABEL}$")
_TIER_NAME = re.compile(rf"^{_LABEL}$")
K8S_POLICY_PREFIX = "knp.default."
"""kube-controllers' name prefix for Kubernetes NetworkPolicies mirrored into etcd."""


def _name(regex: re.Pattern[str], limit: int, what: str) -> v.Check:
    def check(value: str, path: str) -> list[FieldError]:
        if len(value) > limit:
            return [FieldError(path, f"name {value!r} is longer than {limit} characters")]
        if not regex.match(value):
            return [FieldError(path, f"invalid {what} name {value!r}: {_NAME_HELP[what]}")]
        return []

    return check


_NAME_HELP = {
    "NetworkPolicy": "lower case alphanumeric characters or '-', with at most one '.'"
                     " (or a knp.default. / ossg.default. prefixed name)",
    "GlobalNetworkPolicy": "lower case alphanumeric characters or '-', with at most one '.'",
    "Tier": "lower case alphanumeric characters or '-' (no '.'), starting and ending with an"
            " alphanumeric character",
}

np_name = _name(_NP_NAME, 253, "NetworkPolicy")
gnp_name = _name(_GNP_NAME, 253, "GlobalNetworkPolicy")
tier_name = _name(_TIER_NAME, 63, "Tier")


# ---------------------------------------------------------------------------------------------
# Rule checks: the rule-level ones are the Profile's (resources_endpoint.rule_check: one rule
# model, one check); here only what depends on where the rule is.


def rule_problems(rule: Rule, path: str, *, ingress: bool, global_policy: bool
                  ) -> list[FieldError]:
    """Every check Calico applies to one policy rule (`ingress` says which list it is in)."""
    errs = rule_check(rule, path)
    if rule.ip_version not in (None, 4, 6):
        errs.append(FieldError(f"{path}.ipVersion", f"{rule.ip_version} is out of range: must"
                               " be 4 or 6"))
    for side, ent in (("source", rule.source), ("destination", rule.destination)):
        for name, nets in (("nets", ent.nets), ("notNets", ent.not_nets)):
            if len(nets) > 256:
                errs.append(FieldError(f"{path}.{side}.{name}", "at most 256 CIDRs"))
        svc = ent.services
        if svc is None:
            continue
        p = f"{path}.{side}.services"
        if side == "source" and not ingress:
            errs.append(FieldError(p, "not allowed in egress rule source"))
        if side == "destination" and ingress:
            errs.append(FieldError(p, "not allowed in ingress rule destination"))
        if global_policy and not svc.namespace and (side == "source") == ingress:
            errs.append(FieldError(f"{p}.namespace", "must specify a namespace"))
    if rule.http is not None and not ingress:
        errs.append(FieldError(f"{path}.http", "not allowed in egress rule"))
    return errs
