"""Offline rendering: a YAML snapshot of v3 resources → the six BIRD files, with no etcd.

The CLI entry point is `run_render(node, from_file, out_dir, template_dir, confdir) -> int`;
confd/__main__.py wires `calico-confd render --node NAME --from FILE.yaml [--out DIR]` to it.
`snapshot_from_documents` is the pure core (also used by the conformance tests and bench).

The YAML file holds any mix of (multi-document YAML or JSON, `List` kinds expanded):
- projectcalico.org/v3 resources: Node, BGPPeer, BGPConfiguration, BGPFilter, IPPool
  (others are ignored), stored as calicoctl would store them;
- `kind: BlockAffinity` (projectcalico.org/v3, spec: node, cidr, state), this node's blocks;
- `kind: Secret` (v1, data base64 or stringData) for BGP passwords named by secretKeyRef.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import os
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from confd import keyspace
from confd.render import CALICO_JOBS, Renderer, RenderError, RenderJob
from libcalico.errors import CalicoError, ConfigError, ValidationError
from libcalico.model import codec
from libcalico.model import keys as calico_keys


class _Loader(yaml.CSafeLoader):
    """The safe loader with YAML 1.2 scalars: `5663:12` (a BGP community) stays a string
    rather than a base-60 number, and `yes`/`on` stay strings (label values)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:int", "tag:yaml.org,2002:float",
                           "tag:yaml.org,2002:bool")]
    for first, resolvers in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?(?:0|[1-9][0-9_]*)|0x[0-9a-fA-F_]+|0o?[0-7_]+)$"),
    list("-+0123456789"))
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^(?:[-+]?(?:[0-9][0-9_]*)?\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
               r"|\.(?:nan|NaN|NAN))$"),
    list("-+0123456789."))

KINDS = ("Node", "BGPPeer", "BGPConfiguration", "BGPFilter", "IPPool")


def load_documents(text: str, source: str = "") -> list[dict[str, Any]]:
    """Multi-document YAML (or JSON) → list of dicts, `List` kinds expanded."""
    try:
        docs = list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise ValidationError(f"not valid YAML: {exc}", source) from exc
    out: list[dict[str, Any]] = []
    for i, doc in enumerate(docs):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise ValidationError(f"document {i + 1} is not a mapping", source)
        if str(doc.get("kind", "")).endswith("List"):
            out.extend(d for d in doc.get("items") or [] if isinstance(d, dict))
        else:
            out.append(doc)
    return out


def _name(doc: Mapping[str, Any], where: str) -> str:
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        raise ValidationError(f"{where}: metadata.name is required")
    if "/" in name:
        raise ValidationError(f"{where}: metadata.name must not contain '/'")
    return name


def _scalar_text(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    return v


def resource_value(doc: Mapping[str, Any]) -> str:
    """The JSON Calico stores for a v3 resource (compact, as calicoctl writes it).

    Label and annotation values are strings in Calico's API; a YAML scalar such as `true`
    is read as its text, as Calico's YAML decoder does for string fields."""
    out = dict(doc)
    meta = out.get("metadata")
    if isinstance(meta, dict):
        meta = dict(meta)
        for f in ("labels", "annotations"):
            if isinstance(meta.get(f), dict):
                meta[f] = {k: _scalar_text(v) for k, v in meta[f].items()}
        out["metadata"] = meta
    return json.dumps(out, separators=(",", ":"), sort_keys=True)


def snapshot_from_documents(docs: Iterable[Mapping[str, Any]],
                            source: str = "") -> dict[str, str]:
    """Raw etcd keys → values for the documents (what a real datastore would hold)."""
    snap: dict[str, str] = {}
    for i, doc in enumerate(docs):
        kind = doc.get("kind")
        where = f"{source}document {i + 1} ({kind})"
        if kind in KINDS:
            name = _name(doc, where)
            # Validated by the shared codec (errors name the field); stored as written, as
            # Calico stores string fields verbatim (the codec canonicalises CIDRs, and
            # BGPFilter rules are printed into BIRD exactly as the user wrote them).
            codec.decode(doc, where)
            snap[calico_keys.resource_key(str(kind), name)] = resource_value(doc)
        elif kind == "BlockAffinity":
            spec = doc.get("spec") or {}
            try:
                cidr = ipaddress.ip_network(str(spec.get("cidr", "")))
            except ValueError as exc:
                raise ValidationError(f"{where}: spec.cidr: {exc}") from exc
            node = spec.get("node")
            if not isinstance(node, str) or not node or "/" in node:
                raise ValidationError(f"{where}: spec.node is required")
            snap[calico_keys.affinity_key(node, cidr)] = json.dumps(
                {"state": str(spec.get("state", "")), "deleted": bool(spec.get("deleted"))},
                separators=(",", ":"))
        elif kind == "Secret":
            name = _name(doc, where)
            for k, v in (doc.get("stringData") or {}).items():
                snap[f"{keyspace.SECRETS_PREFIX}{name}/{k}"] = str(v)
            for k, v in (doc.get("data") or {}).items():
                try:
                    value = base64.b64decode(str(v), validate=True).decode()
                except (binascii.Error, UnicodeDecodeError) as exc:
                    raise ValidationError(f"{where}: data.{k} is not base64 text") from exc
                snap[f"{keyspace.SECRETS_PREFIX}{name}/{k}"] = value
    return snap


def affinity_snapshot(affinities: Sequence[Mapping[str, str]]) -> dict[str, str]:
    """Block affinities given as {cidr, host, state} (the conformance kit's form)."""
    snap = {}
    for a in affinities:
        cidr = ipaddress.ip_network(a["cidr"])
        snap[calico_keys.affinity_key(a["host"], cidr)] = json.dumps(
            {"state": a.get("state", ""), "deleted": False}, separators=(",", ":"))
    return snap


def jobs_from_confdir(confdir: Path | None, node: str) -> tuple[RenderJob, ...]:
    """The jobs the conf.d resources define, or Calico's six when there is no conf.d."""
    if confdir is None or not (confdir / "conf.d").is_dir():
        return CALICO_JOBS
    from confd import resource

    return tuple(r.job() for r in resource.load_dir(confdir, node=node))


SHIPPED_TEMPLATES = Path(__file__).resolve().parents[1] / "templates"


def run_render(node: str, from_file: Path | None = None, out_dir: Path | None = None,
               template_dir: Path | None = None, confdir: Path | None = None, *,
               source: Path | None = None, out: Path | None = None) -> int:
    """`calico-confd render`: 0 on success, 1 on bad input or a render error (message on
    stderr, nothing written). `source`/`out` are aliases of `from_file`/`out_dir`; templates
    come from `template_dir`, else `<confdir>/templates`, else the shipped ones."""
    from_file = from_file if from_file is not None else source
    out_dir = out_dir if out_dir is not None else out
    if from_file is None:
        print("calico-confd render: no snapshot file given (--from)", file=sys.stderr)
        return 1
    if template_dir is None:
        template_dir = confdir / "templates" if confdir is not None else SHIPPED_TEMPLATES
    try:
        text = from_file.read_text() if str(from_file) != "-" else sys.stdin.read()
        snap = snapshot_from_documents(load_documents(text, str(from_file)),
                                       f"{from_file}: ")
        jobs = jobs_from_confdir(confdir, node)
        renderer = Renderer(template_dir)
        texts = renderer.render(snap, node, {**os.environ, "NODENAME": node}, jobs)
    except (CalicoError, OSError) as exc:
        print(f"calico-confd render: {exc}", file=sys.stderr)
        return 1
    for w in renderer.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if out_dir is None:
        for job in jobs:
            sys.stdout.write(f"# ==> {_dest_name(job.src)} <==\n{texts[job.src]}")
        return 0
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for job in jobs:
            (out_dir / _dest_name(job.src)).write_text(texts[job.src])
    except OSError as exc:
        print(f"calico-confd render: cannot write to {out_dir}: {exc}", file=sys.stderr)
        return 1
    return 0


def _dest_name(src: str) -> str:
    return src.removesuffix(".template")


__all__ = ["ConfigError", "RenderError", "run_render", "snapshot_from_documents"]
