"""Invalid documents: each is rejected with the field's dotted path and the right reason."""

from __future__ import annotations

from typing import Any

import pytest

from libcalico.errors import ValidationError
from libcalico.model import codec

V3 = "projectcalico.org/v3"


def doc(kind: str, spec: dict[str, Any] | None = None, name: str = "x",
        **meta: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"apiVersion": V3, "kind": kind, "metadata": {"name": name, **meta}}
    if spec is not None:
        d["spec"] = spec
    return d


def pool(**spec: Any) -> dict[str, Any]:
    return doc("IPPool", {"cidr": "10.0.0.0/16", **spec})


def peer(**spec: Any) -> dict[str, Any]:
    return doc("BGPPeer", spec)


def rule(**fields: Any) -> dict[str, Any]:
    return doc("BGPFilter", {"exportV4": [{"action": "Accept", **fields}]})


CASES: list[tuple[str, dict[str, Any], str, str]] = [
    # (id, document, path, reason fragment)
    ("unknown-kind", {"apiVersion": V3, "kind": "IPPoool", "metadata": {"name": "a"}},
     "kind", "unknown kind 'IPPoool'"),
    ("wrong-apiversion", {**pool(), "apiVersion": "projectcalico.org/v2"},
     "apiVersion", "expected 'projectcalico.org/v3'"),
    ("unknown-top-field", {**pool(), "extra": 1}, "extra", "unknown field 'extra'"),
    ("unknown-spec-field", pool(ipipModes="Always"), "spec.ipipModes",
     "unknown field 'ipipModes' (did you mean 'ipipMode'?)"),
    ("unknown-nested-field", doc("Node", {"bgp": {"ipv4Address": "10.0.0.1/24", "asn": 1}}),
     "spec.bgp.asn", "unknown field 'asn'"),
    ("unknown-metadata-field", doc("IPPool", {"cidr": "10.0.0.0/16"}, selfLinks="x"),
     "metadata.selfLinks", "unknown field 'selfLinks'"),
    ("missing-name", {"apiVersion": V3, "kind": "IPPool", "metadata": {},
                      "spec": {"cidr": "10.0.0.0/16"}}, "metadata.name", "required"),
    ("uppercase-name", doc("IPPool", {"cidr": "10.0.0.0/16"}, name="Pool1"),
     "metadata.name", "lower case alphanumeric"),
    ("name-underscore", doc("BGPPeer", {"peerIP": "10.0.0.1", "asNumber": 1}, name="a_b"),
     "metadata.name", "invalid name 'a_b'"),
    ("name-too-long", doc("Node", {}, name="a" * 254), "metadata.name", "longer than 253"),
    ("namespace-on-global", doc("IPPool", {"cidr": "10.0.0.0/16"}, namespace="default"),
     "metadata.namespace", "not namespaced"),
    ("bad-label-value", doc("Node", {}, labels={"a": "has space"}),
     "metadata.labels.a", "invalid label value"),
    ("bad-label-key", doc("Node", {}, labels={"-bad": "x"}),
     "metadata.labels.-bad", "invalid key '-bad'"),
    ("missing-cidr", doc("IPPool", {"ipipMode": "Always"}), "spec.cidr", "required"),
    ("bad-cidr", pool(cidr="10.0.0.0/33"), "spec.cidr", "invalid CIDR '10.0.0.0/33'"),
    ("host-bits", pool(cidr="10.0.0.1/16"), "spec.cidr", "has host bits set"),
    ("ipip-enum", pool(ipipMode="always"), "spec.ipipMode",
     "must be one of Always, CrossSubnet, Never"),
    ("vxlan-enum", pool(vxlanMode="Sometimes"), "spec.vxlanMode", "must be one of"),
    ("block-size-v4-low", pool(blockSize=19), "spec.blockSize", "out of range 20-32"),
    ("block-size-v6-high", pool(cidr="fd00::/64", blockSize=129), "spec.blockSize",
     "out of range 116-128"),
    ("block-size-v6-v4range", pool(cidr="fd00::/64", blockSize=26), "spec.blockSize",
     "out of range 116-128"),
    ("prefix-longer-than-block", pool(cidr="10.0.0.0/28", blockSize=26), "spec.cidr",
     "must not exceed the block size"),
    ("ipip-and-vxlan", pool(ipipMode="Always", vxlanMode="CrossSubnet"), "spec.vxlanMode",
     "cannot both be enabled"),
    ("ipip-v6", pool(cidr="fd00::/64", ipipMode="Always"), "spec.ipipMode",
     "not supported on an IPv6 pool"),
    ("link-local-pool", pool(cidr="169.254.0.0/16"), "spec.cidr", "link-local"),
    ("link-local-pool-v6", pool(cidr="fe80::/64"), "spec.cidr", "link-local"),
    ("bad-node-selector", pool(nodeSelector="has(a) &&"), "spec.nodeSelector",
     "selector"),
    ("allowed-uses", pool(allowedUses=["Workload", "Pods"]), "spec.allowedUses[1]",
     "must be one of Workload, Tunnel, LoadBalancer"),
    ("lb-exclusive", pool(allowedUses=["LoadBalancer", "Workload"]), "spec.allowedUses",
     "cannot be combined"),
    ("nat-not-bool", pool(natOutgoing="yes please"), "spec.natOutgoing", "expected true or false"),
    ("block-size-string", pool(blockSize="26"), "spec.blockSize", "expected an integer"),
    ("as-dotted-overflow", doc("BGPConfiguration", {"asNumber": "1.65536"}, name="default"),
     "spec.asNumber", "each half of a dotted AS number must be 0-65535"),
    ("as-too-big", doc("BGPConfiguration", {"asNumber": 4294967296}, name="default"),
     "spec.asNumber", "out of range"),
    ("as-garbage", peer(peerIP="10.0.0.1", asNumber="AS64512"), "spec.asNumber",
     "invalid AS number 'AS64512'"),
    ("log-severity", doc("BGPConfiguration", {"logSeverityScreen": "Verbose"}, name="default"),
     "spec.logSeverityScreen", "must be one of"),
    ("listen-port", doc("BGPConfiguration", {"listenPort": 70000}, name="default"),
     "spec.listenPort", "out of range 1-65535"),
    ("mesh-on-node-config", doc("BGPConfiguration", {"nodeToNodeMeshEnabled": True},
                                name="node.a"),
     "spec.nodeToNodeMeshEnabled", "only be set on the BGPConfiguration named default"),
    ("community-value", doc("BGPConfiguration", {"communities": [
        {"name": "c1", "value": "100:70000"}]}, name="default"),
     "spec.communities[0].value", "standard community parts are 0-65535"),
    ("community-garbage", doc("BGPConfiguration", {"communities": [
        {"name": "c1", "value": "100"}]}, name="default"),
     "spec.communities[0].value", "expected \"aa:nn\""),
    ("prefix-adv-unknown-community", doc("BGPConfiguration", {"prefixAdvertisements": [
        {"cidr": "10.0.0.0/8", "communities": ["nope"]}]}, name="default"),
     "spec.prefixAdvertisements[0].communities[0]", "neither a community defined"),
    ("ignored-interface", doc("BGPConfiguration", {"ignoredInterfaces": ['eth"0']},
                              name="default"),
     "spec.ignoredInterfaces[0]", "invalid interface pattern"),
    ("password-literal", doc("BGPConfiguration", {"nodeMeshPassword": "hunter2"}, name="default"),
     "spec.nodeMeshPassword", "expected an object"),
    ("password-no-ref", peer(peerIP="10.0.0.1", asNumber=1, password={}),
     "spec.password.secretKeyRef", "must be given as secretKeyRef"),
    ("password-no-key", peer(peerIP="10.0.0.1", asNumber=1,
                             password={"secretKeyRef": {"name": "s"}}),
     "spec.password.secretKeyRef.key", "required"),
    ("duration", doc("BGPConfiguration", {"nodeMeshMaxRestartTime": "10 seconds"},
                     name="default"), "spec.nodeMeshMaxRestartTime", "invalid duration"),
    ("peer-ip", peer(peerIP="10.0.0.300", asNumber=1), "spec.peerIP", "invalid peerIP"),
    ("peer-port", peer(peerIP="[fd00::1]:0", asNumber=1), "spec.peerIP", "out of range"),
    ("peer-ip-and-selector", peer(peerIP="10.0.0.1", peerSelector="all()"),
     "spec.peerSelector", "cannot be used together"),
    ("peer-selector-with-as", peer(peerSelector="all()", asNumber=64512), "spec.asNumber",
     "must be empty when peerSelector is set"),
    ("peer-node-and-selector", peer(node="a", nodeSelector="all()", peerIP="10.0.0.1",
                                    asNumber=1), "spec.node", "cannot both be set"),
    ("peer-keep-next-hop-and-mode", peer(peerIP="10.0.0.1", keepOriginalNextHop=True,
                                         nextHopMode="Self"),
     "spec.keepOriginalNextHop", "must not be true when nextHopMode is set"),
    ("peer-next-hop", peer(peerIP="10.0.0.1", asNumber=1, nextHopMode="Never"),
     "spec.nextHopMode", "must be one of Auto, Self, Keep"),
    ("peer-source-address", peer(peerIP="10.0.0.1", asNumber=1, sourceAddress="Node"),
     "spec.sourceAddress", "must be one of UseNodeIP, None"),
    ("peer-ttl", peer(peerIP="10.0.0.1", asNumber=1, ttlSecurity=256), "spec.ttlSecurity",
     "out of range 0-255"),
    ("peer-reachable-family", peer(peerIP="10.0.0.1", asNumber=1, reachableBy="fd00::1"),
     "spec.reachableBy", "same IP family"),
    ("peer-filter-name", peer(peerIP="10.0.0.1", asNumber=1, filters=["Bad Name"]),
     "spec.filters[0]", "invalid name"),
    ("filter-action", rule(action="Drop"), "spec.exportV4[0].action",
     "must be one of Accept, Reject"),
    ("filter-missing-action", doc("BGPFilter", {"importV6": [{"cidr": "fd00::/64",
                                                               "matchOperator": "In"}]}),
     "spec.importV6[0].action", "required"),
    ("filter-operator", rule(cidr="10.0.0.0/8", matchOperator="Like"),
     "spec.exportV4[0].matchOperator", "must be one of Equal, NotEqual, In, NotIn"),
    ("filter-cidr-without-operator", rule(cidr="10.0.0.0/8"), "spec.exportV4[0].matchOperator",
     "must be set together"),
    ("filter-v6-in-v4", rule(cidr="fd00::/64", matchOperator="In"), "spec.exportV4[0].cidr",
     "not an IPv4 CIDR"),
    ("filter-interface", rule(interface="eth0;reject"), "spec.exportV4[0].interface",
     "invalid interface pattern"),
    ("filter-community", rule(communities={"values": ["1:2:3:4"]}),
     "spec.exportV4[0].communities.values[0]", "invalid community"),
    ("filter-operation-two", rule(operations=[{"setPriority": {"value": 5},
                                               "addCommunity": {"value": "1:2"}}]),
     "spec.exportV4[0].operations[0]", "exactly one of"),
    ("filter-prefix-length", rule(cidr="10.0.0.0/8", matchOperator="In",
                                  prefixLength={"min": 16, "max": 33}),
     "spec.exportV4[0].prefixLength.max", "out of range 0-32"),
    ("wep-name-mismatch", doc("WorkloadEndpoint", {
        "orchestrator": "k8s", "node": "node1", "pod": "p1", "endpoint": "eth0"},
        name="wrong", namespace="default"),
     "metadata.name", "expected 'node1-k8s-p1-eth0'"),
    ("wep-ip-network", doc("WorkloadEndpoint", {"ipNetworks": ["10.0.0.5/24"]},
                           namespace="default"),
     "spec.ipNetworks[0]", "has host bits set"),
    ("wep-mac", doc("WorkloadEndpoint", {"mac": "zz:00:00:00:00:00"}, namespace="default"),
     "spec.mac", "invalid MAC address"),
    ("wep-interface", doc("WorkloadEndpoint", {"interfaceName": "cali0123456789abcdef"},
                          namespace="default"),
     "spec.interfaceName", "1-15 letters"),
    ("hep-no-interface", doc("HostEndpoint", {"node": "n1"}), "spec.interfaceName",
     "interfaceName or expectedIPs"),
    ("profile-rule-ports", doc("Profile", {"ingress": [{"action": "Allow", "destination": {
        "ports": [80]}}]}), "spec.ingress[0].destination.ports", "TCP or UDP or SCTP"),
    ("profile-rule-action", doc("Profile", {"egress": [{"action": "Accept"}]}),
     "spec.egress[0].action", "must be one of Allow, Deny, Log, Pass"),
    ("port-range", doc("Profile", {"ingress": [{"action": "Allow", "protocol": "TCP",
                                                 "destination": {"ports": ["90:80"]}}]}),
     "spec.ingress[0].destination.ports[0]", "minimum is greater than maximum"),
    ("protocol", doc("Profile", {"ingress": [{"action": "Allow", "protocol": "tcpp"}]}),
     "spec.ingress[0].protocol", "invalid protocol 'tcpp'"),
    ("felix-duration", doc("FelixConfiguration", {"iptablesRefreshInterval": 90},
                           name="default"),
     "spec.iptablesRefreshInterval", "expected a duration string"),
    ("felix-unknown", doc("FelixConfiguration", {"ipipEnable": True}, name="default"),
     "spec.ipipEnable", "unknown field 'ipipEnable'"),
    ("felix-enum", doc("FelixConfiguration", {"defaultEndpointToHostAction": "ACCEPT"},
                       name="default"),
     "spec.defaultEndpointToHostAction", "must be one of Drop, Return, Accept"),
    ("node-bgp-v6-in-v4", doc("Node", {"bgp": {"ipv4Address": "fd00::1/64"}}),
     "spec.bgp.ipv4Address", "not an IPv4 value"),
    ("node-bgp-empty", doc("Node", {"bgp": {}}), "spec.bgp", "must not be empty"),
    ("cluster-info-name", doc("ClusterInformation", {"datastoreReady": True}, name="other"),
     "metadata.name", "must be named 'default'"),
    ("ipam-config", doc("IPAMConfiguration", {"strictAffinity": False,
                                              "autoAllocateBlocks": False}, name="default"),
     "spec.autoAllocateBlocks", "cannot be false while strictAffinity is false"),
    ("ipreservation-cidr", doc("IPReservation", {"reservedCIDRs": ["10.0.0.0/8", "nope"]}),
     "spec.reservedCIDRs[1]", "invalid CIDR 'nope'"),
]


@pytest.mark.parametrize(("document", "path", "reason"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_invalid_document_is_rejected_naming_field_and_reason(
    document: dict[str, Any], path: str, reason: str
) -> None:
    with pytest.raises(ValidationError) as info:
        codec.decode(document, "doc-1")
    err = info.value
    assert err.document == "doc-1"
    matching = [e for e in err.errors if e.path == path]
    assert matching, f"no error at {path!r}: {err.errors}"
    assert any(reason in e.reason for e in matching), f"{reason!r} not in {matching}"
    assert "doc-1" in str(err) and path in str(err)


def test_table_is_large_enough() -> None:
    assert len(CASES) >= 30


def test_every_error_is_reported_not_just_the_first() -> None:
    d = pool(cidr="10.0.0.1/16", ipipMode="Sometimes", bogus=1)
    with pytest.raises(ValidationError) as info:
        codec.decode(d)
    paths = {e.path for e in info.value.errors}
    assert paths == {"spec.cidr", "spec.ipipMode", "spec.bogus"}


def test_document_label_defaults_to_kind_and_name() -> None:
    with pytest.raises(ValidationError) as info:
        codec.decode(pool(cidr="bad"))
    assert info.value.document == "IPPool(x)"


def test_stored_value_with_unknown_field_is_rejected_on_read() -> None:
    text = ('{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p"},'
            '"spec":{"cidr":"10.0.0.0/16","ipipMode":"Always\\"; evil"}}')
    with pytest.raises(ValidationError) as info:
        codec.loads(text, "/calico/resources/v3/projectcalico.org/ippools/p")
    assert info.value.errors[0].path == "spec.ipipMode"


def test_bad_name_is_reported_together_with_field_errors() -> None:
    d = doc("IPPool", {"cidr": "nope"}, name="Bad_Name")
    with pytest.raises(ValidationError) as info:
        codec.decode(d)
    assert {e.path for e in info.value.errors} == {"spec.cidr", "metadata.name"}


def test_field_names_match_case_insensitively_as_in_go() -> None:
    res = codec.decode(pool(ipipmode="Always", NATOutgoing=True))
    assert codec.encode(res)["spec"]["ipipMode"] == "Always"  # type: ignore[index]
    assert codec.encode(res)["spec"]["natOutgoing"] is True  # type: ignore[index]
    peer_res = codec.decode(peer(peerip="10.0.0.1:1179", ASNumber=64512))
    assert codec.encode(peer_res)["spec"] == {"peerIP": "10.0.0.1:1179", "asNumber": 64512}
