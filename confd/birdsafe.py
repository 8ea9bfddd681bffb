"""What confd refuses beyond Calico's validation: values Calico accepts but BIRD cannot take.

Resources reach confd decoded and validated once by `libcalico.model.codec` (through the
typed cache, `libcalico.datastore.resourcecache`). Everything a template prints comes from them,
so this module checks the typed values for what would be unsafe or invalid in BIRD's
configuration language, which has no escapes in its strings:

- resource names (from the key) are Kubernetes names: BGPFilter names become BIRD symbols,
  node names appear in paths and comments;
- interface patterns (`ignoredInterfaces`, BGPFilter `interface`) hold nothing BIRD cannot
  quote (double quote, backslash, newline, control characters);
- durations (`maxRestartTime`, `keepaliveTime`, `nodeMeshMaxRestartTime`) are not negative;
- a `peerIP` BGPPeer has an AS number (Calico prints `as 0`, which BIRD rejects);
- communities are `a:b` or `a:b:c`, and every BGPFilter rule compiles to a BIRD statement;
- passwords (secret values, read when a peering is built) hold nothing BIRD cannot quote.

Each refusal names the resource, the field and the reason (`Refusal`); the resource is then
left out as a whole, so a half-applied resource never reaches BIRD. Passwords are never part of
a message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from confd import bgpfilter
from confd.functions import is_bird_string_safe
from libcalico.model.resources import BGPConfiguration, BGPFilter, BGPPeer

PURE = True

NAME = re.compile(r"[a-z0-9]([a-z0-9.\-]{0,251}[a-z0-9])?\Z")
"""A Kubernetes (DNS-1123 subdomain) name: safe in BIRD symbols, paths and comments."""
CONFIG_NAME = re.compile(r"(default|node\.[a-z0-9]([a-z0-9.\-]{0,251}[a-z0-9])?)\Z")
"""The BGPConfiguration names confd reads (`default`, `node.<node name>`); Calico ignores
others."""


@dataclass(frozen=True, slots=True)
class Refusal:
    """One resource left out: which (`kind`, `name`), the field and why."""

    kind: str
    name: str
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{self.kind} {self.name[:80]!r} ignored: {where}{self.reason}"


def name_refusal(kind: str, name: str) -> Refusal | None:
    if NAME.match(name):
        return None
    return Refusal(kind, name, "metadata.name", "not a valid resource name")


def quotable(text: str) -> bool:
    """Can `text` be written between double quotes in BIRD (1.6 strings have no escapes)?"""
    return is_bird_string_safe(text) and "\\" not in text


def refusal(kind: str, name: str, res: object) -> Refusal | None:
    """Why `res` (stored under a key naming `name`) cannot be printed into BIRD, or None."""
    if kind == "BGPConfiguration":
        return _config(name, res) if isinstance(res, BGPConfiguration) else None
    bad = name_refusal(kind, name)
    if bad is not None:
        return bad
    if isinstance(res, BGPPeer):
        return _peer(name, res)
    if isinstance(res, BGPFilter):
        try:
            bgpfilter.validate(res.spec)
        except bgpfilter.FilterError as exc:
            return Refusal(kind, name, exc.field_path, str(exc).split(": ", 1)[-1])
    return None


def _negative(d: timedelta | None) -> bool:
    return d is not None and d < timedelta(0)


def _peer(name: str, peer: BGPPeer) -> Refusal | None:
    s = peer.spec
    if s.peer_ip is not None and not s.as_number:
        # Calico accepts it and its confd writes `neighbor <ip> as 0;` (updatePeersV1 copies
        # the unset AS, bgp_processor prints it), which BIRD rejects ("Remote AS number must
        # be set"): Calico's bird.cfg then fails its check and stays as it was, every later
        # change included. Left out instead, so the rest of the configuration still follows.
        # (A localWorkloadSelector peer needs one by Calico's own validation.)
        return Refusal("BGPPeer", name, "spec.asNumber",
                       "BIRD needs the AS number of a peerIP peer")
    for field, value in (("spec.maxRestartTime", s.max_restart_time),
                         ("spec.keepaliveTime", s.keepalive_time)):
        if _negative(value):
            return Refusal("BGPPeer", name, field, "a duration BIRD can use must not be negative")
    for i, f in enumerate(s.filters):
        if not NAME.match(f):
            return Refusal("BGPPeer", name, f"spec.filters[{i}]", "not a BGPFilter name")
    return None


def _config(name: str, cfg: BGPConfiguration) -> Refusal | None:
    s = cfg.spec
    kind = "BGPConfiguration"
    for i, pat in enumerate(s.ignored_interfaces):
        if not pat or not quotable(pat):
            return Refusal(kind, name, f"spec.ignoredInterfaces[{i}]",
                           "interface pattern holds characters BIRD cannot quote")
    if _negative(s.node_mesh_max_restart_time):
        return Refusal(kind, name, "spec.nodeMeshMaxRestartTime",
                       "a duration BIRD can use must not be negative")
    for i, c in enumerate(s.communities):
        try:
            bgpfilter.community(c.value, f"spec.communities[{i}].value")
        except bgpfilter.FilterError as exc:
            return Refusal(kind, name, exc.field_path, "bad community value")
    return None

