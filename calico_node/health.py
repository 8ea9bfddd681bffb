"""Readiness and liveness checks (`calico-node --bird-ready --felix-ready --felix-live`).

BIRD ready (Calico's rule): no BGP peers ⇒ ready; within `threshold` seconds of the node
starting (the nodename file's mtime) every peer must be Established and no graceful restart
may be in progress; afterwards one Established peer suffices. Felix: GET
http://FELIX_HEALTHHOST:FELIX_HEALTHPORT/readiness (or /liveness), 2xx/3xx is healthy.
"""

from __future__ import annotations

import http.client
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from calico_node import nodename
from libcalico import bird, birdctl
from libcalico.errors import CalicoError


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    reason: str


def bird_verdict(
    peers: Sequence[bird.Peer], graceful_restart: bool, started_ago: float | None,
    threshold: float = 30.0, family: str = "BIRD",
) -> Verdict:
    """Pure: Calico's BIRD readiness rule."""
    if not peers:
        return Verdict(True, f"{family} is ready (no BGP peers)")
    up = [p for p in peers if p.established]
    down = [str(p.address) for p in peers if not p.established]
    if started_ago is not None and started_ago < threshold:
        if graceful_restart:
            return Verdict(False, f"{family} graceful restart in progress")
        if down:
            return Verdict(False, f"{family} BGP sessions not established: {', '.join(down)}")
        return Verdict(True, f"{family} all {len(up)} BGP sessions established")
    if up:
        return Verdict(True, f"{family} {len(up)} of {len(peers)} BGP sessions established")
    return Verdict(False, f"{family} no BGP session established: {', '.join(down)}")


def bird_ready(socket_path: str, env: Mapping[str, str], now: float,
               family: str = "BIRD", threshold: float = 30.0) -> Verdict:
    try:
        protocols = birdctl.show_protocols(socket_path)
        status = birdctl.query(socket_path, "show status")
    except (CalicoError, OSError) as exc:
        return Verdict(False, f"{family} not ready: {exc}")
    version = 6 if family == "BIRD6" else 4
    try:
        started = os.stat(nodename.nodename_file(env)).st_mtime
        ago: float | None = now - started
    except OSError:
        ago = None
    return bird_verdict(bird.peers(protocols, version), bird.graceful_restart_in_progress(status),
                        ago, threshold, family)


def bird_live(socket_path: str, family: str = "BIRD") -> Verdict:
    try:
        reply = birdctl.query(socket_path, "show status")
    except (CalicoError, OSError) as exc:
        return Verdict(False, f"{family} not live: {exc}")
    lines = [ln for ln in reply.splitlines() if ln.startswith("1000")]
    if lines and "BIRD" in lines[0]:
        return Verdict(True, f"{family} is live")
    return Verdict(False, f"{family} answered without a status line")


def felix_check(env: Mapping[str, str], path: str, timeout: float = 5.0) -> Verdict:
    host = env.get("FELIX_HEALTHHOST") or "localhost"
    port = int(env.get("FELIX_HEALTHPORT") or "9099")
    what = "ready" if path == "/readiness" else "live"
    try:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read().decode(errors="replace").strip()
        finally:
            conn.close()
    except OSError as exc:
        return Verdict(False, f"Felix is not {what}: {host}:{port}{path}: {exc}")
    if 200 <= resp.status < 400:
        return Verdict(True, f"Felix is {what}")
    return Verdict(False, f"Felix is not {what}: HTTP {resp.status} {body[:200]}")
