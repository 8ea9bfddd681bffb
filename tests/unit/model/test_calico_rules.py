"""Calico's validation, rule by rule: each row names a rule of libcalico-go's v3 validator
(`lib/validator/v3/validator.go`), a struct tag of the API types, a clientv3 check or a CRD
rule, and a document that Calico accepts (`OK`) or refuses at a field for a reason."""

from __future__ import annotations

from typing import Any

import pytest

from libcalico.errors import ValidationError
from libcalico.model import codec

V3 = "projectcalico.org/v3"
OK = None

Row = tuple[str, dict[str, Any], tuple[str, str] | None]


def res(kind: str, spec: dict[str, Any], name: str = "x", **meta: Any) -> dict[str, Any]:
    return {"apiVersion": V3, "kind": kind, "metadata": {"name": name, **meta}, "spec": spec}


def peer(**spec: Any) -> dict[str, Any]:
    return res("BGPPeer", spec)


def bgpconfig(name: str = "default", **spec: Any) -> dict[str, Any]:
    return res("BGPConfiguration", spec, name=name)


def v4rule(**fields: Any) -> dict[str, Any]:
    return res("BGPFilter", {"exportV4": [{"action": "Accept", **fields}]})


def v6rule(**fields: Any) -> dict[str, Any]:
    return res("BGPFilter", {"importV6": [{"action": "Accept", **fields}]})


def pool(**spec: Any) -> dict[str, Any]:
    return res("IPPool", {"cidr": "10.0.0.0/16", **spec})


def profile_rule(**fields: Any) -> dict[str, Any]:
    return res("Profile", {"ingress": [{"action": "Allow", **fields}]})


def wep(**spec: Any) -> dict[str, Any]:
    return res("WorkloadEndpoint", spec, namespace="default")


def hep(**spec: Any) -> dict[str, Any]:
    return res("HostEndpoint", {"node": "n1", "interfaceName": "eth0", **spec})


def felix(**spec: Any) -> dict[str, Any]:
    return res("FelixConfiguration", spec, name="default")


RULES: list[Row] = [
    # validateBGPPeerSpec
    ("bgppeer: peerIP without asNumber is valid", peer(peerIP="10.0.0.1"), OK),
    ("bgppeer: nothing to peer with is valid", peer(node="n1"), OK),
    ("bgppeer: node with nodeSelector", peer(node="n1", nodeSelector="all()", peerIP="10.0.0.1"),
     ("spec.node", "cannot both be set")),
    ("bgppeer: peerIP with peerSelector", peer(peerIP="10.0.0.1", peerSelector="all()"),
     ("spec.peerSelector", "cannot be used together")),
    ("bgppeer: asNumber with peerSelector", peer(peerSelector="all()", asNumber=64512),
     ("spec.asNumber", "must be empty when peerSelector is set")),
    ("bgppeer: localWorkloadSelector needs asNumber", peer(localWorkloadSelector="all()"),
     ("spec.asNumber", "required when localWorkloadSelector is set")),
    ("bgppeer: localWorkloadSelector with asNumber",
     peer(localWorkloadSelector="all()", asNumber=64512), OK),
    ("bgppeer: peerIP with localWorkloadSelector",
     peer(peerIP="10.0.0.1", localWorkloadSelector="all()", asNumber=1),
     ("spec.localWorkloadSelector", "cannot be used together")),
    ("bgppeer: reachableBy without peerIP", peer(peerSelector="all()", reachableBy="10.0.0.1"),
     ("spec.reachableBy", "only be set together with peerIP")),
    ("bgppeer: reachableBy of the other family", peer(peerIP="10.0.0.1", reachableBy="fd00::1"),
     ("spec.reachableBy", "same IP family")),
    ("bgppeer: keepOriginalNextHop with nextHopMode",
     peer(peerIP="10.0.0.1", keepOriginalNextHop=True, nextHopMode="Keep"),
     ("spec.keepOriginalNextHop", "must not be true when nextHopMode is set")),
    ("bgppeer: keepOriginalNextHop alone", peer(peerIP="10.0.0.1", keepOriginalNextHop=True), OK),
    ("bgppeer: IP:port peerIP, port 0", peer(peerIP="10.0.0.1:0"), ("spec.peerIP", "out of range")),
    ("bgppeer: filters are names", peer(peerIP="10.0.0.1", filters=["F"]),
     ("spec.filters[0]", "invalid name")),
    # BGPFilter: netv4/netv6 tags, validateBGPFilterRule, bgpFilterInterface, CRD rules
    ("bgpfilter: CIDR kept as written", v6rule(cidr="9000::0/64", matchOperator="In"), OK),
    ("bgpfilter: CIDR with host bits (netv6)", v6rule(cidr="9000::1/64", matchOperator="In"),
     ("spec.importV6[0].cidr", "host bits")),
    ("bgpfilter: CIDR of the other family", v4rule(cidr="9000::/64", matchOperator="In"),
     ("spec.exportV4[0].cidr", "not an IPv4 CIDR")),
    ("bgpfilter: CIDR needs its prefix (CRD format cidr)", v4rule(cidr="10.0.0.0",
                                                                  matchOperator="In"),
     ("spec.exportV4[0].cidr", "prefix length is missing")),
    ("bgpfilter: CIDR without matchOperator", v4rule(cidr="10.0.0.0/8"),
     ("spec.exportV4[0].matchOperator", "must be set together")),
    ("bgpfilter: matchOperator without CIDR", v4rule(matchOperator="In"),
     ("spec.exportV4[0].cidr", "must be set together")),
    ("bgpfilter: prefixLength without CIDR", v4rule(prefixLength={"min": 8}),
     ("spec.exportV4[0].prefixLength", "requires cidr")),
    ("bgpfilter: prefixLength v4 over 32",
     v4rule(cidr="10.0.0.0/8", matchOperator="In", prefixLength={"max": 33}),
     ("spec.exportV4[0].prefixLength.max", "out of range 0-32")),
    ("bgpfilter: prefixLength min above max is valid",
     v4rule(cidr="10.0.0.0/8", matchOperator="In", prefixLength={"min": 24, "max": 16}), OK),
    ("bgpfilter: interface of 15 characters", v4rule(interface="abcdefghijklmn*"), OK),
    ("bgpfilter: interface of 16 characters", v4rule(interface="abcdefghijklmno*"),
     ("spec.exportV4[0].interface", "1-15")),
    ("bgpfilter: interface with a space", v4rule(interface="eth 0"),
     ("spec.exportV4[0].interface", "invalid interface pattern")),
    ("bgpfilter: operations only with Accept",
     res("BGPFilter", {"exportV4": [{"action": "Reject",
                                     "operations": [{"setPriority": {"value": 10}}]}]}),
     ("spec.exportV4[0].operations", "only be used with action Accept")),
    ("bgpfilter: exactly one operation field",
     v4rule(operations=[{"setPriority": {"value": 10}, "addCommunity": {"value": "1:1"}}]),
     ("spec.exportV4[0].operations[0]", "exactly one")),
    ("bgpfilter: prependASPath needs AS numbers", v4rule(operations=[{"prependASPath": {}}]),
     ("spec.exportV4[0].operations[0].prependASPath.prefix", "1 to 10")),
    ("bgpfilter: one community value", v4rule(communities={"values": ["1:1", "1:2"]}),
     ("spec.exportV4[0].communities.values", "exactly one")),
    # validateBGPConfigurationSpec, BGPConfiguration tags, clientv3 ValidateDefaultOnlyFields
    ("bgpconfig: service CIDR kept as written", bgpconfig(serviceClusterIPs=[{"cidr":
                                                                              "fd00:0::/108"}]),
     OK),
    ("bgpconfig: service CIDR may be an address", bgpconfig(serviceExternalIPs=[{"cidr":
                                                                                 "10.0.0.1"}]),
     OK),
    ("bgpconfig: service CIDR with host bits (net)",
     bgpconfig(serviceClusterIPs=[{"cidr": "10.96.0.1/12"}]),
     ("spec.serviceClusterIPs[0].cidr", "host bits")),
    ("bgpconfig: service IPs only on default",
     bgpconfig("node.n1", serviceLoadBalancerIPs=[{"cidr": "10.0.0.0/24"}]),
     ("spec.serviceLoadBalancerIPs", "only be set on the BGPConfiguration named default")),
    ("bgpconfig: asNumber only on default", bgpconfig("node.n1", asNumber=1),
     ("spec.asNumber", "only be set on the BGPConfiguration named default")),
    ("bgpconfig: node-specific config", bgpconfig("node.n1", logSeverityScreen="Debug",
                                                  listenPort=1179), OK),
    ("bgpconfig: communities without prefixAdvertisements",
     bgpconfig(communities=[{"name": "c", "value": "1:1"}]),
     ("spec.communities", "defined but not used")),
    ("bgpconfig: prefixAdvertisement naming a community",
     bgpconfig(communities=[{"name": "c", "value": "1:1"}],
               prefixAdvertisements=[{"cidr": "10.0.0.0/24", "communities": ["c", "2:2"]}]),
     OK),
    ("bgpconfig: prefixAdvertisement with an unknown community",
     bgpconfig(prefixAdvertisements=[{"cidr": "10.0.0.0/24", "communities": ["c"]}]),
     ("spec.prefixAdvertisements[0].communities[0]", "neither a community defined")),
    ("bgpconfig: prefixAdvertisement communities required",
     bgpconfig(prefixAdvertisements=[{"cidr": "10.0.0.0/24"}]),
     ("spec.prefixAdvertisements[0].communities", "required")),
    ("bgpconfig: prefixAdvertisement CIDR with host bits",
     bgpconfig(prefixAdvertisements=[{"cidr": "10.0.0.1/24", "communities": ["1:1"]}]),
     ("spec.prefixAdvertisements[0].cidr", "host bits")),
    ("bgpconfig: standard community is 16-bit",
     bgpconfig(communities=[{"name": "c", "value": "65536:1"}],
               prefixAdvertisements=[{"cidr": "10.0.0.0/24", "communities": ["c"]}]),
     ("spec.communities[0].value", "0-65535")),
    ("bgpconfig: mesh password with mesh disabled",
     bgpconfig(nodeToNodeMeshEnabled=False,
               nodeMeshPassword={"secretKeyRef": {"name": "s", "key": "k"}}),
     ("spec.nodeMeshPassword", "nodeToNodeMeshEnabled is false")),
    ("bgpconfig: mesh restart time with mesh disabled",
     bgpconfig(nodeToNodeMeshEnabled=False, nodeMeshMaxRestartTime="10s"),
     ("spec.nodeMeshMaxRestartTime", "nodeToNodeMeshEnabled is false")),
    ("bgpconfig: mesh restart time with mesh on", bgpconfig(nodeMeshMaxRestartTime="10s"), OK),
    ("bgpconfig: ignoredInterfaces are not '*' alone", bgpconfig(ignoredInterfaces=["*"]),
     ("spec.ignoredInterfaces[0]", "not '*' alone")),
    ("bgpconfig: ignoredInterfaces up to 15 characters",
     bgpconfig(ignoredInterfaces=["a" * 16]), ("spec.ignoredInterfaces[0]", "1-15")),
    ("bgpconfig: ignoredInterfaces pattern", bgpconfig(ignoredInterfaces=["cali*", "eth.0"]),
     OK),
    ("bgpconfig: listenPort 0 means unset", bgpconfig(listenPort=0), OK),
    # validateIPPoolSpec and clientv3
    ("ippool: IPIP on IPv6", pool(cidr="fd00::/64", ipipMode="Always"),
     ("spec.ipipMode", "not supported on an IPv6 pool")),
    ("ippool: IPIP and VXLAN", pool(ipipMode="Always", vxlanMode="CrossSubnet"),
     ("spec.vxlanMode", "cannot both be enabled")),
    ("ippool: host bits", pool(cidr="10.0.0.1/16"), ("spec.cidr", "host bits")),
    ("ippool: link-local", pool(cidr="169.254.0.0/16"), ("spec.cidr", "link-local")),
    ("ippool: smaller than its block", pool(cidr="10.0.0.0/28"),
     ("spec.cidr", "smaller than its blockSize")),
    ("ippool: smaller than its block when disabled", pool(cidr="10.0.0.0/28", disabled=True),
     OK),
    ("ippool: LoadBalancer with Workload", pool(allowedUses=["LoadBalancer", "Workload"]),
     ("spec.allowedUses", "cannot be combined")),
    ("ippool: LoadBalancer with IPIP", pool(allowedUses=["LoadBalancer"], ipipMode="Always"),
     ("spec.ipipMode", "LoadBalancer pool")),
    ("ippool: LoadBalancer with VXLAN", pool(allowedUses=["LoadBalancer"], vxlanMode="Always"),
     ("spec.vxlanMode", "LoadBalancer pool")),
    ("ippool: LoadBalancer with disableBGPExport",
     pool(allowedUses=["LoadBalancer"], disableBGPExport=True),
     ("spec.disableBGPExport", "LoadBalancer pool")),
    ("ippool: LoadBalancer node selector", pool(allowedUses=["LoadBalancer"],
                                                nodeSelector="has(x)"),
     ("spec.nodeSelector", "all()")),
    ("ippool: repeated allowed uses", pool(allowedUses=["Workload", "Workload"]), OK),
    # validateNodeSpec
    ("node: empty bgp", res("Node", {"bgp": {}}), ("spec.bgp", "must not be empty")),
    ("node: bgp with only an AS number", res("Node", {"bgp": {"asNumber": 64512}}), OK),
    # validateWorkloadEndpointSpec, validateWorkloadEndpointPort, validateIPNAT
    ("wep: network of one address", wep(ipNetworks=["10.0.0.5/32", "10.0.0.6"]), OK),
    ("wep: network of many addresses", wep(ipNetworks=["10.0.0.0/24"]),
     ("spec.ipNetworks[0]", "contains more than one address")),
    ("wep: NAT inside the networks", wep(ipNetworks=["10.0.0.5/32"],
                                         ipNATs=[{"internalIP": "10.0.0.5",
                                                  "externalIP": "172.16.0.1"}]), OK),
    ("wep: NAT outside the networks", wep(ipNetworks=["10.0.0.5/32"],
                                          ipNATs=[{"internalIP": "10.0.0.6",
                                                   "externalIP": "172.16.0.1"}]),
     ("spec.ipNATs", "not in the endpoint networks")),
    ("wep: NAT of two families", wep(ipNetworks=["10.0.0.5/32"],
                                     ipNATs=[{"internalIP": "10.0.0.5", "externalIP": "fd00::1"}]),
     ("spec.ipNATs[0].externalIP", "mismatched IP versions")),
    ("wep: port without name or hostPort", wep(ports=[{"protocol": "TCP", "port": 80}]),
     ("spec.ports[0].name", "must not be empty")),
    ("wep: host port without name", wep(ports=[{"protocol": "TCP", "port": 80,
                                                "hostPort": 8080}]), OK),
    ("wep: port protocol without ports", wep(ports=[{"name": "p", "protocol": "ICMP",
                                                     "port": 1}]),
     ("spec.ports[0].protocol", "does not support ports")),
    ("wep: port name is an IANA name", wep(ports=[{"name": "http--alt", "protocol": "TCP",
                                                   "port": 80}]),
     ("spec.ports[0].name", "invalid port name")),
    ("wep: containerID", wep(containerID="abc_def"), ("spec.containerID", "invalid container")),
    ("wep: network with host bits (net)", wep(ipNetworks=["10.0.0.5/24"]),
     ("spec.ipNetworks[0]", "host bits")),
    ("wep: profiles are names", wep(profiles=["kns.default", "Bad_Name"]),
     ("spec.profiles[1]", "invalid name")),
    ("wep: endpoint is a name", wep(endpoint="eth_0"), ("spec.endpoint", "invalid name")),
    ("wep: serviceAccountName is a name", wep(serviceAccountName="SA"),
     ("spec.serviceAccountName", "invalid name")),
    ("hep: profiles are names", hep(profiles=["P1"]), ("spec.profiles[0]", "invalid name")),
    ("profile: name is a DNS subdomain", res("Profile", {}, name="Open_Stack"),
     ("metadata.name", "invalid name")),
    ("profile: kubernetes profile names", res("Profile", {}, name="ksa.default.default"), OK),
    # validateHostEndpointSpec, validateEndpointPort
    ("hep: interface or expected IPs", res("HostEndpoint", {"node": "n1"}),
     ("spec.interfaceName", "interfaceName or expectedIPs")),
    ("hep: node required", res("HostEndpoint", {"expectedIPs": ["10.0.0.1"]}),
     ("spec.node", "required")),
    ("hep: port protocol", hep(ports=[{"name": "p", "protocol": "ICMP", "port": 1}]),
     ("spec.ports[0].protocol", "does not support ports")),
    ("hep: port name required", hep(ports=[{"name": "", "protocol": "TCP", "port": 1}]),
     ("spec.ports[0].name", "required")),
    # validateRule, validateEntityRule, validateICMPFields, validateHTTPRule, numorstring.Port
    ("rule: ports need a port protocol", profile_rule(destination={"ports": [80]}),
     ("spec.ingress[0].destination.ports", "numeric port or port range must set protocol")),
    ("rule: named ports need no protocol", profile_rule(destination={"ports": ["http"]}), OK),
    ("rule: named ports need a port protocol when one is set",
     profile_rule(protocol="ICMP", destination={"ports": ["http"]}),
     ("spec.ingress[0].destination.ports", "must set protocol")),
    ("rule: catch-all notNets", profile_rule(source={"notNets": ["::0/0"]}),
     ("spec.ingress[0].source.notNets[0]", "catch-all CIDR")),
    ("rule: notNets", profile_rule(source={"notNets": ["10.0.0.0/8"]}), OK),
    ("rule: port 0", profile_rule(protocol="TCP", destination={"ports": [0]}),
     ("spec.ingress[0].destination.ports[0]", "out of range 1-65535")),
    ("rule: port range from 0", profile_rule(protocol="TCP", destination={"ports": ["0:10"]}),
     ("spec.ingress[0].destination.ports[0]", "out of range 1-65535")),
    ("rule: ICMP fields need protocol ICMP", profile_rule(protocol=1, icmp={"type": 8}),
     ("spec.ingress[0].icmp", "ICMP or ICMPv6")),
    ("rule: notICMP needs no protocol", profile_rule(notICMP={"type": 8}), OK),
    ("rule: ICMP code without type", profile_rule(protocol="ICMP", icmp={"code": 0}),
     ("spec.ingress[0].icmp.code", "without an ICMP type")),
    ("rule: ICMP with ipVersion 6", profile_rule(protocol="ICMP", ipVersion=6),
     ("spec.ingress[0].ipVersion", "must be 4 with protocol ICMP")),
    ("rule: notProtocol ICMPv6 with ipVersion 4", profile_rule(notProtocol="ICMPv6",
                                                               ipVersion=4),
     ("spec.ingress[0].ipVersion", "must be 6 with protocol ICMPv6")),
    ("rule: nets kept as written", profile_rule(source={"nets": ["fd00:0::/64"]}), OK),
    ("rule: nets need a prefix", profile_rule(source={"nets": ["10.0.0.1"]}),
     ("spec.ingress[0].source.nets[0]", "prefix length is missing")),
    ("rule: nets with host bits", profile_rule(source={"nets": ["10.0.0.1/8"]}),
     ("spec.ingress[0].source.nets[0]", "host bits")),
    ("rule: nets of the wrong ipVersion", profile_rule(ipVersion=6,
                                                       source={"nets": ["10.0.0.0/8"]}),
     ("spec.ingress[0].source.nets", "doesn't match")),
    ("rule: nets of both families", profile_rule(source={"nets": ["10.0.0.0/8"]},
                                                 destination={"notNets": ["fd00::/8"]}),
     ("spec.ingress[0].destination.notNets", "both IPv4 and IPv6")),
    ("rule: HTTP only on Allow", res("Profile", {"ingress": [{"action": "Deny",
                                                              "http": {"methods": ["GET"]}}]}),
     ("spec.ingress[0].http", "only valid for Allow rules")),
    ("rule: HTTP with UDP", profile_rule(protocol="UDP", http={"methods": ["GET"]}),
     ("spec.ingress[0].protocol", "TCP or empty")),
    ("rule: HTTP duplicate methods", profile_rule(http={"methods": ["GET", "GET"]}),
     ("spec.ingress[0].http.methods", "duplicate")),
    ("rule: HTTP path with exact and prefix",
     profile_rule(http={"paths": [{"exact": "/a", "prefix": "/b"}]}),
     ("spec.ingress[0].http.paths[0]", "both 'exact' and 'prefix'")),
    ("rule: HTTP path with '?'", profile_rule(http={"paths": [{"prefix": "/a?b"}]}),
     ("spec.ingress[0].http.paths[0]", "must start with '/'")),
    ("rule: global() in a selector", profile_rule(source={"selector": "global()"}),
     ("spec.ingress[0].source.selector", "namespaceSelector")),
    ("rule: global() combined in a namespaceSelector",
     profile_rule(source={"namespaceSelector": "global() && has(a)"}),
     ("spec.ingress[0].source.namespaceSelector", "cannot be combined")),
    ("rule: global() alone in a namespaceSelector",
     profile_rule(source={"namespaceSelector": "global()"}), OK),
    ("rule: services need a name", profile_rule(destination={"services": {"namespace": "a"}}),
     ("spec.ingress[0].destination.services.name", "service name")),
    ("rule: services with a selector",
     profile_rule(destination={"services": {"name": "s"}, "selector": "all()"}),
     ("spec.ingress[0].destination.services", "selector/notSelector and services")),
    ("rule: services with ports", profile_rule(protocol="TCP", destination={
        "services": {"name": "s"}, "ports": [80]}),
     ("spec.ingress[0].destination.ports", "with a service selector")),
    ("rule: metadata annotations", profile_rule(metadata={"annotations": {"-a": "x"}}),
     ("spec.ingress[0].metadata.annotations.-a", "invalid key")),
    # validateObjectMeta
    ("metadata: annotation keys are checked lower-cased",
     res("Node", {}, annotations={"Example.COM/Key": "v"}), OK),
    ("metadata: label keys are not", res("Node", {}, labels={"Example.COM/key": "v"}),
     ("metadata.labels.Example.COM/key", "prefix must be a DNS subdomain")),
    # validateFelixConfigSpec, validateRouteTableRange, validateHealthTimeoutOverride
    ("felix: routeTableRange within 1..250", felix(routeTableRange={"min": 1, "max": 251}),
     ("spec.routeTableRange", "within 1..250")),
    ("felix: routeTableRanges total", felix(routeTableRanges=[{"min": 1, "max": 70000}]),
     ("spec.routeTableRanges", "too many tables")),
    ("felix: routeTableRanges", felix(routeTableRanges=[{"min": 1000, "max": 2000}]), OK),
    ("felix: kubeNodePortRanges at most 7", felix(kubeNodePortRanges=[str(p) for p in
                                                                      range(1, 9)]),
     ("spec.kubeNodePortRanges", "max 7")),
    ("felix: kubeNodePortRanges no names", felix(kubeNodePortRanges=["http"]),
     ("spec.kubeNodePortRanges", "named ports")),
    ("felix: externalNodesList IPv4", felix(externalNodesList=["fd00::/64"]),
     ("spec.externalNodesList[0]", "not an IPv4 CIDR")),
    ("felix: openstackRegion", felix(openstackRegion="Region_1"),
     ("spec.openstackRegion", "DNS label")),
    ("felix: natOutgoingAddress IPv4", felix(natOutgoingAddress="fd00::1"),
     ("spec.natOutgoingAddress", "not an IPv4 value")),
    ("felix: iptables interface filter with '+'",
     felix(iptablesNATOutgoingInterfaceFilter="eth+"), OK),
    ("felix: featureGates key=value list", felix(featureGates="A=b,C=d,"), OK),
    ("felix: featureDetectOverride", felix(featureDetectOverride="SNATFullyRandom"),
     ("spec.featureDetectOverride", "key=value")),
    ("felix: logDebugFilenameRegex compiles", felix(logDebugFilenameRegex="(a"),
     ("spec.logDebugFilenameRegex", "invalid regular expression")),
    ("felix: prometheusMetricsHost", felix(prometheusMetricsHost="a b"),
     ("spec.prometheusMetricsHost", "invalid host")),
    ("felix: bpfDSROptoutCIDRs", felix(bpfDSROptoutCIDRs=["10.0.0.1/8", "x"]),
     ("spec.bpfDSROptoutCIDRs[1]", "invalid CIDR")),
    ("felix: bpfExtToServiceConnmark", felix(bpfExtToServiceConnmark=2**32),
     ("spec.bpfExtToServiceConnmark", "out of range")),
    ("felix: wireguardListeningPort 0", felix(wireguardListeningPort=0),
     ("spec.wireguardListeningPort", "out of range 1-65535")),
    ("felix: wireguardRoutingRulePriority", felix(wireguardRoutingRulePriority=32766),
     ("spec.wireguardRoutingRulePriority", "out of range 1-32765")),
    ("felix: goGCThreshold -1 disables GC", felix(goGCThreshold=-1), OK),
    ("felix: goMaxProcs below -1", felix(goMaxProcs=-2), ("spec.goMaxProcs", "out of range")),
    ("felix: mtuIfacePattern compiles", felix(mtuIfacePattern="^(eth|en"),
     ("spec.mtuIfacePattern", "invalid regular expression")),
    ("felix: chainInsertMode in any case (CRD (?i) pattern)", felix(chainInsertMode="append"),
     OK),
    ("felix: chainInsertMode", felix(chainInsertMode="Sideways"),
     ("spec.chainInsertMode", "must be one of Insert, Append")),
    ("felix: routeSource in any case", felix(routeSource="calicoipam"), OK),
    ("felix: health timeout override name", felix(healthTimeoutOverrides=[
        {"name": "a/b", "timeout": "10s"}]),
     ("spec.healthTimeoutOverrides[0].name", "letters, digits")),
    ("felix: health timeout override negative", felix(healthTimeoutOverrides=[
        {"name": "InternalDataplaneMainLoop", "timeout": "-1s"}]),
     ("spec.healthTimeoutOverrides[0].timeout", "negative")),
]


@pytest.mark.parametrize(("rule", "document", "expect"), RULES, ids=[r[0] for r in RULES])
def test_calico_rule(rule: str, document: dict[str, Any], expect: tuple[str, str] | None
                     ) -> None:
    if expect is None:
        decoded = codec.decode(document)
        assert codec.loads(codec.dumps(decoded)) == decoded
        return
    with pytest.raises(ValidationError) as info:
        codec.decode(document)
    path, reason = expect
    matching = [e for e in info.value.errors if e.path == path]
    assert matching, f"no error at {path!r}: {info.value.errors}"
    assert any(reason in e.reason for e in matching), f"{reason!r} not in {matching}"


@pytest.mark.parametrize(("document", "text"), [
    (v6rule(cidr="9000::0/64", matchOperator="In"), '"cidr":"9000::0/64"'),
    (bgpconfig(serviceExternalIPs=[{"cidr": "10.0.0.1"}]), '"cidr":"10.0.0.1"'),
    (profile_rule(source={"nets": ["fd00:0::/64"]}), '"nets":["fd00:0::/64"]'),
    (res("IPReservation", {"reservedCIDRs": ["10.0.0.1/24"]}), '"reservedCIDRs":["10.0.0.1/24"]'),
    (wep(ipNetworks=["10.0.0.6"]), '"ipNetworks":["10.0.0.6"]'),
])
def test_cidrs_are_stored_as_written(document: dict[str, Any], text: str) -> None:
    """Calico keeps these CIDRs' text (only an IPPool's CIDR is normalised by its client)."""
    assert text in codec.dumps(codec.decode(document))
