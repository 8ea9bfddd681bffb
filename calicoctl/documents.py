"""Reading resource documents (`-f FILE|-`): YAML or JSON, multi-document, `List` kinds.

Every document gets a label that names it in errors: `pools.yaml document 2 (IPPool 'p1')`,
`stdin document 1 item 3 (BGPPeer 'rr')`. Decoding validates every document before anything
is written, so one bad document means nothing from the file reaches the datastore.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from libcalico.errors import ValidationError


class DocumentError(Exception):
    """The input cannot be read or split into documents (a message for the user)."""


@dataclass(frozen=True, slots=True)
class Document:
    label: str
    """How errors name this document: `file document N[ item M]`."""
    data: Mapping[str, Any]

    @property
    def kind(self) -> str:
        k = self.data.get("kind")
        return k if isinstance(k, str) else ""

    @property
    def name(self) -> str:
        meta = self.data.get("metadata")
        n = meta.get("name") if isinstance(meta, Mapping) else None
        return n if isinstance(n, str) else ""

    @property
    def namespace(self) -> str:
        meta = self.data.get("metadata")
        n = meta.get("namespace") if isinstance(meta, Mapping) else None
        return n if isinstance(n, str) else ""

    def describe(self) -> str:
        """The label plus `(Kind 'name')` when the document says so."""
        who = " ".join(p for p in (self.kind, f"'{self.name}'" if self.name else "") if p)
        return f"{self.label} ({who})" if who else self.label


def read_text(filename: str) -> tuple[str, str]:
    """(text, source name). `-` reads stdin."""
    if filename == "-":
        return sys.stdin.read(), "stdin"
    try:
        with open(filename, encoding="utf-8") as f:
            return f.read(), filename
    except OSError as exc:
        raise DocumentError(f"Failed to read file {filename}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise DocumentError(f"Failed to read file {filename}: not UTF-8 text ({exc})") from exc


SUFFIXES = (".yaml", ".yml", ".json")


def files_in(directory: str, recursive: bool) -> list[str]:
    """The .yaml/.yml/.json files of a directory (and its subdirectories), sorted by path."""
    out: list[str] = []
    for root, dirs, names in os.walk(directory):
        dirs.sort()
        out += sorted(os.path.join(root, n) for n in names if n.endswith(SUFFIXES))
        if not recursive:
            break
    return sorted(out)


def read_all(filename: str, recursive: bool = False, skip_empty: bool = False
             ) -> list[Document]:
    """Every document of a file, stdin (`-`) or a directory's files, in order."""
    paths = files_in(filename, recursive) if os.path.isdir(filename) else [filename]
    out: list[Document] = []
    for path in paths:
        text, source = read_text(path)
        out += split(text, source, allow_empty=skip_empty)
    if not out and not skip_empty:
        raise DocumentError(f"No resources specified in {filename}")
    return out


def split(text: str, source: str, allow_empty: bool = False) -> list[Document]:
    """The documents in `text`, with `List` kinds (and JSON arrays) expanded."""
    raw: list[tuple[str, object]] = []
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        raw = _json_stream(text, source)
    else:
        # The codec's loader reads YAML as Go's yaml.v2 does (no base-60 numbers, ...).
        from libcalico.model.codec import YamlLoader as loader

        try:
            for i, doc in enumerate(yaml.load_all(text, Loader=loader), 1):
                if doc is not None:
                    raw.append((f"{source} document {i}", doc))
        except yaml.YAMLError as exc:
            raise DocumentError(f"Failed to parse {source}: invalid YAML: "
                                f"{' '.join(str(exc).split())}") from exc
    out: list[Document] = []
    for label, doc in raw:
        out.extend(_expand(label, doc))
    if not out and not allow_empty:
        raise DocumentError(f"No resources specified in {source}")
    return out


def _json_stream(text: str, source: str) -> list[tuple[str, object]]:
    decoder = json.JSONDecoder()
    pos, n = 0, len(text)
    out: list[tuple[str, object]] = []
    while True:
        while pos < n and text[pos].isspace():
            pos += 1
        if pos >= n:
            return out
        try:
            doc, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise DocumentError(f"Failed to parse {source}: invalid JSON: {exc}") from exc
        out.append((f"{source} document {len(out) + 1}", doc))


def _expand(label: str, doc: object) -> list[Document]:
    if isinstance(doc, list):
        return [d for i, item in enumerate(doc, 1) for d in _expand(f"{label} item {i}", item)]
    if not isinstance(doc, Mapping):
        raise DocumentError(f"{label}: expected a resource (a mapping with apiVersion, kind, "
                            f"metadata, spec), got {type(doc).__name__}")
    kind = doc.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and "items" in doc:
        items = doc.get("items") or []
        if not isinstance(items, list):
            raise DocumentError(f"{label} ({kind}): items must be a list")
        return [d for i, item in enumerate(items, 1)
                for d in _expand(f"{label} item {i}", item)]
    return [Document(label, doc)]


def field_value(doc: Mapping[str, Any], path: str) -> object:
    """The value at a FieldError path (`spec.peers[2].ip`) in a raw document, or None."""
    cur: object = doc
    for part in path.replace("]", "").replace("[", ".").split("."):
        if not part:
            continue
        if isinstance(cur, Mapping):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
    return cur


def describe_errors(err: ValidationError, doc: Mapping[str, Any] | None = None) -> str:
    """`[error with field spec.cidr = '10.0.0.1/33' (reason); ...]` in calicoctl's words."""
    parts = []
    for fe in err.errors:
        if not fe.path:
            parts.append(fe.reason)
            continue
        value = field_value(doc, fe.path) if doc is not None else None
        shown = ""
        if value is not None and not isinstance(value, Mapping | list):
            shown = f" = '{value}'"
        parts.append(f"error with field {fe.path}{shown} ({fe.reason})")
    return "[" + "; ".join(parts) + "]"


def by_kind_summary(kinds: Sequence[str]) -> str | None:
    """The single kind of a batch, or None when it mixes kinds (for the success message)."""
    distinct = set(kinds)
    return next(iter(distinct)) if len(distinct) == 1 else None
