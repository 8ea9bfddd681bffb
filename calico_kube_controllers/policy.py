"""The seam for Kubernetes NetworkPolicy -> Calico NetworkPolicy conversion (etcd mode).

Calico's etcd-mode policy controller writes each Kubernetes NetworkPolicy as a Calico
NetworkPolicy named `knp.default.<name>` in the same namespace
(`kube-controllers/pkg/converter/networkpolicy_converter.go`). The conversion itself belongs
to the network-policy work: it installs it with `set_converter(fn)`, where `fn` takes the
Kubernetes object (decoded JSON) and returns the Calico resource (or None to skip it) and
raises ValidationError for one it cannot convert. Until then the policy controller mirrors
nothing (and deletes nothing).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from libcalico.model.resources import NetworkPolicy

PURE = True

KNP_PREFIX = "knp.default."

PolicyConverter = Callable[[Mapping[str, Any]], NetworkPolicy | None]

_converter: list[PolicyConverter] = []


def set_converter(fn: PolicyConverter | None) -> None:
    _converter.clear()
    if fn is not None:
        _converter.append(fn)


def converter() -> PolicyConverter | None:
    return _converter[0] if _converter else None
