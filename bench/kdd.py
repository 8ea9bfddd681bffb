"""Kubernetes datastore (KDD) benchmark. Run: `python bench/kdd.py [--resources N] [--pods N]`.

Starts its own kube-apiserver + etcd on loopback (calico_node.kubelab.apiserver, the project's
CRDs installed; its directory in /dev/shm when there is one) and stops it and removes the
directory at the end, even on failure. Every figure is printed beside the same requests made
raw with the same client (`libcalico.datastore.kubernetes_client.KubeClient`) in the same run,
as a ratio (goal <= 2x):

1. calicoctl apply rate: `calicoctl apply -f` of N BGPPeers (default 2,000) in one file, the
   whole process (read, validate, one POST each), beside N POSTs of the same custom resources
   with the raw client in this process.
2. calicoctl list latency of those N: `calicoctl get bgppeers -o json` (process start to exit)
   beside a raw process (`python -c`: import the client, read the kubeconfig, the same paged
   GETs, print the items as JSON); and in process `Client.list` (paged GETs, convert, decode,
   validate) beside the raw paged GETs.
3. The Syncer over the WorkloadEndpoint prefix to IN_SYNC with P Pods (default 10,000; made
   as API objects with `nodeName` and a `podIP`/`podIPs` status, created in threads), beside
   the raw paged list of the same Pods.
4. confd event-to-dest on KDD: calico-confd (watch mode, DATASTORE_TYPE=kubernetes, real
   `bird -p` check, a reload_cmd that appends to a file) for node bench-0 of a mesh of
   Kubernetes Nodes; one BGPPeer change (a PUT of the custom resource) until bird.cfg holds
   the new peer (p50, p99). Limit measured in the same run: the API server's own write ->
   watch event latency (p50, the same PUT seen by a watch on the object) plus one `bird -p`
   of the same bird.cfg (p50).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from confd_watch import _ino, _read, _wait  # noqa: E402  (bench/ is on sys.path when run)

from calico_node.kubelab.apiserver import ControlPlane, running  # noqa: E402
from libcalico.client import Client  # noqa: E402
from libcalico.datastore import kubernetes_convert as convert  # noqa: E402
from libcalico.datastore.kubernetes import KubernetesBackend  # noqa: E402
from libcalico.datastore.kubernetes_client import KubeClient, access_from_kubeconfig  # noqa: E402
from libcalico.datastore.syncer import (  # noqa: E402
    StatusChanged,
    Syncer,
    SyncEvent,
    SyncStatus,
    Updates,
)
from libcalico.model import keys  # noqa: E402

CALICOCTL = str(Path(sys.executable).parent / "calicoctl")
CRD = "/apis/crd.projectcalico.org/v1"
PAGE = "500"
POD_NS = "bench-pods"
MESH = 20
SAMPLES = 20
THREADS = 8

RAW_LIST = """
import json, sys
from libcalico.datastore.kubernetes_client import KubeClient, access_from_kubeconfig
c = KubeClient(access_from_kubeconfig(sys.argv[1]))
q = {"limit": "500"}
items = []
while True:
    r = c.request("GET", "/apis/crd.projectcalico.org/v1/bgppeers", query=q)
    items += r["items"]
    if not r["metadata"].get("continue"):
        break
    q = {"limit": "500", "continue": r["metadata"]["continue"]}
print(json.dumps(items, indent=2))
"""


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def timed(argv: list[str], env: dict[str, str], stdin: str | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, input=stdin, env=env, capture_output=True, text=True, timeout=600,
                       check=False, cwd=ROOT)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{argv[:3]} failed: {r.stdout[-2000:]} {r.stderr[-2000:]}")
    return dt


def interleaved(fns: list[Callable[[], object]], runs: int) -> list[float]:
    """Median seconds of each fn, calls interleaved, after one warm-up each."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(runs):
        for j, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            times[j].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def paged(client: KubeClient, path: str) -> list[dict[str, Any]]:
    q = {"limit": PAGE}
    items: list[dict[str, Any]] = []
    while True:
        r = client.request("GET", path, query=q)
        items += r["items"]
        token = r["metadata"].get("continue")
        if not token:
            return items
        q = {"limit": PAGE, "continue": token}


def peer_doc(name: str, i: int) -> dict[str, Any]:
    return {"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
            "metadata": {"name": name},
            "spec": {"peerIP": f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}",
                     "asNumber": 64512 + i % 1000}}


# -- 1 + 2: calicoctl ---------------------------------------------------------------------------

def bench_calicoctl(cp: ControlPlane, client: KubeClient, n: int, runs: int, tmp: Path
                    ) -> dict[str, float]:
    cfg = tmp / "calicoctl.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
                   f"spec:\n  datastoreType: kubernetes\n  kubeconfig: {cp.kubeconfig}\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ETCD_", "CALICO_", "DATASTORE_", "KUBECONFIG", "K8S_"))}
    env.update(GRPC_ENABLE_FORK_SUPPORT="false", PYTHONPATH=str(ROOT))
    text = "".join(
        f"---\napiVersion: projectcalico.org/v3\nkind: BGPPeer\nmetadata:\n  name: ctl-{i}\n"
        f"spec:\n  peerIP: 10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}\n"
        f"  asNumber: {64512 + i % 1000}\n" for i in range(n))
    # The raw requests: the same custom resources (as calicoctl's Client makes them: a uid and
    # a creationTimestamp in the metadata annotation), POSTed one by one.
    bodies = []
    for i in range(n):
        doc = peer_doc(f"raw-{i}", i)
        doc["metadata"].update(uid=f"9f0c6d5e-0d1c-4c1e-9a43-{i:012d}",
                               creationTimestamp="2026-01-01T00:00:00Z")
        bodies.append(convert.to_cr(doc))
    path = f"{CRD}/bgppeers"
    client.request("POST", path, body=convert.to_cr(peer_doc("warm", 0)))  # warm up
    t0 = time.perf_counter()
    for b in bodies:
        client.request("POST", path, body=b)
    t_raw = time.perf_counter() - t0
    t_ctl = timed([CALICOCTL, "--config", str(cfg), "apply", "-f", "-"], env, text)
    client.request("DELETE", f"{path}/warm")
    # Lists: the raw peers go, so that both list the same n objects.
    with ThreadPoolExecutor(THREADS) as ex:
        list(ex.map(lambda i: client.request("DELETE", f"{path}/raw-{i}"), range(n)))
    assert len(paged(client, path)) == n

    get_ctl = [CALICOCTL, "--config", str(cfg), "get", "bgppeers", "-o", "json"]
    get_raw = [sys.executable, "-c", RAW_LIST, str(cp.kubeconfig)]
    ctl_l, raw_l = interleaved([lambda: timed(get_ctl, env), lambda: timed(get_raw, env)], runs)

    backend = KubernetesBackend(client)
    typed = Client(backend)

    def typed_list() -> None:
        assert len(typed.list("BGPPeer")) == n

    def be_list() -> None:
        assert len(backend.list(keys.resource_prefix("BGPPeer")).kvs) == n

    def raw_list() -> None:
        assert len(paged(client, path)) == n

    typed_l, be_l, raw_in = interleaved([typed_list, be_list, raw_list], runs)
    # The peers go too: the confd section measures one change on a 20-node mesh, not a render
    # of 2,000 global peers left over from this one.
    with ThreadPoolExecutor(THREADS) as ex:
        list(ex.map(lambda i: client.request("DELETE", f"{path}/ctl-{i}"), range(n)))
    return {"apply_ctl": n / t_ctl, "apply_raw": n / t_raw, "list_ctl": ctl_l,
            "list_raw_proc": raw_l, "list_typed": typed_l, "list_backend": be_l,
            "list_raw": raw_in}


# -- 3: the Syncer over Pods ------------------------------------------------------------------

def make_pods(cp: ControlPlane, client: KubeClient, p: int) -> float:
    cp.ensure_namespace(POD_NS)
    coll = f"/api/v1/namespaces/{POD_NS}/pods"

    def one(i: int) -> None:
        name = f"pod-{i}"
        client.request("POST", coll, body={
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "labels": {"app": f"a{i % 10}"}},
            "spec": {"nodeName": f"node-{i % 100}", "automountServiceAccountToken": False,
                     "containers": [{"name": "c", "image": "pause",
                                     "ports": [{"name": "http", "containerPort": 80}]}]}})
        ip = f"10.{128 + i // 65536}.{i // 256 % 256}.{i % 256}"
        client.request("PATCH", f"{coll}/{name}/status", content_type=
                       "application/merge-patch+json",
                       body={"status": {"podIP": ip, "podIPs": [{"ip": ip}]}})

    t0 = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as ex:
        list(ex.map(one, range(p)))
    return time.perf_counter() - t0


def bench_syncer(client: KubeClient, p: int, runs: int) -> dict[str, float]:
    backend = KubernetesBackend(client)
    prefix = keys.resource_prefix("WorkloadEndpoint")

    def syncer() -> None:
        got = threading.Event()
        count = [0]

        def sink(ev: SyncEvent) -> None:
            if isinstance(ev, Updates):
                count[0] += len(ev.updates)
            elif isinstance(ev, StatusChanged) and ev.status is SyncStatus.IN_SYNC:
                got.set()

        s = Syncer(backend, [prefix], sink)
        s.start()
        try:
            assert got.wait(300), "no IN_SYNC"
            assert count[0] == p, count[0]
        finally:
            s.stop()

    def raw() -> None:
        assert len(paged(client, f"/api/v1/namespaces/{POD_NS}/pods")) == p

    sync_l, raw_l = interleaved([syncer, raw], runs)
    return {"sync": sync_l, "sync_raw": raw_l}


# -- 4: confd event-to-dest ----------------------------------------------------------------

def _peer_body(client: KubeClient, name: str, ip: str) -> dict[str, Any]:
    """The PUT body of BGPPeer `name` with peerIP `ip`, at its current resourceVersion."""
    cur = client.request("GET", f"{CRD}/bgppeers/{name}")
    cr = convert.to_cr(peer_doc(name, 0), resource_version=cur["metadata"]["resourceVersion"])
    cr["metadata"]["uid"] = cur["metadata"]["uid"]
    cr["spec"] = {"peerIP": ip, "asNumber": 65001}
    return cr


def watch_limit(client: KubeClient, samples: int) -> list[float]:
    """A PUT of a BGPPeer -> its event on a watch of that object, seconds."""
    name = "bench-limit"
    path = f"{CRD}/bgppeers"
    cr = client.request("POST", path, body=convert.to_cr(peer_doc(name, 0)))
    stream = client.watch(path, {"fieldSelector": f"metadata.name={name}",
                                 "resourceVersion": cr["metadata"]["resourceVersion"],
                                 "timeoutSeconds": "600"})
    seen: list[float] = []
    got = threading.Event()

    def reader() -> None:
        for ev in stream:
            if ev.get("type") == "MODIFIED":
                seen.append(time.monotonic())
                got.set()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    out = []
    try:
        for i in range(samples):
            got.clear()
            body = _peer_body(client, name, f"10.43.0.{i + 1}")  # not timed
            t0 = time.monotonic()
            client.request("PUT", f"{path}/{name}", body=body)
            assert got.wait(10), "no watch event"
            out.append(seen[-1] - t0)
            time.sleep(0.05)
    finally:
        stream.close()
        client.request("DELETE", f"{path}/{name}")
    return out


def bird_parse_time(cfg: Path, samples: int = 10) -> list[float]:
    out = []
    for _ in range(samples):
        t0 = time.monotonic()
        subprocess.run(["bird", "-p", "-c", str(cfg)], check=True, capture_output=True)
        out.append(time.monotonic() - t0)
    return out


def bench_confd(cp: ControlPlane, client: KubeClient, tmp: Path, samples: int
                ) -> dict[str, float]:
    from tests.integration.confd_engine import cluster as c

    for i in range(MESH):
        client.request("POST", "/api/v1/nodes", body={
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": f"bench-{i}", "annotations": {
                "projectcalico.org/IPv4Address": f"10.40.{i // 250}.{i % 250 + 1}/16"}}})
    client.request("POST", f"{CRD}/ippools", body=convert.to_cr({
        "apiVersion": "projectcalico.org/v3", "kind": "IPPool",
        "metadata": {"name": "default-ipv4-ippool"},
        "spec": {"cidr": "192.168.0.0/16", "ipipMode": "Never", "vxlanMode": "Never",
                 "natOutgoing": True, "blockSize": 26, "nodeSelector": "all()"}}))
    client.request("POST", f"{CRD}/bgppeers", body=convert.to_cr(peer_doc("bench-peer", 0)))
    reloads = tmp / "reloads"
    confdir = c.make_confdir(tmp, reload_log=reloads)
    out = tmp / "out"
    bird = out / c.CONFIG_DIR / "bird.cfg"
    log = tmp / "confd.log"
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALICO_", "ETCD_", "K8S_", "DATASTORE_", "KUBECONFIG"))}
    env.update(DATASTORE_TYPE="kubernetes", KUBECONFIG=str(cp.kubeconfig), NODENAME="bench-0",
               NAMESPACE="kube-system", PYTHONPATH=str(ROOT), GRPC_ENABLE_FORK_SUPPORT="false",
               CALICO_ENDPOINT_STATUS_PATH_PREFIX=str(tmp / "run"))
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "confd", "--confdir", str(confdir),
                                 "--dest-root", str(out)], env=env, cwd=ROOT, stdout=f,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        try:
            _wait(lambda: "bird" in _read(reloads).split(), 60, 0.01)
        except TimeoutError:
            raise RuntimeError(f"confd on KDD never rendered:\n{_read(log)[-3000:]}") from None
        lat = []
        for i in range(samples):
            time.sleep(1.2)  # beyond the minimum pass interval: each change stands alone
            ip = f"10.41.{i // 250}.{i % 250 + 1}"
            peer = "Global_" + ip.replace(".", "_")
            ino = _ino(bird)
            body = _peer_body(client, "bench-peer", ip)  # not timed, as in watch_limit
            t0 = time.monotonic()
            client.request("PUT", f"{CRD}/bgppeers/bench-peer", body=body)
            t1 = _wait(lambda ino=ino: _ino(bird) != ino, 30)  # type: ignore[misc]
            assert peer in _read(bird), f"{peer} missing after the first rewrite"
            lat.append(t1 - t0)
        limit_watch = watch_limit(client, samples)
        limit_bird = bird_parse_time(bird)
        if "Traceback" in _read(log):
            raise RuntimeError(_read(log)[-3000:])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
    return {"confd_p50": pct(lat, 50), "confd_p99": pct(lat, 99),
            "watch_p50": statistics.median(limit_watch),
            "bird_p50": statistics.median(limit_bird)}


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--resources", type=int, default=2000)
    ap.add_argument("--pods", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=5, help="list/sync repetitions (median)")
    ap.add_argument("--samples", type=int, default=SAMPLES, help="confd changes")
    ap.add_argument("--skip", default="", help="comma list of: calicoctl,syncer,confd")
    args = ap.parse_args()
    skip = set(filter(None, args.skip.split(",")))
    shm = Path("/dev/shm")
    tmp = Path(tempfile.mkdtemp(prefix="bench-kdd-", dir=shm if shm.is_dir() else None))
    r: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        with running(tmp / "kube") as cp:
            print(f"kdd benchmark: API server {cp.server} up in {time.perf_counter() - t0:.1f} s"
                  f", data in {tmp}; load {Path('/proc/loadavg').read_text().split()[:3]}")
            client = KubeClient(access_from_kubeconfig(str(cp.kubeconfig)), timeout=60)
            if "calicoctl" not in skip:
                r.update(bench_calicoctl(cp, client, args.resources, args.runs, tmp))
                report_calicoctl(r, args.resources, args.runs)
            # (confd before the Pods; with the 10,000 Pods in the API server it measured the
            # same, 9.3 ms p50 against 10-11 ms without, at load ~5.)
            if "confd" not in skip:
                r.update(bench_confd(cp, client, tmp, args.samples))
                report_confd(r, args.samples)
            if "syncer" not in skip:
                made = make_pods(cp, client, args.pods)
                print(f"\n({args.pods} Pods created and their status set in {made:.1f} s, "
                      f"{THREADS} threads)")
                r.update(bench_syncer(client, args.pods, args.runs))
                report_syncer(r, args.pods, args.runs)
            client.close()
        print(f"\nload average at the end: {Path('/proc/loadavg').read_text().split()[:3]}")
        print("ratio = time per object (or per list) relative to the raw client; goal <= 2x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


def _load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def report_calicoctl(r: dict[str, float], n: int, runs: int) -> None:
    print(f"\n[load {_load()}]")
    print(f"\n{f'apply of {n} BGPPeers':44} {'objects/s':>10} {'raw client':>11} {'ratio':>6}")
    print(f"{'  calicoctl apply -f (whole process)':44} {r['apply_ctl']:10.0f} "
          f"{r['apply_raw']:11.0f} {r['apply_raw'] / r['apply_ctl']:5.2f}x")
    print(f"\n{f'list of {n} (median of {runs})':44} {'ms':>10} {'raw client':>11} {'ratio':>6}")
    print(f"{'  calicoctl get -o json (process) vs raw proc':44} {r['list_ctl'] * 1e3:10.1f} "
          f"{r['list_raw_proc'] * 1e3:11.1f} {r['list_ctl'] / r['list_raw_proc']:5.2f}x")
    print(f"{'  Client.list (in process)':44} {r['list_typed'] * 1e3:10.1f} "
          f"{r['list_raw'] * 1e3:11.1f} {r['list_typed'] / r['list_raw']:5.2f}x")
    print(f"{'  KubernetesBackend.list (in process)':44} {r['list_backend'] * 1e3:10.1f} "
          f"{r['list_raw'] * 1e3:11.1f} {r['list_backend'] / r['list_raw']:5.2f}x")


def report_syncer(r: dict[str, float], p: int, runs: int) -> None:
    print(f"[load {_load()}]")
    print(f"\n{f'sync of {p} Pods (median of {runs})':44} {'ms':>10} {'raw list':>11} "
          f"{'ratio':>6}")
    print(f"{'  Syncer (WorkloadEndpoints) to IN_SYNC':44} {r['sync'] * 1e3:10.1f} "
          f"{r['sync_raw'] * 1e3:11.1f} {r['sync'] / r['sync_raw']:5.2f}x")


def report_confd(r: dict[str, float], samples: int) -> None:
    limit = r["watch_p50"] + r["bird_p50"]
    print(f"\n[load {_load()}]")
    print(f"confd event-to-dest on KDD, one BGPPeer change ({MESH}-node mesh, {samples} "
          f"samples): p50 {r['confd_p50'] * 1e3:.1f} ms, p99 {r['confd_p99'] * 1e3:.1f} ms")
    print(f"  limit: API server PUT->watch event p50 {r['watch_p50'] * 1e3:.1f} ms + bird -p "
          f"p50 {r['bird_p50'] * 1e3:.1f} ms = {limit * 1e3:.1f} ms; ratio p50/limit "
          f"{r['confd_p50'] / limit:.2f}x")


if __name__ == "__main__":
    sys.exit(main())
