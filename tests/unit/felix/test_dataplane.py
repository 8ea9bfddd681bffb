from __future__ import annotations

import ipaddress

from felix.dataplane.loop import Dataplane, LinksChanged
from felix.drivers.netlink import Link
from libcalico.datastore.snapshot import StatusChanged, SyncStatus, Update, Updates
from tests.unit.felix import data
from tests.unit.felix.fakes import FakeIptables, FakeNetlink, FakeSysctl

ME = "node1"
ENV = {"FELIX_FELIXHOSTNAME": ME, "FELIX_IPV6SUPPORT": "false",
       "FELIX_IPTABLESBACKEND": "nft"}


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def kernel() -> tuple[FakeNetlink, FakeIptables, FakeSysctl]:
    nl = FakeNetlink()
    nl.add_link("eth0", addrs=("192.168.0.1/24",))
    nl.add_link("cali0000000001")
    return nl, FakeIptables(), FakeSysctl({"net/ipv4/conf/default/rp_filter": "1"})


def vxlan_kvs() -> list[tuple[str, str | None]]:
    return [data.pool("p", "10.65.0.0/16", vxlan="Always", nat=True),
            data.node(ME, "192.168.0.1/24", vtep="10.65.0.1"),
            data.node("node2", "192.168.0.2/24", vtep="10.65.1.1"),
            data.block("10.65.0.0/26", ME), data.block("10.65.1.0/26", "node2"),
            data.wep("w1", ME, "cali0000000001", ["10.65.0.10/32"]),
            data.profile("kns.default", [{"action": "Allow"}], [{"action": "Allow"}])]


def make(nl: FakeNetlink, ipt: FakeIptables, fs: FakeSysctl, clock: Clock | None = None,
         env: dict[str, str] | None = None, legacy: set[str] | None = None) -> Dataplane:
    dp = Dataplane(env or ENV, {}, ME, nl, fs, runner=ipt, clock=clock or Clock())
    dp.legacy_tables = lambda path: set(legacy or ())
    return dp


def feed(dp: Dataplane, kvs: list[tuple[str, str | None]], nl: FakeNetlink,
         in_sync: bool = True) -> None:
    dp.on_event(StatusChanged(SyncStatus.RESYNC_IN_PROGRESS))
    dp.on_event(Updates(tuple(Update(k, v, 1) for k, v in kvs)))
    dp.on_event(LinksChanged(nl.list_links()))
    if in_sync:
        dp.on_event(StatusChanged(SyncStatus.IN_SYNC))
    dp.step()


def test_nothing_touches_the_kernel_before_in_sync() -> None:
    nl, ipt, fs = kernel()
    nl.routes[(254, ipaddress.ip_network("10.99.0.0/26"))] = __import__(
        "felix.calc.desired", fromlist=["Route"]).Route(
        ipaddress.ip_network("10.99.0.0/26"), type="blackhole")
    dp = make(nl, ipt, fs)
    feed(dp, vxlan_kvs(), nl, in_sync=False)
    assert ipt.calls == [] and nl.applied == [] and fs.writes == []
    dp.on_event(StatusChanged(SyncStatus.IN_SYNC))
    dp.step()
    # Now programmed, and our stale blackhole (proto 80) is swept.
    assert (254, ipaddress.ip_network("10.99.0.0/26")) not in nl.routes
    assert (254, ipaddress.ip_network("10.65.1.0/26")) in nl.routes
    assert nl.links["vxlan.calico"].vxlan_id == 4096
    assert fs.values["net/ipv4/conf/cali0000000001/proxy_arp"] == "1"
    assert ipt.ipsets["cali40all-vxlan-net"] == {"192.168.0.2"}
    assert any(r.endswith("-j cali-FORWARD") for r in ipt.table(4, "filter")["FORWARD"])
    assert dp.health.ready_flag


def test_failures_stay_pending_and_are_retried() -> None:
    nl, ipt, fs = kernel()
    nl.fail_kinds["route-replace"] = 100
    clock = Clock()
    dp = make(nl, ipt, fs, clock)
    feed(dp, vxlan_kvs(), nl)
    assert (254, ipaddress.ip_network("10.65.0.10/32")) not in nl.routes
    assert dp.retry_at is not None and not dp.health.ready_flag
    nl.fail_kinds.clear()
    dp.step()                                   # not yet due: nothing happens
    assert (254, ipaddress.ip_network("10.65.0.10/32")) not in nl.routes
    clock.t = dp.retry_at
    dp.step()
    assert (254, ipaddress.ip_network("10.65.0.10/32")) in nl.routes
    assert dp.retry_at is None and dp.health.ready_flag


def test_restart_over_programmed_host_rewrites_nothing() -> None:
    nl, ipt, fs = kernel()
    feed(make(nl, ipt, fs), vxlan_kvs(), nl)
    restores, ops, writes = len(ipt.restores()), len(nl.applied), len(fs.writes)
    dp2 = make(nl, ipt, fs)
    feed(dp2, vxlan_kvs(), nl)
    assert len(ipt.restores()) == restores
    assert len(nl.applied) == ops
    assert len(fs.writes) == writes
    assert dp2.last_stats.restores == 0 and dp2.last_stats.netlink_ops == 0


def test_periodic_refresh_repairs_a_deleted_route_and_rule() -> None:
    nl, ipt, fs = kernel()
    clock = Clock()
    dp = make(nl, ipt, fs, clock)
    feed(dp, vxlan_kvs(), nl)
    key = (254, ipaddress.ip_network("10.65.1.0/26"))
    del nl.routes[key]
    ipt.table(4, "filter")["cali-FORWARD"].pop()
    clock.t += 95          # past RouteRefreshInterval (90 s)
    dp.step()
    assert key in nl.routes
    assert len(ipt.table(4, "filter")["cali-FORWARD"]) == 5   # iptables refresh is 180 s
    clock.t += 90
    dp.step()
    assert len(ipt.table(4, "filter")["cali-FORWARD"]) == 6


def test_interface_coming_up_gets_its_route() -> None:
    nl, ipt, fs = kernel()
    nl.links["cali0000000001"] = Link("cali0000000001", False, 1500)
    dp = make(nl, ipt, fs)
    feed(dp, vxlan_kvs(), nl)
    key = (254, ipaddress.ip_network("10.65.0.10/32"))
    assert key not in nl.routes
    nl.links["cali0000000001"] = Link("cali0000000001", True, 1500)
    dp.on_event(LinksChanged(nl.list_links()))
    dp.step()
    assert key in nl.routes


def test_endpoint_removal_removes_route_and_chains() -> None:
    nl, ipt, fs = kernel()
    dp = make(nl, ipt, fs)
    kvs = vxlan_kvs()
    feed(dp, kvs, nl)
    assert "cali-tw-cali0000000001" in ipt.table(4, "filter")
    dp.on_event(Updates((Update(kvs[5][0], None, 2),)))
    dp.step()
    assert (254, ipaddress.ip_network("10.65.0.10/32")) not in nl.routes
    assert "cali-tw-cali0000000001" not in ipt.table(4, "filter")


def ipip_kvs() -> list[tuple[str, str | None]]:
    return [data.pool("p", "10.65.0.0/16", ipip="Always"),
            data.node(ME, "192.168.0.1/24", ipip_addr="10.65.0.1"),
            data.node("node2", "192.168.0.2/24"), data.block("10.65.1.0/26", "node2")]


def test_ipip_programs_tunl0_and_routes_bird_cannot() -> None:
    nl, ipt, fs = kernel()
    feed(make(nl, ipt, fs), ipip_kvs(), nl)
    assert nl.links["tunl0"].up and nl.links["tunl0"].mtu == 1480
    r = nl.routes[(254, ipaddress.ip_network("10.65.1.0/26"))]
    assert (r.dev, str(r.gateway), r.onlink, r.proto) == ("tunl0", "192.168.0.2", True, 80)
    assert ipt.ipsets["cali40all-hosts-net"] == {"192.168.0.1", "192.168.0.2"}
    assert any("ipencap" in r and "all-hosts-net" in r
               for r in ipt.table(4, "filter")["cali-INPUT"])


def test_ipip_without_kernel_module_reports_and_keeps_retrying() -> None:
    nl, ipt, fs = kernel()
    nl.has_ipip = False
    dp = make(nl, ipt, fs)
    feed(dp, ipip_kvs(), nl)
    assert "tunl0" not in nl.links
    assert (254, ipaddress.ip_network("10.65.1.0/26")) not in nl.routes
    assert dp.retry_at is not None


def test_bad_datastore_value_is_ignored_not_fatal() -> None:
    nl, ipt, fs = kernel()
    dp = make(nl, ipt, fs)
    kvs = [*vxlan_kvs(), (data.wep("evil", ME, "x", [])[0], '{"spec":{"interfaceName":'
                          '"cali$(reboot)","node":"node1"}}')]
    feed(dp, kvs, nl)
    assert dp.bad_keys and dp.health.ready_flag
    assert not any("reboot" in (c[1] or "") for c in ipt.calls)


def test_datastore_config_applies_and_a_change_requests_restart() -> None:
    import pytest

    from felix.dataplane.loop import RestartNeeded
    nl, ipt, fs = kernel()
    dp = make(nl, ipt, fs)
    feed(dp, [*vxlan_kvs(), data.felixconfig(f"node.{ME}", {"chainInsertMode": "Append"}),
              data.felixconfig("default", {"chainInsertMode": "Insert", "vxlanVNI": 77})], nl)
    assert dp.cfg is not None and dp.cfg.chain_insert_mode == "append"
    assert nl.links["vxlan.calico"].vxlan_id == 77
    assert any(r.endswith("-j cali-INPUT") for r in ipt.table(4, "filter")["INPUT"])
    assert ipt.table(4, "filter")["INPUT"][-1].endswith("-j cali-INPUT")
    dp.on_event(Updates((Update(data.felixconfig("default", {"vxlanVNI": 78})[0],
                                data.felixconfig("default", {"vxlanVNI": 78})[1], 3),)))
    with pytest.raises(RestartNeeded):
        dp.step()


def test_cni_route_on_unclaimed_interface_gets_a_grace_period() -> None:
    from felix.calc.desired import Route
    nl, ipt, fs = kernel()
    nl.add_link("cali00000000new")
    key = (254, ipaddress.ip_network("10.65.0.50/32"))
    nl.routes[key] = Route(key[1], dev="cali00000000new", scope="link", proto=3)
    clock = Clock()
    dp = make(nl, ipt, fs, clock)
    feed(dp, vxlan_kvs(), nl)
    assert key in nl.routes                 # the CNI plugin's fresh route survives ...
    clock.t += 11
    dp.step()
    assert key not in nl.routes             # ... until the grace period ends unclaimed


def test_leftovers_in_the_other_backend_are_swept() -> None:
    nl, ipt, fs = kernel()
    leg = ipt.legacy.setdefault((4, "filter"), {"INPUT": [], "FORWARD": [], "OUTPUT": []})
    leg["INPUT"] = ['-m comment --comment "cali:oldHash123456789" -j cali-INPUT',
                    "-s 192.0.2.1/32 -j DROP"]
    leg["cali-INPUT"] = ['-m comment --comment "cali:x" -j ACCEPT']
    leg["KUBE-THING"] = ["-j RETURN"]
    dp = make(nl, ipt, fs, legacy={"filter"})
    feed(dp, vxlan_kvs(), nl)
    assert ipt.legacy[(4, "filter")]["INPUT"] == ["-s 192.0.2.1/32 -j DROP"]
    assert "cali-INPUT" not in ipt.legacy[(4, "filter")]
    assert ipt.legacy[(4, "filter")]["KUBE-THING"] == ["-j RETURN"]
    assert "cali-INPUT" in ipt.table(4, "filter")           # nft is programmed
    # Legacy tables the kernel does not have are never read (no module autoloading).
    assert not any("legacy" in c[0][0] and "nat" in c[0] for c in ipt.calls)


def test_remote_endpoint_churn_costs_nothing_unless_a_selector_needs_it() -> None:
    nl, ipt, fs = kernel()
    dp = make(nl, ipt, fs)
    feed(dp, vxlan_kvs(), nl)
    applies = dp.applies
    remote = data.wep("r9", "node2", "cali0000000099", ["10.65.1.9/32"])
    dp.on_event(Updates((Update(*remote, 5),)))
    dp.step()
    assert dp.applies == applies                       # nothing recomputed or applied
    # A profile with a selector makes remote endpoints matter (they fill its IP set).
    k, v = data.profile("kns.default", [{"action": "Allow", "source": {"selector": "all()"}}],
                        [{"action": "Allow"}])
    dp.on_event(Updates((Update(k, v, 6),)))
    dp.step()
    assert dp.selectors_in_use
    remote2 = data.wep("r10", "node2", "cali0000000098", ["10.65.1.10/32"])
    dp.on_event(Updates((Update(*remote2, 7),)))
    dp.step()
    members = [m for n, m in ipt.ipsets.items() if n.startswith("cali40s:")]
    assert members and "10.65.1.10" in members[0] and "10.65.1.9" in members[0]



def test_procsys_reads_and_writes_values(tmp_path: object) -> None:
    from pathlib import Path

    from felix.drivers.sysctl import ProcSys
    root = Path(str(tmp_path))
    (root / "net/ipv4/conf/cali1").mkdir(parents=True)
    (root / "net/ipv4/conf/cali1/forwarding").write_text("0\n")
    fs = ProcSys(str(root))
    assert fs.read("net/ipv4/conf/cali1/forwarding") == "0"
    assert fs.read("net/ipv4/conf/missing/forwarding") is None
    fs.write("net/ipv4/conf/cali1/forwarding", "1")
    assert fs.read("net/ipv4/conf/cali1/forwarding") == "1"


def test_tables_are_read_with_one_save_per_ip_version() -> None:
    """iptables-nft-save fetches the whole ruleset for any table: start-up and each refresh
    read all four tables with one save, and a drifted rule is still repaired."""
    nl, ipt, fs = kernel()
    clock = Clock()
    dp = make(nl, ipt, fs, clock)
    feed(dp, vxlan_kvs(), nl)

    def saves() -> list[tuple[str, ...]]:
        return [c[0] for c in ipt.calls if c[0][0] == "iptables-nft-save"]

    assert saves() == [("iptables-nft-save",)]
    ipt.table(4, "mangle")["cali-PREROUTING"].pop()
    ipt.table(4, "filter")["cali-FORWARD"].pop()
    clock.t += 181                 # past IptablesRefreshInterval
    dp.step()
    assert saves() == [("iptables-nft-save",)] * 2
    assert len(ipt.table(4, "filter")["cali-FORWARD"]) == 6
    assert len(ipt.table(4, "mangle")["cali-PREROUTING"]) == 4
    assert dp.metrics.save_calls._value.get() == 2


def test_a_failed_combined_save_falls_back_to_one_save_per_table() -> None:
    from felix.drivers.iptables.table import Table, commands, read_together
    from libcalico.errors import CommandFailed
    from libcalico.proc import Completed
    ipt = FakeIptables()

    def runner(argv: list[str], **kw: object) -> Completed:
        if argv == ["iptables-nft-save"]:
            raise CommandFailed(argv, 1, "", "boom")
        return ipt(argv, **kw)  # type: ignore[arg-type]

    tables = [Table(4, n, commands(4, "nft"), runner) for n in ("filter", "nat")]
    read_together(tables)
    assert all(t.kernel is None for t in tables)
    for t in tables:
        t.plan(True)               # each reads itself
    assert [c[0] for c in ipt.calls] == [("iptables-nft-save", "-t", "filter"),
                                         ("iptables-nft-save", "-t", "nat")]
