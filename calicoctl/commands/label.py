"""`calicoctl label KIND NAME KEY=VALUE [--overwrite]` and `... KEY --remove`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from calicoctl import documents, kinds, resources
from calicoctl.cli import common_options, context
from calicoctl.context import Failed

if TYPE_CHECKING:
    from libcalico.model.resources import Resource


@click.command()
@click.argument("kind", metavar="KIND")
@click.argument("name", metavar="NAME")
@click.argument("label", metavar="KEY[=VALUE]")
@click.option("--overwrite", is_flag=True, help="Replace the value of an existing label.")
@click.option("--remove", is_flag=True, help="Remove the label KEY.")
@click.option("-n", "--namespace", metavar="NS", help="Namespace (namespaced kinds).")
@common_options
def label(kind: str, name: str, label: str, overwrite: bool, remove: bool,
          namespace: str | None) -> None:
    """Add, change or remove one label of a resource (compare-and-swap, retried)."""
    from libcalico.errors import ValidationError
    from libcalico.model import codec

    try:
        info = kinds.resolve(kind)
    except kinds.UnknownKind as exc:
        raise Failed(f"Failed to label resource: {exc}") from exc
    key, eq, value = label.partition("=")
    if remove and eq:
        raise click.UsageError("--remove takes KEY only, not KEY=VALUE")
    if not remove and not eq:
        raise click.UsageError("give KEY=VALUE, or KEY with --remove")
    ns = (namespace or "default") if info.namespaced else None
    who = f"{ns}/{name}" if ns else name
    plural = kinds.plural(info)

    def change(current: Resource) -> Resource:
        labels = dict(current.metadata.labels)
        if remove:
            if key not in labels:
                raise Failed(f"Failed to remove label of resource: key {key} is not "
                             f"present on {plural} {who}")
            del labels[key]
        else:
            if key in labels and not overwrite:
                raise Failed(f"Failed to update label of resource: key {key} is already "
                             "present. Please use '--overwrite' to set a new value")
            labels[key] = value
        updated = resources.with_metadata(current, labels=labels)
        try:
            codec.validate(updated, f"{info.kind}({who})")
        except ValidationError as exc:
            raise Failed(f"Failed to update label of resource: "
                         f"{documents.describe_errors(exc)}") from exc
        return updated

    resources.read_modify_write(context().client(), info.kind, name, ns, change,
                                "Failed to update label of resource")
    if remove:
        click.echo(f"Successfully removed label {key} from {plural} {who}")
    else:
        click.echo(f"Successfully set label {key} on {plural} {who}")
