"""calico-kube-controllers: Calico's controllers for Kubernetes clusters.

    calico-kube-controllers                   run the controllers named by ENABLED_CONTROLLERS
                                              until SIGTERM/SIGINT (docs/kube-controllers.md)
    calico-kube-controllers check-status -r   readiness (or -l: liveness) from the status file
                                              [-f FILE]; prints Ready or the reasons

Exit codes: 0 ok / ready; 1 not ready, or the configuration was refused; 2 usage.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from libcalico import log as log_setup
from libcalico.errors import CalicoError

log = logging.getLogger("calico_kube_controllers")


def check_status(argv: Sequence[str]) -> int:
    from calico_kube_controllers.config import DEFAULT_STATUS_FILE
    from calico_kube_controllers.status import check

    p = argparse.ArgumentParser(prog="calico-kube-controllers check-status")
    p.add_argument("-f", "--file", type=Path, default=DEFAULT_STATUS_FILE)
    p.add_argument("-r", "--ready", action="store_true")
    p.add_argument("-l", "--live", action="store_true")
    args = p.parse_args(argv)
    if not (args.ready or args.live):
        print("No command specified to check-status")
        return 1
    ok, message = check(args.file)
    print(message)
    return 0 if ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "check-status":
        return check_status(argv[1:])
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    from calico_kube_controllers.config import Config
    from calico_kube_controllers.daemon import Daemon

    try:
        cfg = Config.from_env()
        log_setup.configure("calico-kube-controllers", cfg.log_level)
        daemon = Daemon(cfg)
    except CalicoError as exc:
        print(f"calico-kube-controllers: {exc}", file=sys.stderr)
        return 1

    def _stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping", signum)
        daemon.stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    daemon.start()
    daemon.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
