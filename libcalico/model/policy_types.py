"""Values the policy kinds share: PolicyType, StagedAction, PerformanceHint and the
controllers' PolicyStatus (moved out of resources_policy, which re-exports them)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from libcalico.model.fields import fld
from libcalico.model.resources_net import Condition

PURE = True


class PolicyType(enum.StrEnum):
    INGRESS = "Ingress"
    EGRESS = "Egress"


class StagedAction(enum.StrEnum):
    SET = "Set"
    DELETE = "Delete"
    LEARN = "Learn"
    IGNORE = "Ignore"


class PerformanceHint(enum.StrEnum):
    ASSUME_NEEDED_ON_EVERY_NODE = "AssumeNeededOnEveryNode"


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyStatus:
    """Written by Calico's controllers (`Valid` condition); kept as read."""

    conditions: tuple[Condition, ...] = fld(default=())
