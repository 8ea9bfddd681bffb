"""Kubernetes Secrets as confd's secret keys on KDD: `/calico/secrets/<secret>/<data key>`
holds the decoded value of `data[<data key>]` of the Secret `<secret>` in calico-node's
namespace ($NAMESPACE, default kube-system), as Calico's confd reads BGP passwords
(`secret_watcher.go`). Values are secrets: never logged; one that is not UTF-8 is left out."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from typing import Any

PURE = True

PREFIX = "/calico/secrets/"
DEFAULT_NAMESPACE = "kube-system"


def parse_key(key: str) -> tuple[str, str | None] | None:
    """(secret name, data key or None) for a key or prefix under PREFIX."""
    if not key.startswith(PREFIX):
        return None
    rest = key[len(PREFIX):]
    if not rest:
        return None
    name, sep, data_key = rest.partition("/")
    if not name:
        return None
    return name, (data_key if sep and data_key else None)


def values(secret: Mapping[str, Any]) -> dict[str, str]:
    """key -> plain value for every data entry of a Secret (stringData is never stored)."""
    name = str((secret.get("metadata") or {}).get("name") or "")
    out: dict[str, str] = {}
    for k, v in (secret.get("data") or {}).items():
        try:
            out[f"{PREFIX}{name}/{k}"] = base64.b64decode(str(v), validate=True).decode()
        except (binascii.Error, ValueError, UnicodeDecodeError):
            continue
    return out
