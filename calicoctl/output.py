"""Printers for `calicoctl get`: the ps/wide tables and the YAML/JSON documents (pure)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import yaml

from calicoctl.kinds import Column, ResourceKind

PURE = True

API_VERSION = "projectcalico.org/v3"


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):  # type: ignore[misc]
    """No anchors/aliases: a resource listed twice is printed twice, as calicoctl does."""

    def ignore_aliases(self, data: object) -> bool:
        return True


# Go's tabwriter as calicoctl configures it: minwidth 5, padding 3, spaces.
_MIN_WIDTH = 5
_PADDING = 3


def table(rows: Sequence[Sequence[str]]) -> str:
    """Align cells like tabwriter: every column but the last padded to its widest cell + 3."""
    if not rows:
        return ""
    ncols = max(len(r) for r in rows)
    widths = [0] * ncols
    for r in rows:
        for i, cell in enumerate(r[:-1]):
            widths[i] = max(widths[i], len(cell) + _PADDING, _MIN_WIDTH)
    lines = []
    for r in rows:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(r[:-1])]
        lines.append("".join(parts) + (r[-1] if r else ""))
    return "\n".join(lines) + "\n"


def resource_table(kind: ResourceKind, docs: Sequence[Mapping[str, object]], wide: bool,
                   with_namespace: bool, columns: tuple[Column, ...] | None = None) -> str:
    cols: tuple[Column, ...] = columns or kind.columns(wide)
    if with_namespace:
        cols = (("NAMESPACE", _namespace), *cols)
    rows = [[h for h, _ in cols]]
    rows += [[get(d) for _, get in cols] for d in docs]
    return table(rows)


def _namespace(doc: Mapping[str, object]) -> str:
    meta = doc.get("metadata")
    return str(meta.get("namespace", "")) if isinstance(meta, Mapping) else ""


def as_list(kind: str, docs: Sequence[Mapping[str, object]],
            resource_version: str | None = None) -> dict[str, object]:
    """calicoctl's list wrapper (`kind: IPPoolList`)."""
    meta: dict[str, object] = {}
    if resource_version:
        meta["resourceVersion"] = resource_version
    # Go's field order (JSON output); YAML output sorts the keys.
    return {"kind": f"{kind}List", "apiVersion": API_VERSION, "metadata": meta,
            "items": list(docs)}


def to_yaml(doc: object) -> str:
    """YAML as calicoctl prints it (keys sorted, block style)."""
    return yaml.dump(doc, Dumper=_Dumper, default_flow_style=False, sort_keys=True,
                     allow_unicode=True)


def to_json(doc: object) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"

