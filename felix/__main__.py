"""calico-felix: program this host's kernel from the datastore.

Configuration: environment FELIX_* > config file (-c, default /etc/calico/felix.cfg) >
FelixConfiguration node.<hostname> > FelixConfiguration default > Calico's defaults.
Datastore: DATASTORE_TYPE, ETCD_ENDPOINTS / ETCD_*, KUBECONFIG / K8S_* (as every component);
FELIX_DATASTORETYPE, FELIX_ETCDENDPOINTS / ETCDADDR / ETCD*FILE (or the file's) override
them, as in Calico.
Exit codes: 0 on SIGTERM/SIGINT, 1 on an unusable configuration or datastore, 129 when the
effective configuration changed (the supervisor restarts us, as runit does for Calico).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path
from types import FrameType

import click

from felix import config as felix_config
from felix.dataplane.loop import Dataplane, LinksChanged, RestartNeeded, Stop
from felix.drivers.ifacemon import InterfaceMonitor
from felix.drivers.netlink import IpBatchNetlink
from felix.drivers.sysctl import ProcSys
from felix.health import HealthServer, HealthState
from felix.metrics import Metrics
from libcalico import log as calico_log
from libcalico.datastore import connect
from libcalico.datastore.config import DatastoreConfig
from libcalico.datastore.syncer import Syncer
from libcalico.errors import CalicoError
from libcalico.model import keys

log = logging.getLogger("felix")

PREFIXES = (
    keys.resource_prefix("WorkloadEndpoint"),
    keys.resource_prefix("IPPool"),
    keys.resource_prefix("Node"),
    keys.resource_prefix("FelixConfiguration"),
    keys.resource_prefix("BGPConfiguration"),
    keys.resource_prefix("Profile"),
    *(keys.resource_prefix(k) for k in (
        "NetworkPolicy", "GlobalNetworkPolicy", "StagedNetworkPolicy",
        "StagedGlobalNetworkPolicy", "Tier", "NetworkSet", "GlobalNetworkSet",
        "HostEndpoint")),
    keys.block_prefix(),
)


def _hostname(env: dict[str, str], file_values: dict[str, str]) -> str:
    for k in ("FELIX_FELIXHOSTNAME", "NODENAME"):
        if env.get(k):
            return env[k]
    for k, v in file_values.items():
        if k.lower() == "felixhostname" and v:
            return v
    return socket.gethostname().lower()


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-c", "--config-file", default="/etc/calico/felix.cfg", show_default=True,
              help="INI config file ([global] section); missing file is fine.")
def main(config_file: str) -> None:
    """Run Felix: compute this host's desired kernel state and keep the kernel there."""
    # Felix forks ip/iptables children while gRPC (etcd) threads run: no fork handlers.
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
    env = dict(os.environ)
    try:
        file_values: dict[str, str] = {}
        p = Path(config_file)
        if p.exists():
            file_values = felix_config.parse_file(p.read_text(), str(p))
        boot = felix_config.load(env, file_values)
        calico_log.configure("felix", boot.log_severity_screen)
        hostname = _hostname(env, file_values)
        ds = DatastoreConfig.from_env(felix_config.datastore_env(env, file_values))
        backend = connect(ds)
    except CalicoError as exc:
        print(f"calico-felix: {exc}", file=sys.stderr)
        sys.exit(1)

    metrics = Metrics()
    health = HealthState(90.0)
    nl = IpBatchNetlink()
    dp = Dataplane(env, file_values, hostname, nl, ProcSys(), metrics=metrics, health=health)
    syncer = Syncer(backend, PREFIXES, dp.queue.put, name="felix-syncer")
    mon = InterfaceMonitor(nl, lambda links: dp.queue.put(LinksChanged(links)),
                           boot.interface_refresh_interval)
    servers: list[HealthServer] = []
    if boot.health_enabled:
        hs = HealthServer(health, boot.health_host, boot.health_port)
        hs.start()
        servers.append(hs)
    if boot.prometheus_metrics_enabled:
        from prometheus_client import start_http_server
        start_http_server(boot.prometheus_metrics_port, boot.prometheus_metrics_host or "",
                          registry=metrics.registry)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        dp.queue.put(Stop())

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("starting felix on host %s", hostname)
    syncer.start()
    mon.start()
    rc = 0
    try:
        dp.run()
    except RestartNeeded as exc:
        log.warning("%s: exiting for a restart", exc)
        time.sleep(2)
        rc = 129
    except CalicoError as exc:
        log.error("fatal: %s", exc)
        rc = 1
    finally:
        mon.stop()
        syncer.stop()
        dp.close()
        nl.close()
        for s in servers:
            s.stop()
        backend.close()
    if threading.active_count() > 1:
        log.debug("threads still alive at exit: %s", threading.enumerate())
    sys.exit(rc)


if __name__ == "__main__":
    main()
