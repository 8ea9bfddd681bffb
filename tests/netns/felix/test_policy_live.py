"""Felix enforcing Calico policy on real namespaces: two workloads on one host (a real
calico-felix subprocess inside the host namespace, a real etcd), TCP servers on ports 80 and
81. A NetworkPolicy allowing port 80 lets 80 through and drops 81; a Deny in an earlier tier
wins over it; removing the policies gives the profile's behaviour (allow all) back."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from libcalico.model import keys
from tests.fixtures.etcd import EtcdFactory
from tests.fixtures.netns import NetnsFactory
from tests.netns.felix import tcpprobe
from tests.netns.felix.cluster import Cluster, Pod, wait_for

pytestmark = [pytest.mark.netns, pytest.mark.etcd]

V3 = "projectcalico.org/v3"


def reachable(client: Pod, server: Pod, port: int) -> bool:
    return tcpprobe.answers(client.ns, str(server.ip), port)


def expect(client: Pod, server: Pod, want: dict[int, bool], what: str) -> None:
    """Wait until every port's reachability is as wanted (Felix applies asynchronously),
    then check it once more."""
    wait_for(lambda: all(reachable(client, server, p) == ok for p, ok in want.items()),
             30, what)
    assert {p: reachable(client, server, p) for p in want} == want, what


@pytest.fixture(scope="module")
def lab() -> Iterator[tuple[Cluster, Pod, Pod]]:
    if os.geteuid() != 0:
        pytest.skip("needs root for network namespaces")
    nf = NetnsFactory()
    ef = EtcdFactory(Path(tempfile.mkdtemp(prefix="felix-policy-etcd-")))
    c: Cluster | None = None
    server: subprocess.Popen[bytes] | None = None
    try:
        c = Cluster(nf, ef)
        c.pool("pool1", "10.66.0.0/16", vxlan="Always")
        c.allow_profile("kns.default")
        c.put(keys.resource_key("Tier", "default"), {
            "kind": "Tier", "apiVersion": V3, "metadata": {"name": "default"},
            "spec": {"order": 1000000, "defaultAction": "Deny"}})
        a = c.add_host("a")
        client = c.add_pod(a, 0)
        web = c.add_pod(a, 1, write=False)
        wep = keys.resource_key("WorkloadEndpoint", c.wep_name(web), "default")
        c.put(wep, {
            "kind": "WorkloadEndpoint", "apiVersion": V3,
            "metadata": {"name": c.wep_name(web), "namespace": "default",
                         "labels": {"app": "web", "projectcalico.org/namespace": "default",
                                    "projectcalico.org/orchestrator": "k8s"}},
            "spec": {"orchestrator": "k8s", "node": "a", "pod": web.name, "endpoint": "eth0",
                     "ipNetworks": [f"{web.ip}/32"], "profiles": ["kns.default"],
                     "interfaceName": web.iface, "mac": web.mac}})
        server = tcpprobe.serve(web.ns, (80, 81))
        c.start_felix(a)
        c.wait_applied(a)
        yield c, client, web
    finally:
        if server is not None:
            server.kill()
            server.wait(10)
        if c is not None:
            c.cleanup()
        nf.cleanup()
        ef.cleanup()


NP_KEY = keys.resource_key("NetworkPolicy", "allow-80", "default")
NP: dict[str, object] = {"kind": "NetworkPolicy", "apiVersion": V3,
      "metadata": {"name": "allow-80", "namespace": "default"},
      "spec": {"tier": "default", "order": 100, "selector": "app == 'web'",
               "types": ["Ingress"],
               "ingress": [{"action": "Allow", "protocol": "TCP", "source": {},
                            "destination": {"ports": [80]}}]}}
TIER_KEY = keys.resource_key("Tier", "security")
GNP_KEY = keys.resource_key("GlobalNetworkPolicy", "deny-80")
GNP: dict[str, object] = {"kind": "GlobalNetworkPolicy", "apiVersion": V3,
       "metadata": {"name": "deny-80", "labels": {"projectcalico.org/tier": "security"}},
       "spec": {"tier": "security", "order": 1, "selector": "app == 'web'",
                "types": ["Ingress"],
                "ingress": [{"action": "Deny", "protocol": "TCP", "source": {},
                             "destination": {"ports": [80]}},
                            {"action": "Pass", "source": {}, "destination": {}}]}}


def test_policy_allows_one_port_then_an_earlier_deny_wins_then_profiles_again(
        lab: tuple[Cluster, Pod, Pod]) -> None:
    c, client, web = lab
    expect(client, web, {80: True, 81: True}, "the profile allows all")
    c.put(NP_KEY, NP)
    expect(client, web, {80: True, 81: False}, "the policy allows port 80 only")
    c.put(TIER_KEY, {"kind": "Tier", "apiVersion": V3, "metadata": {"name": "security"},
                     "spec": {"order": 10, "defaultAction": "Deny"}})
    c.put(GNP_KEY, GNP)
    expect(client, web, {80: False, 81: False}, "a Deny in an earlier tier wins")
    c.delete(GNP_KEY)
    expect(client, web, {80: True, 81: False}, "the earlier tier's policy is gone")
    c.delete(NP_KEY)
    expect(client, web, {80: True, 81: True}, "no policy: the profile's behaviour again")
    # The policy chains and their IP sets are gone from the host.
    from tests.fixtures.netns import ns_exec
    saved = ns_exec(c.hosts[0].ns, "iptables-save", "-t", "filter").stdout
    assert "cali-pi-" not in saved and "cali-po-" not in saved
