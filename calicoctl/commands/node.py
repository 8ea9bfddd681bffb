"""`calicoctl node status`: is Calico running here, and the state of BIRD's BGP sessions.

Reads BIRD's control sockets (`/var/run/calico/bird.ctl`, `bird6.ctl`; fallback
`/var/run/bird/`), as Calico's calicoctl does, and prints its peer table.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from libcalico import bird, birdctl
from libcalico.errors import CalicoError

SOCKETS = {
    4: ("/var/run/calico/bird.ctl", "/var/run/bird/bird.ctl"),
    6: ("/var/run/calico/bird6.ctl", "/var/run/bird/bird6.ctl"),
}


def _running(names: tuple[str, ...], proc_root: str = "/proc") -> bool:
    for entry in Path(proc_root).iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        words = [os.path.basename(a.decode(errors="replace")) for a in argv[:3] if a]
        if any(w in names for w in words):
            return True
    return False


@click.group("node")
def node() -> None:
    """Calico node commands."""


@node.command("status")
def status() -> None:
    """Show this node's Calico process and BGP peer status."""
    if os.geteuid() != 0:
        raise click.ClickException("calicoctl node status must be run as root")
    if not _running(("calico-felix", "calico-node")):
        click.echo("Calico process is not running.")
        raise SystemExit(1)
    click.echo("Calico process is running.")
    for version in (4, 6):
        click.echo(f"\nIPv{version} BGP status")
        path = next((p for p in SOCKETS[version] if os.path.exists(p)), None)
        if path is None:
            proc = "bird" if version == 4 else "bird6"
            click.echo(f"No IPv{version} peers found (no {proc} control socket).")
            continue
        try:
            peers = bird.peers(birdctl.show_protocols(path), version)
        except CalicoError as exc:
            click.echo(f"Error querying BIRD: {exc}", err=True)
            raise SystemExit(1) from exc
        click.echo(bird.format_table(peers) if peers else f"No IPv{version} peers found.")
    click.echo("")
