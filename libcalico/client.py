"""Typed CRUD over a Backend, as Calico's clientv3 does it for the etcdv3 datastore.

- `create` fills `metadata.uid` (uuid4) and `creationTimestamp` (UTC, from the injected clock)
  when empty, refuses a set `resourceVersion`, and writes only if the key does not exist.
- `update` is a compare-and-swap on `metadata.resourceVersion` (the key's revision, opaque);
  it keeps the stored `uid` and `creationTimestamp`.
- `apply` creates, or updates the current object (keeping its uid/creationTimestamp),
  retrying when another writer gets in between.
- Reads set `metadata.resourceVersion` to the key's revision. Stored values are
  validated on read like any other input.
- WorkloadEndpoints: the name is derived from (or checked against) the spec's identifiers,
  and the labels `projectcalico.org/namespace` / `projectcalico.org/orchestrator` are set.
- Profile `projectcalico-default-allow` is synthetic: returned by get/list, never stored.
- Policies (NetworkPolicy, GlobalNetworkPolicy and their staged kinds) are created only in a
  tier that exists; a missing built-in tier (`default`, `kube-admin`, `kube-baseline`) is
  created first, as Calico keeps them; built-in tiers cannot be deleted.

Every resource is validated (and Calico's defaults filled) before it is written; errors are
ValidationError naming the resource, the field and the reason. Datastore errors are the
Backend's (libcalico.errors).
"""

from __future__ import annotations

import builtins
import contextlib
import ipaddress
import json
import logging
import operator
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, TypeVar, cast, overload

from libcalico.datastore.api import Backend, KVPair, Revision
from libcalico.datastore.gcpause import cyclic_gc_paused
from libcalico.errors import AlreadyExists, Conflict, FieldError, NotFound, ValidationError
from libcalico.model import codec, keys
from libcalico.model.resources import (
    KINDS,
    LABEL_NAMESPACE,
    LABEL_ORCHESTRATOR,
    IPPool,
    Profile,
    Resource,
    WorkloadEndpoint,
    default_allow_profile,
    workload_endpoint_name,
)
from libcalico.model.resources_endpoint import DEFAULT_ALLOW_PROFILE
from libcalico.model.resources_policy import BUILTIN_TIERS, TIERED_KINDS, builtin_tier

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Resource)

APPLY_RETRIES = 10


_BY_NAME = operator.attrgetter("metadata.name")


def _utcnow() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _uuid4() -> str:
    return str(uuid.uuid4())


class Client:
    """Typed v3 resources over `backend`. `clock` and `new_uid` are injectable for tests."""

    def __init__(
        self,
        backend: Backend,
        *,
        clock: Callable[[], datetime] = _utcnow,
        new_uid: Callable[[], str] = _uuid4,
    ) -> None:
        self.backend = backend
        self._clock = clock
        self._new_uid = new_uid

    # -- reads ------------------------------------------------------------------------------

    @overload
    def get(self, kind: type[R], name: str, namespace: str | None = None) -> R: ...
    @overload
    def get(self, kind: str, name: str, namespace: str | None = None) -> Resource: ...

    def get(self, kind: type[R] | str, name: str, namespace: str | None = None) -> Resource:
        kind_name = _kind_name(kind)
        if kind_name == Profile.KIND and name == DEFAULT_ALLOW_PROFILE:
            return default_allow_profile()
        kv = self.backend.get(_key(kind_name, name, namespace))
        return self._from_kv(kv)

    @overload
    def list(self, kind: type[R], namespace: str | None = None) -> builtins.list[R]: ...
    @overload
    def list(self, kind: str, namespace: str | None = None) -> builtins.list[Resource]: ...

    def list(self, kind: type[R] | str, namespace: str | None = None
             ) -> builtins.list[Any]:
        """All resources of a kind (in `namespace`, or every namespace when None), sorted by
        namespace and name. Values that fail validation are skipped with a warning."""
        kind_name = _kind_name(kind)
        info = keys.KINDS[kind_name]
        listing = self.backend.list(keys.resource_prefix(kind_name, namespace))
        # A key of this kind under its prefix (parse_resource_key's test, without the split):
        # plural/name, or plural/namespace/name.
        root, slashes = len(keys.RESOURCE_ROOT), 2 if info.namespaced else 1
        loads = codec.loads
        out: builtins.list[Resource] = []
        with cyclic_gc_paused():
            for kv in listing.kvs:
                key = kv.key
                if key.count("/", root) != slashes:
                    continue
                try:
                    out.append(loads(kv.value, key, kv.revision))
                except ValidationError as exc:
                    log.warning("skipping invalid stored resource key=%s error=%s", key, exc)
        if kind_name == Profile.KIND:
            out.append(default_allow_profile())
        if info.namespaced:
            out.sort(key=lambda r: (r.metadata.namespace or "", r.metadata.name))
        else:
            out.sort(key=_BY_NAME)
        return out

    def _from_kv(self, kv: KVPair) -> Resource:
        return codec.loads(kv.value, document=kv.key, resource_version=kv.revision)

    # -- writes -----------------------------------------------------------------------------

    def create(self, res: R) -> R:
        res = self._prepare(res)
        md = res.metadata
        if md.resource_version:
            raise ValidationError(
                [FieldError("metadata.resourceVersion", "must not be set when creating")],
                codec.label(res),
            )
        _refuse_default_allow(res, "create")
        if res.KIND in TIERED_KINDS:
            self._ensure_tier(str(getattr(res.spec, "tier", "")), res)
        if isinstance(res, IPPool):
            self._check_pool_overlap(res)
            self._check_pool_blocks(res)
        res = replace(res, metadata=replace(
            md,
            uid=md.uid or self._new_uid(),
            creation_timestamp=md.creation_timestamp or self._clock(),
        ))
        text = codec.dumps(res)
        return _stored(res, text, self.backend.create(_res_key(res), text))

    def update(self, res: R) -> R:
        """Compare-and-swap on `metadata.resource_version`: Conflict if the stored object has
        changed since it was read, NotFound if it is gone."""
        res = self._prepare(res)
        md = res.metadata
        if not md.resource_version:
            raise ValidationError(
                [FieldError("metadata.resourceVersion", "required for an update (read the"
                            " resource first, or use apply)")],
                codec.label(res),
            )
        _refuse_default_allow(res, "update")
        revision = md.resource_version
        key = _res_key(res)
        if md.uid is None or md.creation_timestamp is None or isinstance(res, IPPool):
            current = self.backend.get(key)
            res = _keep_identity(res, current.value)
            _check_immutable(res, current.value)
        text = codec.dumps(res)
        return _stored(res, text, self.backend.update(key, text, revision))

    def apply(self, res: R) -> R:
        """Create, or replace the current object (keeping its uid and creationTimestamp)."""
        if res.metadata.resource_version:
            return self.update(res)
        res = self._prepare(res)
        _refuse_default_allow(res, "apply")
        key = _res_key(res)
        for _ in range(APPLY_RETRIES):
            try:
                return self.create(res)
            except AlreadyExists:
                pass
            try:
                current = self.backend.get(key)
            except NotFound:
                continue
            merged = _keep_identity(res, current.value)
            _check_immutable(merged, current.value)
            text = codec.dumps(merged)
            try:
                kv = self.backend.update(key, text, current.revision)
            except (Conflict, NotFound):
                continue
            return _stored(merged, text, kv)
        raise Conflict(key)

    @overload
    def delete(self, kind: type[R], name: str, namespace: str | None = None, *,
               revision: Revision | None = None) -> R | None: ...
    @overload
    def delete(self, kind: str, name: str, namespace: str | None = None, *,
               revision: Revision | None = None) -> Resource | None: ...

    def delete(self, kind: type[R] | str, name: str, namespace: str | None = None, *,
               revision: Revision | None = None) -> Resource | None:
        """Delete and return the deleted resource (None if its stored value was invalid).
        With `revision`, only if the key's revision still equals it (else Conflict)."""
        kind_name = _kind_name(kind)
        if kind_name == Profile.KIND and name == DEFAULT_ALLOW_PROFILE:
            raise ValidationError(f"{DEFAULT_ALLOW_PROFILE} is built in and cannot be deleted",
                                  f"Profile({name})")
        if kind_name == "Tier" and name in BUILTIN_TIERS:
            raise ValidationError(f"tier {name!r} is built in and cannot be deleted",
                                  f"Tier({name})")
        kv = self.backend.delete(_key(kind_name, name, namespace), revision)
        try:
            return self._from_kv(kv)
        except ValidationError as exc:
            log.warning("deleted invalid stored resource key=%s error=%s", kv.key, exc)
            return None

    # -- helpers ----------------------------------------------------------------------------

    def _ensure_tier(self, tier: str, res: Resource) -> None:
        """Calico's clientv3 creates a policy only in an existing tier."""
        try:
            self.backend.get(_key("Tier", tier, None))
            return
        except NotFound:
            if tier not in BUILTIN_TIERS:
                raise ValidationError(
                    [FieldError("spec.tier", f"tier {tier!r} does not exist: create the Tier"
                                " first")], codec.label(res)) from None
        with contextlib.suppress(AlreadyExists):  # another writer made it meanwhile
            self.create(builtin_tier(tier))

    def _check_pool_blocks(self, pool: IPPool) -> None:
        """Calico refuses a pool over existing IPAM blocks of another size."""
        size = pool.spec.block_size
        for kv in self.backend.list(keys.block_prefix(pool.spec.cidr.version)).kvs:
            block = keys.parse_block_key(kv.key)
            if block is None or block.version != pool.spec.cidr.version:
                continue
            if block.overlaps(pool.spec.cidr) and block.prefixlen != size:
                raise ValidationError(
                    [FieldError("spec.blockSize", f"IPAM block {block} (size /{block.prefixlen})"
                                f" already exists within {pool.spec.cidr}: the pool's blockSize"
                                f" /{size} must match it")],
                    codec.label(pool),
                )

    def _check_pool_overlap(self, pool: IPPool) -> None:
        """Calico refuses a pool whose CIDR overlaps another pool's."""
        for other in self.list(IPPool):
            if other.metadata.name != pool.metadata.name and \
                    other.spec.cidr.version == pool.spec.cidr.version and \
                    other.spec.cidr.overlaps(pool.spec.cidr):
                raise ValidationError(
                    [FieldError("spec.cidr", f"{pool.spec.cidr} overlaps IPPool"
                                f" {other.metadata.name} ({other.spec.cidr})")],
                    codec.label(pool),
                )

    def _prepare(self, res: R) -> R:
        if isinstance(res, WorkloadEndpoint):
            res = _prepare_wep(res)  # type: ignore[assignment]
        ks = KINDS[res.KIND]
        if ks.namespaced and not res.metadata.namespace:
            raise ValidationError(
                [FieldError("metadata.namespace", f"required: {res.KIND} is namespaced")],
                codec.label(res),
            )
        return cast(R, codec.validate(res))


def _prepare_wep(wep: WorkloadEndpoint) -> WorkloadEndpoint:
    md = wep.metadata
    if not md.name:
        name = workload_endpoint_name(wep.spec)
        if name is None:
            raise ValidationError(
                [FieldError("metadata.name", "required: no name given and the spec lacks node,"
                            " orchestrator, workload/pod and endpoint to derive one")],
                "WorkloadEndpoint",
            )
        md = replace(md, name=name)
    labels = dict(md.labels)
    if md.namespace:
        labels[LABEL_NAMESPACE] = md.namespace
    if wep.spec.orchestrator:
        labels[LABEL_ORCHESTRATOR] = wep.spec.orchestrator
    return replace(wep, metadata=replace(md, labels=labels))


def _refuse_default_allow(res: Resource, op: str) -> None:
    if isinstance(res, Profile) and res.metadata.name == DEFAULT_ALLOW_PROFILE:
        raise ValidationError(f"{DEFAULT_ALLOW_PROFILE} is built in: {op} is not allowed",
                              codec.label(res))


def _keep_identity(res: R, stored: str) -> R:
    """Copy uid and creationTimestamp from the stored JSON (which may itself be invalid)."""
    try:
        doc = json.loads(stored)
        md = doc.get("metadata") or {}
        uid = md.get("uid")
        ts_text = md.get("creationTimestamp")
        ts = datetime.fromisoformat(ts_text) if isinstance(ts_text, str) else None
    except (ValueError, AttributeError):
        uid, ts = None, None
    cur = res.metadata
    return replace(res, metadata=replace(
        cur,
        uid=uid if isinstance(uid, str) and uid else cur.uid,
        creation_timestamp=ts or cur.creation_timestamp,
    ))


def _check_immutable(res: Resource, stored: str) -> None:
    """IPPool cidr and blockSize cannot change once created (Calico's clientv3 rule)."""
    if not isinstance(res, IPPool):
        return
    try:
        spec = json.loads(stored).get("spec") or {}
    except (ValueError, AttributeError):
        return
    errs: list[FieldError] = []
    old_cidr = spec.get("cidr")
    if isinstance(old_cidr, str):
        try:
            same = ipaddress.ip_network(old_cidr, strict=False) == res.spec.cidr
        except ValueError:
            same = True
        if not same:
            errs.append(FieldError("spec.cidr", f"cannot be changed (it is {old_cidr}): create"
                                   " a new pool instead"))
    old_size = spec.get("blockSize")
    if isinstance(old_size, int) and old_size and old_size != res.spec.block_size:
        errs.append(FieldError("spec.blockSize", f"cannot be changed (it is {old_size})"))
    if errs:
        raise ValidationError(errs, codec.label(res))


def _with_revision(res: R, revision: Revision) -> R:
    return replace(res, metadata=replace(res.metadata, resource_version=revision))


def _stored(res: R, sent: str, kv: KVPair) -> R:
    """The resource as the backend stored it. etcd stores exactly what was sent; the
    Kubernetes datastore answers with the object it holds (the API server's UID, its
    creationTimestamp), which must be what the caller gets back for a later update."""
    if kv.value == sent:
        return _with_revision(res, kv.revision)
    return cast(R, codec.loads(kv.value, document=kv.key, resource_version=kv.revision))


def _kind_name(kind: type | str) -> str:
    name = kind if isinstance(kind, str) else str(getattr(kind, "KIND", ""))
    if name not in KINDS:
        raise ValidationError(
            [FieldError("kind", f"unknown kind {name!r}: expected one of"
                        f" {', '.join(sorted(KINDS))}")]
        )
    return name


def _key(kind: str, name: str, namespace: str | None) -> str:
    if not name:
        raise ValidationError([FieldError("metadata.name", "required")], kind)
    if "/" in name or (namespace and "/" in namespace):
        raise ValidationError([FieldError("metadata.name", f"invalid name {name!r}")], kind)
    try:
        return keys.resource_key(kind, name, namespace)
    except ValueError as exc:
        raise ValidationError([FieldError("metadata.namespace", str(exc))], kind) from None


def _res_key(res: Resource) -> str:
    return _key(res.KIND, res.metadata.name, res.metadata.namespace)
