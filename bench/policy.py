"""Policy benchmark (run as root: `python bench/policy.py [E ...] [--local L] [--policies P]`;
`PBENCH_NAMESPACES` (default 50) spreads the policies, 10 per namespace and app set).

Felix's policy calculation and programming at scale, beside the physical limit measured in the
same run. Defaults: E = 1,000 and 10,000 endpoints in the cluster, L = 1,000 of them on this
host (each E run), P = 500 NetworkPolicies × 5 ingress rules over 50 namespaces (each local
endpoint selected by one policy; 250 selector IP sets over all E endpoints).

For each E, in a fresh network namespace, Felix's real dataplane (owner loop, calculation,
IP set and iptables drivers; no interfaces, so no routes or sysctls) is fed the datastore in
sync and measured:

1. first programming: from "in sync" to the end of the first apply (wall, CPU incl. children,
   of which the calculation);
2. one change → programmed, 20 of each: a new local endpoint, a label change of a local
   endpoint (changes selector IP set members), a policy change (one rule's port): p50 / p99
   from the update arriving (decode included) to the end of its apply; the datastore's own
   latency is not included (see bench/felix.py for etcd → programmed).

The limit: in another fresh namespace, every `ipset restore` / `iptables-restore` Felix ran,
with the same input, replayed in the same order by the kernel tools alone: once for the first
programming, then each change's writes. Ratio = Felix / limit. Noisy on a shared box: note
`cat /proc/loadavg` beside the figures; `PBENCH_TRIALS` (default 1) repeats and takes medians.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

ME = "bench-node"
NAMESPACES = int(os.environ.get("PBENCH_NAMESPACES", "50"))
RULES = 5
CHANGES = 20


def _args() -> tuple[list[int], int, int]:
    scales: list[int] = []
    local, policies = 1000, 500
    it = iter(sys.argv[1:])
    for a in it:
        if a == "--local":
            local = int(next(it))
        elif a == "--policies":
            policies = int(next(it))
        elif a.isdigit():
            scales.append(int(a))
    return scales or [1000, 10000], local, policies


def _cpu() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    ch = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + ch.ru_utime + ch.ru_stime


def _j(kind: str, name: str, spec: dict[str, object], ns: str | None = None,
       labels: dict[str, str] | None = None) -> tuple[str, str]:
    from libcalico.model import keys
    md: dict[str, object] = {"name": name}
    if ns:
        md["namespace"] = ns
    if labels:
        md["labels"] = labels
    return keys.resource_key(kind, name, ns), json.dumps(
        {"kind": kind, "apiVersion": "projectcalico.org/v3", "metadata": md, "spec": spec},
        separators=(",", ":"))


def endpoint(i: int, local: int, role: int | None = None) -> tuple[str, str]:
    ns = f"ns{i % NAMESPACES}"
    labels = {"app": f"app{(i // NAMESPACES) % 10}",
              "role": f"r{(i // 500) % RULES if role is None else role}",
              "projectcalico.org/namespace": ns, "projectcalico.org/orchestrator": "k8s"}
    iface = "cali" + hashlib.sha1(str(i).encode()).hexdigest()[:11]
    ip = ipaddress.IPv4Address("10.64.0.0") + i + 1
    from libcalico.datastore.kubernetes_pod import wep_name
    node = ME if i < local else f"remote{i % 4}"
    return _j("WorkloadEndpoint", wep_name(node, f"w{i}"), {
        "orchestrator": "k8s", "node": node, "pod": f"w{i}",
        "endpoint": "eth0", "interfaceName": iface, "ipNetworks": [f"{ip}/32"],
        "profiles": [f"kns.{ns}"], "mac": "02:00:00:00:00:01"}, ns, labels)


def policy(j: int, port_base: int = 8000) -> tuple[str, str]:
    ns = f"ns{(j // 10) % NAMESPACES}"
    return _j("NetworkPolicy", f"p{j}", {
        "tier": "default", "order": 100 + j % 10, "selector": f"app == 'app{j % 10}'",
        "types": ["Ingress"],
        "ingress": [{"action": "Allow", "protocol": "TCP",
                     "source": {"selector": f"role == 'r{k}'"},
                     "destination": {"ports": [port_base + k]}} for k in range(RULES)]}, ns)


def base(endpoints: int, local: int, policies: int) -> list[tuple[str, str]]:
    kvs = [_j("IPPool", "p", {"cidr": "10.64.0.0/10", "vxlanMode": "Never",
                              "ipipMode": "Never", "natOutgoing": False}),
           _j("Node", ME, {"bgp": {"ipv4Address": "192.168.77.1/24"}})]
    kvs += [_j("Profile", f"kns.ns{n}", {"ingress": [{"action": "Allow"}],
                                        "egress": [{"action": "Allow"}]})
            for n in range(NAMESPACES)]
    kvs += [policy(j) for j in range(policies)]
    kvs += [endpoint(i, local) for i in range(endpoints)]
    return kvs


# -- inner: Felix in its namespace -----------------------------------------------------------


def inner_felix(out: str, endpoints: int, local: int, policies: int) -> None:
    os.environ["GRPC_ENABLE_FORK_SUPPORT"] = "false"
    from felix.dataplane.loop import Dataplane, LinksChanged
    from felix.drivers.netlink import IpBatchNetlink
    from felix.drivers.sysctl import ProcSys
    from libcalico import proc
    from libcalico.datastore.snapshot import StatusChanged, SyncStatus, Update, Updates

    writes: list[tuple[list[str], str]] = []

    def runner(argv, *, timeout, input=None, check=True, env=None):  # type: ignore[no-untyped-def]
        if argv[0].endswith("-restore") or argv[:2] == ["ipset", "restore"]:
            writes.append((list(argv), input or ""))
        return proc.run(argv, timeout=timeout, input=input, check=check, env=env)

    env = {"FELIX_FELIXHOSTNAME": ME, "FELIX_IPV6SUPPORT": "false",
           "FELIX_DEFAULTENDPOINTTOHOSTACTION": "ACCEPT"}
    nl = IpBatchNetlink()
    dp = Dataplane(env, {}, ME, nl, ProcSys(), runner=runner)
    kvs = base(endpoints, local, policies)
    rev = iter(range(2, 10**9))
    dp.on_event(StatusChanged(SyncStatus.RESYNC_IN_PROGRESS))
    dp.on_event(Updates(tuple(Update(k, v, "1") for k, v in kvs)))
    dp.on_event(LinksChanged(nl.list_links()))
    dp.on_event(StatusChanged(SyncStatus.IN_SYNC))
    c0, t0 = _cpu(), time.perf_counter()
    dp.step()
    first = {"wall": time.perf_counter() - t0, "cpu": _cpu() - c0,
             "calc": dp.last_stats.phases.get("calc", 0.0), "writes": list(writes)}
    assert dp.state is not None
    st = dp.state
    first["chains"] = sum(len(td.chains) for td in st.tables.values())
    first["rules"] = sum(sum(len(c) for c in td.chains.values()) for td in st.tables.values())
    first["ipsets"] = sum(1 for n in st.ipsets if "0s:" in n)
    first["members"] = sum(len(s.members) for n, s in st.ipsets.items() if "0s:" in n)

    def one(kv: tuple[str, str]) -> dict[str, object]:
        writes.clear()
        c, t = _cpu(), time.perf_counter()
        dp.on_event(Updates((Update(kv[0], kv[1], str(next(rev))),)))
        dp.step()
        return {"wall": time.perf_counter() - t, "cpu": _cpu() - c,
                "calc": dp.last_stats.phases.get("calc", 0.0), "writes": list(writes),
                "phases": dict(dp.last_stats.phases)}

    changes: dict[str, list[dict[str, object]]] = {"endpoint": [], "label": [], "policy": []}
    for n in range(CHANGES):
        changes["endpoint"].append(one(endpoint(endpoints + n, endpoints + n + 1)))
        changes["label"].append(one(endpoint(n * 7, local, role=(n + 1) % RULES)))
        changes["policy"].append(one(policy(n * 13 % policies, port_base=9000 + n * 10)))
    Path(out).write_text(json.dumps({"first": first, "changes": changes}))
    dp.close()


def inner_limit(src: str, out: str) -> None:
    """Replay Felix's writes with the kernel tools alone, in the same order."""
    data = json.loads(Path(src).read_text())

    def replay(writes: list[list[object]]) -> tuple[float, float]:
        c, t = _cpu(), time.perf_counter()
        for argv, text in writes:
            subprocess.run(argv, input=text, text=True, check=True, capture_output=True,  # type: ignore[call-overload]
                           timeout=600)
        return time.perf_counter() - t, _cpu() - c

    first = replay(data["first"]["writes"])
    changes: dict[str, list[float]] = {k: [] for k in data["changes"]}
    for n in range(CHANGES):
        for kind in ("endpoint", "label", "policy"):
            changes[kind].append(replay(data["changes"][kind][n]["writes"])[0])
    Path(out).write_text(json.dumps({"first": first, "changes": changes}))


# -- outer -----------------------------------------------------------------------------------


def _ns_run(ns: str, *args: str) -> None:
    subprocess.run(["ip", "netns", "exec", ns, sys.executable, __file__, *args], check=True,
                   timeout=3600, env={**os.environ, "PYTHONPATH": str(REPO)})


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def _ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--inner":
        if sys.argv[2] == "felix":
            inner_felix(sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
        else:
            inner_limit(sys.argv[3], sys.argv[4])
        return
    if os.geteuid() != 0:
        sys.exit("bench/policy.py needs root (network namespaces)")
    scales, local, policies = _args()
    trials = int(os.environ.get("PBENCH_TRIALS", "1"))
    tmp = Path(tempfile.mkdtemp(prefix="pbench-"))
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}", flush=True)
    for endpoints in scales:
        loc = min(local, endpoints)
        runs: list[tuple[dict[str, object], dict[str, object]]] = []
        for trial in range(trials):
            names = [f"pbench{os.getpid()}-{trial}-{w}" for w in ("felix", "limit")]
            try:
                for ns in names:
                    subprocess.run(["ip", "netns", "add", ns], check=True)
                    subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
                fx, lim = tmp / f"felix-{endpoints}-{trial}.json", tmp / f"lim-{endpoints}.json"
                _ns_run(names[0], "--inner", "felix", str(fx), str(endpoints), str(loc),
                        str(policies))
                _ns_run(names[1], "--inner", "limit", str(fx), str(lim))
                runs.append((json.loads(fx.read_text()), json.loads(lim.read_text())))
            finally:
                for ns in names:
                    subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        f0 = runs[0][0]["first"]
        assert isinstance(f0, dict)
        print(f"\n== {endpoints} endpoints ({loc} local), {policies} policies x {RULES} rules, "
              f"{NAMESPACES} namespaces: {f0['chains']} chains / {f0['rules']} rules, "
              f"{f0['ipsets']} selector IP sets / {f0['members']} members; "
              f"{trials} trial(s), medians", flush=True)

        def med(key: str, rs: list[tuple[dict[str, object], dict[str, object]]] = runs
                ) -> float:
            return statistics.median(float(f["first"][key]) for f, _ in rs)  # type: ignore[index]

        wall, limit = med("wall"), statistics.median(
            float(lm["first"][0]) for _, lm in runs)  # type: ignore[index]
        lim_cpu = statistics.median(float(lm["first"][1]) for _, lm in runs)  # type: ignore[index]
        print(f"first programming: {_ms(wall)} ms (calc {_ms(med('calc'))} ms, CPU "
              f"{_ms(med('cpu'))} ms) | limit {_ms(limit)} ms, CPU {_ms(lim_cpu)} ms "
              "(ipset restore + "
              f"iptables-restore of the same input) | ratio {wall / limit:.2f}")
        for kind, what in (("endpoint", "one new local endpoint"),
                           ("label", "one label change"), ("policy", "one policy change")):
            fx_w = [float(c["wall"]) for f, _ in runs for c in f["changes"][kind]]  # type: ignore[index]
            fx_c = [float(c["calc"]) for f, _ in runs for c in f["changes"][kind]]  # type: ignore[index]
            fx_cpu = [float(c["cpu"]) for f, _ in runs for c in f["changes"][kind]]  # type: ignore[index]
            lim_w = [float(x) for _, lm in runs for x in lm["changes"][kind]]  # type: ignore[index]
            p50, p99, l50 = _pct(fx_w, 0.5), _pct(fx_w, 0.99), _pct(lim_w, 0.5)
            print(f"{what}: p50 {_ms(p50)} / p99 {_ms(p99)} ms (calc p50 {_ms(_pct(fx_c, .5))}"
                  f" ms, CPU p50 {_ms(_pct(fx_cpu, .5))} ms) | limit p50 {_ms(l50)} ms "
                  f"(same restores) | ratio {p50 / l50 if l50 else float('nan'):.2f}")
            phases: dict[str, list[float]] = {}
            for f, _ in runs:
                for c in f["changes"][kind]:  # type: ignore[index]
                    for ph, v in c["phases"].items():
                        phases.setdefault(ph, []).append(v)
            print("   apply phases p50 (ms):", {ph: _ms(_pct(v, .5)) for ph, v in phases.items()})
    print(f"\nload average after: {Path('/proc/loadavg').read_text().strip()}", flush=True)
    with contextlib.suppress(OSError):
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()


if __name__ == "__main__":
    main()
