"""The typed cache over a syncer: every stored value decoded once, kept by key and by class.

    cache = ResourceCache()
    for change in cache.apply(event.updates):   # in the daemon's one owner thread
        ...change.key, change.resource (None: deleted or dropped), change.dropped...
    pools = cache.of_kind(IPPool)                # key -> IPPool, kept up to date by apply

Values are decoded by the longest matching key prefix in `decoders`; the default decodes

- v3 resources (`/calico/resources/v3/projectcalico.org/<plural>/...`) with the one codec,
  `libcalico.model.codec.loads` (validated, Calico's defaults filled); a value whose kind is
  not the key's is refused;
- IPAM blocks, block affinities and handles into the `libcalico.ipam` records.

Keys under no decoder's prefix (`/calico/bgp/v1/...`, the IPAM config, v3 kinds this build
does not know) pass through: their `resource` is the raw text (a `str`).

A value a decoder refuses (ValidationError) is *dropped*: the key counts as deleted, and its
Change carries `dropped`, the ValidationError text (key, field and reason). A value equal to
the one already held yields no Change, nor does a delete of a key not held.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypeVar

from libcalico.datastore.gcpause import cyclic_gc_paused
from libcalico.datastore.snapshot import Update
from libcalico.errors import ValidationError
from libcalico.ipam import block as ipam_block
from libcalico.ipam.records import Affinity, Handle
from libcalico.model import codec, keys

PURE = True

T = TypeVar("T")

Decoder = Callable[[str, str], object]
"""decode(key, value) -> the typed value; raises ValidationError to refuse it."""


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    """The datastore key."""
    resource: object | None
    """The decoded value: a `libcalico.model` resource, an IPAM record (Block, Affinity,
    Handle) or, for keys no decoder claims, the raw text. None when deleted or dropped."""
    revision: str
    """Opaque: the revision of the update that made this change."""
    dropped: str | None = None
    """Why a stored value was refused (`resource` is then None; treat the key as deleted)."""


def _resource_decoder(kind: str) -> Decoder:
    loads = codec.loads

    def decode(key: str, value: str) -> object:
        res = loads(value, key)
        if kind != res.KIND:
            raise ValidationError(f"kind: a {res.KIND} stored under a {kind} key", key)
        return res

    return decode


def _affinity(key: str, value: str) -> object:
    if keys.parse_affinity_key(key) is None:
        return value  # /calico/ipam/v2/host/<host> and the like: not an affinity
    return Affinity.decode(value, key)


def default_decoders() -> dict[str, Decoder]:
    """v3 resources of every known kind (the codec) and the IPAM blocks, affinities and
    handles (the libcalico.ipam records)."""
    out: dict[str, Decoder] = {
        keys.resource_prefix(kind): _resource_decoder(kind) for kind in keys.KINDS
    }
    out[keys.block_prefix()] = lambda key, value: ipam_block.decode(value, key)
    out[keys.affinity_prefix()] = _affinity
    out[keys.HANDLE_PREFIX] = lambda key, value: Handle.decode(value, key)
    return out


# A Change per update of a 10,000-object sync: fill the slots through their descriptors
# (what a frozen dataclass's __init__ does through object.__setattr__, at about half the cost).
_new = object.__new__
_set_key = getattr(Change, "key").__set__  # noqa: B009 - the slot descriptor itself
_set_resource = getattr(Change, "resource").__set__  # noqa: B009
_set_revision = getattr(Change, "revision").__set__  # noqa: B009
_set_dropped = getattr(Change, "dropped").__set__  # noqa: B009


def _change(key: str, resource: object | None, revision: str, dropped: str | None) -> Change:
    c = _new(Change)
    _set_key(c, key)
    _set_resource(c, resource)
    _set_revision(c, revision)
    _set_dropped(c, dropped)
    return c


class ResourceCache:
    """key -> decoded value, and class -> {key: value}, kept by `apply`. Not thread-safe:
    one owner thread applies and reads. The mappings `of_kind` returns are live read-only
    views (they change with the next `apply`)."""

    def __init__(self, decoders: Mapping[str, Decoder] | None = None) -> None:
        decs = default_decoders() if decoders is None else dict(decoders)
        # Longest prefix first. Prefixes ending in "/" are matched once per key directory
        # (memoised); others are checked per key.
        ordered = sorted(decs.items(), key=lambda kv: len(kv[0]), reverse=True)
        self._by_dir_prefixes = [(p, d) for p, d in ordered if p.endswith("/")]
        self._odd_prefixes = [(p, d) for p, d in ordered if not p.endswith("/")]
        self._dirs: dict[str, Decoder | None] = {}
        self._values: dict[str, str] = {}
        self._resources: dict[str, object] = {}
        self._classes: dict[type, dict[str, object]] = {}
        self._views: dict[type, Mapping[str, object]] = {}

    def _decoder(self, key: str) -> Decoder | None:
        for prefix, dec in self._odd_prefixes:
            if key.startswith(prefix):
                return dec
        d = key[: key.rfind("/") + 1]
        try:
            return self._dirs[d]
        except KeyError:
            pass
        found: Decoder | None = None
        for prefix, dec in self._by_dir_prefixes:
            if d.startswith(prefix):
                found = dec
                break
        self._dirs[d] = found
        return found

    def apply(self, updates: Iterable[Update]) -> tuple[Change, ...]:
        """Take in a batch of syncer updates (in order); returns what changed, in order."""
        with cyclic_gc_paused():
            return self._apply(updates)

    def _apply(self, updates: Iterable[Update]) -> tuple[Change, ...]:
        values, resources, classes = self._values, self._resources, self._classes
        odd = self._odd_prefixes
        dirs = self._dirs
        out: list[Change] = []
        append = out.append
        for u in updates:
            key, value = u.key, u.value
            old = values.get(key)
            if value is None:
                if old is None:
                    continue
                del values[key]
                gone = resources.pop(key, None)
                if gone is not None:
                    del classes[type(gone)][key]
                append(_change(key, None, u.revision, None))
                continue
            if old == value:
                continue
            values[key] = value
            if odd:
                dec = self._decoder(key)
            else:
                try:
                    dec = dirs[key[: key.rfind("/") + 1]]
                except KeyError:
                    dec = self._decoder(key)
            dropped: str | None = None
            res: object | None
            if dec is None:
                res = value
            else:
                try:
                    res = dec(key, value)
                except ValidationError as exc:
                    res, dropped = None, str(exc) if exc.document else f"{key}: {exc}"
            prev = resources.pop(key, None) if old is not None else None
            if prev is not None:
                del classes[type(prev)][key]
            if res is not None:
                resources[key] = res
                cls = type(res)
                group = classes.get(cls)
                if group is None:
                    group = classes[cls] = {}
                group[key] = res
            append(_change(key, res, u.revision, dropped))
        return tuple(out)

    def get(self, key: str) -> object | None:
        """The decoded value held for `key`; None when absent or dropped."""
        return self._resources.get(key)

    def of_kind(self, cls: type[T]) -> Mapping[str, T]:
        """The values of exactly class `cls` (e.g. IPPool, Block, str), key -> value."""
        view = self._views.get(cls)
        if view is None:
            group = self._classes.get(cls)
            if group is None:
                group = self._classes[cls] = {}
            view = self._views[cls] = types.MappingProxyType(group)
        return view  # type: ignore[return-value]

    def __len__(self) -> int:
        return len(self._resources)
