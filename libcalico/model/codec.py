"""Documents (YAML/JSON, as calicoctl reads them) <-> typed resources <-> Calico's stored JSON.

- `decode(doc, document)`: a dict (one document) -> resource. Rejects unknown fields, checks
  every field as Calico's validator does, fills Calico's defaults. Raises ValidationError
  naming the document, the field (dotted JSON path) and the reason.
- `encode(res)`: resource -> dict in Calico's JSON shape and field order.
- `dumps(res)`: the compact JSON Calico's etcdv3 backend stores (no resourceVersion; Go's
  encoding/json escaping of <, >, &).
- `loads(text)`: stored JSON -> resource (validated and defaulted, as Calico does on read).
- `load_documents(text)`: multi-document YAML or JSON -> list of dicts; `*List` kinds expanded.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any, cast

import orjson
import yaml

from libcalico.errors import FieldError, ValidationError
from libcalico.model import compiler, resources
from libcalico.model.keys import API_VERSION
from libcalico.model.leaf_codecs import BAD
from libcalico.model.metadata import KINDS, KindSpec
from libcalico.model.resources import Resource
from libcalico.model.schema import decode_struct, encode_struct
from libcalico.model.validate import dns1123_label

PURE = True

_TOP = ("apiVersion", "kind", "metadata", "spec")


def kind_spec(kind: str) -> KindSpec:
    spec = KINDS.get(kind)
    if spec is None:
        raise ValidationError(
            [FieldError("kind", f"unknown kind {kind!r}: expected one of"
                        f" {', '.join(sorted(KINDS))}")]
        )
    return spec


def decode(doc: Mapping[str, object], document: str = "") -> Resource:
    """Validate one document and return the typed resource with Calico's defaults filled."""
    if type(doc) is dict:
        kind = doc.get("kind")
        fast = _FAST.get(kind) if type(kind) is str else None
        if fast is None:
            fast = _fast_entry(kind)
        if fast is not None and doc.get("apiVersion") == API_VERSION:
            # The compiled fast path (libcalico.model.compiler): a BAD says only "not
            # plainly valid" (an unknown top-level key included); the full decode below
            # then finds and names the problems.
            ks, shapes, other = fast
            f = shapes.get(tuple(doc))
            res = f(doc) if f is not None else other(doc)
            if res is not BAD:
                return _finish(res, ks, document or _label(doc))  # type: ignore[arg-type]
    return _decode_full(doc, document)


def _decode_full(doc: Mapping[str, object], document: str) -> Resource:
    """decode without the compiled fast path: finds and names every problem."""
    errs: list[FieldError] = []
    if not isinstance(doc, Mapping):
        raise ValidationError("a resource document must be a mapping", document)
    kind = doc.get("kind")
    api = doc.get("apiVersion")
    if not isinstance(kind, str) or not kind:
        raise ValidationError([FieldError("kind", "required field is missing")], document)
    label = document or _label(doc)
    try:
        ks = kind_spec(kind)
    except ValidationError as exc:
        raise exc.with_document(label) from None
    if api != API_VERSION:
        errs.append(
            FieldError("apiVersion", f"expected {API_VERSION!r}, got {api!r}" if api else
                       "required field is missing")
        )
    allowed = set(_TOP) | ({"status"} if ks.has_status else set())
    for k in doc:
        if k not in allowed:
            hint = difflib.get_close_matches(str(k), sorted(allowed), n=1)
            errs.append(FieldError(str(k), f"unknown field {str(k)!r}"
                                   + (f" (did you mean {hint[0]!r}?)" if hint else "")))
    raw = {k: doc[k] for k in ("metadata", "spec", "status") if k in doc and doc[k] is not None}
    md = raw.get("metadata")
    if isinstance(md, dict) and ("selfLink" in md or "managedFields" in md):
        # Known to ObjectMeta but never stored by Calico: accepted and dropped.
        raw["metadata"] = {k: val for k, val in md.items()
                           if k not in ("selfLink", "managedFields")}
    res = decode_struct(ks.cls, raw, "", errs)
    if errs or res is BAD:
        name = md.get("name") if isinstance(md, dict) else None
        if isinstance(name, str) and name and not any(e.path == "metadata.name" for e in errs):
            errs += ks.name_check(name, "metadata.name")  # report it with the others
        raise ValidationError(errs, label)
    out = res
    return _finish(cast(Resource, out), ks, label)


_Fast = tuple[KindSpec, dict[tuple[object, ...], Callable[[object], object]],
              Callable[[Any], object]]
_FAST: dict[str, _Fast] = {}
"""kind -> (KindSpec, compiled shape decoders of its class, decoder of other shapes), filled on
first use."""


def _fast_entry(kind: object) -> _Fast | None:
    ks = KINDS.get(kind) if isinstance(kind, str) else None
    if ks is None:
        return None
    fields = {f.name for f in dataclasses.fields(ks.cls)}
    if fields != ({"metadata", "spec", "status"} if ks.has_status else {"metadata", "spec"}):
        return None  # the compiled decoder would not reject a top-level key decode rejects
    parts = compiler.shapes(ks.cls, ("kind", "apiVersion"))
    if parts is None:
        return None
    entry = (ks, *parts)
    _FAST[kind] = entry  # type: ignore[index]
    return entry


def _finish(res: Resource, ks: KindSpec, label: str) -> Resource:
    md = res.metadata
    if md.name and not md.namespace:  # check_metadata's usual case, without the calls
        errs = ks.name_check(md.name, "metadata.name")
    else:
        errs = check_metadata(res, ks)
    if ks.defaults is not None:
        res = ks.defaults(res)
    if ks.check is not None:
        errs += ks.check(res)
    if errs:
        raise ValidationError(errs, label)
    return res


def check_metadata(res: Resource, ks: KindSpec | None = None) -> list[FieldError]:
    ks = ks or kind_spec(res.KIND)
    errs: list[FieldError] = []
    md = res.metadata
    if not md.name:
        errs.append(FieldError("metadata.name", "required field is missing"))
    else:
        errs += ks.name_check(md.name, "metadata.name")
    if ks.namespaced:
        if md.namespace:
            errs += v_label(md.namespace, "metadata.namespace")
    elif md.namespace:
        errs.append(FieldError("metadata.namespace", f"{res.KIND} is not namespaced: remove"
                               " metadata.namespace"))
    return errs


def v_label(value: str, path: str) -> list[FieldError]:
    return dns1123_label(value, path)


def validate(res: Resource, document: str = "") -> Resource:
    """Check a resource built in code exactly as `decode` checks a document (types included:
    it is encoded and decoded again); return it with Calico's defaults filled."""
    label = document or _res_label(res)
    try:
        doc = encode(res)
    except (AttributeError, TypeError, ValueError) as exc:
        raise ValidationError(f"malformed {res.KIND} value: {exc}", label) from exc
    return decode(doc, label)


def _label(doc: Mapping[str, object]) -> str:
    md = doc.get("metadata")
    name = md.get("name") if isinstance(md, dict) else None
    ns = md.get("namespace") if isinstance(md, dict) else None
    kind = doc.get("kind", "?")
    if name:
        return f"{kind}({ns}/{name})" if ns else f"{kind}({name})"
    return str(kind)


def _res_label(res: Resource) -> str:
    md = res.metadata
    return f"{res.KIND}({md.namespace}/{md.name})" if md.namespace else f"{res.KIND}({md.name})"


def label(res: Resource) -> str:
    """`Kind(name)` or `Kind(namespace/name)`, for messages."""
    return _res_label(res)


# ---------------------------------------------------------------------------------------------
# Encoding


def encode(res: Resource, *, storage: bool = False) -> dict[str, object]:
    """Calico's JSON shape: kind, apiVersion, metadata, spec[, status]. With `storage`, the
    value Calico's etcdv3 backend writes (metadata.resourceVersion removed)."""
    body = encode_struct(res)
    md = body.pop("metadata")
    if storage:
        assert isinstance(md, dict)
        md.pop("resourceVersion", None)
    out: dict[str, object] = {"kind": res.KIND, "apiVersion": API_VERSION, "metadata": md}
    out.update(body)
    return out


_GO_ESCAPES = str.maketrans(
    {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}
)


def go_json(obj: object) -> str:
    """Compact JSON as Go's encoding/json.Marshal writes it."""
    text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
    return text.translate(_GO_ESCAPES)


def dumps(res: Resource) -> str:
    return go_json(encode(res, storage=True))


def loads(text: str, document: str = "", resource_version: str | None = None) -> Resource:
    """A stored value -> resource (validated, defaulted). `resource_version` (the key's mod
    revision) is set in its metadata, as Calico does on read."""
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        # orjson is stricter than Go and the stdlib (NaN, integers beyond 64 bits, lone
        # surrogates): those texts, and the error message for bad ones, are json's.
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ValidationError(f"invalid JSON: {exc}", document) from exc
    if not isinstance(doc, dict):
        raise ValidationError("stored value is not a JSON object", document)
    if resource_version is not None:
        md = doc.get("metadata")
        if isinstance(md, dict):
            md["resourceVersion"] = resource_version
    return decode(doc, document)


# ---------------------------------------------------------------------------------------------
# Documents


class _Loader(yaml.CSafeLoader):
    """YAML as Go's yaml.v2 reads it: no base-60 numbers ("5663:12" stays a string)."""


_Loader.yaml_implicit_resolvers = {
    k: [(tag, rx) for tag, rx in v if tag not in (
        "tag:yaml.org,2002:int", "tag:yaml.org,2002:float")]
    for k, v in yaml.CSafeLoader.yaml_implicit_resolvers.items()
}
_INT = re.compile(
    r"^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"
)
_FLOAT = re.compile(
    r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9_]+(?:[eE][-+][0-9]+)?"
    r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:int", _INT, list("-+0123456789"))
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))
# yaml.v2 also reads y/Y/n/N as booleans.
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:y|Y|n|N)$"),
                              list("yYnN"))
_GO_BOOLS = {"y": True, "yes": True, "true": True, "on": True,
             "n": False, "no": False, "false": False, "off": False}


def _construct_bool(loader: yaml.SafeLoader, node: yaml.Node) -> bool:
    value = loader.construct_scalar(node)  # type: ignore[arg-type]
    return _GO_BOOLS[str(value).lower()]


_Loader.add_constructor("tag:yaml.org,2002:bool", _construct_bool)


def load_documents(text: str) -> list[dict[str, Any]]:
    """Parse multi-document YAML (or JSON) into document dicts; `List` kinds are expanded."""
    stripped = text.lstrip()
    docs: list[object]
    if stripped[:1] in ("{", "["):
        try:
            parsed = json.loads(text)
            docs = parsed if isinstance(parsed, list) else [parsed]
        except ValueError:
            docs = _yaml_docs(text)
    else:
        docs = _yaml_docs(text)
    out: list[dict[str, Any]] = []
    for i, d in enumerate(docs):
        if d is None:
            continue
        if not isinstance(d, dict):
            raise ValidationError(f"document {i + 1} is not a mapping")
        kind = d.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and "items" in d:
            items = d.get("items") or []
            if not isinstance(items, list):
                raise ValidationError([FieldError("items", "expected a list")], f"document {i + 1}")
            for j, item in enumerate(items):
                if not isinstance(item, dict):
                    raise ValidationError(f"item {j} is not a mapping", f"document {i + 1}")
                out.append(item)
        else:
            out.append(d)
    return out


def _yaml_docs(text: str) -> list[object]:
    try:
        return list(yaml.load_all(text, Loader=_Loader))
    except yaml.YAMLError as exc:
        raise ValidationError(f"invalid YAML: {exc}") from exc


def decode_all(text: str) -> list[Resource]:
    """load_documents + decode, each document named by its position and name."""
    out: list[Resource] = []
    for i, doc in enumerate(load_documents(text)):
        out.append(decode(doc, f"document {i + 1} {_label(doc)}"))
    return out


__all__ = [
    "YamlLoader",
    "decode",
    "decode_all",
    "dumps",
    "encode",
    "go_json",
    "load_documents",
    "loads",
    "resources",
    "validate",
]

YamlLoader = _Loader
"""The YAML loader calicoctl and tests use to read documents as Calico (Go yaml.v2) does."""
