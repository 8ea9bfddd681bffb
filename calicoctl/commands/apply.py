"""`calicoctl apply|create|replace -f FILE|-`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from calicoctl import resources
from calicoctl.cli import common_options, context

if TYPE_CHECKING:
    from libcalico.client import Client
    from libcalico.model.resources import Resource

_FILE = click.option("-f", "--filename", required=True, metavar="FILE",
                     help="File with one or more resources (YAML or JSON), a directory of "
                          ".yaml/.yml/.json files, or '-' for stdin.")
_NS = click.option("-n", "--namespace", metavar="NS",
                   help="Namespace for namespaced resources that do not name one.")


@click.command()
@_FILE
@_NS
@resources.file_options
@common_options
def apply(filename: str, namespace: str | None, recursive: bool, skip_empty: bool) -> None:
    """Create resources, or update those that exist."""
    docs = resources.read(filename, recursive, skip_empty)
    res = resources.decode_all(docs, "apply", namespace)
    client = context().client()
    resources.run_batch(res, "apply", "applied", lambda r: _apply(client, r))


def _apply(client: Client, res: Resource) -> object:
    """Create, or update what exists. As Calico's calicoctl, a datastore that does not support
    creating the kind (KDD: a Node is the Kubernetes Node) gets an update instead, so that
    applying an existing Node works and an unknown one is "resource does not exist"."""
    from libcalico.errors import DatastoreError

    try:
        return client.apply(res)
    except DatastoreError as exc:
        if type(exc).__name__ != "OperationNotSupported" or \
                getattr(exc, "operation", "") != "Create":
            raise
    return _replace(client, res)


@click.command()
@_FILE
@_NS
@resources.file_options
@click.option("--skip-exists", is_flag=True, help="Skip resources that already exist.")
@common_options
def create(filename: str, namespace: str | None, recursive: bool, skip_empty: bool,
           skip_exists: bool) -> None:
    """Create resources; fails for a resource that exists."""
    from libcalico.errors import AlreadyExists

    docs = resources.read(filename, recursive, skip_empty)
    res = resources.decode_all(docs, "create", namespace)
    client = context().client()
    resources.run_batch(res, "create", "created", client.create,
                        skip=lambda e: skip_exists and isinstance(e, AlreadyExists))


@click.command()
@_FILE
@_NS
@resources.file_options
@common_options
def replace(filename: str, namespace: str | None, recursive: bool, skip_empty: bool) -> None:
    """Replace existing resources (compare-and-swap on resourceVersion when given)."""
    docs = resources.read(filename, recursive, skip_empty)
    res = resources.decode_all(docs, "replace", namespace)
    client = context().client()
    resources.run_batch(res, "replace", "replaced", lambda r: _replace(client, r))


def _replace(client: Client, res: Resource) -> object:
    """Without a resourceVersion, replace what is there now (keeping uid and creation time);
    with one, the write fails if the resource changed since."""
    current = client.get(res.KIND, res.metadata.name, res.metadata.namespace)
    changes: dict[str, object] = {}
    if not res.metadata.resource_version:
        changes["resource_version"] = current.metadata.resource_version
    if not res.metadata.uid:
        changes["uid"] = current.metadata.uid
    if not res.metadata.creation_timestamp:
        changes["creation_timestamp"] = current.metadata.creation_timestamp
    return client.update(resources.with_metadata(res, **changes) if changes else res)
