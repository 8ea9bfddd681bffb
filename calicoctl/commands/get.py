"""`calicoctl get KIND [NAME...] [-n NS | -A] [-o ps|wide|yaml|json]`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import click

from calicoctl import kinds, output
from calicoctl.cli import common_options, context
from calicoctl.context import Failed

if TYPE_CHECKING:
    from libcalico.client import Client
    from libcalico.model.resources import Resource

FORMATS = ("ps", "wide", "yaml", "json")


@click.command()
@click.argument("kind", metavar="KIND")
@click.argument("names", nargs=-1, metavar="[NAME...]")
@click.option("-o", "--output", "fmt", default="ps", show_default=True, metavar="FORMAT",
              help="ps, wide, yaml or json.")
@click.option("-n", "--namespace", metavar="NS", help="Namespace (namespaced kinds).")
@click.option("-A", "--all-namespaces", is_flag=True, help="All namespaces.")
@common_options
def get(kind: str, names: tuple[str, ...], fmt: str, namespace: str | None,
        all_namespaces: bool) -> None:
    """Show resources of one kind (all of them, or those named)."""
    from libcalico.errors import CalicoError, NotFound

    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise Failed(f"unrecognized output format '{fmt}': use one of {', '.join(FORMATS)}")
    try:
        info = kinds.resolve(kind)
    except kinds.UnknownKind as exc:
        raise Failed(f"Failed to get resources: {exc}") from exc
    if all_namespaces and names:
        raise Failed("a resource cannot be retrieved by name across all namespaces")
    ns = (None if all_namespaces else namespace or "default") if info.namespaced else None
    client = context().client()
    found: list[Resource] = []
    try:
        if names:
            for name in names:
                try:
                    found.append(client.get(info.kind, name, ns))
                except NotFound as exc:
                    who = f"{info.kind}({ns}/{name})" if ns else f"{info.kind}({name})"
                    raise Failed(f"Failed to get resources: resource does not exist: {who}") \
                        from exc
        else:
            found = sorted(client.list(info.kind, ns),
                           key=lambda r: (r.metadata.namespace or "", r.metadata.name))
            if info.kind == "Tier":  # calicoctl lists tiers by order (unset last)
                found.sort(key=kinds.tier_sort_key)
    except CalicoError as exc:
        raise Failed(f"Failed to get resources: {exc}") from exc
    columns = None
    if info.kind == "Node" and fmt == "wide":
        columns = (kinds.NAME, ("ASN", kinds.node_asn(_global_asn(client))),
                   *info.columns(True)[2:])
    click.echo(render(info, [_encode(r) for r in found], fmt, single=len(names) == 1,
                      with_namespace=info.namespaced and all_namespaces, columns=columns),
               nl=False)


def _global_asn(client: Client) -> str:
    """The AS number nodes without their own use: BGPConfiguration default, else 64512."""
    from libcalico.errors import NotFound
    from libcalico.model import codec

    try:
        spec = codec.encode(client.get("BGPConfiguration", "default")).get("spec")
    except NotFound:
        return "64512"
    asn = spec.get("asNumber") if isinstance(spec, dict) else None
    return str(asn) if asn else "64512"


def _encode(res: Resource) -> dict[str, Any]:
    from libcalico.model import codec

    return codec.encode(res)


def render(info: kinds.ResourceKind, docs: list[dict[str, Any]], fmt: str, single: bool,
           with_namespace: bool, columns: tuple[kinds.Column, ...] | None = None) -> str:
    if fmt in ("ps", "wide"):
        return output.resource_table(info, docs, fmt == "wide", with_namespace, columns)
    body: Mapping[str, object] = docs[0] if single and docs else output.as_list(info.kind, docs)
    return output.to_yaml(body) if fmt == "yaml" else output.to_json(body)


