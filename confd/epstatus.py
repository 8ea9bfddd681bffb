"""Endpoint-status entries: the local workloads a `localWorkloadSelector` BGPPeer peers with.

Calico's Felix writes one JSON file per local workload endpoint into
`$CALICO_ENDPOINT_STATUS_PATH_PREFIX/endpoint-status/` (default prefix `/var/run/calico`),
naming in `bgpPeerName` the BGPPeer whose `localWorkloadSelector` selected it; Calico's confd
(`local_bgp_peer_watcher.go`) peers with the first address of `ipv4Nets` and of `ipv6Nets` of
every entry that names a BGPPeer. calico-confd reads the same files
(`confd.epstatuswatch`), as pseudo keys of its snapshot:

    /calico/endpointstatus/<file name>  ->  the file's text

On the Kubernetes datastore the same entries are also derived from this node's pods
(`confd.peerings`), for a BGPPeer no file names (our Felix does not write the files yet).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from libcalico.errors import ValidationError
from libcalico.model.types import IPAddress

PURE = True

PREFIX = "/calico/endpointstatus/"
DEFAULT_PATH_PREFIX = "/var/run/calico"
DIR_NAME = "endpoint-status"
MAX_BYTES = 64 * 1024
"""A status file longer than this is not one Felix wrote: refused."""


def directory(environ: Mapping[str, str]) -> str:
    """Where the files are: `$CALICO_ENDPOINT_STATUS_PATH_PREFIX/endpoint-status`."""
    prefix = environ.get("CALICO_ENDPOINT_STATUS_PATH_PREFIX") or DEFAULT_PATH_PREFIX
    return f"{prefix.rstrip('/')}/{DIR_NAME}"


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """One entry: the BGPPeer it names and its first address of each family."""

    name: str
    bgp_peer_name: str
    ipv4: ipaddress.IPv4Address | None
    ipv6: ipaddress.IPv6Address | None

    def ip(self, version: int) -> IPAddress | None:
        return self.ipv4 if version == 4 else self.ipv6


def _first(nets: object, version: int, where: str) -> IPAddress | None:
    if nets is None:
        return None
    if not isinstance(nets, list) or not all(isinstance(n, str) for n in nets):
        raise ValidationError(f"{where}: ipv{version}Nets is not a list of CIDRs")
    if not nets:
        return None
    try:
        iface = ipaddress.ip_interface(nets[0])
    except ValueError:
        raise ValidationError(f"{where}: ipv{version}Nets[0] is not a CIDR") from None
    if iface.version != version:
        raise ValidationError(f"{where}: ipv{version}Nets[0] is not an IPv{version} CIDR")
    return iface.ip


def decode(key: str, value: str) -> EndpointStatus:
    """The entry a status file holds (ValidationError naming the file if it is malformed)."""
    name = key.removeprefix(PREFIX)
    where = f"endpoint status {name}"
    if len(value) > MAX_BYTES:
        raise ValidationError(f"{where}: longer than {MAX_BYTES} bytes")
    try:
        doc = json.loads(value)
    except ValueError:
        raise ValidationError(f"{where}: not JSON") from None
    if not isinstance(doc, dict):
        raise ValidationError(f"{where}: not a JSON object")
    peer = doc.get("bgpPeerName") or ""
    if not isinstance(peer, str):
        raise ValidationError(f"{where}: bgpPeerName is not a string")
    v4 = _first(doc.get("ipv4Nets"), 4, where)
    v6 = _first(doc.get("ipv6Nets"), 6, where)
    return EndpointStatus(name, peer, v4 if isinstance(v4, ipaddress.IPv4Address) else None,
                          v6 if isinstance(v6, ipaddress.IPv6Address) else None)


def for_peer(entries: Iterable[EndpointStatus], peer: str) -> list[EndpointStatus]:
    """The entries naming BGPPeer `peer` that have an address, sorted by name."""
    return sorted((e for e in entries if e.bgp_peer_name == peer
                   and (e.ipv4 is not None or e.ipv6 is not None)), key=lambda e: e.name)
