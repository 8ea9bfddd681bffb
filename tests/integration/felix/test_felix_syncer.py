"""Felix's owner loop fed by the real syncer over a real etcd, against a fake kernel: the
prefixes Felix watches carry what it needs, deletes and bad values flow through."""

from __future__ import annotations

import ipaddress
import json
import threading

import pytest

from felix.__main__ import PREFIXES
from felix.dataplane.loop import Dataplane, LinksChanged, Stop
from libcalico.datastore.etcd import EtcdBackend
from libcalico.datastore.syncer import Syncer
from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer
from tests.netns.felix.cluster import wait_for
from tests.unit.felix import data
from tests.unit.felix.fakes import FakeIptables, FakeNetlink, FakeSysctl

pytestmark = pytest.mark.etcd

ME = "node1"


def test_felix_follows_etcd_through_the_syncer(etcd: EtcdServer) -> None:
    be = EtcdBackend([etcd.endpoint])
    kvs = [data.pool("p", "10.65.0.0/16", vxlan="Always", nat=True),
           data.node(ME, "192.168.0.1/24", vtep="10.65.0.1"),
           data.node("node2", "192.168.0.2/24", vtep="10.65.1.1"),
           data.block("10.65.0.0/26", ME), data.block("10.65.1.0/26", "node2"),
           data.wep("w1", ME, "cali0000000001", ["10.65.0.10/32"]),
           data.profile("kns.default", [{"action": "Allow"}], [{"action": "Allow"}])]
    for k, v in kvs:
        be.apply(k, v)
    nl = FakeNetlink()
    nl.add_link("eth0", addrs=("192.168.0.1/24",))
    nl.add_link("cali0000000001")
    ipt = FakeIptables()
    dp = Dataplane({"FELIX_FELIXHOSTNAME": ME, "FELIX_IPV6SUPPORT": "false",
                    "FELIX_IPTABLESBACKEND": "nft"}, {}, ME, nl, FakeSysctl(), runner=ipt)
    dp.queue.put(LinksChanged(nl.list_links()))
    syncer = Syncer(be, PREFIXES, dp.queue.put)
    runner = threading.Thread(target=dp.run, daemon=True)
    syncer.start()
    runner.start()
    try:
        remote = (254, ipaddress.ip_network("10.65.1.0/26"))
        local = (254, ipaddress.ip_network("10.65.0.10/32"))
        wait_for(lambda: remote in nl.routes and local in nl.routes, 20, "routes programmed")
        assert "cali-tw-cali0000000001" in ipt.table(4, "filter")
        # Workload routes carry the normal route priority: 1024 by default, then what
        # BGPConfiguration `default` says, read through the same syncer.
        assert nl.routes.metrics(local[1]) == [1024]
        be.apply(keys.resource_key("BGPConfiguration", "default"), json.dumps(
            {"kind": "BGPConfiguration", "apiVersion": "projectcalico.org/v3",
             "metadata": {"name": "default"}, "spec": {"ipv4NormalRoutePriority": 5000}}))
        wait_for(lambda: nl.routes.metrics(local[1]) == [5000], 20, "metric 5000")
        assert nl.routes.metrics(remote[1]) == [0]
        # A bad value in etcd is ignored (the endpoint is treated as gone), not fatal.
        be.apply(kvs[5][0], '{"spec":{"node":"node1","interfaceName":"cali$(x)"}}')
        wait_for(lambda: local not in nl.routes, 20, "invalid endpoint withdrawn")
        assert runner.is_alive()
        # Removing the remote block removes its route.
        be.delete(kvs[4][0])
        wait_for(lambda: remote not in nl.routes, 20, "remote block route removed")
    finally:
        dp.queue.put(Stop())
        runner.join(10)
        syncer.stop()
        dp.close()
        be.close()
