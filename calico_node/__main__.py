"""calico-node: startup, then run bird/bird6/confd/felix under a supervisor.

    calico-node                     startup, then supervise the components (until SIGTERM)
    calico-node -startup            startup only (Node, pools, defaults, tunnel addresses)
    calico-node --bird-ready --bird6-ready --felix-ready --felix-live --bird-live
                                    health checks: exit 0 when all pass, 1 otherwise
    calico-node demo [...]          a multi-node Calico network on this machine (docs/demo.md)
    calico-node policy-lab FILE.json [--nodes N] [--expect]
                                    policy reachability lab (docs/policy.md)
    calico-node install-cni         the DaemonSet's CNI install step (calico_node/cni_install.py)

Exit codes: 0 ok; 1 a check failed or startup was refused (the message says why); 2 usage.
Single-dash long flags (`-startup`, `-felix-ready`) are accepted as Calico's binary does.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from libcalico import log as log_setup
from libcalico.errors import CalicoError

if TYPE_CHECKING:
    from calico_node.startup import Result
    from libcalico.datastore.api import Backend

log = logging.getLogger("calico_node")

CHECKS = ("bird-ready", "bird6-ready", "bird-live", "bird6-live", "felix-ready", "felix-live")
REPO = Path(__file__).resolve().parents[1]


def _normalise(argv: Sequence[str]) -> list[str]:
    out = []
    for a in argv:
        if a.startswith("-") and not a.startswith("--") and len(a) > 2:
            a = "-" + a
        out.append(a)
    return out


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="calico-node", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--startup", action="store_true", help="run startup only, then exit")
    for c in CHECKS:
        p.add_argument(f"--{c}", action="store_true", help=f"check: {c.replace('-', ' ')}")
    p.add_argument("--threshold-time", type=float, default=30.0,
                   help="BIRD readiness: seconds after start during which every peer must "
                        "be Established (default 30)")
    p.add_argument("--version", action="store_true", help="print the version")
    return p


def main(argv: Sequence[str] | None = None) -> None:
    args_in = list(sys.argv[1:] if argv is None else argv)
    if args_in and args_in[0] == "demo":
        from calico_node.demo.cli import main as demo_main

        demo_main(args_in[1:])
        return
    if args_in and args_in[0] == "policy-lab":
        from calico_node.policylab.cli import main as lab_main

        lab_main(args_in[1:])
        return
    if args_in and args_in[0] == "install-cni":
        from calico_node import cni_install

        log_setup.configure("calico-node", os.environ.get("CALICO_STARTUP_LOGLEVEL"))
        try:
            cni_install.main()
        except (CalicoError, OSError) as exc:
            print(f"calico-node install-cni: {exc}", file=sys.stderr)
            sys.exit(1)
        return
    args = _parser().parse_args(_normalise(args_in))
    if args.version:
        from calico_node.startup import VERSION

        print(VERSION)
        return
    checks = [c for c in CHECKS if getattr(args, c.replace("-", "_"))]
    if checks:
        sys.exit(_checks(checks, args.threshold_time))
    log_setup.configure("calico-node", os.environ.get("CALICO_STARTUP_LOGLEVEL"))
    try:
        result = _startup()
        if args.startup:
            return
        _run(result.node)
    except CalicoError as exc:
        log.error("%s", exc)
        print(f"calico-node: {exc}", file=sys.stderr)
        sys.exit(1)


def _checks(checks: list[str], threshold: float) -> int:
    from calico_node import health
    from libcalico import birdctl

    env = os.environ
    run_dir = env.get("CALICO_RUN_DIR", "/var/run/calico")
    failed = False
    for c in checks:
        if c in ("bird-ready", "bird6-ready"):
            six = c.startswith("bird6")
            sock = f"{run_dir}/bird6.ctl" if six else f"{run_dir}/bird.ctl"
            v = health.bird_ready(sock if run_dir else birdctl.BIRD_SOCKET, env, time.time(),
                                  "BIRD6" if six else "BIRD", threshold)
        elif c in ("bird-live", "bird6-live"):
            six = c.startswith("bird6")
            v = health.bird_live(f"{run_dir}/{'bird6' if six else 'bird'}.ctl",
                                 "BIRD6" if six else "BIRD")
        else:
            v = health.felix_check(env, "/readiness" if c == "felix-ready" else "/liveness")
        print(v.reason, file=sys.stdout if v.ok else sys.stderr)
        failed |= not v.ok
    return 1 if failed else 0


def _backend() -> Backend:
    from libcalico.datastore import config, connect

    return connect(config.DatastoreConfig.from_env(os.environ))


def _startup() -> Result:
    from calico_node import hostinfo, startup

    backend = _backend()
    kube = None
    if startup.datastore_type(os.environ) == "kubernetes":
        from libcalico.datastore.kubernetes import KubernetesBackend

        kube = backend.client if isinstance(backend, KubernetesBackend) else None
    try:
        return startup.Startup(
            backend=backend, env=os.environ, interfaces=hostinfo.interfaces,
            route_lookup=hostinfo.route_source, hostname=os.uname().nodename, kube=kube,
        ).run()
    finally:
        backend.close()


def seed_confdir(confdir: Path, source: Path = REPO) -> None:
    """Install the shipped conf.d/ and templates/ when the confdir has none (as the image
    does); never overwrite a user's files."""
    for sub in ("conf.d", "templates"):
        if not (confdir / sub).exists() and (source / sub).is_dir():
            shutil.copytree(source / sub, confdir / sub)
    (confdir / "config").mkdir(parents=True, exist_ok=True)


def _run(node: str) -> None:
    from calico_node import components, settings, supervisor

    env = dict(os.environ)
    cfg = settings.parse(env)
    paths = components.Paths.from_env(env)
    if cfg.backend == "bird":
        seed_confdir(Path(paths.confdir))
    Path(paths.run_dir).mkdir(parents=True, exist_ok=True)
    comps = components.components(cfg.backend, node, env, paths, components.bindir(),
                                  cfg.disable_felix)
    log_dir = None if env.get("CALICO_DISABLE_FILE_LOGGING", "").lower() == "true" \
        else paths.log_dir
    sup = supervisor.Supervisor(comps, supervisor.popen_spawner(log_dir))
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping components", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    from calico_node import cni_install

    if cni_install.manages_cni(env):
        cni_install.refresh_interval(env)  # a bad CNI_TOKEN_REFRESH_INTERVAL stops us here
        threading.Thread(target=cni_install.keep_token_fresh, args=(env, stop),
                         name="cni-token", daemon=True).start()
    log.info("supervising node=%s backend=%s components=%s", node, cfg.backend,
             ",".join(c.name for c in comps))
    sup.run(stop)


if __name__ == "__main__":
    main()
