"""calicoctl benchmark. Run: `python bench/calicoctl.py [--runs N] [--resources N]`.

Starts its own etcd on loopback and removes it (and its data) at the end, even on failure.

1. Command latency, process start to exit (p50, p99), in the same run:
   - `calicoctl get ippools -o json` with 10 pools stored;
   - `etcdctl get --prefix` of the same keys (Debian's Go client: the floor for a CLI that
     reads etcd), and the bare interpreter start (`python -c pass`).
   Where the time goes (cProfile, this machine): importing the resource model ~120 ms
   (dataclass creation), grpc + pyetcd ~110 ms, the list itself ~40 ms; click and calicoctl's
   own modules ~25 ms. calicoctl imports all of these only when a command needs them.
2. Bulk apply: `calicoctl create -f` of N BGPPeers in one file (one process: read, validate
   all, N compare-and-swap creates), resources per second, beside the same N creates done
   with the raw backend (one `create(key, value)` transaction each) in this process.
   Goal: within 2x of the raw client.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from libcalico.datastore import connect  # noqa: E402
from libcalico.datastore.config import DatastoreConfig  # noqa: E402
from libcalico.model import keys  # noqa: E402
from tests.fixtures.etcd import ETCDCTL, EtcdFactory  # noqa: E402

CALICOCTL = str(Path(sys.executable).parent / "calicoctl")


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def timed(argv: list[str], env: dict[str, str], stdin: str | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, input=stdin, env=env, capture_output=True, text=True, timeout=120,
                       check=False)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{argv} failed: {r.stdout} {r.stderr}")
    return dt


def peers_yaml(n: int, prefix: str) -> str:
    docs = [f"apiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: {prefix}-{i}\n"
            f"spec:\n  peerIP: 192.0.{i // 250}.{i % 250 + 1}\n  asNumber: {64512 + i % 1000}\n"
            for i in range(n)]
    return "---\n".join(docs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--resources", type=int, default=1000)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="calicoctl-bench-"))
    (tmp / "etcd").mkdir()
    factory = EtcdFactory(tmp / "etcd")
    try:
        etcd = factory.new("bench")
        env = {**os.environ, "ETCD_ENDPOINTS": etcd.endpoint, "DATASTORE_TYPE": "etcdv3",
               "ETCDCTL_API": "3", "GRPC_ENABLE_FORK_SUPPORT": "false"}
        pools = "---\n".join(
            f"apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p{i}}}\n"
            f"spec: {{cidr: 10.{i}.0.0/16}}\n" for i in range(10))
        timed([CALICOCTL, "create", "-f", "-"], env, pools)
        prefix = keys.resource_prefix("IPPool")
        get_ctl = [CALICOCTL, "get", "ippools", "-o", "json"]
        get_raw = [ETCDCTL, "--endpoints", etcd.endpoint, "get", "--prefix", prefix]
        for _ in range(3):  # warm the page cache for both
            timed(get_ctl, env)
            timed(get_raw, env)
        ctl, raw, bare = [], [], []
        for _ in range(args.runs):  # interleaved, so load changes hit both alike
            ctl.append(timed(get_ctl, env))
            raw.append(timed(get_raw, env))
            bare.append(timed([sys.executable, "-c", "pass"], env))
        floor = pct(raw, 50)
        print("1. command latency (process start to exit)")
        for name, xs in (("calicoctl get ippools -o json", ctl), ("etcdctl get --prefix", raw),
                         ("python -c pass", bare)):
            print(f"  {name:<32} p50 {pct(xs, 50) * 1000:7.1f} ms  p99 "
                  f"{pct(xs, 99) * 1000:7.1f} ms  ratio to etcdctl {pct(xs, 50) / floor:5.2f}x")

        n = args.resources
        text = peers_yaml(n, "ctl")
        t_ctl = timed([CALICOCTL, "create", "-f", "-"], env, text)
        backend = connect(DatastoreConfig.from_env({"ETCD_ENDPOINTS": etcd.endpoint}))
        try:
            sample = json.dumps({"kind": "BGPPeer", "apiVersion": "projectcalico.org/v3",
                                 "metadata": {"name": "x"},
                                 "spec": {"peerIP": "192.0.2.1", "asNumber": 64512}})
            t0 = time.perf_counter()
            for i in range(n):
                backend.create(keys.resource_key("BGPPeer", f"raw-{i}"), sample)
            t_raw = time.perf_counter() - t0
        finally:
            backend.close()
        print(f"2. bulk create of {n} BGPPeers")
        print(f"  calicoctl create -f (whole process) {n / t_ctl:8.0f} resources/s")
        print(f"  raw backend create (in process)     {n / t_raw:8.0f} resources/s")
        print(f"  ratio (raw rate / calicoctl rate)   {t_ctl / t_raw:8.2f}x   goal <= 2x")
        print(f"  (median calicoctl get {statistics.median(ctl) * 1000:.1f} ms)")
    finally:
        factory.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
