"""The ADD's duplicate-address check reads every route to the workload's addresses, whatever
their metric (the host route has metric 1024, so `route add` alone only collides with a route
of the same metric). Routes are given as `ip -j route` shows them (`wiring._shown`)."""

from __future__ import annotations

import ipaddress

import pytest

from calico_cni import wiring

W = wiring.Wiring(netns="/run/netns/x", ifname="eth0", host_veth="cali0123456789a",
                  ips=(ipaddress.ip_interface("10.0.0.5/32"),
                       ipaddress.ip_interface("fd00::5/128")), mtu=1500)


def test_own_routes_pass() -> None:
    wiring._foreign_routes(W, [{"dst": "10.0.0.5", "dev": W.host_veth, "metric": 1024},
                               {"dst": "fd00::5", "dev": W.host_veth, "metric": 1024}])


@pytest.mark.parametrize("route", [
    {"dst": "10.0.0.5", "dev": "eth1"},                       # metric 0: listed without one
    {"dst": "10.0.0.5", "dev": "calianother0001", "metric": 1024},
    {"dst": "fd00::5", "dev": "calianother0001", "metric": 5000},
])
def test_a_route_on_another_interface_fails_whatever_its_metric(
        route: dict[str, object]) -> None:
    with pytest.raises(wiring.WiringError, match="already exists for an interface other than"):
        wiring._foreign_routes(W, [{"dst": "10.0.0.5", "dev": W.host_veth, "metric": 1024},
                                   route])


def test_routes_to_other_addresses_are_ignored() -> None:
    wiring._foreign_routes(W, [{"dst": "10.0.0.6", "dev": "eth1"}])
