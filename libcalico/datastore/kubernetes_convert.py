"""v3 resources <-> Calico's crd.projectcalico.org/v1 custom resources, byte for byte as
libcalico-go's KDD stores them (`resources.go`, `ConvertCalicoResourceToK8sResource` and back;
`conversion.go`, `ConvertUID`).

Write (v3 -> CR):
- the CR's metadata keeps `name`, `namespace`, `resourceVersion` and `uid` (the v3 UID
  converted by `convert_uid`); the rest of the v3 metadata (labels, annotations,
  creationTimestamp, generateName, ownerReferences, finalizers) goes, as Go's ObjectMeta JSON,
  into the annotation `projectcalico.org/metadata`. The name stays in that JSON only for
  (Staged)GlobalNetworkPolicy and (Staged)NetworkPolicy.
- labels and annotations whose key contains `projectcalico.org/` or `operator.tigera.io/` are
  also set on the CR itself (IPAM label selectors rely on that); other user labels live only in
  the JSON.
- `spec` (and `status`) are the v3 JSON unchanged: the v1 group re-registers the v3 types.

Read (CR -> v3): the UID is always converted; without the annotation the CR's own labels,
annotations and creationTimestamp are the v3 ones; with it, labels = CR labels overlaid by the
JSON's, annotations = CR annotations minus the metadata key overlaid by the JSON's, a missing
creationTimestamp falls back to the CR's. Legacy policy names: a JSON without a name and a
tier of `default` (or none) loses a leading `default.`.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

PURE = True

GROUP = "crd.projectcalico.org"
GROUP_VERSION = "crd.projectcalico.org/v1"
V3 = "projectcalico.org/v3"
METADATA_ANNOTATION = "projectcalico.org/metadata"
_OURS = ("projectcalico.org/", "operator.tigera.io/")
NAME_IN_METADATA = frozenset({
    "GlobalNetworkPolicy", "NetworkPolicy", "StagedGlobalNetworkPolicy", "StagedNetworkPolicy",
})

# Go's metav1.ObjectMeta fields in declaration order (encoding/json writes them so).
_OBJECT_META = (
    "name", "generateName", "namespace", "selfLink", "uid", "resourceVersion", "generation",
    "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "labels",
    "annotations", "ownerReferences", "finalizers", "managedFields",
)
_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028",
               "\u2029": "\\u2029"}


def convert_uid(uid: str) -> str:
    """Calico's ConvertUID: reverse the bit order of each of the 16 bytes, keeping bytes 6 and
    8 (version and variant) as they were. Its own inverse. An empty UID stays empty."""
    if not uid:
        return ""
    raw = uuid.UUID(uid).bytes
    out = bytearray(int(f"{b:08b}"[::-1], 2) for b in raw)
    out[6], out[8] = raw[6], raw[8]
    return str(uuid.UUID(bytes=bytes(out)))


def go_json(value: Any) -> str:
    """JSON as Go's encoding/json writes it: compact, map keys sorted, HTML characters and
    U+2028/2029 escaped, other non-ASCII as UTF-8."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, sort_keys=False)
    for ch, esc in _GO_ESCAPES.items():
        if ch in text:
            text = text.replace(ch, esc)
    return text


def _sorted_map(m: Mapping[str, Any]) -> dict[str, Any]:
    return {k: m[k] for k in sorted(m)}


def _ours(key: str) -> bool:
    return any(p in key for p in _OURS)


def to_cr(doc: Mapping[str, Any], *, resource_version: str | None = None) -> dict[str, Any]:
    """The custom resource for the v3 resource `doc` (a decoded v3 JSON object)."""
    kind = str(doc["kind"])
    md: Mapping[str, Any] = doc.get("metadata") or {}
    meta_json: dict[str, Any] = {}
    for field in _OBJECT_META:
        if field in ("namespace", "resourceVersion", "uid"):
            continue
        if field == "name" and kind not in NAME_IN_METADATA:
            continue
        value = md.get(field)
        if field == "creationTimestamp":
            meta_json[field] = value or None  # Go always writes it (null when zero)
        elif field == "ownerReferences" and value:
            meta_json[field] = [_owner(r, (V3,), GROUP_VERSION) for r in value]
        elif value not in (None, "", {}, [], 0):
            meta_json[field] = _sorted_map(value) if isinstance(value, dict) else value
    labels = {k: v for k, v in (md.get("labels") or {}).items() if _ours(k)}
    annotations = {k: v for k, v in (md.get("annotations") or {}).items() if _ours(k)}
    annotations[METADATA_ANNOTATION] = go_json(meta_json)
    meta: dict[str, Any] = {"name": md["name"]}
    if md.get("namespace"):
        meta["namespace"] = md["namespace"]
    if resource_version:
        meta["resourceVersion"] = resource_version
    if md.get("uid"):
        meta["uid"] = convert_uid(str(md["uid"]))
    if labels:
        meta["labels"] = _sorted_map(labels)
    meta["annotations"] = _sorted_map(annotations)
    cr: dict[str, Any] = {"apiVersion": GROUP_VERSION, "kind": kind, "metadata": meta}
    if "spec" in doc:
        cr["spec"] = doc["spec"]
    if "status" in doc:
        cr["status"] = doc["status"]
    return cr


def _owner(ref: Mapping[str, Any], from_versions: tuple[str, ...], to_version: str
           ) -> dict[str, Any]:
    """An owner reference on one of `from_versions` rewritten to `to_version`, its UID
    converted (v3 owners are stored as crd.projectcalico.org/v1 ones, converted back on read)."""
    if ref.get("apiVersion") not in from_versions:
        return dict(ref)
    return {**ref, "apiVersion": to_version, "uid": convert_uid(str(ref.get("uid") or ""))}


def _legacy_policy_name(kind: str, name: str, spec: Mapping[str, Any]) -> str:
    if kind in NAME_IN_METADATA and spec.get("tier", "default") in ("default", "") \
            and name.startswith("default."):
        return name[len("default."):]
    return name


def from_cr(cr: Mapping[str, Any]) -> dict[str, Any]:
    """The v3 resource stored as the custom resource `cr`, metadata as the etcd datastore keeps
    it (no resourceVersion: that is the revision)."""
    kind = str(cr.get("kind") or "")
    crm: Mapping[str, Any] = cr.get("metadata") or {}
    spec: Mapping[str, Any] = cr.get("spec") or {}
    labels = dict(crm.get("labels") or {})
    annotations = dict(crm.get("annotations") or {})
    raw = annotations.pop(METADATA_ANNOTATION, None)
    meta: dict[str, Any] = {}
    name = str(crm.get("name") or "")
    if raw is not None:
        try:
            stored = json.loads(raw)
        except ValueError:
            stored = None
        if isinstance(stored, dict):
            meta = {k: v for k, v in stored.items() if v is not None}
            if isinstance(meta.get("ownerReferences"), list):
                # v1 owners, and v3 ones written before the UID conversion, both convert.
                meta["ownerReferences"] = [
                    _owner(r, (GROUP_VERSION, V3), V3) if isinstance(r, dict) else r
                    for r in meta["ownerReferences"]]
            if "name" not in stored:
                name = _legacy_policy_name(kind, name, spec)
            labels.update(stored.get("labels") or {})
            annotations.update(stored.get("annotations") or {})
    meta.pop("resourceVersion", None)
    meta["name"] = name
    if crm.get("namespace"):
        meta["namespace"] = crm["namespace"]
    else:
        meta.pop("namespace", None)
    if crm.get("uid"):
        meta["uid"] = convert_uid(str(crm["uid"]))
    if not meta.get("creationTimestamp") and crm.get("creationTimestamp"):
        meta["creationTimestamp"] = crm["creationTimestamp"]
    if labels:
        meta["labels"] = labels
    else:
        meta.pop("labels", None)
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    ordered = {f: meta[f] for f in _OBJECT_META if f in meta}
    ordered.update({k: v for k, v in meta.items() if k not in ordered})
    out: dict[str, Any] = {"kind": kind, "apiVersion": V3, "metadata": ordered}
    if "spec" in cr:
        out["spec"] = cr["spec"]
    if "status" in cr:
        out["status"] = cr["status"]
    return out
