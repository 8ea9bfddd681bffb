"""Endpoint-status entries (localWorkloadSelector peers): decoded strictly, hostile files
refused; other nodes' workload endpoints filtered out before the snapshot."""

from __future__ import annotations

import pytest

from confd import epstatus
from confd.inputs import other_nodes_workload
from libcalico.errors import ValidationError

KEY = epstatus.PREFIX + "pod1"


def test_first_address_of_each_family() -> None:
    e = epstatus.decode(KEY, '{"ifaceName":"cali1","ipv4Nets":["192.168.1.4/32","10.0.0.1/32"],'
                             '"ipv6Nets":["fd00::4/128"],"bgpPeerName":"p"}')
    assert (e.name, e.bgp_peer_name, str(e.ipv4), str(e.ipv6)) == ("pod1", "p", "192.168.1.4",
                                                                   "fd00::4")
    assert epstatus.for_peer([e], "p") == [e] and epstatus.for_peer([e], "q") == []


@pytest.mark.parametrize("text", [
    '{"ipv4Nets":["192.168.1.4/32; } protocol"],"bgpPeerName":"p"}',
    '{"ipv4Nets":["fd00::1/128"],"bgpPeerName":"p"}',
    '{"ipv4Nets":"192.168.1.4/32","bgpPeerName":"p"}',
    '{"bgpPeerName":7}',
    '[]',
    'not json',
])
def test_malformed_files_are_refused(text: str) -> None:
    with pytest.raises(ValidationError, match="endpoint status pod1"):
        epstatus.decode(KEY, text)


def test_directory_from_the_environment() -> None:
    assert epstatus.directory({}) == "/var/run/calico/endpoint-status"
    assert epstatus.directory({"CALICO_ENDPOINT_STATUS_PATH_PREFIX": "/run/x/"}) == \
        "/run/x/endpoint-status"


def test_other_nodes_workloads() -> None:
    other = other_nodes_workload("my-node")
    wep = "/calico/resources/v3/projectcalico.org/workloadendpoints/ns/"
    assert not other(wep + "my--node-k8s-pod-eth0")
    assert other(wep + "my--node--2-k8s-pod-eth0")
    assert other(wep + "node-k8s-pod-eth0")
    assert not other("/calico/resources/v3/projectcalico.org/nodes/other")
