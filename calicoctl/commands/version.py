"""`calicoctl version`: this client's version and the cluster's (ClusterInformation)."""

from __future__ import annotations

import click

from calicoctl.cli import common_options, context
from calicoctl.context import Failed


def client_version() -> str:
    from importlib import metadata

    try:
        return "v" + metadata.version("calico-py")
    except metadata.PackageNotFoundError:
        return "unknown"


@click.command()
@common_options
def version() -> None:
    """Print the client version, and the cluster version when the datastore is reachable."""
    from libcalico.errors import CalicoError

    click.echo(f"Client Version:    {client_version()}")
    click.echo("Git commit:        calico-py")
    try:
        info = context().client().get("ClusterInformation", "default")
        from libcalico.model import codec

        raw = codec.encode(info).get("spec")
        spec = raw if isinstance(raw, dict) else {}
        click.echo(f"Cluster Version:   {spec.get('calicoVersion') or 'unknown'}")
        click.echo(f"Cluster Type:      {spec.get('clusterType') or 'unknown'}")
    except CalicoError as exc:  # as calicoctl: the reason on stderr, exit status 1
        from calicoctl.resources import datastore_reason

        why = datastore_reason(exc, kind="ClusterInformation", name="default")
        raise Failed(f"Unable to retrieve Cluster Version or Type: {why}") from None
