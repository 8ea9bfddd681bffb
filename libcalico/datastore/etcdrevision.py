"""etcd's revisions behind the Backend's opaque `Revision`: decimal text of an int64.

Only the etcd backends (etcd, gateway) parse or compute revisions; everything else hands
them back as it got them.
"""

from __future__ import annotations

from libcalico.errors import FieldError, ValidationError

PURE = True


def parse(revision: str, key: str) -> int:
    """The int etcd compares for `revision`; ValidationError naming `key` when it is not one
    (a resourceVersion typed by hand, or one from another datastore), as Calico's etcdv3
    backend refuses it."""
    if revision.isascii() and revision.isdigit():
        return int(revision)
    raise ValidationError(
        [FieldError("metadata.resourceVersion", f"invalid revision {revision!r} for etcd")], key)


def following(after: str, prefix: str) -> int:
    """The first revision a watch after `after` must report: etcd's inclusive start."""
    return parse(after, prefix) + 1
