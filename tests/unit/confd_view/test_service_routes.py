"""Which Kubernetes Services a node advertises /32 (/128) routes for (confd.keyspace.
service_routes, Calico's route generator), and which routes."""

from __future__ import annotations

import ipaddress

from confd.inputs import Inputs
from confd.keyspace import service_routes
from libcalico.datastore import kubernetes_service as ks
from libcalico.model import codec
from libcalico.model.resources import BGPConfiguration
from libcalico.model.resources_bgp import BGPConfigurationSpec

_CONFIG = codec.decode({
    "apiVersion": "projectcalico.org/v3", "kind": "BGPConfiguration",
    "metadata": {"name": "default"},
    "spec": {"serviceClusterIPs": [{"cidr": "10.101.0.0/16"}],
             "serviceExternalIPs": [{"cidr": "203.0.113.0/24"}, {"cidr": "198.51.100.7/32"}],
             "serviceLoadBalancerIPs": [{"cidr": "80.15.0.0/24"}, {"cidr": "80.16.0.1/32"}]}})
assert isinstance(_CONFIG, BGPConfiguration)
CONFIG: BGPConfigurationSpec = _CONFIG.spec


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def svc(name: str, cluster: str | None, policy: str = "Local", type_: str = "LoadBalancer",
        external: tuple[str, ...] = (), ingress: tuple[str, ...] = ()) -> ks.Service:
    return ks.Service("default", name, type_, ip(cluster) if cluster else None,
                      tuple(ip(e) for e in external), None, tuple(ip(i) for i in ingress),
                      policy)


def on(service: str, node: str, *addresses: str, ready: bool = True) -> ks.EndpointSlice:
    return ks.EndpointSlice("default", f"{service}-x", service, "IPv4",
                            (ks.SliceEndpoint(node, tuple(ip(a) for a in addresses), ready),))


def routes(services: list[ks.Service], slices: list[ks.EndpointSlice],
           advertise_cluster: bool = True) -> list[str]:
    res = Inputs("me")
    res.services = {s.name: s for s in services}
    res.slices = {s.name: s for s in slices}
    return [str(n) for n in service_routes(res, "me", CONFIG, advertise_cluster)]


def test_local_services_need_a_ready_local_endpoint_of_their_family() -> None:
    services = [svc("a", "10.101.0.1", external=("203.0.113.5", "192.0.2.5"),
                    ingress=("80.15.0.9", "90.0.0.1")),
                svc("b", "10.101.0.2"), svc("c", "10.101.0.3"), svc("d", "10.101.0.4"),
                svc("v6", "fd00:96::5")]
    slices = [on("a", "me", "192.168.1.1"), on("b", "other", "192.168.1.2"),
              on("c", "me", "192.168.1.3", ready=False), on("d", "me"),
              on("v6", "me", "192.168.1.4")]
    # a: cluster IP, the external IP in serviceExternalIPs, the ingress IP in the LB range.
    assert routes(services, slices) == ["10.101.0.1/32", "80.15.0.9/32", "203.0.113.5/32"]
    assert routes(services, slices, advertise_cluster=False) == ["80.15.0.9/32",
                                                                 "203.0.113.5/32"]
    assert routes([svc("v6", "fd00:96::5")], [on("v6", "me", "fd5f::1")]) == ["fd00:96::5/128"]


def test_cluster_policy_only_for_single_address_entries() -> None:
    lb = svc("lb", "10.101.0.7", policy="Cluster", ingress=("80.16.0.1",))
    ext = svc("ext", "10.101.0.8", policy="Cluster", type_="ClusterIP",
              external=("198.51.100.7",))
    wide = svc("wide", "10.101.0.9", policy="Cluster", ingress=("80.15.0.1",))
    # No endpoints needed; the ranges (80.15.0.0/24, 203.0.113.0/24) give no per-service route.
    assert routes([lb, ext, wide], []) == ["10.101.0.7/32", "10.101.0.8/32", "80.16.0.1/32",
                                           "198.51.100.7/32"]


def test_services_never_advertised() -> None:
    assert routes([svc("h", None), svc("n", "10.101.0.1", type_="ExternalName")],
                  [on("h", "me", "192.168.1.1"), on("n", "me", "192.168.1.1")]) == []
