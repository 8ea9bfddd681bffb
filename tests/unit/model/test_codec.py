"""Codec: documents <-> typed resources <-> Calico's stored JSON (shape, order, escaping)."""

from __future__ import annotations

import ipaddress
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from libcalico.errors import ValidationError
from libcalico.model import codec
from libcalico.model import resources as r

CASES = Path("/work/shared/conformance/calico-confd/cases")
V3 = "projectcalico.org/v3"


def _conformance_documents() -> list[tuple[str, dict[str, Any]]]:
    """Every projectcalico.org/v3 document of every case input (Kubernetes-only kinds such
    as Service, EndpointSlice and Secret live in kubectl-input/secret files and are skipped
    by their apiVersion)."""
    out: list[tuple[str, dict[str, Any]]] = []
    if not CASES.is_dir():
        return out
    for f in sorted(CASES.glob("*/input/**/*.yaml")):
        for i, d in enumerate(codec.load_documents(f.read_text())):
            if d.get("apiVersion") == V3:
                out.append((f"{f.relative_to(CASES)}#{i}", d))
    return out


CONFORMANCE = _conformance_documents()


def test_conformance_inputs_present_or_skip() -> None:
    if not CASES.is_dir():
        pytest.fail(f"{CASES} is absent: conformance inputs cannot be read")
    assert len(CONFORMANCE) > 300
    kinds = {d["kind"] for _, d in CONFORMANCE}
    assert kinds == {"BGPConfiguration", "BGPFilter", "BGPPeer", "IPPool", "Node"}


@pytest.mark.parametrize(("name", "document"), CONFORMANCE, ids=[n for n, _ in CONFORMANCE])
def test_conformance_document_decodes_and_round_trips(name: str, document: dict[str, Any]
                                                      ) -> None:
    res = codec.decode(document, name)
    assert res.metadata.name == document["metadata"]["name"]
    # Stored JSON round trip.
    stored = codec.dumps(res)
    assert codec.loads(stored) == res
    # YAML round trip (what calicoctl get -o yaml would print and apply would read back).
    text = yaml.safe_dump(codec.encode(res))
    assert codec.decode(codec.load_documents(text)[0]) == res
    # JSON document round trip.
    assert codec.decode(codec.load_documents(json.dumps(codec.encode(res)))[0]) == res
    # Every field the document set is kept (Go's omitempty drops false/0/"" values).
    enc = codec.encode(res)
    given = {k for k, v in (document.get("spec") or {}).items() if v not in (False, "", 0)}
    assert given <= set(enc["spec"])  # type: ignore[arg-type]


def test_conformance_values_are_typed() -> None:
    if not CASES.is_dir():
        pytest.fail(f"{CASES} is absent: the conformance kit is needed (../shared)")
    text = (CASES / "mesh__communities/input/input.yaml").read_text()
    res = codec.decode_all(text)
    cfg = res[0]
    assert isinstance(cfg, r.BGPConfiguration)
    assert cfg.spec.listen_port == 177
    assert cfg.spec.communities[1] == r.Community(name="bgp-comm-large", value="100:555:107")
    # "5663:12" is a community, not YAML 1.1's base-60 integer 339792.
    assert cfg.spec.prefix_advertisements[0].communities == (
        "bgp-comm-standard", "5663:12", "bgp-comm-large")
    node = res[1]
    assert isinstance(node, r.Node) and node.spec.bgp is not None
    assert node.spec.bgp.ipv4_address == ipaddress.IPv4Interface("10.192.0.2/16")
    assert node.spec.bgp.ipv4_interface == ipaddress.IPv4Interface("10.192.0.2/16")


def test_yaml_booleans_in_string_fields_become_strings_as_in_go() -> None:
    (res,) = codec.decode_all(
        "kind: Node\napiVersion: projectcalico.org/v3\nmetadata:\n  name: n1\n"
        "  labels:\n    global-peer: yes\n    rack: 12\n"
    )
    assert res.metadata.labels == {"global-peer": "true", "rack": "12"}


def test_ippool_stored_shape_and_order() -> None:
    res = codec.decode({"apiVersion": V3, "kind": "IPPool",
                        "metadata": {"name": "p", "uid": "u", "resourceVersion": "7",
                                     "creationTimestamp": "2026-08-22T10:00:00Z"},
                        "spec": {"natOutgoing": True, "cidr": "10.244.0.0/16",
                                 "ipipMode": "Always"}})
    assert res.metadata.resource_version == "7"
    assert codec.dumps(res) == (
        '{"kind":"IPPool","apiVersion":"projectcalico.org/v3","metadata":{"name":"p",'
        '"uid":"u","creationTimestamp":"2026-08-22T10:00:00Z"},"spec":{"cidr":"10.244.0.0/16",'
        '"vxlanMode":"Never","ipipMode":"Always","natOutgoing":true,"blockSize":26,'
        '"nodeSelector":"all()","allowedUses":["Workload","Tunnel"],'
        '"assignmentMode":"Automatic"}}'
    )
    # encode (not storage) keeps resourceVersion, right after uid as in ObjectMeta.
    md = codec.encode(res)["metadata"]
    assert list(md) == ["name", "uid", "resourceVersion", "creationTimestamp"]  # type: ignore[arg-type]


def test_go_json_escaping_of_selectors() -> None:
    res = codec.decode({"apiVersion": V3, "kind": "BGPPeer", "metadata": {"name": "p"},
                        "spec": {"peerSelector": "a == 'é' && has(b)"}})
    text = codec.dumps(res)
    assert "\\u0026\\u0026" in text and "é" in text and "&" not in text
    assert codec.loads(text) == res


def test_struct_fields_are_always_written_as_go_does() -> None:
    prof = r.default_allow_profile()
    assert codec.encode(prof)["spec"] == {
        "ingress": [{"action": "Allow", "source": {}, "destination": {}}],
        "egress": [{"action": "Allow", "source": {}, "destination": {}}],
    }
    node = codec.decode({"apiVersion": V3, "kind": "Node", "metadata": {"name": "n"}})
    assert codec.dumps(node) == ('{"kind":"Node","apiVersion":"projectcalico.org/v3",'
                                 '"metadata":{"name":"n","creationTimestamp":null},'
                                 '"spec":{},"status":{}}')


def test_pointer_false_is_written_value_false_is_omitted() -> None:
    cfg = codec.decode({"apiVersion": V3, "kind": "BGPConfiguration",
                        "metadata": {"name": "default"},
                        "spec": {"nodeToNodeMeshEnabled": False}})
    assert codec.encode(cfg)["spec"] == {"nodeToNodeMeshEnabled": False}
    pool = codec.decode({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p"},
                         "spec": {"cidr": "10.0.0.0/16", "natOutgoing": False}})
    assert "natOutgoing" not in codec.encode(pool)["spec"]  # type: ignore[operator]


def test_bgppeer_peer_ip_port_split_and_joined() -> None:
    res = codec.decode_all(
        "kind: BGPPeer\napiVersion: projectcalico.org/v3\nmetadata: {name: a}\n"
        "spec: {peerIP: '[ac13::57]:50', asNumber: 64512}\n---\n"
        "kind: BGPPeer\napiVersion: projectcalico.org/v3\nmetadata: {name: b}\n"
        "spec: {peerIP: '10.192.0.1:166', asNumber: '1.10', maxRestartTime: 90s}\n"
    )
    a, b = res
    assert isinstance(a, r.BGPPeer) and isinstance(b, r.BGPPeer)
    assert a.spec.peer_ip == ipaddress.IPv6Address("ac13::57") and a.spec.port == 50
    assert b.spec.peer_ip == ipaddress.IPv4Address("10.192.0.1") and b.spec.port == 166
    assert b.spec.as_number == 65546
    assert b.spec.max_restart_time == timedelta(seconds=90)
    assert codec.encode(a)["spec"] == {"peerIP": "[ac13::57]:50", "asNumber": 64512}
    assert codec.encode(b)["spec"] == {"peerIP": "10.192.0.1:166", "asNumber": 65546,
                                       "maxRestartTime": "1m30s"}


def test_pool_cidrs_are_normalised_other_cidrs_kept_as_written() -> None:
    """Calico's client normalises an IPPool's CIDR; every other CIDR is stored (and rendered
    by confd) as written."""
    res = codec.decode({"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p"},
                        "spec": {"cidr": "fd00:0:0::0/64"}})
    assert isinstance(res, r.IPPool)
    assert codec.encode(res)["spec"]["cidr"] == "fd00::/64"  # type: ignore[index]
    doc = {"apiVersion": V3, "kind": "BGPConfiguration", "metadata": {"name": "default"},
           "spec": {"serviceClusterIPs": [{"cidr": "fd00:0::0/108"}, {"cidr": "10.96.0.1"}]}}
    cfg = codec.decode(doc)
    assert isinstance(cfg, r.BGPConfiguration)
    net = cfg.spec.service_cluster_ips[0].cidr
    assert net == ipaddress.ip_network("fd00::/108") and str(net) == "fd00::/108"
    assert getattr(net, "written") == "fd00:0::0/108"  # noqa: B009 - the subclass attribute
    assert cfg.spec.service_cluster_ips[1].cidr == ipaddress.ip_network("10.96.0.1/32")
    assert codec.encode(cfg)["spec"] == doc["spec"]
    assert codec.loads(codec.dumps(cfg)) == cfg
    f = codec.decode({"apiVersion": V3, "kind": "BGPFilter", "metadata": {"name": "f"},
                      "spec": {"exportV6": [{"cidr": "9000::0/64", "matchOperator": "In",
                                             "action": "Accept"}]}})
    assert '"cidr":"9000::0/64"' in codec.dumps(f)


def test_load_documents_yaml_json_and_lists() -> None:
    text = ("kind: IPPoolList\napiVersion: projectcalico.org/v3\nitems:\n"
            "- kind: IPPool\n  apiVersion: projectcalico.org/v3\n  metadata: {name: a}\n"
            "  spec: {cidr: 10.0.0.0/16}\n"
            "- kind: IPPool\n  apiVersion: projectcalico.org/v3\n  metadata: {name: b}\n"
            "  spec: {cidr: 10.1.0.0/16}\n---\n---\n"
            "kind: Node\napiVersion: projectcalico.org/v3\nmetadata: {name: n1}\n")
    docs = codec.load_documents(text)
    assert [d["metadata"]["name"] for d in docs] == ["a", "b", "n1"]
    as_json = json.dumps([codec.encode(codec.decode(d)) for d in docs])
    assert [d["metadata"]["name"] for d in codec.load_documents(as_json)] == ["a", "b", "n1"]


def test_load_documents_rejects_bad_yaml_and_scalars() -> None:
    with pytest.raises(ValidationError, match="invalid YAML"):
        codec.load_documents("kind: [unclosed\n")
    with pytest.raises(ValidationError, match="document 1 is not a mapping"):
        codec.load_documents("just a string\n")


def test_decode_all_names_the_document_position() -> None:
    text = ("kind: Node\napiVersion: projectcalico.org/v3\nmetadata: {name: ok}\n---\n"
            "kind: IPPool\napiVersion: projectcalico.org/v3\nmetadata: {name: bad}\n"
            "spec: {cidr: 10.0.0.1/8}\n")
    with pytest.raises(ValidationError) as info:
        codec.decode_all(text)
    assert info.value.document == "document 2 IPPool(bad)"
    assert info.value.errors[0].path == "spec.cidr"


def test_creation_timestamp_is_rfc3339_utc() -> None:
    res = r.IPPool(r.Metadata("p", creation_timestamp=datetime(2026, 1, 2, 3, 4, 5,
                                                               tzinfo=UTC)),
                   r.IPPoolSpec(cidr=ipaddress.IPv4Network("10.0.0.0/8")))
    md = codec.encode(res)["metadata"]
    assert md == {"name": "p", "creationTimestamp": "2026-01-02T03:04:05Z"}


def test_validate_checks_values_built_in_code() -> None:
    bad = r.IPPool(r.Metadata("p"), r.IPPoolSpec(cidr=ipaddress.IPv4Network("10.0.0.0/8"),
                                                 block_size=40))
    with pytest.raises(ValidationError) as info:
        codec.validate(bad)
    assert info.value.errors[0].path == "spec.blockSize"
    wrong_type = r.IPPool(r.Metadata("p"), r.IPPoolSpec(cidr="10.0.0.0/8"))  # type: ignore[arg-type]
    assert codec.validate(wrong_type).spec.cidr == ipaddress.IPv4Network("10.0.0.0/8")
    with pytest.raises(ValidationError):
        codec.validate(r.IPPool(r.Metadata("p"), r.IPPoolSpec(cidr="nope")))  # type: ignore[arg-type]


def test_every_kind_round_trips() -> None:
    docs = [
        {"kind": "WorkloadEndpoint", "metadata": {"name": "n1-k8s-p1-eth0",
                                                  "namespace": "ns1"},
         "spec": {"orchestrator": "k8s", "node": "n1", "pod": "p1", "endpoint": "eth0",
                  "ipNetworks": ["10.0.0.5/32", "fd00::5/128"], "interfaceName": "cali1",
                  "ipNATs": [{"internalIP": "10.0.0.5", "externalIP": "1.2.3.4"}],
                  "ports": [{"name": "http", "protocol": "TCP", "port": 80}],
                  "profiles": ["kns.ns1"], "mac": "ee:ee:ee:ee:ee:ee"}},
        {"kind": "HostEndpoint", "metadata": {"name": "h1"},
         "spec": {"node": "n1", "interfaceName": "eth0", "expectedIPs": ["10.0.0.1"],
                  "ports": [{"name": "ssh", "protocol": "TCP", "port": 22}]}},
        {"kind": "Profile", "metadata": {"name": "kns.ns1"},
         "spec": {"ingress": [{"action": "Allow", "protocol": "TCP",
                               "source": {"nets": ["10.0.0.0/8"], "selector": "has(a)"},
                               "destination": {"ports": [80, "8000:8080", "http"]}},
                              {"action": "Deny", "protocol": "ICMP",
                               "icmp": {"type": 8, "code": 0}}],
                  "egress": [{"action": "Allow"}], "labelsToApply": {"pcns.a": "b"}}},
        {"kind": "FelixConfiguration", "metadata": {"name": "node.n1"},
         "spec": {"defaultEndpointToHostAction": "Return", "routeTableRanges": [
             {"min": 1, "max": 250}], "natPortRange": "32768:65000",
             "healthTimeoutOverrides": [{"name": "x", "timeout": "30s"}]}},
        {"kind": "ClusterInformation", "metadata": {"name": "default"},
         "spec": {"clusterGUID": "abc", "datastoreReady": True, "calicoVersion": "v3.32"}},
        {"kind": "IPReservation", "metadata": {"name": "r"},
         "spec": {"reservedCIDRs": ["10.0.0.0/30", "fd00::/126"]}},
        {"kind": "KubeControllersConfiguration", "metadata": {"name": "default"},
         "spec": {"healthChecks": "Enabled", "etcdV3CompactionPeriod": "10m",
                  "controllers": {"node": {"reconcilerPeriod": "5m", "syncLabels": "Enabled",
                                           "hostEndpoint": {"autoCreate": "Disabled"}},
                                  "policy": {"reconcilerPeriod": "5m"}}}},
        {"kind": "IPAMConfiguration", "metadata": {"name": "default"},
         "spec": {"strictAffinity": True, "maxBlocksPerHost": 4,
                  "autoAllocateBlocks": True}},
    ]
    for d in docs:
        d["apiVersion"] = V3
        res = codec.decode(d)
        assert codec.loads(codec.dumps(res)) == res
        enc = codec.encode(res)
        assert enc["spec"] == codec.encode(codec.decode(enc))["spec"]
    kcc = codec.decode(docs[6])
    assert codec.encode(kcc)["spec"]["etcdV3CompactionPeriod"] == "10m0s"  # type: ignore[index]


def test_yaml_reads_scalars_as_go_yaml_v2() -> None:
    docs = codec.load_documents("a: y\nb: N\nc: 'y'\nd: 5663:12\ne: 0x10\nf: Off\n")
    assert docs == [{"a": True, "b": False, "c": "y", "d": "5663:12", "e": 16, "f": False}]
    (pool,) = codec.decode_all("kind: IPPool\napiVersion: projectcalico.org/v3\n"
                               "metadata: {name: p, labels: {ssd: y}}\n"
                               "spec: {cidr: 10.0.0.0/16, natOutgoing: y}\n")
    assert isinstance(pool, r.IPPool)
    assert pool.spec.nat_outgoing is True and pool.metadata.labels == {"ssd": "true"}


def test_ippool_status_conditions_are_kept_and_drive_allocatable() -> None:
    doc = {"apiVersion": V3, "kind": "IPPool", "metadata": {"name": "p"},
           "spec": {"cidr": "10.0.0.0/8"},
           "status": {"conditions": [{"type": "Allocatable", "status": "False",
                                      "lastTransitionTime": "2026-01-01T00:00:00Z",
                                      "reason": "Overlaps", "message": "overlaps q"}]}}
    pool = codec.decode(doc)
    assert isinstance(pool, r.IPPool) and pool.allocatable is False
    assert codec.loads(codec.dumps(pool)) == pool
    plain = codec.decode({**doc, "status": None})
    assert isinstance(plain, r.IPPool) and plain.allocatable is True
    assert "status" not in codec.encode(plain)
    with pytest.raises(ValidationError):
        codec.decode({**doc, "status": {"conditions": [{"type": "A", "status": "Maybe"}]}})
