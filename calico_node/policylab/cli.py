"""`calico-node policy-lab FILE.json`: Kubernetes and Calico policy on a local cluster in
namespaces, step by step, with a reachability matrix per probe (docs/policy.md).

    calico-node policy-lab FILE.json [--nodes N] [--expect] [--keep-going]

stdout: one JSON document, {"sctp_unavailable": bool, "steps": [{"name", "probes": [{"port",
"protocol", "reachable": {"ns/pod": {"ns/pod": bool}}}]}]}; logs on stderr.
Exit codes: 0 it ran (with --expect: and every expected pair matched); 1 a difference from
"expected" (--expect) or the run failed; 2 a bad file or bad usage (nothing was started).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from calico_node.policylab import labfile, report, runner
from libcalico.errors import CalicoError

PREFIX = "cplab"


class Interrupted(Exception):
    pass


def _args(argv: Sequence[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="calico-node policy-lab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("file", help="the lab file (JSON)")
    p.add_argument("--nodes", type=int, default=3, help="number of nodes (default 3)")
    p.add_argument("--expect", action="store_true",
                   help="compare each probe with its \"expected\" matrix; exit 1 on a "
                        "difference")
    a = p.parse_args(list(argv))
    if not 1 <= a.nodes <= 40:
        p.error("--nodes must be between 1 and 40")
    return a


def load(path: str, nodes: int) -> labfile.LabFile:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise labfile.LabFileError(f"cannot read {path}: {exc.strerror}") from None
    return labfile.parse(text, nodes)


def main(argv: Sequence[str]) -> None:
    args = _args(argv)
    try:
        lab = load(args.file, args.nodes)
    except labfile.LabFileError as exc:
        print(f"calico-node policy-lab: {args.file}: bad lab file:", file=sys.stderr)
        for fe in exc.errors:
            print(f"  {fe}", file=sys.stderr)
        sys.exit(2)
    if args.expect and not any(p.expected is not None for s in lab.steps for p in s.probes):
        print(f"calico-node policy-lab: {args.file}: --expect but no probe has \"expected\"",
              file=sys.stderr)
        sys.exit(2)
    if os.geteuid() != 0:
        print("calico-node policy-lab: must run as root (it makes network namespaces)",
              file=sys.stderr)
        sys.exit(2)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    sys.exit(run(lab, args.nodes, args.expect))


def run(lab: labfile.LabFile, nodes: int, expect: bool) -> int:
    t0 = time.monotonic()

    def say(text: str) -> None:
        print(f"[{time.monotonic() - t0:5.1f}s] {text}", file=sys.stderr, flush=True)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise Interrupted()

    prefix = f"{PREFIX}{os.getpid()}"
    workdir = Path(tempfile.mkdtemp(prefix="calico-policylab-"))
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    code = 1
    try:
        say(f"workdir {workdir}, namespaces {prefix}-*")
        doc = runner.run(lab, nodes, say, workdir, prefix)
        print(json.dumps(doc), flush=True)
        code = 0
        if expect:
            diffs = report.differences(lab, doc)
            for d in diffs:
                print(f"DIFFERENCE {d}", file=sys.stderr)
            say(f"--expect: {len(diffs)} difference(s)" if diffs
                else "--expect: every expected pair matched")
            code = 1 if diffs else 0
    except Interrupted:
        say("interrupted")
        code = 130
    except (CalicoError, OSError, subprocess.SubprocessError) as exc:
        print(f"calico-node policy-lab: {exc}", file=sys.stderr)
        code = 1
    finally:
        for s in old:
            signal.signal(s, signal.SIG_IGN)
        left = runner.leftovers(prefix, workdir)
        say("done: no namespace, process or file left" if not left
            else f"left behind: {', '.join(left)}")
        for s, h in old.items():
            signal.signal(s, h)
    return code
