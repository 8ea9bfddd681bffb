"""Felix on real namespaces: two hosts running calico-felix (real subprocesses inside their
namespaces) against one datastore, pods wired by hand as the CNI plugin would. Each assertion
is about kernel behaviour: packets delivered or dropped, addresses seen, objects restored.

Every test runs on both datastores (the `cluster` fixture's parameter): etcd, and the
session's Kubernetes API server (KDD), where the endpoints are Pods, the profiles come from
the Namespace and ServiceAccount, the Nodes are Kubernetes Nodes with calico-node's
annotations and the blocks are claimed through the IPAM library."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from libcalico.model import keys
from tests.fixtures.etcd import EtcdFactory
from tests.fixtures.netns import NetnsFactory, ns_exec
from tests.netns.felix.cluster import Cluster, Host, ping, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.etcd]


@pytest.fixture(scope="module", params=["etcd", "kubernetes"])
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    nf = NetnsFactory()
    ef: EtcdFactory | None = None
    c: Cluster | None = None
    try:
        if request.param == "kubernetes":
            c = Cluster(nf, kube=request.getfixturevalue("kube_apiserver"))
        else:
            ef = EtcdFactory(Path(tempfile.mkdtemp(prefix="felix-etcd-")))
            c = Cluster(nf, ef)
        c.pool("pool1", "10.65.0.0/16", vxlan="Always", nat=True)
        c.allow_profile("kns.default")
        a, b = c.add_host("a"), c.add_host("b")
        # Another tool's rules, present before Felix starts.
        for h in (a, b):
            foreign(h, "add")
        # Leftovers of an earlier Felix on host a (ours by name, hash comment and protocol),
        # and someone else's route.
        ns_exec(a.ns, "iptables", "-w", "-N", "cali-stale-chain")
        ns_exec(a.ns, "iptables", "-w", "-A", "cali-stale-chain", "-j", "ACCEPT")
        ns_exec(a.ns, "iptables", "-w", "-A", "OUTPUT", "-m", "comment", "--comment",
                "cali:staleHash0123456", "-j", "cali-stale-chain")
        ns_exec(a.ns, "ip", "route", "add", "blackhole", "10.99.0.0/26", "proto", "80")
        # ... and in the iptables backend Felix does not use (legacy), beside a foreign rule.
        ns_exec(a.ns, "iptables-legacy", "-w", "-N", "cali-legacy-old")
        ns_exec(a.ns, "iptables-legacy", "-w", "-A", "INPUT", "-m", "comment", "--comment",
                "cali:legacyHash000000", "-j", "cali-legacy-old")
        ns_exec(a.ns, "iptables-legacy", "-w", "-A", "INPUT", "-s", "203.0.113.99/32", "-j",
                "DROP")
        ns_exec(a.ns, "ip", "route", "add", "blackhole", "10.98.0.0/26", "proto", "static")
        c.add_pod(a, 0)
        c.add_pod(b, 0)
        for h in (a, b):
            c.start_felix(h, FELIX_HEALTHENABLED="true", FELIX_HEALTHHOST="127.0.0.1",
                          FELIX_PROMETHEUSMETRICSENABLED="true",
                          FELIX_PROMETHEUSMETRICSHOST="127.0.0.1")
        for h in (a, b):
            c.wait_applied(h)
        yield c
    finally:
        if c is not None:
            c.cleanup()
        nf.cleanup()
        if ef is not None:
            ef.cleanup()


FOREIGN = [
    ("filter", "INPUT", "-s 203.0.113.7/32 -j DROP"),
    ("filter", "FORWARD", "-s 203.0.113.8/32 -j DROP"),
    ("nat", "POSTROUTING", "-s 203.0.113.9/32 -j RETURN"),
    ("raw", "PREROUTING", "-s 203.0.113.10/32 -j ACCEPT"),
    ("filter", "OTHER-TOOL", "-s 203.0.113.11/32 -j ACCEPT"),
]


def foreign(h: Host, op: str) -> list[str]:
    """Add (op='add') or list (op='check') another tool's rules in Felix's tables."""
    if op == "add":
        ns_exec(h.ns, "iptables", "-w", "-t", "filter", "-N", "OTHER-TOOL")
        for table, chain, rule in FOREIGN:
            ns_exec(h.ns, "iptables", "-w", "-t", table, "-A", chain, *rule.split())
        return []
    missing = []
    for table, chain, rule in FOREIGN:
        r = ns_exec(h.ns, "iptables", "-w", "-t", table, "-C", chain, *rule.split(),
                    check=False)
        if r.returncode != 0:
            missing.append(f"{table}/{chain}: {rule}")
    return missing


def pod(c: Cluster, name: str):  # type: ignore[no-untyped-def]
    return next(p for p in c.pods if p.name == name)


def counter(ns: str, table: str, chain: str, needle: str) -> int:
    out = ns_exec(ns, "iptables", "-w", "-t", table, "-L", chain, "-v", "-x", "-n").stdout
    total = 0
    for line in out.splitlines():
        if needle in line:
            total += int(line.split()[0])
    return total


def http_get(ns: str, url: str) -> tuple[int, str]:
    r = ns_exec(ns, "curl", "-s", "-o", "-", "-w", "\n%{http_code}", url, check=False)
    body, _, code = r.stdout.rpartition("\n")
    return int(code or 0), body


def test_pods_on_different_hosts_reach_each_other_over_vxlan(cluster: Cluster) -> None:
    pa, pb = pod(cluster, "a-p0"), pod(cluster, "b-p0")
    a = pa.host
    wait_for(lambda: ping(pa.ns, pb.ip), 30, "pod a → pod b over VXLAN")
    assert ping(pb.ns, pa.ip)
    routes = ns_exec(a.ns, "ip", "route", "show", "10.65.1.0/26").stdout
    assert "via 10.65.1.1 dev vxlan.calico" in routes and "onlink" in routes
    link = json.loads(ns_exec(a.ns, "ip", "-d", "-j", "link", "show", "vxlan.calico").stdout)[0]
    assert link["linkinfo"]["info_data"]["id"] == 4096
    assert link["linkinfo"]["info_data"]["port"] == 4789
    assert link["mtu"] == 1450
    fdb = ns_exec(a.ns, "bridge", "fdb", "show", "dev", "vxlan.calico").stdout
    assert f"dst {pb.host.ip.ip}" in fdb
    sysctl = Path("/proc/sys/net/ipv4/conf")
    r = ns_exec(a.ns, "cat", str(sysctl / pa.iface / "proxy_arp"), str(sysctl / pa.iface /
                "forwarding"))
    assert r.stdout.split() == ["1", "1"]
    neigh = ns_exec(a.ns, "ip", "neigh", "show", "dev", pa.iface).stdout
    if cluster.store is not None and cluster.store.endpoint_macs:
        assert pa.mac in neigh and "PERMANENT" in neigh
    else:                       # KDD: a Pod carries no MAC, so no permanent entry (as Calico)
        assert "PERMANENT" not in neigh
    assert "blackhole 10.65.0.0/26 proto 80" in ns_exec(a.ns, "ip", "route").stdout


def test_health_and_metrics(cluster: Cluster) -> None:
    a = cluster.hosts[0]
    wait_for(lambda: http_get(a.ns, "http://127.0.0.1:9099/readiness")[0] == 200, 20,
             "readiness")
    assert http_get(a.ns, "http://127.0.0.1:9099/liveness")[0] == 200
    code, body = http_get(a.ns, "http://127.0.0.1:9091/metrics")
    assert code == 200
    m = re.search(r"^felix_iptables_restore_calls_total ([0-9.]+)$", body, re.M)
    assert m and float(m.group(1)) >= 4
    assert re.search(r"^felix_route_table_num_routes [1-9]", body, re.M)


def test_forged_source_is_dropped_real_traffic_passes(cluster: Cluster) -> None:
    pa, pb = pod(cluster, "a-p0"), pod(cluster, "b-p0")
    a = pa.host
    assert ping(pa.ns, pb.ip)
    forged = "10.65.0.99"        # in the host's block, but not this pod's address
    ns_exec(pa.ns, "ip", "addr", "add", f"{forged}/32", "dev", "eth0")
    # Count, inside the receiving pod, what arrives from each source.
    for src in (forged, str(pa.ip)):
        ns_exec(pb.ns, "iptables", "-w", "-A", "INPUT", "-p", "icmp", "-s", src, "-j", "ACCEPT")
    try:
        drops = counter(a.ns, "raw", "cali-PREROUTING", "rpfilter")
        assert not ping(pa.ns, pb.ip, count=3, timeout=1, src=forged)
        assert counter(a.ns, "raw", "cali-PREROUTING", "rpfilter") >= drops + 3
        assert counter(pb.ns, "filter", "INPUT", f"{forged} ") == 0   # never arrived
        assert ping(pa.ns, pb.ip)                                      # real source passes
        assert counter(pb.ns, "filter", "INPUT", f"{pa.ip} ") >= 1
    finally:
        ns_exec(pa.ns, "ip", "addr", "del", f"{forged}/32", "dev", "eth0", check=False)


def test_nat_outgoing_shows_the_hosts_address_outside(cluster: Cluster) -> None:
    pa = pod(cluster, "a-p0")
    out = cluster.outside
    ns_exec(out, "iptables", "-w", "-A", "INPUT", "-p", "icmp", "-s", str(pa.host.ip.ip),
            "-j", "ACCEPT")
    ns_exec(out, "iptables", "-w", "-A", "INPUT", "-p", "icmp", "-s", str(pa.ip), "-j",
            "ACCEPT")
    # The outside namespace has no route to the pod network: replies only come back when
    # the pod's address was translated to the host's.
    assert ping(pa.ns, cluster.outside_ip, count=2)
    assert counter(out, "filter", "INPUT", str(pa.host.ip.ip)) >= 2
    assert counter(out, "filter", "INPUT", f"{pa.ip} ") == 0


def test_deleted_route_and_rule_are_restored(cluster: Cluster) -> None:
    pa = pod(cluster, "a-p0")
    a = pa.host
    # The workload route is swapped for a metric-0 one (an older CNI plugin's): Felix puts
    # back its own, metric 1024 (the normal route priority), and removes the other.
    ns_exec(a.ns, "ip", "route", "del", f"{pa.ip}/32")
    ns_exec(a.ns, "ip", "route", "add", f"{pa.ip}/32", "dev", pa.iface, "scope", "link",
            "metric", "0")
    ns_exec(a.ns, "ip", "route", "del", "10.65.1.0/26")
    ns_exec(a.ns, "iptables", "-w", "-t", "filter", "-F", "cali-FORWARD")

    def workload_routes() -> list[tuple[str, int]]:
        shown = ns_exec(a.ns, "ip", "-j", "route", "show", "exact", f"{pa.ip}/32").stdout
        return [(r["dev"], r.get("metric", 0)) for r in json.loads(shown)]
    wait_for(lambda: workload_routes() == [(pa.iface, 1024)], 20,
             "workload route restored with metric 1024 and the metric-0 one removed")
    wait_for(lambda: "10.65.1.0/26 via" in ns_exec(a.ns, "ip", "route").stdout, 20,
             "remote block route restored")
    wait_for(lambda: len(ns_exec(a.ns, "iptables", "-w", "-S", "cali-FORWARD").stdout
                         .splitlines()) > 1, 20, "cali-FORWARD restored")
    assert ping(pa.ns, pod(cluster, "b-p0").ip)


def test_new_pod_and_interface_down_up(cluster: Cluster) -> None:
    a = cluster.hosts[0]
    p = cluster.add_pod(a, 1)
    wait_for(lambda: ping(p.ns, pod(cluster, "b-p0").ip), 30, "new pod reachable")
    ns_exec(a.ns, "ip", "link", "set", p.iface, "down")
    wait_for(lambda: f"{p.ip} " not in ns_exec(a.ns, "ip", "route").stdout, 20, "route gone")
    ns_exec(a.ns, "ip", "link", "set", p.iface, "up")
    wait_for(lambda: f"{p.ip} dev {p.iface}" in ns_exec(a.ns, "ip", "route").stdout, 20,
             "route back after interface up")
    # Unknown interface: a veth named like a workload but with no endpoint is dropped.
    cluster.remove_wep(p)
    wait_for(lambda: p.iface not in ns_exec(a.ns, "iptables", "-w", "-S",
                                            "cali-from-wl-dispatch").stdout
             and f"{p.ip} " not in ns_exec(a.ns, "ip", "route").stdout, 20, "endpoint removed")


def test_restart_on_programmed_host_issues_no_restore(cluster: Cluster) -> None:
    a = cluster.hosts[0]
    cluster.stop_felix(a)
    assert a.log_path is not None
    first = a.log_path.read_text()
    cluster.start_felix(a, FELIX_HEALTHENABLED="true", FELIX_HEALTHHOST="127.0.0.1")
    def started() -> bool:
        text = a.log_path.read_text()[len(first):]    # type: ignore[union-attr]
        return "apply #1 " in text
    wait_for(started, 30, "felix restarted and applied")
    line = next(ln for ln in a.log_path.read_text()[len(first):].splitlines()
                if "apply #1 " in ln)
    assert "iptables-restores=0 " in line, line
    assert "netlink-ops=0 " in line, line
    assert "sysctl-writes=0 " in line, line


def test_stale_state_of_ours_is_swept_others_kept(cluster: Cluster) -> None:
    a = cluster.hosts[0]
    save = ns_exec(a.ns, "iptables-save", "-t", "filter").stdout
    assert "cali-stale-chain" not in save and "staleHash" not in save
    routes = ns_exec(a.ns, "ip", "route").stdout
    assert "10.99.0.0/26" not in routes
    legacy = ns_exec(a.ns, "iptables-legacy-save", "-t", "filter").stdout
    assert "cali-legacy-old" not in legacy and "legacyHash" not in legacy
    assert "-A INPUT -s 203.0.113.99/32 -j DROP" in legacy
    assert "blackhole 10.98.0.0/26 proto static" in routes


def test_other_tools_rules_survive(cluster: Cluster) -> None:
    for h in cluster.hosts:
        assert foreign(h, "check") == []
        # Our hooks are still first in the kernel chains (insert mode).
        first = ns_exec(h.ns, "iptables", "-w", "-S", "FORWARD").stdout.splitlines()[1]
        assert "cali-FORWARD" in first


def test_ipv6_workload_gets_route_sysctls_and_ip6tables(cluster: Cluster) -> None:
    cluster.put(keys.resource_key("IPPool", "pool6"), {
        "kind": "IPPool", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "pool6"},
        "spec": {"cidr": "fd00:65::/64", "vxlanMode": "Never", "ipipMode": "Never",
                 "blockSize": 122}})
    c = cluster.add_host("c", vtep_mac="ee:ee:0c:00:00:01")
    # Dual stack; on Kubernetes the IPs are the CNI plugin's pod annotations.
    p = cluster.add_pod(c, 0, v6="fd00:65::11")
    cluster.start_felix(c, FELIX_IPV6SUPPORT="true")
    cluster.wait_applied(c)
    wait_for(lambda: f"fd00:65::11 dev {p.iface}" in ns_exec(c.ns, "ip", "-6", "route").stdout,
             20, "IPv6 /128 route")
    v6 = ns_exec(c.ns, "ip6tables-save").stdout
    assert f"cali-tw-{p.iface}" in v6 and "rpfilter" in v6
    ndp = ns_exec(c.ns, "cat", f"/proc/sys/net/ipv6/conf/{p.iface}/proxy_ndp").stdout
    assert ndp.strip() == "1"
    assert "cali60network-ip-pools" in ns_exec(c.ns, "ipset", "list", "-n").stdout
    # Steady state: later applies (refresh every 2 s) find nothing to rewrite.
    cluster.wait_applied(c, count=len(cluster.applies(c)) + 2)
    assert "netlink-ops=0 " in cluster.applies(c)[-1], cluster.applies(c)[-1]
    assert "iptables-restores=0 " in cluster.applies(c)[-1]
    # The new host's VTEP, with the MAC its Node records, reached the others: VXLAN to its
    # pod works.
    wait_for(lambda: ping(pod(cluster, "a-p0").ns, p.ip), 30, "pod a → pod c")
    dev = json.loads(ns_exec(c.ns, "ip", "-j", "link", "show", "vxlan.calico").stdout)[0]
    assert dev["address"] == "ee:ee:0c:00:00:01"
    a = cluster.hosts[0]
    neigh = ns_exec(a.ns, "ip", "neigh", "show", "dev", "vxlan.calico").stdout
    assert f"{c.tunnel} lladdr ee:ee:0c:00:00:01 PERMANENT" in neigh, neigh


@pytest.mark.parametrize("cluster", ["etcd"], indirect=True)
def test_cni_default_profile_allows_only_its_own_members_in(cluster: Cluster) -> None:
    """The CNI plugin's network profile (non-k8s): ingress only from endpoints labelled by
    the profile itself (labelsToApply + a has() selector, through an ipset), egress all.
    etcd only: on KDD the CNI is always the k8s orchestrator and Profiles are read-only
    (derived from Namespaces and ServiceAccounts)."""
    cluster.put(keys.resource_key("Profile", "net1"), {
        "kind": "Profile", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "net1"},
        "spec": {"ingress": [{"action": "Allow", "source": {"selector": "has(net1)"},
                              "destination": {}}],
                 "egress": [{"action": "Allow", "source": {}, "destination": {}}],
                 "labelsToApply": {"net1": ""}}})
    a, b = cluster.hosts[0], cluster.hosts[1]
    x = cluster.add_pod(a, 5, profiles=("net1",))
    y = cluster.add_pod(b, 5, profiles=("net1",))
    z = cluster.add_pod(b, 6, profiles=("kns.default",))
    wait_for(lambda: ping(x.ns, y.ip), 30, "member → member")
    assert ping(y.ns, x.ip)
    assert ping(x.ns, z.ip)                 # z accepts everyone; x may send anywhere
    assert not ping(z.ns, x.ip, count=2, timeout=1)   # z is not a member of net1


def test_host_endpoint_of_the_uplink_is_programmed_and_removed(cluster: Cluster) -> None:
    """A HostEndpoint of host a's uplink (eth0, its address expected, the built-in allow
    profile): Felix on a programs the host endpoint's chains, pod traffic over VXLAN through
    that uplink keeps flowing; deleted, the chains go again."""
    a = cluster.hosts[0]
    key = keys.resource_key("HostEndpoint", f"{a.name}-eth0")

    def filter_rules() -> str:
        return ns_exec(a.ns, "iptables-save", "-t", "filter").stdout

    cluster.put(key, {
        "kind": "HostEndpoint", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": f"{a.name}-eth0", "labels": {"host-endpoint": "uplink"}},
        "spec": {"node": a.name, "interfaceName": "eth0", "expectedIPs": [str(a.ip.ip)],
                 "profiles": ["projectcalico-default-allow"]}})
    try:
        wait_for(lambda: ":cali-th-eth0" in filter_rules()
                 and ":cali-fh-eth0" in filter_rules(), 20, "host endpoint chains")
        assert ping(pod(cluster, "a-p0").ns, pod(cluster, "b-p0").ip)
        assert ping(pod(cluster, "b-p0").ns, pod(cluster, "a-p0").ip)
    finally:
        cluster.delete(key)
    wait_for(lambda: ":cali-th-eth0" not in filter_rules(), 20, "host endpoint chains gone")


def test_namespace_labels_move_pods_in_and_out_of_a_policy_selection(cluster: Cluster) -> None:
    """Endpoints inherit their namespace's labels (`pcns.<key>`, through profile kns.default:
    on Kubernetes derived from the Namespace, on etcd as kube-controllers writes it). A policy
    on a guarded pod admits sources whose namespace is labelled team=blue: labelling the
    namespace lets a pod in, removing the label shuts it out again."""
    client = pod(cluster, "a-p0")
    guarded = cluster.add_pod(cluster.hosts[1], 7, labels={"fxrole": "guarded"})
    wait_for(lambda: ping(client.ns, guarded.ip), 30, "the guarded pod programmed")
    key = keys.resource_key("GlobalNetworkPolicy", "fx-team-blue-in")
    cluster.put(key, {
        "kind": "GlobalNetworkPolicy", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "fx-team-blue-in"},
        "spec": {"tier": "default", "order": 10, "selector": "fxrole == 'guarded'",
                 "types": ["Ingress"],
                 "ingress": [{"action": "Allow",
                              "source": {"selector": "pcns.team == 'blue'"}}]}})
    try:
        wait_for(lambda: not ping(client.ns, guarded.ip), 30, "the guarded pod shut off")
        cluster.set_namespace_labels({"team": "blue"})
        wait_for(lambda: ping(client.ns, guarded.ip), 30, "team=blue let in")
        cluster.set_namespace_labels({"team": "red"})
        wait_for(lambda: not ping(client.ns, guarded.ip), 30, "team=red shut out")
        assert ping(client.ns, pod(cluster, "b-p0").ip)      # unguarded pods: still open
    finally:
        cluster.delete(key)
        cluster.set_namespace_labels({})
    wait_for(lambda: ping(client.ns, guarded.ip), 30, "the policy gone")
    cluster.remove_wep(guarded)


def test_pod_labels_move_pods_between_policy_selections(cluster: Cluster) -> None:
    """A policy admits only `fxclient == 'yes'` sources into `fxrole == 'guarded'` pods.
    Relabelling the server (selected or not) and the client on another host (in or out of
    the source IP set there) changes what gets through."""
    client = pod(cluster, "a-p0")
    server = cluster.add_pod(cluster.hosts[1], 8)
    wait_for(lambda: ping(client.ns, server.ip), 30, "the server programmed")
    key = keys.resource_key("GlobalNetworkPolicy", "fx-clients-in")
    cluster.put(key, {
        "kind": "GlobalNetworkPolicy", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "fx-clients-in"},
        "spec": {"tier": "default", "order": 10, "selector": "fxrole == 'guarded'",
                 "types": ["Ingress"],
                 "ingress": [{"action": "Allow", "source": {"selector": "fxclient == 'yes'"}}]}})
    try:
        assert ping(client.ns, server.ip)                # not selected yet
        cluster.relabel(server, {"fxrole": "guarded"})
        wait_for(lambda: not ping(client.ns, server.ip), 30, "the server selected")
        cluster.relabel(client, {"fxclient": "yes"})
        wait_for(lambda: ping(client.ns, server.ip), 30, "the client a member")
        cluster.relabel(client, {})
        wait_for(lambda: not ping(client.ns, server.ip), 30, "the client no longer a member")
        cluster.relabel(server, {"fxrole": "open"})
        wait_for(lambda: ping(client.ns, server.ip), 30, "the server no longer selected")
    finally:
        cluster.delete(key)
        if client.labels:
            cluster.relabel(client, {})
    cluster.remove_wep(server)


def test_kubernetes_network_policy_is_enforced(cluster: Cluster) -> None:
    """A Kubernetes NetworkPolicy (KDD: the networking.k8s.io object; etcd: kube-controllers'
    knp.default.<name> mirror) admits into app=web pods only pods labelled fxclient=yes."""
    client = pod(cluster, "a-p0")
    web = cluster.add_pod(cluster.hosts[1], 9, labels={"app": "web"})
    wait_for(lambda: ping(client.ns, web.ip), 30, "the web pod programmed")
    knp = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
           "metadata": {"name": "web-from-clients", "namespace": "default"},
           "spec": {"podSelector": {"matchLabels": {"app": "web"}},
                    "ingress": [{"from": [{"podSelector": {
                        "matchLabels": {"fxclient": "yes"}}}]}]}}
    cluster.k8s_network_policy("web-from-clients", knp)
    try:
        wait_for(lambda: not ping(client.ns, web.ip), 30, "the web pod isolated")
        cluster.relabel(client, {"fxclient": "yes"})
        wait_for(lambda: ping(client.ns, web.ip), 30, "a labelled client admitted")
    finally:
        cluster.k8s_network_policy("web-from-clients", None)
        cluster.relabel(client, {})
    wait_for(lambda: ping(client.ns, web.ip), 30, "open again without the policy")
    cluster.remove_wep(web)


def test_datastore_lost_and_back(cluster: Cluster) -> None:
    """Host a loses its datastore (Kubernetes: the API server cut off from the host; etcd:
    etcd moved to another port): Felix keeps the kernel as it is and keeps running its
    refreshes; a pod made meanwhile is programmed once the datastore is reachable again (the
    watches resume after their revision)."""
    a = cluster.hosts[0]
    old = pod(cluster, "a-p0")
    cluster.cut_datastore(a)
    try:
        p = cluster.add_pod(a, 3)
        cluster.wait_applied(a, len(cluster.applies(a)) + 2)   # refreshes go on meanwhile
        assert f"{old.ip} dev {old.iface}" in ns_exec(a.ns, "ip", "route").stdout
        assert f"{p.ip} " not in ns_exec(a.ns, "ip", "route").stdout
    finally:
        cluster.restore_datastore(a)
    wait_for(lambda: ping(p.ns, pod(cluster, "b-p0").ip), 60, "the new pod programmed")
    cluster.remove_wep(p)


def vxlan_mtu(h: Host) -> int:
    link = json.loads(ns_exec(h.ns, "ip", "-j", "link", "show", "vxlan.calico").stdout)[0]
    return int(link["mtu"])


def felix_configuration(cluster: Cluster, name: str, spec: dict[str, object] | None) -> None:
    key = keys.resource_key("FelixConfiguration", name)
    if spec is None:
        cluster.delete(key)
    else:
        cluster.put(key, {"kind": "FelixConfiguration", "apiVersion": "projectcalico.org/v3",
                          "metadata": {"name": name}, "spec": spec})


def test_felix_configuration_default_and_per_node(cluster: Cluster) -> None:
    """FelixConfiguration `node.<host>` beats `default`; a change of a host's effective
    configuration makes its Felix exit 129 for its supervisor (here: the test) to restart
    it, and only that host's."""
    a, b = cluster.hosts[0], cluster.hosts[1]
    assert vxlan_mtu(a) == vxlan_mtu(b) == 1450
    try:
        felix_configuration(cluster, f"node.{b.name}", {"vxlanMTU": 1400})
        assert cluster.wait_exit(b) == 129
        assert a.proc is not None and a.proc.poll() is None     # not a's configuration
        cluster.restart_felix(b)
        wait_for(lambda: vxlan_mtu(b) == 1400, 20, "node.b's VXLAN MTU on b")

        felix_configuration(cluster, "default", {"vxlanMTU": 1410})
        assert cluster.wait_exit(a) == 129
        cluster.restart_felix(a)
        wait_for(lambda: vxlan_mtu(a) == 1410, 20, "default's VXLAN MTU on a")
        assert b.proc is not None and b.proc.poll() is None     # node.b still decides on b
        assert vxlan_mtu(b) == 1400
        assert ping(pod(cluster, "a-p0").ns, pod(cluster, "b-p0").ip)
    finally:
        felix_configuration(cluster, f"node.{b.name}", None)
        felix_configuration(cluster, "default", None)
        for h in (a, b):
            if h.proc is not None:
                with contextlib.suppress(AssertionError):
                    cluster.wait_exit(h)
            cluster.restart_felix(h)
    wait_for(lambda: vxlan_mtu(a) == vxlan_mtu(b) == 1450, 20, "the default MTU back")


def test_cross_subnet_routes_same_subnet_hosts_without_encapsulation(cluster: Cluster) -> None:
    """Runs last among the VXLAN tests: switches pool1 to CrossSubnet. All hosts share one
    /24, so remote blocks become plain routes via the peer's address on eth0."""
    pa, pb = pod(cluster, "a-p0"), pod(cluster, "b-p0")
    a = pa.host
    cluster.pool("pool1", "10.65.0.0/16", vxlan="CrossSubnet", nat=True)
    want = f"10.65.1.0/26 via {pb.host.ip.ip} dev eth0 proto 80 onlink"
    wait_for(lambda: want in ns_exec(a.ns, "ip", "route").stdout, 20, "same-subnet route")

    def vxlan_tx() -> int:
        out = json.loads(ns_exec(a.ns, "ip", "-s", "-j", "link", "show", "vxlan.calico").stdout)
        return int(out[0]["stats64"]["tx"]["packets"])

    before = vxlan_tx()
    assert ping(pa.ns, pb.ip, count=3)
    assert vxlan_tx() == before          # not encapsulated


def test_ipip_live_or_skip(cluster: Cluster) -> None:
    ns = cluster.hosts[0].ns
    r = subprocess.run(["ip", "netns", "exec", ns, "ip", "link", "add", "fxipiptest", "type",
                        "ipip"], capture_output=True, text=True, check=False, timeout=30)
    if r.returncode != 0:
        reason = f"kernel has no ipip module: `ip link add type ipip` failed: {r.stderr.strip()}"
        print(reason)
        pytest.skip(reason)
    ns_exec(ns, "ip", "link", "del", "fxipiptest", check=False)
    pytest.fail("this kernel has ipip: write the live IPIP test")
