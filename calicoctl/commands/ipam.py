"""`calicoctl ipam show [--show-blocks] | check | release --ip IP | configure`."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING

import click

from calicoctl.cli import common_options, context
from calicoctl.context import Failed

if TYPE_CHECKING:
    from libcalico.datastore.api import Backend


def _backend() -> Backend:
    ctx = context()
    if ctx.client_factory is not None:
        client = ctx.client()
        backend = getattr(client, "backend", None)
        if backend is not None:
            return backend  # type: ignore[no-any-return]
    return ctx.connect()


def _table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    sep = "+-" + "-+-".join("-" * w for w in widths) + "-+"
    out = [sep]
    for n, r in enumerate(rows):
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
        if n == 0:
            out.append(sep)
    out.append(sep)
    return "\n".join(out)


def _pct(used: int, total: int) -> str:
    return f"{used} ({round(100 * used / total) if total else 0}%)"


@click.group()
def ipam() -> None:
    """IP address management: show usage, check consistency, release addresses."""


@ipam.command()
@click.option("--show-blocks", is_flag=True, help="Also show every allocation block.")
@common_options
def show(show_blocks: bool) -> None:
    """Show IP pool and block usage."""
    from libcalico.ipam.check import check
    from libcalico.ipam.client import IPAMClient

    backend = _backend()
    try:
        pools = IPAMClient(backend).pools()
        report = check(backend)
    finally:
        backend.close()
    rows = [["GROUPING", "CIDR", "IPS TOTAL", "IPS IN USE", "IPS FREE"]]
    for p in pools:
        total = p.cidr.num_addresses
        used = sum(1 for ip in report.allocations if ip in p.cidr)
        rows.append(["IP Pool", str(p.cidr), str(total), _pct(used, total),
                     _pct(total - used, total)])
        if show_blocks:
            for cidr, b in sorted(report.blocks.items(),
                                  key=lambda kv: int(kv[0].network_address)):
                if cidr.version != p.cidr.version or not cidr.subnet_of(p.cidr):  # type: ignore[arg-type]
                    continue
                n = b.size
                u = len(b.in_use())
                host = b.host() or "(borrowed)"
                rows.append([f"Block ({host})", str(cidr), str(n), _pct(u, n), _pct(n - u, n)])
    click.echo(_table(rows))


@ipam.command(name="check")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), default=None,
              help="Also write the report to this file.")
@common_options
def check_cmd(output: str | None) -> None:
    """Check IPAM consistency: leaked addresses, addresses in use without an allocation,
    handles without addresses, broken blocks and affinities. Exit 1 when problems are found."""
    from libcalico.ipam.check import check

    backend = _backend()
    try:
        report = check(backend)
    finally:
        backend.close()
    text = "\n".join(report.lines())
    click.echo(text)
    if output:
        with open(output, "w") as f:
            f.write(text + "\n")
    if not report.clean:
        raise SystemExit(1)


@ipam.command()
@click.option("--ip", "ips", multiple=True, required=True, help="Address to release.")
@common_options
def release(ips: tuple[str, ...]) -> None:
    """Release addresses (use for leaked addresses only: a running workload keeps using it)."""
    from libcalico.ipam.client import IPAMClient

    parsed = []
    for text in ips:
        try:
            parsed.append(ipaddress.ip_address(text))
        except ValueError:
            raise Failed(f"invalid IP address {text!r}") from None
    backend = _backend()
    try:
        not_allocated = IPAMClient(backend).release_ips(parsed)
    finally:
        backend.close()
    for ip in parsed:
        if ip in not_allocated:
            click.echo(f"IP address {ip} is not assigned")
        else:
            click.echo(f"Successfully released IP address {ip}")
    if not_allocated:
        raise SystemExit(1)


@ipam.command()
@click.option("--strictaffinity", type=click.Choice(["true", "false"]), default=None)
@click.option("--autoallocateblocks", type=click.Choice(["true", "false"]), default=None)
@click.option("--maxblocksperhost", type=click.IntRange(min=0), default=None)
@common_options
def configure(strictaffinity: str | None, autoallocateblocks: str | None,
              maxblocksperhost: int | None) -> None:
    """Set the IPAM configuration (StrictAffinity, AutoAllocateBlocks, MaxBlocksPerHost)."""
    from dataclasses import replace

    from libcalico.errors import ValidationError
    from libcalico.ipam.client import IPAMClient

    backend = _backend()
    try:
        client = IPAMClient(backend)
        cfg = client.get_config()
        if strictaffinity is not None:
            cfg = replace(cfg, strict_affinity=strictaffinity == "true")
        if autoallocateblocks is not None:
            cfg = replace(cfg, auto_allocate_blocks=autoallocateblocks == "true")
        if maxblocksperhost is not None:
            cfg = replace(cfg, max_blocks_per_host=maxblocksperhost)
        try:
            client.set_config(cfg)
        except ValidationError as exc:
            raise Failed(str(exc)) from None
    finally:
        backend.close()
    click.echo("Successfully set IPAM configuration")
