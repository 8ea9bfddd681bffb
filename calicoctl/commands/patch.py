"""`calicoctl patch KIND NAME -p PATCH` (a JSON merge patch, validated like any document)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from calicoctl import documents, kinds, resources
from calicoctl import patch as merge
from calicoctl.cli import common_options, context
from calicoctl.context import Failed

if TYPE_CHECKING:
    from libcalico.model.resources import Resource


@click.command()
@click.argument("kind", metavar="KIND")
@click.argument("name", metavar="NAME")
@click.option("-p", "--patch", "patch_text", required=True, metavar="PATCH",
              help='JSON merge patch, e.g. \'{"spec":{"natOutgoing":true}}\'.')
@click.option("-t", "--type", "patch_type", default="merge", show_default=True,
              type=click.Choice(["merge", "strategic"]),
              help="Patch type: both apply a JSON merge patch.")
@click.option("-n", "--namespace", metavar="NS", help="Namespace (namespaced kinds).")
@common_options
def patch(kind: str, name: str, patch_text: str, patch_type: str,
          namespace: str | None) -> None:
    """Change part of one resource; the result is validated before it is written."""
    from libcalico.errors import ValidationError
    from libcalico.model import codec

    try:
        info = kinds.resolve(kind)
    except kinds.UnknownKind as exc:
        raise Failed(f"Failed to patch resource: {exc}") from exc
    try:
        body = json.loads(patch_text)
    except json.JSONDecodeError as exc:
        raise Failed(f"Failed to patch '{info.kind}' resource: the patch is not valid "
                     f"JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise Failed(f"Failed to patch '{info.kind}' resource: the patch must be a JSON object")
    ns = (namespace or "default") if info.namespaced else None
    who = f"{ns}/{name}" if ns else name

    def change(current: Resource) -> Resource:
        merged = merge.merge_patch(codec.encode(current), body)
        label = f"patch of {info.kind} '{who}'"
        for field, want in (("name", name), ("namespace", ns)):
            got = merged.get("metadata", {}).get(field) if isinstance(
                merged.get("metadata"), dict) else None
            if got != want and not (field == "namespace" and want is None and not got):
                raise Failed(f"Failed to patch '{info.kind}' resource: {label}: "
                             f"[error with field metadata.{field} (cannot be changed)]")
        try:
            updated = codec.decode(merged, document=label)
        except ValidationError as exc:
            raise Failed(f"Failed to patch '{info.kind}' resource: {label}: "
                         f"{documents.describe_errors(exc, merged)}") from exc
        return resources.with_metadata(
            updated, resource_version=current.metadata.resource_version)

    resources.read_modify_write(context().client(), info.kind, name, ns, change,
                                f"Failed to patch '{info.kind}' resource")
    click.echo(f"Successfully patched 1 '{info.kind}' resource")
