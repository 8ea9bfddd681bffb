"""ObjectMeta as Calico stores it, and the registry of resource kinds.

Field order is Kubernetes' ObjectMeta order (name, generateName, namespace, uid,
resourceVersion, generation, creationTimestamp, deletionTimestamp, deletionGracePeriodSeconds,
labels, annotations, ownerReferences, finalizers), so encoded values match Calico's byte for
byte. (selfLink and managedFields are not kept, as Calico does not store them.)
"""

# ruff: noqa: RUF009 - fields.fld/opt are dataclass field specifiers (dataclasses.field)

from __future__ import annotations

from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import Any

from libcalico.errors import FieldError
from libcalico.model import validate as v
from libcalico.model.fields import fld, opt

PURE = True


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnerReference:
    api_version: str = fld(omitempty=False)
    kind: str = fld(omitempty=False)
    name: str = fld(omitempty=False)
    uid: str = fld(omitempty=False)
    controller: bool | None = opt(ptr=True)
    block_owner_deletion: bool | None = opt(ptr=True)


@dataclass(frozen=True, slots=True)
class Metadata:
    name: str = fld()
    _: KW_ONLY
    generate_name: str | None = opt()
    namespace: str | None = opt()
    uid: str | None = opt()
    resource_version: str | None = opt("resourceVersion")
    """The key's etcd mod revision (as text); never stored in the value."""
    generation: int | None = opt()
    creation_timestamp: datetime | None = opt("creationTimestamp", omitempty=False)
    deletion_timestamp: datetime | None = opt()
    deletion_grace_period_seconds: int | None = opt(ptr=True)
    labels: dict[str, str] = fld(factory=dict, check=v.label_map)
    annotations: dict[str, str] = fld(factory=dict, check=v.annotation_map)
    owner_references: tuple[OwnerReference, ...] = fld(default=())
    finalizers: tuple[str, ...] = fld(default=())


@dataclass(frozen=True, slots=True)
class KindSpec:
    """How one kind is named, checked and defaulted (used by the codec)."""

    cls: type
    namespaced: bool = False
    name_check: Callable[[str, str], list[FieldError]] = v.dns1123_subdomain
    check: Callable[[Any], list[FieldError]] | None = None
    defaults: Callable[[Any], Any] | None = None
    has_status: bool = False


KINDS: dict[str, KindSpec] = {}


def register(spec: KindSpec) -> None:
    KINDS[str(getattr(spec.cls, "KIND"))] = spec  # noqa: B009 - class attribute by contract
