"""Shared steps of the resource commands: read, validate all, then act one by one."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from calicoctl import documents, kinds
from calicoctl.context import Failed

if TYPE_CHECKING:
    from libcalico.client import Client
    from libcalico.model.resources import Resource

log = logging.getLogger(__name__)

Action = Callable[[Any], object]
T = TypeVar("T")


def read(filename: str, recursive: bool = False, skip_empty: bool = False
         ) -> list[documents.Document]:
    try:
        return documents.read_all(filename, recursive, skip_empty)
    except documents.DocumentError as exc:
        raise Failed(str(exc)) from exc


def file_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """-f FILE|DIR|-, -R, --skip-empty as calicoctl's file commands take them."""
    f = click.option("--skip-empty", is_flag=True,
                     help="Do not fail when a file (or every file of a directory) is empty.")(f)
    f = click.option("-R", "--recursive", is_flag=True,
                     help="With a directory: include its subdirectories.")(f)
    return f


def decode_all(docs: Sequence[documents.Document], verb: str,
               namespace: str | None = None) -> list[Resource]:
    """Decode and validate every document; if any is bad, report all and write nothing.
    Namespaced resources without a namespace get `namespace` (else "default")."""
    from libcalico.errors import ValidationError
    from libcalico.model import codec

    out: list[Resource] = []
    problems: list[str] = []
    bad: set[str] = set()
    seen: dict[str, str] = {}
    for doc in docs:
        what = f"'{doc.kind}' resource" if doc.kind else "resource"
        try:
            res = codec.decode(dict(doc.data), document=doc.describe())
        except ValidationError as exc:
            problems.append(f"Failed to {verb} {what}: {doc.describe()}: "
                            f"{documents.describe_errors(exc, doc.data)}")
            bad.add(doc.label)
            continue
        info = kinds.lookup(res.KIND)
        if info is not None and info.namespaced and not res.metadata.namespace:
            res = with_metadata(res, namespace=namespace or "default")
        why = kinds.refusal(verb, res.KIND, res.metadata.name, res.metadata.namespace)
        if why:
            problems.append(f"Failed to {verb} {what}: {doc.describe()}: [{why}]")
            bad.add(doc.label)
        if verb == "create":
            # What the datastore would refuse half-way through, refused before any write.
            rv = res.metadata.resource_version
            if rv:
                problems.append(f"Failed to create {what}: {doc.describe()}: [error with field "
                                f"metadata.resourceVersion = '{rv}' (must not be set when "
                                "creating)]")
                bad.add(doc.label)
            first = seen.setdefault(ident(res), doc.label)
            if first != doc.label:
                problems.append(f"Failed to create {what}: {doc.describe()}: [{ident(res)} is "
                                f"also defined by {first}]")
                bad.add(doc.label)
        out.append(res)
    if problems:
        total = len(docs)
        tail = (f"Nothing was written: {len(bad)} of {total} document(s) failed "
                "validation, and every document is validated before any is written.")
        raise Failed("\n".join([*problems, tail]))
    return out


def ident(res: Resource) -> str:
    """`IPPool(name)` or `WorkloadEndpoint(ns/name)` as calicoctl names a resource."""
    meta = res.metadata
    ns = getattr(meta, "namespace", None)
    return f"{res.KIND}({ns}/{meta.name})" if ns else f"{res.KIND}({meta.name})"


def datastore_reason(exc: Exception, res: Resource | None = None,
                     kind: str = "", name: str = "") -> str:
    """A datastore error in calicoctl's words (names the resource, not the etcd key)."""
    from libcalico.errors import AlreadyExists, Conflict, NotFound, ValidationError

    who = ident(res) if res is not None else f"{kind}({name})"
    if isinstance(exc, ValidationError):
        return documents.describe_errors(exc)[1:-1]
    if isinstance(exc, NotFound):
        return f"resource does not exist: {who}"
    if isinstance(exc, AlreadyExists):
        return f"resource already exists: {who}"
    if isinstance(exc, Conflict):
        return (f"update conflict: {who} (the resourceVersion given is stale; get the "
                "resource again and retry)")
    return str(exc)


def run_batch(resources: Sequence[Resource], verb: str, past: str, action: Action,
              skip: Callable[[Exception], bool] = lambda _e: False) -> None:
    """Apply `action` to each resource in order; stop at the first failure like calicoctl."""
    run_each(resources, [r.KIND for r in resources], verb, past, action,
             lambda exc, res: datastore_reason(exc, res), skip)


def run_each(items: Sequence[T], item_kinds: Sequence[str], verb: str, past: str,
             action: Callable[[T], object], reason: Callable[[Exception, T], str],
             skip: Callable[[Exception], bool] = lambda _e: False) -> None:
    """`run_batch` over any items (resources, or (kind, name, namespace) to delete):
    `item_kinds[i]` names the kind of `items[i]`, `reason` words a failure."""
    from libcalico.errors import CalicoError

    single = documents.by_kind_summary(list(item_kinds))
    done = 0
    for item, kind in zip(items, item_kinds, strict=True):
        try:
            action(item)
        except CalicoError as exc:
            if skip(exc):
                done += 1
                continue
            if done:
                what = f"'{single}' resources" if single else "resources"
                click.echo(f"Partial success: {past} the first {done} out of "
                           f"{len(items)} {what}:")
            raise Failed(f"Failed to {verb} '{kind}' resource: "
                         f"[{reason(exc, item)}]") from exc
        done += 1
    log.info("calicoctl %s resources=%d kind=%s", verb, done, single or "mixed")
    if single:
        click.echo(f"Successfully {past} {done} '{single}' resource(s)")
    else:
        click.echo(f"Successfully {past} {done} resource(s)")


def with_metadata(res: Resource, **changes: Any) -> Resource:
    return dataclasses.replace(res, metadata=dataclasses.replace(res.metadata, **changes))


UPDATE_ATTEMPTS = 5


def read_modify_write(client: Client, kind: str, name: str, namespace: str | None,
                      change: Callable[[Resource], Resource], failed: str) -> None:
    """Get the resource, `change` it, and update it by compare-and-swap; a Conflict (someone
    wrote in between) reads it again, up to UPDATE_ATTEMPTS times. `change` raises Failed
    for an error in calicoctl's words; other errors become Failed("{failed}: [reason]")."""
    from libcalico.errors import CalicoError, Conflict

    who = f"{namespace}/{name}" if namespace else name
    for attempt in range(UPDATE_ATTEMPTS):
        try:
            client.update(change(client.get(kind, name, namespace)))
            return
        except Conflict:
            if attempt + 1 == UPDATE_ATTEMPTS:
                raise Failed(f"{failed}: [update conflict: {kind}({who}) kept changing]") \
                    from None
        except Failed:
            raise
        except CalicoError as exc:
            raise Failed(f"{failed}: [{datastore_reason(exc, kind=kind, name=who)}]") from exc
