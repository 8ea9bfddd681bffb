"""Felix benchmark (run as root: `python bench/felix.py [N]`, default N=1000).

Creates its own namespaces (removed at the end, even on failure) and measures, on this box:

1. First full programming of N workload endpoints (routes, permanent neighbours, sysctls,
   ipsets, iptables in raw/mangle/filter/nat) by Felix's dataplane, from "datastore in sync"
   to the end of the first apply, beside the physical limit: the same kernel state applied in
   a fresh namespace by one `ip -batch` (routes + neighbours), one `sysctl -p` (all sysctls),
   one `ipset restore` and one `iptables-restore` per table fed the exact text Felix wrote.
2. One new endpoint from the etcd write (a real etcd inside the namespace) to programmed
   (the end of the apply that wrote its route, neighbour, sysctls and chains): p50, p99.
3. CPU used by the whole Felix process (syncer, interface monitor, owner loop) while idle:
   20 s of steady state, plus each periodic job (route/sysctl, iptables and ipset
   re-reads, the interface listing) forced once and charged over its interval.

Goals: first programming ratio ≤ 2 (issue 4); one endpoint p50 ≤ 1.3x its limit, idle < 1% of
a core (issue 13 item 5).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

N = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else int(
    os.environ.get("FXBENCH_N", "1000"))
EXTRA = 40             # endpoints added one by one for the latency figure
ME = "bench-node"


def sh(*argv: str, input: str | None = None) -> str:
    r = subprocess.run(argv, input=input, capture_output=True, text=True, check=False,
                       timeout=600)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {r.stderr.strip()[:2000]}")
    return r.stdout


def iface(i: int) -> str:
    return "cali" + hashlib.sha1(str(i).encode()).hexdigest()[:11]


def ip_of(i: int) -> str:
    return f"10.65.{i // 250}.{i % 250 + 2}"


def make_veths(ns: str, count: int) -> None:
    lines = [f"link add {iface(i)} type veth peer name p{i}" for i in range(count)]
    lines += [f"link set {iface(i)} up" for i in range(count)]
    lines += [f"link set p{i} up" for i in range(count)]
    lines += ["link add eth0 type veth peer name eth0p", "link set eth0 up", "link set eth0p up",
              "addr add 192.168.77.1/24 dev eth0", "link set lo up",
              "route add default via 192.168.77.254 dev eth0 onlink"]
    sh("ip", "-n", ns, "-batch", "-", input="\n".join(lines) + "\n")


def cleanup_ns(ns: str) -> None:
    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True,
                          check=False).stdout.split()
    for p in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(p), 9)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


# -- inner: runs inside the namespace ---------------------------------------------------------

def _kvs(count: int, start: int = 0) -> list[tuple[str, str]]:
    sys.path.insert(0, str(REPO / "tests" / "unit" / "felix"))
    from tests.unit.felix import data
    out = []
    for i in range(start, start + count):
        out.append(data.wep(f"w{i}", ME, iface(i), [f"{ip_of(i)}/32"],
                            mac=f"02:00:00:{i >> 16 & 255:02x}:{i >> 8 & 255:02x}:{i & 255:02x}"))
    return out


def _base_kvs() -> list[tuple[str, str]]:
    from tests.unit.felix import data
    kvs = [data.pool("p", "10.65.0.0/16", vxlan="Always", nat=True),
           data.pool("p2", "10.66.0.0/16", vxlan="Always", nat=True),
           data.node(ME, "192.168.77.1/24", vtep="10.65.200.1"),
           data.profile("kns.default", [{"action": "Allow"}], [{"action": "Allow"}])]
    for n in range(4):      # a few remote nodes and their blocks
        kvs.append(data.node(f"remote{n}", f"192.168.77.{10 + n}/24", vtep=f"10.66.{n}.1"))
        kvs.append(data.block(f"10.66.{n}.0/26", f"remote{n}"))
    for b in range(N // 64 + 1):
        kvs.append(data.block(f"10.65.{b // 4}.{(b % 4) * 64}/26", ME))
    return kvs


def inner_felix(out_dir: str) -> None:
    """First programming (measured), then latency and idle CPU with a real etcd + syncer."""
    os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"
    from felix.__main__ import PREFIXES
    from felix.dataplane.loop import Dataplane, LinksChanged
    from felix.drivers.ifacemon import InterfaceMonitor
    from felix.drivers.netlink import IpBatchNetlink
    from felix.drivers.sysctl import ProcSys
    from libcalico.datastore.etcd import EtcdBackend
    from libcalico.datastore.snapshot import StatusChanged, SyncStatus, Update, Updates
    from libcalico.datastore.syncer import Syncer

    env = {"FELIX_FELIXHOSTNAME": ME, "FELIX_IPV6SUPPORT": "false",
           "FELIX_DEFAULTENDPOINTTOHOSTACTION": "ACCEPT"}
    nl = IpBatchNetlink()
    dp = Dataplane(env, {}, ME, nl, ProcSys())
    kvs = _base_kvs() + _kvs(N)
    deadline = time.monotonic() + 20      # veths come up asynchronously: program them all
    while not all(link.up for name, link in nl.list_links().items() if name.startswith("cali")):
        if time.monotonic() > deadline:
            raise RuntimeError("veths not up after 20 s")
        time.sleep(0.2)
    dp.on_event(StatusChanged(SyncStatus.RESYNC_IN_PROGRESS))
    dp.on_event(Updates(tuple(Update(k, v, 1) for k, v in kvs)))
    dp.on_event(LinksChanged(nl.list_links()))
    dp.on_event(StatusChanged(SyncStatus.IN_SYNC))
    c0 = _cpu()
    t0 = time.perf_counter()
    dp.step()
    while dp.retry_at is not None:          # the VXLAN device appears: one more pass
        dp.on_event(LinksChanged(nl.list_links()))
        dp.step()
    first = time.perf_counter() - t0
    first_cpu = _cpu() - c0
    print("felix first apply phases:", {k: round(v * 1000) for k, v in
                                        dp.last_stats.phases.items()}, flush=True)
    assert dp.state is not None
    st = dp.state
    restore_text = {f"{v}-{t}": tb.last_input for (v, t), tb in dp.tables.items()}
    state = {
        "first": first, "first_cpu": first_cpu,
        "routes": [_route_line(r) for r in st.routes.values()],
        "neigh": [f"neigh replace {ip} lladdr {mac} dev {dev} nud permanent"
                  for (dev, ip), mac in st.neighbours.items()],
        "fdb": [f"fdb replace {mac} dev {dev} dst {ip} self permanent"
                for (dev, mac), ip in st.fdb.items()],
        "sysctls": st.sysctls,
        "ipsets": {k: sorted(v.members) for k, v in st.ipsets.items()},
        "restore": restore_text,
        "rules": sum(sum(len(c) for c in td.chains.values()) for td in st.tables.values()),
        "chains": sum(len(td.chains) for td in st.tables.values()),
        "vxlan": None if st.vxlan is None else {
            "mtu": st.vxlan.mtu, "mac": st.vxlan.mac, "addr": str(st.vxlan.address)},
    }
    Path(out_dir, "state.json").write_text(json.dumps(state))
    if os.environ.get("FXBENCH_LIVE", "1") != "1":
        return

    # Real etcd inside this namespace, then the real syncer feeding the same owner loop.
    tmp = tempfile.mkdtemp(prefix="fxbench-etcd-")
    port = _free_port()
    etcd = subprocess.Popen(
        ["etcd", "--data-dir", tmp, "--listen-client-urls", f"http://127.0.0.1:{port}",
         "--advertise-client-urls", f"http://127.0.0.1:{port}",
         "--listen-peer-urls", f"http://127.0.0.1:{_free_port()}", "--log-level", "error"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        be = EtcdBackend([f"http://127.0.0.1:{port}"], timeout=10)
        deadline = time.monotonic() + 20
        while True:
            try:
                be.list("/x")
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        for k, v in kvs:
            be.apply(k, v)
        done = threading.Event()
        target: dict[str, str] = {}
        orig_apply = dp.apply

        def apply_hook():  # type: ignore[no-untyped-def]
            stats = orig_apply()
            want = target.get("iface")
            if want and dp.state is not None and want in dp.state.workload_ifaces \
                    and dp.retry_at is None:
                done.set()
            return stats
        dp.apply = apply_hook  # type: ignore[method-assign]
        syncer = Syncer(be, PREFIXES, dp.queue.put)
        mon = InterfaceMonitor(nl, lambda links: dp.queue.put(LinksChanged(links)), 90.0)
        runner = threading.Thread(target=dp.run, daemon=True)
        syncer.start()
        mon.start()
        runner.start()
        time.sleep(3)              # resync (nothing to write: already programmed)
        lat = []
        lat_cpu = 0.0
        for i in range(N, N + EXTRA):
            (k, v), = _kvs(1, i)
            target["iface"] = iface(i)
            done.clear()
            c = _cpu()
            t = time.perf_counter()
            be.apply(k, v)
            if not done.wait(20):
                raise RuntimeError(f"endpoint {i} not programmed")
            lat.append(time.perf_counter() - t)
            lat_cpu += _cpu() - c
            if i == N:
                # What this first new endpoint cost the kernel tools, replayed by the limit.
                st1 = dp.state
                assert st1 is not None
                one = {
                    "restore": dp.tables[(4, "filter")].last_input,
                    "ip": [_route_line(r) for r in st1.routes.values() if r.dev == iface(i)]
                    + [f"neigh replace {ip} lladdr {mac} dev {dev} nud permanent"
                       for (dev, ip), mac in st1.neighbours.items() if dev == iface(i)],
                    "sysctls": {k: v for k, v in st1.sysctls.items() if f"/{iface(i)}/" in k},
                }
            if i == N + EXTRA // 2 or os.environ.get("FXBENCH_VERBOSE"):
                print("felix one-endpoint apply phases:", {
                    k: round(v * 1000, 1) for k, v in dp.last_stats.phases.items()}, flush=True)
            time.sleep(0.05)
        time.sleep(2)
        c0, w0, t0 = _cpu(), time.perf_counter(), _thread_cpu()
        time.sleep(20)
        idle = (_cpu() - c0) / (time.perf_counter() - w0)
        t1 = _thread_cpu()
        print("idle CPU by thread (ms over 20 s):", {
            k: round((v - t0.get(k, 0.0)) * 1000, 1) for k, v in sorted(t1.items())
            if v - t0.get(k, 0.0) >= 0.0001}, flush=True)
        # The periodic work an idle Felix also does, each forced once and charged (process
        # and children CPU) over its interval: kernel re-reads for drift repair and the
        # interface monitor's full listing.
        assert dp.cfg is not None
        intervals = {"routes": dp.cfg.route_refresh_interval,
                     "iptables": dp.cfg.iptables_refresh_interval,
                     "ipsets": dp.cfg.ipsets_refresh_interval}
        refresh: dict[str, tuple[float, float]] = {}
        for what, every in intervals.items():
            n = dp.applies
            c = _cpu()
            dp.refresh_at[what] = 0.0
            dp.queue.put(StatusChanged(SyncStatus.IN_SYNC))
            while dp.applies == n:
                time.sleep(0.005)
            refresh[what] = (_cpu() - c, every)
        c = _cpu()
        nl.list_links()
        refresh["interfaces"] = (_cpu() - c, mon.refresh)
        etcd_ms = _etcd_write_to_watch(be)
        Path(out_dir, "live.json").write_text(json.dumps({"latency": lat, "idle": idle,
                                                          "refresh": refresh,
                                                          "etcd": etcd_ms,
                                                          "one": one,
                                                          "lat_cpu": lat_cpu / len(lat),
                                                          "applies": dp.applies}))
        from felix.dataplane.loop import Stop
        dp.queue.put(Stop())
        runner.join(10)
        mon.stop()
        syncer.stop()
        be.close()
    finally:
        etcd.kill()
        etcd.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def _etcd_write_to_watch(be: object) -> float:
    """The datastore's own share: one raw etcd put until its watch event arrives (median
    of 20), measured against the same etcd."""
    listing = be.list("/fxbench/")  # type: ignore[attr-defined]
    stream = be.watch("/fxbench/", listing.revision)  # type: ignore[attr-defined]
    got = threading.Event()

    def reader() -> None:
        for _ev in stream:
            got.set()

    th = threading.Thread(target=reader, daemon=True)
    th.start()
    times = []
    for i in range(20):
        got.clear()
        t = time.perf_counter()
        be.apply(f"/fxbench/k{i}", "x")  # type: ignore[attr-defined]
        got.wait(10)
        times.append(time.perf_counter() - t)
        time.sleep(0.02)
    stream.close()
    return statistics.median(times)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (user + system): the kernel's
    netlink and nftables work runs in the calling process's context, so it is counted."""
    import resource
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


def _thread_cpu() -> dict[str, float]:
    """CPU seconds per thread of this process, named by Python thread (or native name)."""
    names = {t.native_id: t.name for t in threading.enumerate()}
    out: dict[str, float] = {}
    for tid in os.listdir("/proc/self/task"):
        try:     # schedstat: run time in ns (stat's ticks are 10 ms: too coarse here)
            run_ns = int(Path(f"/proc/self/task/{tid}/schedstat").read_text().split()[0])
            comm = Path(f"/proc/self/task/{tid}/comm").read_text().strip()
        except (OSError, ValueError, IndexError):
            continue
        name = names.get(int(tid), comm)
        out[name] = out.get(name, 0.0) + run_ns / 1e9
    return out


def _route_line(r) -> str:  # type: ignore[no-untyped-def]
    from felix.drivers.netlink import Op, render_ip
    return render_ip(Op("route-replace", route=r)) or ""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def inner_limit(out_dir: str) -> None:
    """The same kernel state with the kernel's own batch tools, one process each."""
    st = json.loads(Path(out_dir, "state.json").read_text())
    c0 = _cpu()
    t0 = time.perf_counter()
    if st["vxlan"]:
        v = st["vxlan"]
        sh("ip", "-batch", "-", input=(
            "link add vxlan.calico type vxlan id 4096 dstport 4789 local 192.168.77.1 "
            f"nolearning dev eth0\nlink set vxlan.calico address {v['mac']}\n"
            f"link set vxlan.calico mtu {v['mtu']}\nlink set vxlan.calico up\n"
            f"addr replace {v['addr']}/32 dev vxlan.calico\n"))
    sysctl_file = Path(out_dir, "sysctl.conf")
    sysctl_file.write_text("".join(f"{k}={v}\n" for k, v in st["sysctls"].items()))
    phases: dict[str, float] = {}
    t1 = time.perf_counter()
    sh("sysctl", "-q", "-p", str(sysctl_file))
    t_sysctl = phases["sysctl"] = time.perf_counter() - t1
    lines = [f"create {n} hash:net family inet maxelem 1048576 -exist"
             for n in st["ipsets"]]
    for n, members in st["ipsets"].items():
        lines += [f"add {n} {m} -exist" for m in members]
    t1 = time.perf_counter()
    sh("ipset", "restore", input="\n".join(lines) + "\n")
    sh("bridge", "-batch", "-", input="\n".join(st["fdb"]) + "\n")
    sh("ip", "-batch", "-", input="\n".join(st["neigh"] + st["routes"]) + "\n")
    phases["netlink+ipset"] = time.perf_counter() - t1
    t1 = time.perf_counter()
    for key in ("4-raw", "4-mangle", "4-filter", "4-nat"):
        sh("iptables-restore", "--noflush", "--wait", "10", input=st["restore"][key])
    phases["iptables"] = time.perf_counter() - t1
    total = time.perf_counter() - t0
    cpu = _cpu() - c0
    one_ms: list[float] = []
    live = Path(out_dir, "live.json")
    if os.environ.get("FXBENCH_LIVE") == "1" and live.exists():
        # One endpoint more, on the same N-endpoint state: one iptables-restore of the same
        # text Felix wrote, one ip -batch, the same sysctl writes.
        one = json.loads(live.read_text())["one"]
        for _ in range(5):     # idempotent text (`:chain` flushes): median of 5 replays
            t1 = time.perf_counter()
            for path, value in one["sysctls"].items():
                Path("/proc/sys", path).write_text(value + "\n")
            sh("ip", "-batch", "-", input="\n".join(one["ip"]) + "\n")
            sh("iptables-restore", "--noflush", "--wait", "10", input=one["restore"])
            one_ms.append(time.perf_counter() - t1)
    print("limit phases:", {k: round(v * 1000) for k, v in phases.items()}, flush=True)
    Path(out_dir, "limit.json").write_text(json.dumps({"total": total, "sysctl": t_sysctl,
                                                       "cpu": cpu, "one": one_ms}))


# -- outer ----------------------------------------------------------------------------------

def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--inner":
        {"felix": inner_felix, "limit": inner_limit}[sys.argv[2]](sys.argv[3])
        return
    if os.geteuid() != 0:
        sys.exit("bench/felix.py needs root (network namespaces)")
    trials = int(os.environ.get("FXBENCH_TRIALS", "3"))
    tag = f"fxbench{os.getpid()}"
    out = tempfile.mkdtemp(prefix="fxbench-")
    made: list[str] = []
    env = {**os.environ, "GRPC_ENABLE_FORK_SUPPORT": "false", "PYTHONPATH": str(REPO),
           "FXBENCH_N": str(N)}
    print(f"{N} endpoints, {trials} alternating trials (felix, then the limit, each in a "
          f"fresh namespace); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    try:
        firsts: list[tuple[float, float]] = []
        limits: list[tuple[float, float]] = []
        for trial in range(trials):
            last = trial == trials - 1
            a, b = f"{tag}-f{trial}", f"{tag}-l{trial}"
            for ns in (a, b):
                sh("ip", "netns", "add", ns)
                made.append(ns)
            make_veths(a, N + EXTRA)
            make_veths(b, N + 1)
            subprocess.run(["ip", "netns", "exec", a, sys.executable, __file__, "--inner",
                            "felix", out], check=True, timeout=900,
                           env={**env, "FXBENCH_LIVE": "1" if last else "0"})
            subprocess.run(["ip", "netns", "exec", b, sys.executable, __file__, "--inner",
                            "limit", out], check=True, timeout=900,
                           env={**env, "FXBENCH_LIVE": "1" if last else "0"})
            st = json.loads(Path(out, "state.json").read_text())
            lim = json.loads(Path(out, "limit.json").read_text())
            firsts.append((st["first"], st["first_cpu"]))
            limits.append((lim["total"], lim["cpu"]))
            print(f"  trial {trial + 1}: felix {st['first'] * 1000:.0f} ms "
                  f"(cpu {st['first_cpu'] * 1000:.0f}) vs limit {lim['total'] * 1000:.0f} ms "
                  f"(cpu {lim['cpu'] * 1000:.0f}); load {os.getloadavg()[0]:.1f}", flush=True)
            if not last:
                for ns in (a, b):
                    cleanup_ns(ns)
        live = json.loads(Path(out, "live.json").read_text())
        fw = statistics.median(f[0] for f in firsts)
        fc = statistics.median(f[1] for f in firsts)
        lw = statistics.median(x[0] for x in limits)
        lc = statistics.median(x[1] for x in limits)
        lat = sorted(live["latency"])
        p50 = statistics.median(lat) * 1000
        p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] * 1000
        print(f"kernel state: {N} endpoints, {len(st['routes'])} routes, {len(st['neigh'])} "
              f"neighbours, {len(st['sysctls'])} sysctls, {st['chains']} chains / "
              f"{st['rules']} rules in 4 tables")
        print(f"first full programming (median): felix {fw * 1000:.0f} ms vs ip -batch + "
              f"sysctl -p + ipset/iptables-restore {lw * 1000:.0f} ms: ratio {fw / lw:.2f} "
              f"(goal <= 2)")
        print(f"  same in CPU time (user+sys incl. children; less sensitive to other load): "
              f"felix {fc * 1000:.0f} ms vs {lc * 1000:.0f} ms: ratio {fc / lc:.2f}")
        print(f"new endpoint, etcd write -> programmed ({len(lat)} samples, {N} endpoints "
              f"present): p50 {p50:.1f} ms, p99 {p99:.1f} ms (goal p50 <= 50 ms); CPU per "
              f"endpoint (felix + its ip/iptables children) {live['lat_cpu'] * 1000:.1f} ms")
        if lim.get("one"):
            kern = statistics.median(lim["one"]) * 1000
            etcd_ms = live["etcd"] * 1000
            one_lim = kern + etcd_ms
            print(f"  limit for one endpoint on the same {N}-endpoint state: raw etcd put -> "
                  f"watch event {etcd_ms:.1f} ms + its sysctls, one ip -batch and one "
                  f"iptables-restore of the same text {kern:.1f} ms = {one_lim:.1f} ms; "
                  f"p50 ratio {p50 / one_lim:.2f}")
        periodic = sum(c / every for c, every in live["refresh"].values())
        print(f"idle CPU of the felix process: {(live['idle'] + periodic) * 100:.2f}% of a "
              f"core (goal < 1%) = steady {live['idle'] * 100:.2f}% + periodic work "
              f"{periodic * 100:.2f}% (" + ", ".join(
                  f"{k} {c * 1000:.0f} ms every {every:.0f} s"
                  for k, (c, every) in live["refresh"].items()) + ")")
        print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    finally:
        for ns in made:
            cleanup_ns(ns)
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
