"""Benchmarks for calico-confd. Run: `python bench/confd.py [SECTION ...]` (default: all).

Sections:
  render   view + render of the six BIRD files for full meshes of 100, 1,000 and 5,000 nodes,
           beside the Jinja2 render alone of the same output (the floor: the templates printing
           an already computed view). Goals: 1,000 nodes <= 100 ms, 5,000 <= 500 ms.
           - first:  a fresh Renderer (templates compiled) rendering the snapshot once: every
                     resource is decoded;
           - change: the watch-mode path: one Node changed since the last render, so only it is
                     decoded again; the view and all six files are recomputed. This is the
                     figure the goals apply to.
           - jinja:  rendering the six templates from the already computed view.

  watch    (bench/confd_watch.py) event-to-dest latency for one BGPPeer change (p50, p99) beside
           an etcd write->watch event plus `bird -p`, and BIRD reloads caused by 500 Node
           creations in one burst. Goals: p50 <= 3x that limit, burst <= 3 reloads.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from confd.render import CALICO_JOBS, Renderer  # noqa: E402
from tests.unit.confd_view import snap  # noqa: E402

NODE = "node-0000"
ENV = {"NODENAME": NODE}


def _cluster(n: int) -> dict[str, str]:
    s = snap.mesh(n)
    s |= snap.snapshot(
        snap.config(listenPort=179, communities=[{"name": "c", "value": "65000:1"}],
                    prefixAdvertisements=[{"cidr": "10.10.0.0/16", "communities": ["c"]}]),
        snap.pool("v4", "10.10.0.0/16", ipipMode="CrossSubnet"),
        snap.pool("v6", "fd10::/64"),
        snap.peer("edge", peerIP="192.0.2.1", asNumber=65001, filters=["edge"]),
        snap.bgpfilter("edge", exportV4=[{"action": "Accept", "cidr": "10.10.0.0/16",
                                          "matchOperator": "In"}, {"action": "Reject"}]),
    )
    for i in range(8):
        s |= snap.snapshot(snap.affinity(NODE, f"10.10.{i}.0/26"),
                           snap.affinity(NODE, f"fd10::{i:x}:0/122"))
    return s


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f} ms"


def section_render(sizes: tuple[int, ...] = (100, 1000, 5000), repeat: int = 7) -> None:
    print("== render: view + six files for a full mesh (node-0000's view) ==")
    print(f"{'nodes':>6} {'first':>11} {'change p50':>11} {'jinja p50':>11} "
          f"{'ratio':>6} {'lines':>8}  goal")
    goals = {1000: 0.100, 5000: 0.500}
    for n in sizes:
        s = _cluster(n)
        r = Renderer(ROOT / "templates")
        for job in CALICO_JOBS:
            r.template(job.src)
        t0 = time.perf_counter()
        out = r.render(s, NODE, ENV, CALICO_JOBS)
        first = time.perf_counter() - t0
        lines = sum(t.count("\n") for t in out.values())
        changes = []
        last = f"node-{n - 1:04d}"
        for i in range(repeat):
            k, v = snap.node(last, f"10.0.{200 + i}.{i + 1}/16", f"fd00::{200 + i}:1/64")
            s[k] = v
            t0 = time.perf_counter()
            r.render(s, NODE, ENV, CALICO_JOBS)
            changes.append(time.perf_counter() - t0)
        view = r.view(s, NODE, ENV)
        jinja = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            for job in CALICO_JOBS:
                r.render_job(view, ENV, job)
            jinja.append(time.perf_counter() - t0)
        change, floor = statistics.median(changes), statistics.median(jinja)
        goal = goals.get(n)
        verdict = "" if goal is None else (f"<= {goal * 1000:.0f} ms "
                                           f"{'met' if change <= goal else 'MISSED'}")
        print(f"{n:>6} {_ms(first)} {_ms(change)} {_ms(floor)} {change / floor:6.2f} "
              f"{lines:>8}  {verdict}")
    print("ratio = change / jinja (view computation and key-space synthesis on top of the "
          "bare template render)")


def section_watch() -> None:
    """Event-to-dest latency and burst reloads (bench/confd_watch.py, the processing side)."""
    import confd_watch  # bench/ is on sys.path when this file runs

    confd_watch.main()


SECTIONS: dict[str, Callable[[], None]] = {
    "render": section_render,
    "watch": section_watch,
}


def main(argv: list[str] | None = None) -> int:
    names = (argv if argv is not None else sys.argv[1:]) or list(SECTIONS)
    unknown = [n for n in names if n not in SECTIONS]
    if unknown:
        print(f"unknown section(s): {', '.join(unknown)}; known: {', '.join(SECTIONS)}",
              file=sys.stderr)
        return 2
    for name in names:
        SECTIONS[name]()
    return 0


if __name__ == "__main__":
    sys.exit(main())
