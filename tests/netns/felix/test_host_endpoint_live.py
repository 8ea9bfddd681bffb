"""Felix protecting a host's own interface (a HostEndpoint on the node's uplink eth0) on real
namespaces: a real calico-felix in the host namespace, a real etcd reached over that same
uplink, TCP listeners in the host namespace, a client in the "outside" namespace.

- The endpoint carries `projectcalico-default-allow`: everything reaches the host.
- A deny-all GlobalNetworkPolicy selecting host endpoints: port 8080 is dropped, while SSH
  (22) and etcd (2379) still get through (Calico's default inbound failsafe ports), and Felix
  keeps talking to its datastore through the denied uplink (outbound failsafe 2379): it still
  sees the next change.
- preDNAT (mangle) and doNotTrack (raw) policies are programmed where Calico puts them and
  enforced (a preDNAT Deny of 8081, an untracked Deny of 8082, 8080 still allowed).
- Removing the policies restores traffic.
- The same with an `interfaceName: "*"` endpoint (the dispatch fallback for every interface).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from libcalico.model import keys
from tests.fixtures.etcd import EtcdFactory
from tests.fixtures.netns import NetnsFactory, ns_exec
from tests.netns.felix import tcpprobe
from tests.netns.felix.cluster import Cluster, Host, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.etcd]

V3 = "projectcalico.org/v3"
PORTS = (22, 2379, 8080, 8081, 8082)
HEP_KEY = keys.resource_key("HostEndpoint", "a-eth0")
DENY_KEY = keys.resource_key("GlobalNetworkPolicy", "deny-all-hosts")
PRE_KEY = keys.resource_key("GlobalNetworkPolicy", "pre-8081")
UNTRACKED_KEY = keys.resource_key("GlobalNetworkPolicy", "untracked-8082")


def _gnp(name: str, spec: dict[str, object]) -> dict[str, object]:
    return {"kind": "GlobalNetworkPolicy", "apiVersion": V3, "metadata": {"name": name},
            "spec": {"selector": "has(host-endpoint)", "order": 10, **spec}}


def reachable(c: Cluster, host: Host, port: int) -> bool:
    return tcpprobe.answers(c.outside, str(host.ip.ip), port)


def connects(ns: str, ip: str, port: int) -> bool:
    """A new TCP connection from namespace `ns` is accepted (any server)."""
    code = ("import socket, sys\n"
            "try:\n"
            "    socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()\n"
            "except OSError:\n"
            "    sys.exit(1)\n")
    r = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c", code, ip, str(port)],
                       capture_output=True, timeout=30, check=False)
    return r.returncode == 0


def expect(c: Cluster, host: Host, want: dict[int, bool], what: str) -> None:
    """Wait until every port is as wanted (Felix applies asynchronously), then check once
    more."""
    wait_for(lambda: all(reachable(c, host, p) == ok for p, ok in want.items()), 30, what)
    assert {p: reachable(c, host, p) for p in want} == want, what


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Cluster, Host]]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    nf = NetnsFactory()
    ef = EtcdFactory(Path(tempfile.mkdtemp(prefix="felix-hep-etcd-")))
    c: Cluster | None = None
    servers: list[subprocess.Popen[bytes]] = []
    try:
        c = Cluster(nf, ef)
        c.pool("pool1", "10.66.0.0/16", vxlan="Never")
        a = c.add_host("a")
        for ns, ports in ((a.ns, PORTS), (c.outside, (8080,))):
            servers.append(tcpprobe.serve(ns, ports))
        c.put(HEP_KEY, {
            "kind": "HostEndpoint", "apiVersion": V3,
            "metadata": {"name": "a-eth0", "labels": {"host-endpoint": "uplink"}},
            "spec": {"node": "a", "interfaceName": "eth0", "expectedIPs": [str(a.ip.ip)],
                     "profiles": ["projectcalico-default-allow"]}})
        # The datastore's port is a failsafe, as Calico's docs ask when etcd is not on 2379
        # (the test etcd listens on a free port).
        c.start_felix(a, FELIX_FAILSAFEOUTBOUNDHOSTPORTS=(
            "udp:53,udp:67,tcp:179,tcp:2379,tcp:2380,tcp:5473,tcp:6443,tcp:6666,tcp:6667,"
            f"tcp:{c.etcd.client_port}"))
        c.wait_applied(a)
        yield c, a
    finally:
        for server in servers:
            server.kill()
            server.wait(10)
        if c is not None:
            c.cleanup()
        nf.cleanup()
        ef.cleanup()


def _saved(host: Host, table: str) -> str:
    return ns_exec(host.ns, "iptables-save", "-t", table).stdout


def test_failsafes_survive_a_deny_all_policy_and_removal_restores_traffic(
        lab: tuple[Cluster, Host]) -> None:
    c, a = lab
    all_open = {p: True for p in PORTS}
    expect(c, a, all_open, "the host endpoint's default-allow profile lets everything in")
    assert "-A cali-from-host-endpoint -i eth0" in _saved(a, "filter")
    assert connects(a.ns, str(c.outside_ip), 8080)

    c.put(DENY_KEY, _gnp("deny-all-hosts", {"types": ["Ingress", "Egress"]}))
    expect(c, a, {22: True, 2379: True, 8080: False},
           "deny-all drops 8080; SSH and etcd stay open (failsafe)")
    saved = _saved(a, "filter")
    assert "cali-pi-gnp/deny-all-hosts" in saved and "cali-failsafe-in" in saved
    # Egress too: a new connection from the host to the outside is dropped, a new one to
    # its datastore is not (outbound failsafe).
    assert not connects(a.ns, str(c.outside_ip), 8080)
    assert connects(a.ns, str(c.gw), c.etcd.client_port)

    # Felix still reaches etcd through the denied uplink (outbound failsafe): it sees these.
    c.put(PRE_KEY, _gnp("pre-8081", {
        "preDNAT": True, "applyOnForward": True, "types": ["Ingress"],
        "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [8081]}}]}))
    c.put(UNTRACKED_KEY, _gnp("untracked-8082", {
        "doNotTrack": True, "applyOnForward": True, "types": ["Ingress"],
        "ingress": [{"action": "Deny", "protocol": "TCP", "destination": {"ports": [8082]}}]}))
    c.delete(DENY_KEY)
    expect(c, a, {22: True, 2379: True, 8080: True, 8081: False, 8082: False},
           "deny-all gone: 8080 back; preDNAT drops 8081, doNotTrack drops 8082")
    mangle, raw = _saved(a, "mangle"), _saved(a, "raw")
    assert "-A cali-fh-eth0" in mangle and "cali-pi-gnp/pre-8081" in mangle
    assert "-A cali-fh-eth0" in raw and "NOTRACK" in raw
    assert "cali-pi-gnp/untracked-8082" in raw

    c.delete(PRE_KEY)
    c.delete(UNTRACKED_KEY)
    expect(c, a, all_open, "no policies: everything reaches the host again")
    for table in ("filter", "mangle", "raw"):
        assert "cali-pi-gnp/" not in _saved(a, table), table
    assert "-A cali-fh-eth0" not in _saved(a, "raw")


ALL_KEY = keys.resource_key("HostEndpoint", "a-all")


def test_all_interfaces_endpoint_with_deny_all_keeps_the_failsafes(
        lab: tuple[Cluster, Host]) -> None:
    """The named endpoint is replaced by an `interfaceName: "*"` one (what kube-controllers'
    auto host endpoints use): the dispatch chains fall back to it for eth0 too."""
    c, a = lab
    for key in (HEP_KEY, DENY_KEY, PRE_KEY, UNTRACKED_KEY):   # whatever the first test left
        with contextlib.suppress(Exception):
            c.delete(key)
    c.put(ALL_KEY, {
        "kind": "HostEndpoint", "apiVersion": V3,
        "metadata": {"name": "a-all", "labels": {"host-endpoint": "all"}},
        "spec": {"node": "a", "interfaceName": "*", "expectedIPs": [str(a.ip.ip)],
                 "profiles": ["projectcalico-default-allow"]}})
    try:
        wait_for(lambda: "--goto cali-fh-any-interface-at-all" in _saved(a, "filter")
                 or "-g cali-fh-any-interface-at-all" in _saved(a, "filter"), 30,
                 "the all-interfaces endpoint as the dispatch fallback")
        expect(c, a, {22: True, 8080: True}, "default-allow through the * endpoint")
        c.put(DENY_KEY, _gnp("deny-all-hosts", {"types": ["Ingress", "Egress"]}))
        expect(c, a, {22: True, 2379: True, 8080: False},
               "deny-all on the * endpoint: 8080 dropped, failsafes open")
        assert connects(a.ns, str(c.gw), c.etcd.client_port)
        c.delete(DENY_KEY)
        expect(c, a, {22: True, 8080: True}, "policy removed: open again")
    finally:
        c.delete(ALL_KEY)
        with contextlib.suppress(Exception):
            c.delete(DENY_KEY)
    wait_for(lambda: "cali-fh-any-interface-at-all" not in _saved(a, "filter"), 30,
             "no host endpoint chains left")
    expect(c, a, {22: True, 8080: True}, "no host endpoint: the host is not policed")
