"""Tier: the kind, the built-in tiers Calico v3.32 creates and protects, its check and
defaults. Registered by resources_policy (all policy kinds in one place, in Calico's order),
which re-exports these names."""

from __future__ import annotations

# ruff: noqa: RUF009 - fields.fld/opt are dataclass field specifiers (dataclasses.field)
from dataclasses import dataclass, replace
from typing import ClassVar

from libcalico.errors import FieldError
from libcalico.model.fields import fld, opt
from libcalico.model.metadata import Metadata
from libcalico.model.resources_endpoint import Action
from libcalico.model.resources_net import Condition

PURE = True

LABEL_TIER = "projectcalico.org/tier"
DEFAULT_TIER = "default"
KUBE_ADMIN_TIER = "kube-admin"
KUBE_BASELINE_TIER = "kube-baseline"


# ---------------------------------------------------------------------------------------------
# Tier


@dataclass(frozen=True, slots=True, kw_only=True)
class TierSpec:
    order: float | None = opt(ptr=True)
    default_action: Action | None = opt()


@dataclass(frozen=True, slots=True, kw_only=True)
class TierStatus:
    conditions: tuple[Condition, ...] = fld(default=())


@dataclass(frozen=True, slots=True)
class Tier:
    KIND: ClassVar[str] = "Tier"
    metadata: Metadata
    spec: TierSpec = fld(factory=TierSpec)
    status: TierStatus | None = opt()

    @property
    def effective_order(self) -> float:
        """nil order sorts last (+inf)."""
        return float("inf") if self.spec.order is None else self.spec.order


BUILTIN_TIERS: dict[str, tuple[float, Action]] = {
    KUBE_ADMIN_TIER: (1_000.0, Action.PASS),
    DEFAULT_TIER: (1_000_000.0, Action.DENY),
    KUBE_BASELINE_TIER: (10_000_000.0, Action.PASS),
}
"""name -> (order, defaultAction) of the tiers Calico v3.32 creates and protects."""


def builtin_tier(name: str) -> Tier:
    order, action = BUILTIN_TIERS[name]
    return Tier(Metadata(name), TierSpec(order=order, default_action=action))


def tier_check(tier: Tier) -> list[FieldError]:
    errs: list[FieldError] = []
    action = tier.spec.default_action
    if action not in (None, Action.DENY, Action.PASS):
        errs.append(FieldError("spec.defaultAction", f"invalid value {action!r}: must be one"
                               " of Deny, Pass"))
    builtin = BUILTIN_TIERS.get(tier.metadata.name)
    if builtin is not None:
        order, want = builtin
        name = tier.metadata.name
        if tier.spec.order != order:
            errs.append(FieldError("spec.order", f"{name} tier order must be {order:.0f}"))
        if action != want:
            errs.append(FieldError("spec.defaultAction", f"The '{name}' tier must have"
                                   f" default action '{want}'"))
    return errs


def tier_defaults(tier: Tier) -> Tier:
    if tier.spec.default_action is None:
        return replace(tier, spec=replace(tier.spec, default_action=Action.DENY))
    return tier
