"""confd watch-mode benchmark: event-to-dest latency and reloads in a burst.

Run: `python bench/confd_watch.py` (called from bench/confd.py's main() too). Starts its own
etcd on loopback and one calico-confd (watch mode, default timing, real `bird -p` check,
reload_cmd that appends to a file) for node `bench-0` of a 100-node full mesh; removes
everything at the end, even on failure.

1. Event-to-dest latency for one BGPPeer change: from just before the etcd write to the moment
   bird.cfg holds the new peer (p50, p99 over SAMPLES changes spaced beyond the minimum pass
   interval). Physical limit measured in the same run: an etcd write seen by a watch on it
   (p50) plus one `bird -p` of the same bird.cfg (p50).
2. Reloads caused by 500 Node creations written back to back: reload_cmd invocations for
   BIRD (v4) until bird.cfg holds all 500 new peers. Limit: 1.

Goals (issue 13 item 4): p50 event-to-dest <= 3x the limit; burst <= 3 reloads.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from libcalico.datastore.api import Backend  # noqa: E402

SAMPLES = 30
MESH = 100
BURST = 500


def _pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def _wait(pred: Callable[[], bool], timeout: float, poll: float = 0.001) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return time.monotonic()
        time.sleep(poll)
    raise TimeoutError("condition not met")


def _read(p: Path) -> str:
    try:
        return p.read_text()
    except FileNotFoundError:
        return ""


def _ino(p: Path) -> int:
    try:
        return p.stat().st_ino
    except FileNotFoundError:
        return 0


def watch_limit(backend: Backend, samples: int = SAMPLES) -> list[float]:
    """etcd write -> event on a watch of that key, seconds."""
    key = "/calico/bench/watch-limit"
    stream = backend.watch(key, backend.apply(key, "0").revision)
    seen: list[float] = []
    got = threading.Event()

    def reader() -> None:
        for _ in stream:
            seen.append(time.monotonic())
            got.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    out = []
    for i in range(samples):
        got.clear()
        t0 = time.monotonic()
        backend.apply(key, str(i + 1))
        got.wait(5)
        out.append(seen[-1] - t0)
        time.sleep(0.05)
    stream.close()
    return out


def bird_parse_time(cfg: Path, samples: int = 10) -> list[float]:
    out = []
    for _ in range(samples):
        t0 = time.monotonic()
        subprocess.run(["bird", "-p", "-c", str(cfg)], check=True, capture_output=True)
        out.append(time.monotonic() - t0)
    return out


def run(samples: int = SAMPLES) -> dict[str, float]:
    from tests.fixtures.etcd import EtcdFactory
    from tests.integration.confd_engine import cluster as c

    root = Path(tempfile.mkdtemp(prefix="bench-confd-watch-"))
    factory = EtcdFactory(root / "etcd")
    (root / "etcd").mkdir()
    results: dict[str, float] = {}
    try:
        srv = factory.new("bench")
        be = c.backend(srv.endpoint)
        for i in range(MESH):
            c.node(be, f"bench-{i}", f"10.40.{i // 250}.{i % 250 + 1}/16")
        c.pool(be, "default-ipv4-ippool", "192.168.0.0/16")
        c.affinity(be, "bench-0", "192.168.0.0/26")
        reloads = root / "reloads"
        confdir = c.make_confdir(root, reload_log=reloads)
        out = root / "out"
        bird = out / c.CONFIG_DIR / "bird.cfg"
        with c.daemon(srv.endpoint, "bench-0", "--confdir", str(confdir), "--dest-root",
                      str(out), log_path=root / "confd.log") as d:
            _wait(lambda: "bird" in _read(reloads).split(), 60, 0.01)
            # 1. latency of one BGPPeer change
            lat = []
            for i in range(samples):
                time.sleep(1.2)  # beyond the minimum pass interval: each change stands alone
                ip = f"10.41.{i // 250}.{i % 250 + 1}"
                name = "Global_" + ip.replace(".", "_")
                ino = bird.stat().st_ino
                t0 = time.monotonic()
                c.put(be, "BGPPeer", "bench-peer", {"peerIP": ip, "asNumber": 65001})
                # dest is replaced by rename: watch the inode, then confirm the content
                t1 = _wait(lambda ino=ino: _ino(bird) != ino, 30)
                assert name in _read(bird), f"{name} missing after the first rewrite"
                lat.append(t1 - t0)
            limit_watch = watch_limit(be)
            limit_bird = bird_parse_time(bird)
            results["latency_p50_ms"] = _pct(lat, 50) * 1000
            results["latency_p99_ms"] = _pct(lat, 99) * 1000
            results["limit_watch_p50_ms"] = statistics.median(limit_watch) * 1000
            results["limit_bird_p_p50_ms"] = statistics.median(limit_bird) * 1000
            # 2. burst of Node creations
            time.sleep(1.5)
            reloads.write_text("")
            t0 = time.monotonic()
            for i in range(BURST):
                c.node(be, f"burst-{i}", f"10.42.{i // 250}.{i % 250 + 1}/16")
            t_written = time.monotonic()
            _wait(lambda: _read(bird).count("protocol bgp Mesh_") == MESH - 1 + BURST, 120, 0.01)
            t_done = time.monotonic()
            time.sleep(2.5)  # let a straggling pass show up if there were one
            results["burst_write_s"] = t_written - t0
            results["burst_settle_s"] = t_done - t_written
            results["burst_reloads"] = float(_read(reloads).split().count("bird"))
            if "Traceback" in d.log():
                raise RuntimeError(d.log())
        be.close()
    finally:
        factory.cleanup()
        subprocess.run(["rm", "-rf", str(root)], check=False)
    return results


def report(r: dict[str, float]) -> None:
    limit = r["limit_watch_p50_ms"] + r["limit_bird_p_p50_ms"]
    print(f"event-to-dest, one BGPPeer change ({MESH}-node mesh, {SAMPLES} samples): "
          f"p50 {r['latency_p50_ms']:.1f} ms, p99 {r['latency_p99_ms']:.1f} ms")
    print(f"  limit: etcd write->watch event p50 {r['limit_watch_p50_ms']:.1f} ms + bird -p "
          f"p50 {r['limit_bird_p_p50_ms']:.1f} ms = {limit:.1f} ms; "
          f"ratio p50/limit {r['latency_p50_ms'] / limit:.1f}x (goal <= 3x)")
    print(f"burst of {BURST} Node creations (written in {r['burst_write_s']:.2f} s, files "
          f"complete {r['burst_settle_s']:.2f} s after the last write): "
          f"{r['burst_reloads']:.0f} BIRD reload(s) (goal <= 3; limit 1; "
          f"ratio {r['burst_reloads']:.0f}x)")


def main() -> None:
    report(run())


if __name__ == "__main__":
    main()
