"""etcd's key-value bytes as the Backend's KVPair text (keys and values are UTF-8 text;
revisions are decimal text)."""

from __future__ import annotations

import logging
from typing import Any

from libcalico.datastore.api import KVPair

log = logging.getLogger(__name__)


def text(raw: bytes, key: bytes) -> str:
    try:
        return raw.decode()
    except UnicodeDecodeError:
        log.warning("etcd key %r holds bytes that are not UTF-8; replacing them", key[:200])
        return raw.decode(errors="replace")


def kvpair(kv: Any) -> KVPair:
    return KVPair(kv.key.decode(errors="replace"), text(kv.value, kv.key), str(kv.mod_revision))


# Listing 10,000 keys builds 10,000 KVPairs; a frozen dataclass's __init__ goes through
# object.__setattr__ per field, which is most of the backend's own cost in a list. Filling
# the slots through their descriptors builds the same immutable object at about half that.
_new = object.__new__
_set_key = getattr(KVPair, "key").__set__  # noqa: B009 - the slot descriptor itself
_set_value = getattr(KVPair, "value").__set__  # noqa: B009
_set_revision = getattr(KVPair, "revision").__set__  # noqa: B009


def kvpairs(kvs: Any) -> tuple[KVPair, ...]:
    out = []
    try:
        for kv in kvs:
            p = _new(KVPair)
            _set_key(p, kv.key.decode())
            _set_value(p, kv.value.decode())
            _set_revision(p, str(kv.mod_revision))
            out.append(p)
    except UnicodeDecodeError:
        return tuple(kvpair(kv) for kv in kvs)
    return tuple(out)
