"""Once in sync, losing the datastore does not stop Felix's dataplane (as in Calico, whose
dataplane never resets datastoreInSync): link events are still handled and drift repaired
from the picture it has."""

from __future__ import annotations

import dataclasses
import ipaddress

from felix.dataplane.loop import LinksChanged
from libcalico.datastore.snapshot import StatusChanged, SyncStatus
from tests.unit.felix.test_dataplane import feed, kernel, make, vxlan_kvs

WORKLOAD = (254, ipaddress.ip_network("10.65.0.10/32"))
REMOTE = (254, ipaddress.ip_network("10.65.1.0/26"))


def test_lost_datastore_keeps_handling_links_and_drift() -> None:
    nl, ipt, fs = kernel()
    dp = make(nl, ipt, fs)
    feed(dp, vxlan_kvs(), nl)
    assert WORKLOAD in nl.routes and REMOTE in nl.routes
    dp.on_event(StatusChanged(SyncStatus.WAIT_FOR_DATASTORE))
    dp.step()
    assert WORKLOAD in nl.routes and REMOTE in nl.routes     # nothing withdrawn
    # The workload's interface goes down: its route is withdrawn all the same.
    nl.links["cali0000000001"] = dataclasses.replace(nl.links["cali0000000001"], up=False)
    dp.on_event(LinksChanged(nl.list_links()))
    dp.step()
    assert WORKLOAD not in nl.routes
    assert REMOTE in nl.routes
