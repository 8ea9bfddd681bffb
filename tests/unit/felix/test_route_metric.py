"""Local workload routes carry the normal route priority as their metric (Calico v3.32), so that
BIRD's `calico_aggr` (`net ~ block && krt_metric < NRP` ⇒ export) keeps them to itself; the
metric is part of a route's identity, so a metric-0 route on a workload interface is replaced."""

from __future__ import annotations

import ipaddress
import json

import pytest

from felix import config
from felix.calc import desired as calc
from felix.drivers.netlink import IpBatchNetlink, Op, render_ip
from libcalico.datastore.snapshot import Update, Updates
from libcalico.model import keys
from libcalico.proc import Completed
from tests.unit.felix import data
from tests.unit.felix.test_calc import BASE, ME, state
from tests.unit.felix.test_dataplane import Clock, feed, kernel, make, vxlan_kvs

W1 = ipaddress.ip_network("10.65.0.10/32")
V6CFG = config.load({"FELIX_FELIXHOSTNAME": ME})


def bgpconfig(spec: dict[str, object], name: str = "default") -> tuple[str, str]:
    return keys.resource_key("BGPConfiguration", name), json.dumps(
        {"apiVersion": keys.API_VERSION, "kind": "BGPConfiguration", "metadata": {"name": name},
         "spec": spec})


def v6_kvs(extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [*BASE, data.pool("p6", "fd00:65::/64"), data.block("fd00:65::/122", ME),
            data.wep("w2", ME, "cali0000000002", ["10.65.0.11/32", "fd00:65::11/128"]),
            *(extra or [])]


# -- desired state ---------------------------------------------------------------------------

def test_workload_routes_default_to_metric_1024_and_others_keep_theirs() -> None:
    s = state(v6_kvs(), V6CFG)
    assert s.routes[(254, W1)].metric == 1024
    assert s.routes[(254, ipaddress.ip_network("fd00:65::11/128"))].metric == 1024
    # VXLAN routes to other blocks and the IPv4 blackhole of our own block are unchanged
    # (metric 0); the IPv6 blackhole says 1024, which is what the kernel lists for it.
    assert s.routes[(254, ipaddress.ip_network("10.65.1.0/26"))].metric == 0
    bh4 = s.routes[(254, ipaddress.ip_network("10.65.0.0/26"))]
    assert (bh4.type, bh4.proto, bh4.metric) == ("blackhole", 80, 0)
    bh6 = s.routes[(254, ipaddress.ip_network("fd00:65::/122"))]
    assert (bh6.type, bh6.proto, bh6.metric) == ("blackhole", 80, 1024)


def test_bgpconfiguration_default_priorities_are_honoured() -> None:
    s = state(v6_kvs([bgpconfig({"ipv4NormalRoutePriority": 5000,
                                 "ipv6NormalRoutePriority": 80})]), V6CFG)
    assert s.routes[(254, W1)].metric == 5000
    assert s.routes[(254, ipaddress.ip_network("fd00:65::11/128"))].metric == 80
    # Only the `default` BGPConfiguration counts; a node's does not.
    s = state(v6_kvs([bgpconfig({"ipv4NormalRoutePriority": 5000}, "node.node1")]), V6CFG)
    assert s.routes[(254, W1)].metric == 1024
    # One family set, the other defaulted.
    s = state(v6_kvs([bgpconfig({"ipv6NormalRoutePriority": 80})]), V6CFG)
    assert s.routes[(254, W1)].metric == 1024
    assert s.routes[(254, ipaddress.ip_network("fd00:65::11/128"))].metric == 80


@pytest.mark.parametrize("bad", [0, -1, 2**31 - 1, "1024", True, 1.5])
def test_bad_priority_is_rejected_naming_the_field(bad: object) -> None:
    k, v = bgpconfig({"ipv4NormalRoutePriority": bad})
    with pytest.raises(data.Refused, match=r"spec\.ipv4NormalRoutePriority"):
        data.resource(k, v)


def test_route_key_is_table_dst_and_kernel_metric() -> None:
    r4 = calc.Route(W1, dev="cali1", scope="link", proto=3)
    assert r4.key == (254, W1, 0)
    n6 = ipaddress.ip_network("fd00::1/128")
    assert calc.Route(n6, dev="cali1").key == (254, n6, 1024)      # kernel: 0 ⇒ 1024
    assert calc.Route(n6, dev="cali1", metric=80).key == (254, n6, 80)


# -- rendering and reading -------------------------------------------------------------------

def test_rendered_writes_name_the_metric() -> None:
    r = calc.Route(W1, dev="cali1", scope="link", proto=3, metric=1024)
    assert render_ip(Op("route-replace", route=r)) == (
        "route replace 10.65.0.10/32 dev cali1 scope link proto 3 metric 1024 table 254")
    old = calc.Route(W1, dev="cali1", scope="link", proto=3, metric=0)
    assert render_ip(Op("route-del", route=old)) == (
        "route del 10.65.0.10/32 dev cali1 metric 0 table 254")


def test_listing_reads_the_metric() -> None:
    out = {"-4": [{"dst": "10.65.0.10", "dev": "cali1", "protocol": "boot", "scope": "link",
                   "flags": []},
                  {"dst": "10.65.0.10", "dev": "cali1", "protocol": "boot", "scope": "link",
                   "metric": 1024, "flags": []}],
           "-6": [{"dst": "fd00::1", "dev": "cali1", "protocol": "boot", "metric": 1024,
                   "flags": [], "pref": "medium"}]}

    def runner(argv: list[str], **_kw: object) -> Completed:
        return Completed(argv, 0, json.dumps(out[argv[3]]), "")

    routes = IpBatchNetlink(runner=runner).list_routes()   # type: ignore[arg-type]
    assert sorted((str(r.dst), r.metric) for r in routes) == [
        ("10.65.0.10/32", 0), ("10.65.0.10/32", 1024), ("fd00::1/128", 1024)]


# -- the route driver, against the fake kernel -----------------------------------------------

def test_metric_0_route_on_a_workload_interface_is_replaced() -> None:
    from felix.calc.desired import Route
    nl, ipt, fs = kernel()
    old = Route(W1, dev="cali0000000001", scope="link", proto=3, metric=0)
    nl.routes[old.key] = old                      # as an older CNI plugin wrote it
    dp = make(nl, ipt, fs)
    feed(dp, vxlan_kvs(), nl)
    assert nl.routes.metrics(W1) == [1024]
    assert nl.routes[(254, W1)].dev == "cali0000000001"
    kinds = [(op.kind, op.route.metric) for op in nl.applied
             if op.route is not None and op.route.dst == W1]
    # The right route goes in before the wrong one goes: no moment without a route.
    assert kinds == [("route-replace", 1024), ("route-del", 0)]


def test_cni_route_with_the_right_metric_is_left_alone() -> None:
    from felix.calc.desired import Route
    nl, ipt, fs = kernel()
    cni = Route(W1, dev="cali0000000001", scope="link", proto=3, metric=1024)
    nl.routes[cni.key] = cni
    dp = make(nl, ipt, fs)
    feed(dp, vxlan_kvs(), nl)
    assert not [op for op in nl.applied if op.route is not None and op.route.dst == W1]
    assert nl.routes.metrics(W1) == [1024]


def test_grace_period_holds_for_any_metric_on_an_unclaimed_interface() -> None:
    from felix.calc.desired import Route
    nl, ipt, fs = kernel()
    nl.add_link("cali00000000new")
    net = ipaddress.ip_network("10.65.0.50/32")
    for m in (0, 1024):
        r = Route(net, dev="cali00000000new", scope="link", proto=3, metric=m)
        nl.routes[r.key] = r
    clock = Clock()
    dp = make(nl, ipt, fs, clock)
    feed(dp, vxlan_kvs(), nl)
    assert nl.routes.metrics(net) == [0, 1024]           # the CNI plugin's routes survive
    # The endpoint arrives within the grace period: its route is already right, and the
    # metric-0 one on the now-claimed interface goes.
    k, v = data.wep("w50", ME, "cali00000000new", ["10.65.0.50/32"])
    dp.on_event(Updates((Update(k, v, 2),)))
    clock.t += 1
    dp.step()
    assert nl.routes.metrics(net) == [1024]
    assert [op.kind for op in nl.applied if op.route is not None and op.route.dst == net] == [
        "route-del"]


def test_grace_period_expires_for_unclaimed_routes_of_every_metric() -> None:
    from felix.calc.desired import Route
    nl, ipt, fs = kernel()
    nl.add_link("cali00000000new")
    net = ipaddress.ip_network("10.65.0.50/32")
    for m in (0, 1024):
        r = Route(net, dev="cali00000000new", scope="link", proto=3, metric=m)
        nl.routes[r.key] = r
    clock = Clock()
    dp = make(nl, ipt, fs, clock)
    feed(dp, vxlan_kvs(), nl)
    clock.t += 11
    dp.step()
    assert nl.routes.metrics(net) == []


def test_priority_change_rewrites_routes_without_a_restart() -> None:
    nl, ipt, fs = kernel()
    dp = make(nl, ipt, fs)
    feed(dp, vxlan_kvs(), nl)
    assert nl.routes.metrics(W1) == [1024]
    k, v = bgpconfig({"ipv4NormalRoutePriority": 5000})
    dp.on_event(Updates((Update(k, v, 3),)))
    dp.step()                             # no RestartNeeded: routes follow the setting
    assert nl.routes.metrics(W1) == [5000]
    # Other routes untouched: the VXLAN route and our block's blackhole keep metric 0.
    assert nl.routes.metrics(ipaddress.ip_network("10.65.1.0/26")) == [0]
    assert nl.routes.metrics(ipaddress.ip_network("10.65.0.0/26")) == [0]


def test_restart_over_metric_1024_routes_rewrites_nothing() -> None:
    nl, ipt, fs = kernel()
    feed(make(nl, ipt, fs), vxlan_kvs(), nl)
    n = len(nl.applied)
    dp2 = make(nl, ipt, fs)
    feed(dp2, vxlan_kvs(), nl)
    assert len(nl.applied) == n and dp2.last_stats.netlink_ops == 0

