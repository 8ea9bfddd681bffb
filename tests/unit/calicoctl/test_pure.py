"""calicoctl's pure parts: kind aliases, table/YAML/JSON output, document splitting, patch."""

from __future__ import annotations

import json

import pytest
import yaml

from calicoctl import documents, kinds, output
from calicoctl.patch import merge_patch
from libcalico.errors import FieldError, ValidationError


@pytest.mark.parametrize(("alias", "kind"), [
    ("ippool", "IPPool"), ("ippools", "IPPool"), ("ipp", "IPPool"), ("IPPool", "IPPool"),
    ("IPPOOLS", "IPPool"), ("bgppeer", "BGPPeer"), ("bgppeers", "BGPPeer"),
    ("bgpp", "BGPPeer"), ("node", "Node"), ("nodes", "Node"), ("no", "Node"),
    ("bgpconfig", "BGPConfiguration"), ("bgpconfiguration", "BGPConfiguration"),
    ("bgpconfigurations", "BGPConfiguration"), ("bgpconfigs", "BGPConfiguration"),
    ("felixconfig", "FelixConfiguration"), ("felixconfigurations", "FelixConfiguration"),
    ("wep", "WorkloadEndpoint"), ("workloadendpoints", "WorkloadEndpoint"),
    ("hep", "HostEndpoint"), ("hostendpoint", "HostEndpoint"), ("profile", "Profile"),
    ("profiles", "Profile"), ("pro", "Profile"), ("ipreservation", "IPReservation"),
    ("ipreservations", "IPReservation"), ("clusterinfo", "ClusterInformation"),
    ("clusterinformations", "ClusterInformation"),
    ("kubecontrollersconfig", "KubeControllersConfiguration"),
    ("kubecontrollersconfigurations", "KubeControllersConfiguration"),
    ("bgpfilter", "BGPFilter"), ("bgpfilters", "BGPFilter"),
])
def test_kind_aliases(alias: str, kind: str) -> None:
    assert kinds.resolve(alias).kind == kind


def test_unknown_kind_is_named() -> None:
    with pytest.raises(kinds.UnknownKind, match="resource type 'ippol' is not supported"):
        kinds.resolve("ippol")


def test_table_aligns_like_tabwriter() -> None:
    text = output.table([["NAME", "CIDR", "SELECTOR"], ["default-ipv4-ippool", "10.0.0.0/16",
                                                        "all()"], ["p", "10.1.0.0/24", ""]])
    assert text == (
        "NAME                  CIDR          SELECTOR\n"
        "default-ipv4-ippool   10.0.0.0/16   all()\n"
        "p                     10.1.0.0/24   \n"
    )
    # minimum column width 5 (4 + padding would be 4 for a 1-char column)
    assert output.table([["A", "B"], ["x", "y"]]) == "A    B\nx    y\n"


POOL = {
    "kind": "IPPool", "apiVersion": "projectcalico.org/v3",
    "metadata": {"name": "p1", "resourceVersion": "7"},
    "spec": {"cidr": "10.0.0.0/16", "ipipMode": "Always", "vxlanMode": "Never",
             "natOutgoing": True, "blockSize": 26, "nodeSelector": "all()"},
}


def test_ippool_ps_and_wide_columns() -> None:
    info = kinds.resolve("ippool")
    ps = output.resource_table(info, [POOL], wide=False, with_namespace=False).splitlines()
    assert ps[0].split() == ["NAME", "CIDR", "SELECTOR"]
    assert ps[1].split() == ["p1", "10.0.0.0/16", "all()"]
    wide = output.resource_table(info, [POOL], wide=True, with_namespace=False).splitlines()
    assert wide[0].split() == ["NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE", "DISABLED",
                               "DISABLEBGPEXPORT", "SELECTOR"]
    assert wide[1].split() == ["p1", "10.0.0.0/16", "true", "Always", "Never", "false",
                               "false", "all()"]


def test_bgppeer_columns_show_selectors_and_global() -> None:
    info = kinds.resolve("bgpp")
    peers = [
        {"metadata": {"name": "rr"}, "spec": {"peerSelector": "has(rr)", "asNumber": 64512}},
        {"metadata": {"name": "tor"}, "spec": {"peerIP": "10.0.0.1", "node": "n1",
                                               "asNumber": 65001}},
    ]
    lines = output.resource_table(info, peers, False, False).splitlines()
    assert lines[0].split() == ["NAME", "PEERIP", "NODE", "ASN"]
    assert lines[1].split() == ["rr", "has(rr)", "(global)", "64512"]
    assert lines[2].split() == ["tor", "10.0.0.1", "n1", "65001"]


def test_namespaced_table_with_all_namespaces() -> None:
    info = kinds.resolve("wep")
    wep = {"metadata": {"name": "n1-k8s-pod-eth0", "namespace": "ns1"},
           "spec": {"workload": "pod", "node": "n1", "ipNetworks": ["10.0.0.1/32"],
                    "interfaceName": "cali0123456789a"}}
    lines = output.resource_table(info, [wep], False, True).splitlines()
    assert lines[0].split() == ["NAMESPACE", "WORKLOAD", "NODE", "NETWORKS", "INTERFACE"]
    assert lines[1].split() == ["ns1", "pod", "n1", "10.0.0.1/32", "cali0123456789a"]


def test_list_wrapper_yaml_and_json() -> None:
    doc = output.as_list("IPPool", [POOL, POOL])
    y = output.to_yaml(doc)
    assert y.startswith("apiVersion: projectcalico.org/v3\nitems:\n- apiVersion:")
    assert "\nkind: IPPoolList\n" in y
    assert yaml.safe_load(y)["items"][1]["spec"]["cidr"] == "10.0.0.0/16"
    j = json.loads(output.to_json(doc))
    assert j["kind"] == "IPPoolList" and len(j["items"]) == 2


def test_split_yaml_multi_document_and_lists() -> None:
    text = """
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: a}
---
---
apiVersion: projectcalico.org/v3
kind: IPPoolList
items:
- {apiVersion: projectcalico.org/v3, kind: IPPool, metadata: {name: b}}
- {apiVersion: projectcalico.org/v3, kind: IPPool, metadata: {name: c}}
"""
    docs = documents.split(text, "f.yaml")
    assert [d.name for d in docs] == ["a", "b", "c"]
    assert docs[0].label == "f.yaml document 1"
    assert docs[2].label == "f.yaml document 3 item 2"
    assert docs[2].describe() == "f.yaml document 3 item 2 (IPPool 'c')"


def test_split_json_stream_and_array() -> None:
    a = {"apiVersion": "projectcalico.org/v3", "kind": "Node", "metadata": {"name": "n1"}}
    b = {**a, "metadata": {"name": "n2"}}
    docs = documents.split(json.dumps(a) + "\n" + json.dumps([b, a]), "stdin")
    assert [(d.label, d.name) for d in docs] == [
        ("stdin document 1", "n1"), ("stdin document 2 item 1", "n2"),
        ("stdin document 2 item 2", "n1")]


@pytest.mark.parametrize(("text", "message"), [
    ("kind: [", "Failed to parse f.yaml: invalid YAML"),
    ('{"kind": ', "Failed to parse f.yaml: invalid JSON"),
    ("- 1\n- 2\n", "f.yaml document 1 item 1: expected a resource"),
    ("", "No resources specified in f.yaml"),
    ("---\n---\n", "No resources specified in f.yaml"),
])
def test_split_rejects_unreadable_input(text: str, message: str) -> None:
    with pytest.raises(documents.DocumentError, match=message.replace("(", r"\(")):
        documents.split(text, "f.yaml")


def test_describe_errors_quotes_the_offending_value() -> None:
    err = ValidationError([FieldError("spec.cidr", "invalid CIDR"),
                           FieldError("spec.blockSize", "must be 20-32"), FieldError("", "x")])
    text = documents.describe_errors(err, {"spec": {"cidr": "10.0.0.0/33", "blockSize": 8}})
    assert text == ("[error with field spec.cidr = '10.0.0.0/33' (invalid CIDR); "
                    "error with field spec.blockSize = '8' (must be 20-32); x]")
    assert documents.field_value({"spec": {"peers": [{"ip": "a"}, {"ip": "b"}]}},
                                 "spec.peers[1].ip") == "b"


def test_merge_patch_rfc7386() -> None:
    target = {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    assert merge_patch(target, {"a": "z", "c": {"f": None}, "l": [3]}) == {
        "a": "z", "c": {"d": "e"}, "l": [3]}
    assert target == {"a": "b", "c": {"d": "e", "f": "g"}, "l": [1, 2]}
    assert merge_patch({"a": 1}, {"b": {"c": None}}) == {"a": 1, "b": {}}


def test_every_calicoctl_kind_is_in_the_model() -> None:
    for kind in kinds.BY_KIND:
        assert kinds.resolve(kind).kind == kind


def test_wep_workload_column_falls_back_to_pod() -> None:
    info = kinds.resolve("weps")
    docs = [{"metadata": {"name": "a"}, "spec": {"pod": "nginx-1", "node": "n1"}},
            {"metadata": {"name": "b"}, "spec": {"workload": "vm-1", "node": "n2"}}]
    lines = output.resource_table(info, docs, False, False).splitlines()
    assert [line.split()[:2] for line in lines[1:]] == [["nginx-1", "n1"], ["vm-1", "n2"]]


def test_node_wide_asn_own_or_global_in_parentheses() -> None:
    get = kinds.node_asn("65000")
    assert get({"spec": {"bgp": {"asNumber": 64999, "ipv4Address": "10.0.0.1/24"}}}) == "64999"
    assert get({"spec": {"bgp": {"ipv4Address": "10.0.0.1/24"}}}) == "(65000)"
    assert get({"spec": {}}) == ""


def test_json_list_keeps_go_field_order() -> None:
    doc = json.loads(output.to_json(output.as_list("Node", [])))
    assert list(doc) == ["kind", "apiVersion", "metadata", "items"]
