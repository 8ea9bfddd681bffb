"""Calico's IPAM keys <-> its KDD IPAM custom resources (crd.projectcalico.org/v1), as
libcalico-go's `resources/ipam_block.go`, `ipam_affinity_v1.go`, `ipam_handle.go` and
`ipam_config_v1.go` store them.

| key (etcd layout)                               | CR                                  |
|-------------------------------------------------|-------------------------------------|
| `/calico/ipam/v2/assignment/ipvN/block/<cidr>`  | `ipamblocks/<cidr_to_name(cidr)>`   |
| `/calico/ipam/v2/<type>/<host>/ipvN/block/<c>`  | `blockaffinities/<affinity_name>`   |
| `/calico/ipam/v2/handle/<id>`                   | `ipamhandles/<lower(id)>`           |
| `/calico/ipam/v2/config`                        | `ipamconfigs/default`               |

Spec JSON: a block's is its etcd JSON with `affinityClaimTime` for `affinity_claim_time` and
the schema's required `strictAffinity` (false); an affinity's is `state`, `node`, `type`,
`cidr` and `deleted` as the string "true"/"false"; a handle's adds `handleID` (the original
case); the config's is `strictAffinity`, `autoAllocateBlocks`, `maxBlocksPerHost` (etcd:
`strict_affinity`, `auto_allocate_blocks`). Affinities carry the labels
`projectcalico.org/hostname-hash` (base32 of SHA3-256 of the host, no padding),
`projectcalico.org/affinity-type` and `projectcalico.org/ip-version`. Every CR has the
metadata annotation Go writes for an empty ObjectMeta (`{"creationTimestamp":null}`, labels
included for affinities). `deleted` true is the first phase of KDD's two-phase delete: such
objects read as absent.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
from collections.abc import Mapping
from typing import Any

from libcalico.datastore.kubernetes_convert import GROUP_VERSION, METADATA_ANNOTATION, go_json
from libcalico.model import keys

PURE = True

BLOCKS, AFFINITIES, HANDLES, CONFIGS = "ipamblocks", "blockaffinities", "ipamhandles", \
    "ipamconfigs"
KINDS = {BLOCKS: "IPAMBlock", AFFINITIES: "BlockAffinity", HANDLES: "IPAMHandle",
         CONFIGS: "IPAMConfig"}
LABEL_HOST_HASH = "projectcalico.org/hostname-hash"
LABEL_AFFINITY_TYPE = "projectcalico.org/affinity-type"
LABEL_IP_VERSION = "projectcalico.org/ip-version"
CONFIG_NAME = "default"
_MAX_NAME = 253


def cidr_to_name(cidr: str) -> str:
    """Calico's CIDRToName: in the canonical CIDR, up to 3 '.', up to 7 ':' and one '/'
    become '-' (`10.244.0.0/26` -> `10-244-0-0-26`). Never change: names are stored."""
    c = str(ipaddress.ip_network(cidr))
    return c.replace(".", "-", 3).replace(":", "-", 7).replace("/", "-", 1)


def affinity_name(host: str, cidr: str) -> str:
    c = cidr_to_name(cidr)
    name = f"{host}-{c}"
    if len(name) < _MAX_NAME:
        return name
    digest = hashlib.sha256(f"{host}+{c}".encode()).hexdigest()[:11]
    return f"{host[:_MAX_NAME - 1 - len(c) - 13]}-{c}-{digest}"


def hostname_hash(host: str) -> str:
    return base64.b32encode(hashlib.sha3_256(host.encode()).digest()).decode().rstrip("=")


def target(key: str) -> tuple[str, str] | None:
    """(plural, object name) for an IPAM key, or None when KDD has no object for it (the
    IPAM host key `/calico/ipam/v2/host/<host>`)."""
    if key == keys.IPAM_CONFIG_KEY:
        return CONFIGS, CONFIG_NAME
    if key.startswith(keys.HANDLE_PREFIX):
        return HANDLES, key[len(keys.HANDLE_PREFIX):].lower()
    cidr = keys.parse_block_key(key)
    if cidr is not None and key.startswith(keys.block_prefix()):
        return BLOCKS, cidr_to_name(str(cidr))
    aff = keys.parse_affinity_key(key)
    if aff is not None:
        _, host, cidr = aff
        return AFFINITIES, affinity_name(host, str(cidr))
    return None


def scope(prefix: str) -> str | None:
    """The one plural a list/watch prefix lies within, or None."""
    if prefix.startswith(keys.block_prefix()):
        return BLOCKS
    if prefix.startswith(keys.HANDLE_PREFIX):
        return HANDLES
    if prefix == keys.IPAM_CONFIG_KEY:
        return CONFIGS
    for t in ("host/", "virtual/"):
        if prefix.startswith(keys.IPAM_ROOT + t):
            return AFFINITIES
    return None


def affinity_selector(prefix: str) -> str | None:
    """The label selector Calico lists one host's affinities with (`hostname-hash`, and the
    type and IP version when the prefix names them), for a prefix within one host; None for a
    prefix over all hosts (or a partial host name)."""
    for t in ("host", "virtual"):
        root = f"{keys.IPAM_ROOT}{t}/"
        if not prefix.startswith(root):
            continue
        parts = prefix[len(root):].split("/")
        if len(parts) < 2 or not parts[0]:
            return None  # no complete host name: every host's
        sel = [f"{LABEL_HOST_HASH}={hostname_hash(parts[0])}", f"{LABEL_AFFINITY_TYPE}={t}"]
        if len(parts) >= 3 and parts[1] in ("ipv4", "ipv6"):
            sel.append(f"{LABEL_IP_VERSION}={parts[1][-1]}")
        return ",".join(sel)
    return None


def _meta_annotation(labels: Mapping[str, str] | None = None) -> str:
    doc: dict[str, Any] = {"creationTimestamp": None}
    if labels:
        doc["labels"] = {k: labels[k] for k in sorted(labels)}
    return go_json(doc)


def to_cr(key: str, value: str, resource_version: str | None = None) -> dict[str, Any]:
    """The CR for an IPAM key and its etcd-layout JSON value."""
    found = target(key)
    if found is None:
        raise ValueError(f"{key}: not an IPAM object key")
    plural, name = found
    doc = json.loads(value) if value.strip() else {}
    labels: dict[str, str] = {}
    if plural == BLOCKS:
        spec = dict(doc)
        if "affinity_claim_time" in spec:
            spec["affinityClaimTime"] = spec.pop("affinity_claim_time")
        spec.setdefault("strictAffinity", False)
        spec.setdefault("deleted", False)
    elif plural == AFFINITIES:
        aff = keys.parse_affinity_key(key)
        assert aff is not None
        atype, host, cidr = aff
        spec = {"state": doc.get("state", ""), "node": host, "type": atype, "cidr": str(cidr),
                "deleted": "true" if doc.get("deleted") else "false"}
        labels = {LABEL_AFFINITY_TYPE: atype, LABEL_HOST_HASH: hostname_hash(host),
                  LABEL_IP_VERSION: str(cidr.version)}
    elif plural == HANDLES:
        spec = {"handleID": key[len(keys.HANDLE_PREFIX):], "block": doc.get("block") or {},
                "deleted": bool(doc.get("deleted", False))}
    else:
        spec = {"strictAffinity": bool(doc.get("strict_affinity", False)),
                "autoAllocateBlocks": bool(doc.get("auto_allocate_blocks", False))}
        if doc.get("maxBlocksPerHost"):
            spec["maxBlocksPerHost"] = int(doc["maxBlocksPerHost"])
    meta: dict[str, Any] = {"name": name}
    if resource_version:
        meta["resourceVersion"] = resource_version
    if labels:
        meta["labels"] = {k: labels[k] for k in sorted(labels)}
    meta["annotations"] = {METADATA_ANNOTATION: _meta_annotation(labels)}
    return {"apiVersion": GROUP_VERSION, "kind": KINDS[plural], "metadata": meta, "spec": spec}


def deleted(plural: str, cr: Mapping[str, Any]) -> bool:
    """The first phase of a two-phase delete has marked this object."""
    flag = (cr.get("spec") or {}).get("deleted")
    return flag in (True, "true") if plural == AFFINITIES else flag is True


def from_cr(plural: str, cr: Mapping[str, Any]) -> tuple[str, str]:
    """(key, etcd-layout JSON value) of an IPAM CR."""
    spec: Mapping[str, Any] = cr.get("spec") or {}
    name = str((cr.get("metadata") or {}).get("name") or "")
    out: dict[str, Any]
    if plural == BLOCKS:
        out = dict(spec)
        claim = out.pop("affinityClaimTime", None)
        out.pop("strictAffinity", None)  # deprecated; the schema requires it, etcd has none
        ordered: dict[str, Any] = {"cidr": out.pop("cidr", None),
                                   "affinity": out.pop("affinity", None)}
        if claim is not None:
            ordered["affinity_claim_time"] = claim
        ordered.update(out)
        key = keys.block_key(ipaddress.ip_network(str(ordered["cidr"])))
        return key, json.dumps(ordered, separators=(",", ":"))
    if plural == AFFINITIES:
        cidr = ipaddress.ip_network(str(spec.get("cidr")))
        atype = str(spec.get("type") or "host")
        key = keys.affinity_key(str(spec.get("node")), cidr, atype)
        out = {"state": spec.get("state", ""), "deleted": spec.get("deleted") in (True, "true")}
        return key, json.dumps(out, separators=(",", ":"))
    if plural == HANDLES:
        key = keys.handle_key(str(spec.get("handleID") or name))
        out = {"block": spec.get("block") or {}, "deleted": bool(spec.get("deleted", False))}
        return key, json.dumps(out, separators=(",", ":"))
    out = {}
    if spec.get("strictAffinity"):
        out["strict_affinity"] = True
    if spec.get("autoAllocateBlocks"):
        out["auto_allocate_blocks"] = True
    if spec.get("maxBlocksPerHost"):
        out["maxBlocksPerHost"] = int(spec["maxBlocksPerHost"])
    return keys.IPAM_CONFIG_KEY, json.dumps(out, separators=(",", ":"))


def mark_deleted(plural: str, cr: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of `cr` with the first-phase mark set."""
    spec = dict(cr.get("spec") or {})
    spec["deleted"] = "true" if plural == AFFINITIES else True
    return {**cr, "spec": spec}
