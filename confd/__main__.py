"""calico-confd: render BIRD configuration from the Calico datastore (see docs/confd.md).

    calico-confd [--confdir DIR] [--onetime | --interval S] [--sync-only] [--noop]
                 [--keep-stage-file] [--dest-root DIR] [--log-level LEVEL]
    calico-confd render --node NAME --from FILE.yaml [--out DIR]

Exit codes: 0 success; 1 a resource failed (onetime), the datastore or the configuration is
unusable; 2 bad usage.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType

import click

from libcalico import log as log_setup
from libcalico.errors import CalicoError

log = logging.getLogger("confd")

DEFAULT_CONFDIR = "/etc/calico/confd"


@click.group(invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--confdir", type=click.Path(file_okay=False, path_type=Path),
              default=DEFAULT_CONFDIR, show_default=True,
              help="Directory holding conf.d/ (template resources) and templates/.")
@click.option("--onetime", is_flag=True,
              help="Render once and exit (non-zero if any resource failed).")
@click.option("--interval", type=click.FloatRange(min=0.1), default=None,
              help="Poll the datastore every S seconds instead of watching it.")
@click.option("--sync-only", is_flag=True,
              help="Render and replace, but run no check_cmd or reload_cmd.")
@click.option("--noop", is_flag=True,
              help="Render and print a unified diff of what would change; write nothing.")
@click.option("--keep-stage-file", is_flag=True,
              help="Keep stage files (.<dest>XXXX) that were not installed, e.g. rejected "
                   "by check_cmd.")
@click.option("--dest-root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Prefix every dest path with DIR (like DESTDIR), e.g. for tests.")
@click.option("--node", envvar="NODENAME", default="",
              help="This node's name (default: $NODENAME).")
@click.option("--log-level", default=None,
              help="debug, info, warning, error (default: $BGP_LOGSEVERITYSCREEN, else info).")
@click.option("--debounce", type=click.FloatRange(min=0.0), default=None,
              help="Watch mode: quiet time (s) before a pass after a change [0.02].")
@click.option("--min-interval", type=click.FloatRange(min=0.0), default=None,
              help="Watch mode: minimum time (s) between passes [1.0].")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              envvar="CONFD_METRICS_PORT",
              help="Serve Prometheus metrics on this port (0: any free port; default: off).")
@click.option("--metrics-host", default="", envvar="CONFD_METRICS_HOST",
              help="Address the metrics server listens on (default: all).")
@click.pass_context
def main(ctx: click.Context, confdir: Path, onetime: bool, interval: float | None,
         sync_only: bool, noop: bool, keep_stage_file: bool, dest_root: Path | None, node: str,
         log_level: str | None, debounce: float | None, min_interval: float | None,
         metrics_port: int | None, metrics_host: str) -> None:
    """Render BIRD configuration from the Calico datastore (watch mode by default)."""
    if ctx.invoked_subcommand is not None:
        return
    log_setup.configure("confd", log_level or os.environ.get("BGP_LOGSEVERITYSCREEN"))
    if onetime and interval is not None:
        raise click.UsageError("--onetime and --interval are exclusive")
    try:
        code = _daemon(confdir, onetime, interval, sync_only, noop, keep_stage_file, dest_root,
                       node, debounce, min_interval, metrics_port, metrics_host)
    except CalicoError as exc:
        log.error("%s", exc)
        sys.exit(1)
    sys.exit(code)


def _daemon(confdir: Path, onetime: bool, interval: float | None, sync_only: bool, noop: bool,
            keep_stage_file: bool, dest_root: Path | None, node: str,
            debounce: float | None, min_interval: float | None, metrics_port: int | None = None,
            metrics_host: str = "") -> int:
    from confd import (
        epstatus,
        epstatuswatch,
        processor,
        resource,
        schedule,
        stage,
        templatewatch,
        watchloop,
    )
    from confd.inputs import other_nodes_workload
    from confd.metrics import Metrics
    from libcalico.datastore import config as ds_config
    from libcalico.datastore import connect
    from libcalico.errors import ConfigError

    if not node:
        raise ConfigError("no node name: set NODENAME (or pass --node)")
    # A missing or broken template is a startup error.
    templates = templatewatch.load(confdir, node=node, dest_root=dest_root)
    resources = templates.resources
    metrics = Metrics()
    metrics.templates_loaded()
    if metrics_port is not None:
        from prometheus_client import start_http_server

        server, _ = start_http_server(metrics_port, metrics_host, registry=metrics.registry)
        log.info("metrics on http://%s:%d/metrics", metrics_host or "0.0.0.0",
                 server.server_port)
    environ = {**os.environ, "NODENAME": node}
    engine = processor.Engine(
        resources, templates.renderer.render, node, environ,
        stage.Options(noop=noop, sync_only=sync_only, keep_stage_file=keep_stage_file),
        diff_out=sys.stdout if noop else None,
    )
    cfg = ds_config.DatastoreConfig.from_env()
    kubernetes = cfg.datastore_type == ds_config.DatastoreType.KUBERNETES
    backend = connect(cfg)
    status_dir = epstatus.directory(environ)

    def local() -> dict[str, str]:
        return epstatuswatch.read(status_dir)
    log.info("calico-confd node=%s confdir=%s resources=%s mode=%s", node, confdir,
             ",".join(r.name for r in resources),
             "onetime" if onetime else f"interval {interval}s" if interval else "watch")
    try:
        if onetime:
            result = processor.onetime(engine, backend, kubernetes, local)
            for name, why in sorted(result.failed.items()):
                log.error("failed: %s: %s", name, why)
            return 0 if result.ok else 1
        stop = threading.Event()
        if interval is not None:
            _on_signal(stop.set)
            processor.run_interval(engine, backend, interval, stop, kubernetes, local)
            return 0
        from libcalico.datastore import syncer as syncer_mod

        timing = schedule.Timing()
        if debounce is not None:
            timing = schedule.Timing(debounce=debounce, min_interval=timing.min_interval,
                                     max_delay=timing.max_delay)
        if min_interval is not None:
            timing = schedule.Timing(debounce=timing.debounce, min_interval=min_interval,
                                     max_delay=max(min_interval, timing.debounce))

        def load_templates() -> tuple[Sequence[resource.TemplateResource], processor.RenderFn]:
            t = templatewatch.load(confdir, node=node, dest_root=dest_root)
            return t.resources, t.renderer.render

        loop = watchloop.WatchLoop(
            engine,
            lambda sink: syncer_mod.Syncer(backend, list(processor.prefixes(node, kubernetes)),
                                           _without(other_nodes_workload(node), sink)),
            timing,
            load_templates=load_templates,
            metrics=metrics,
        )
        _on_signal(loop.stop)
        # Read before the first render (Calico waits for its local BGP peer watcher too).
        initial = local()
        loop.snapshot.update(initial)
        status_watcher = epstatuswatch.EndpointStatusWatcher(status_dir, loop.queue.put, initial)
        status_watcher.start()
        watcher = templatewatch.TemplateWatcher(confdir, loop.queue.put)
        watcher.start()
        log.info("watching %s for template edits", ", ".join(str(d) for d in watcher.dirs))
        try:
            loop.run()
        finally:
            watcher.stop()
            status_watcher.stop()
        return 0
    finally:
        backend.close()


def _without(drop: Callable[[str], bool], sink: Callable[[object], None]
             ) -> Callable[[object], None]:
    """`sink`, minus the updates of keys `drop` says confd never reads."""
    from libcalico.datastore.snapshot import Updates

    def put(event: object) -> None:
        if isinstance(event, Updates):
            kept = tuple(u for u in event.updates if not drop(u.key))
            if not kept:
                return
            event = Updates(kept)
        sink(event)

    return put


def _on_signal(callback: object) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        callback()  # type: ignore[operator]

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@main.command("render")
@click.option("--node", required=True, help="Render for this node.")
@click.option("--from", "source", required=True, type=click.Path(exists=True, dir_okay=False,
              path_type=Path), help="YAML snapshot (Calico resources, multi-document).")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the files here (default: print them).")
@click.option("--confdir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory with conf.d/ and templates/ (default: the ones shipped).")
def render_cmd(node: str, source: Path, out: Path | None, confdir: Path | None) -> None:
    """Render the templates offline from a YAML snapshot (no datastore)."""
    log_setup.configure("confd", os.environ.get("BGP_LOGSEVERITYSCREEN"))
    from confd import offline

    try:
        code = offline.run_render(node=node, source=source, out=out, confdir=confdir)
    except CalicoError as exc:
        click.echo(f"calico-confd render: {exc}", err=True)
        sys.exit(1)
    sys.exit(code)


if __name__ == "__main__":
    main()
