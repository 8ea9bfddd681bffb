"""`calicoctl delete KIND NAME...` and `calicoctl delete -f FILE|-`."""

from __future__ import annotations

import click

from calicoctl import documents, kinds, resources
from calicoctl.cli import common_options, context
from calicoctl.context import Failed


@click.command()
@click.argument("kind", required=False, metavar="[KIND")
@click.argument("names", nargs=-1, metavar="NAME...]")
@click.option("-f", "--filename", metavar="FILE",
              help="Delete the resources named in FILE ('-' for stdin).")
@click.option("-n", "--namespace", metavar="NS", help="Namespace (namespaced kinds).")
@resources.file_options
@click.option("--skip-not-exists", is_flag=True, help="Skip resources that do not exist.")
@common_options
def delete(kind: str | None, names: tuple[str, ...], filename: str | None,
           namespace: str | None, recursive: bool, skip_empty: bool,
           skip_not_exists: bool) -> None:
    """Delete resources by kind and name, or those in a file."""
    if filename is not None and kind is not None:
        raise click.UsageError("give either KIND NAME... or -f FILE, not both")
    targets = _from_file(resources.read(filename, recursive, skip_empty), namespace) \
        if filename is not None else _from_args(kind, names, namespace)
    _delete(targets, skip_not_exists)


Target = tuple[str, str, str | None]


def _from_args(kind: str | None, names: tuple[str, ...], namespace: str | None) -> list[Target]:
    if kind is None or not names:
        raise click.UsageError("give KIND and at least one NAME, or -f FILE")
    info = _resolve(kind)
    ns = (namespace or "default") if info.namespaced else None
    for n in names:
        why = kinds.refusal("delete", info.kind, n, ns)
        if why:
            raise Failed(f"Failed to delete '{info.kind}' resource: [{why}]")
    return [(info.kind, n, ns) for n in names]


def _resolve(kind: str) -> kinds.ResourceKind:
    try:
        return kinds.resolve(kind)
    except kinds.UnknownKind as exc:
        raise Failed(f"Failed to delete resources: {exc}") from exc


def _from_file(docs: list[documents.Document], namespace: str | None) -> list[Target]:
    """Only kind, name and namespace matter for a delete; check them all before deleting."""
    out: list[Target] = []
    problems: list[str] = []
    for doc in docs:
        info = kinds.lookup(doc.kind)
        if info is None:
            why = f"unknown kind {doc.kind!r}" if doc.kind else "missing"
            problems.append(f"Failed to delete resource: {doc.describe()}: "
                            f"[error with field kind ({why})]")
        elif not doc.name:
            problems.append(f"Failed to delete '{doc.kind}' resource: {doc.describe()}: "
                            "[error with field metadata.name (missing)]")
        else:
            ns = (doc.namespace or namespace or "default") if info.namespaced else None
            refused = kinds.refusal("delete", info.kind, doc.name, ns)
            if refused:
                problems.append(f"Failed to delete '{doc.kind}' resource: {doc.describe()}: "
                                f"[{refused}]")
                continue
            out.append((info.kind, doc.name, ns))
    if problems:
        raise Failed("\n".join([*problems, "Nothing was deleted."]))
    return out


def _delete(targets: list[Target], skip_not_exists: bool) -> None:
    from libcalico.errors import NotFound

    client = context().client()

    def who(t: Target) -> str:
        return f"{t[2]}/{t[1]}" if t[2] else t[1]

    resources.run_each(
        targets, [kind for kind, _, _ in targets], "delete", "deleted",
        lambda t: client.delete(*t),
        lambda exc, t: resources.datastore_reason(exc, kind=t[0], name=who(t)),
        skip=lambda exc: skip_not_exists and isinstance(exc, NotFound))
