"""CNI benchmark. Run as root: `python bench/cni.py [--runs N]`.

Starts its own etcd on loopback, makes one network namespace per ADD, and removes everything
at the end (namespaces, host veths, etcd and its data), even on failure.

1. ADD latency, process start to result (p50, p99), all in the same run:
   - `calico` + `calico-ipam` (calico-ipam runs in-process when ipam.type is calico-ipam),
     both as the venv's console script and as installed by `python -m calico_cni.install`
     (a launcher started with `python -S`, as a CNI bin directory would hold it);
   - the bare interpreter start, `python3 -c pass` (and the venv's python, which the plugin
     runs under);
   - Debian's Go `ptp` + `host-local` doing an ADD of the same shape (a veth into a new
     namespace, an address, a host route).
   Goal: calico ADD p50 <= 3x the bare interpreter start.
2. IPAM: assignments per second through IPAMClient (one address per handle, one node, as
   calico-ipam does) beside the raw etcd compare-and-swap rate of the same client (one
   `update(key, value, revision)` round trip). Goal: one assignment <= 3x one raw CAS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from calico_cni.etcdgw import GatewayBackend  # noqa: E402
from libcalico.ipam.client import AutoAssignArgs, IPAMClient  # noqa: E402
from tests.fixtures.etcd import EtcdFactory  # noqa: E402
from tests.integration.ipam import seed  # noqa: E402

BIN = Path(sys.executable).parent
NS_PREFIX = f"cnib{os.getpid()}-"


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def timed(argv: list[str], stdin: str = "", env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, input=stdin, env=env, capture_output=True, text=True, timeout=60,
                       check=False)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed: {r.stdout} {r.stderr}")
    return dt


def cni_env(cmd: str, cid: str, ns: str, path: str) -> dict[str, str]:
    return {**os.environ, "CNI_COMMAND": cmd, "CNI_CONTAINERID": cid,
            "CNI_NETNS": f"/var/run/netns/{ns}", "CNI_IFNAME": "eth0", "CNI_PATH": path}


def add_latency(binary: str, conf: dict[str, object], runs: int, tag: str, cni_path: str
                ) -> list[float]:
    out = []
    text = json.dumps(conf)
    for i in range(runs):
        ns = f"{NS_PREFIX}{tag}{i}"
        subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
        cid = f"{tag}{i:05d}bench"
        try:
            out.append(timed([binary], text, cni_env("ADD", cid, ns, cni_path)))
            timed([binary], text, cni_env("DEL", cid, ns, cni_path))
        finally:
            subprocess.run(["ip", "netns", "del", ns], check=False, timeout=30)
    return out


def rate(fn: Callable[[int], None], n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n


def line(name: str, xs: list[float], base: float) -> str:
    p50, p99 = pct(xs, 50), pct(xs, 99)
    return (f"  {name:<34} p50 {p50 * 1000:7.1f} ms  p99 {p99 * 1000:7.1f} ms  "
            f"p50 ratio {p50 / base:5.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--assign", type=int, default=300)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench/cni.py needs root (network namespaces)")
    tmp = Path(tempfile.mkdtemp(prefix="cni-bench-"))
    factory = EtcdFactory(tmp / "etcd")
    (tmp / "etcd").mkdir()
    try:
        etcd = factory.new("bench")
        be = GatewayBackend([etcd.endpoint])
        seed.cluster(be, ["bench-node"], {"bench": {"cidr": "10.180.0.0/16"}})
        calico_conf = {"cniVersion": "1.0.0", "name": "benchnet", "type": "calico",
                       "etcd_endpoints": etcd.endpoint, "nodename": "bench-node",
                       "ipam_lock_file": str(tmp / "ipam.lock"), "ipam": {"type": "calico-ipam"}}
        ptp_conf = {"cniVersion": "1.0.0", "name": "ptpnet", "type": "ptp",
                    "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.181.0.0/16"}]],
                             "dataDir": str(tmp / "host-local")}}
        runs = args.runs
        # Debian's python3 (the "bare interpreter"), and the interpreter the plugin runs on
        py = [timed(["/usr/bin/python3", "-c", "pass"]) for _ in range(runs)]
        real = os.path.realpath(sys.executable)
        same = [timed([real, "-c", "pass"]) for _ in range(runs)]
        venv = [timed([sys.executable, "-c", "pass"]) for _ in range(runs)]
        from calico_cni.install import install

        install(tmp / "cni-bin")
        add_latency(str(BIN / "calico"), calico_conf, 3, "w", "/usr/lib/cni")
        calico = add_latency(str(BIN / "calico"), calico_conf, runs, "c", "/usr/lib/cni")
        launcher = add_latency(str(tmp / "cni-bin" / "calico"), calico_conf, runs, "l",
                               "/usr/lib/cni")
        ptp = add_latency("/usr/lib/cni/ptp", ptp_conf, runs, "p", "/usr/lib/cni")
        base = pct(py, 50)
        print(f"CNI ADD latency, process start to result ({runs} runs each):")
        print(line("/usr/bin/python3 -c pass (bare)", py, base))
        print(line("plugin's python3.11 -c pass", same, base))
        print(line("venv python -c pass (site+.pth)", venv, base))
        print(line("Debian ptp + host-local (Go)", ptp, base))
        print(line("calico + calico-ipam (venv script)", calico, base))
        print(line("calico + calico-ipam (installed)", launcher, base))
        best = min(pct(calico, 50), pct(launcher, 50))
        print(f"  goal: calico p50 <= 3x bare interpreter: "
              f"{'MET' if best <= 3 * base else 'NOT MET'} "
              f"({best / base:.2f}x); vs Go ptp {best / pct(ptp, 50):.2f}x")

        key = "/calico/bench/cas"
        kv = be.create(key, "0")
        state = {"rev": kv.revision}

        def cas(i: int) -> None:
            state["rev"] = be.update(key, str(i), state["rev"]).revision

        client = IPAMClient(be)
        client.auto_assign(AutoAssignArgs("bench-node", handle_id="warm"))

        def assign(i: int) -> None:
            v4, _ = client.auto_assign(AutoAssignArgs("bench-node", handle_id=f"h{i}"))
            assert v4.ips

        n = args.assign
        t_cas = rate(cas, n)
        t_assign = rate(assign, n)
        print(f"IPAM ({n} operations each, GatewayBackend, one node):")
        print(f"  raw etcd CAS (update at revision)  {t_cas * 1000:7.2f} ms  "
              f"{1 / t_cas:8.0f}/s")
        print(f"  IPAM auto_assign (1 address)       {t_assign * 1000:7.2f} ms  "
              f"{1 / t_assign:8.0f}/s  ratio {t_assign / t_cas:5.2f}x")
        print(f"  goal: assignment <= 3x raw CAS: "
              f"{'MET' if t_assign <= 3 * t_cas else 'NOT MET'}")
        be.close()
    finally:
        out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                             check=False).stdout
        for line_ in out.splitlines():
            name = line_.split()[0] if line_.strip() else ""
            if name.startswith(NS_PREFIX):
                subprocess.run(["ip", "netns", "del", name], check=False)
        factory.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
