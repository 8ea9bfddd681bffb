"""KDD's byte-level helpers and the Kubernetes client's pure parts: UID conversion, the v3 <->
custom-resource mapping, kubeconfig loading and Calico's error mapping."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from libcalico.datastore.kubernetes_client import (
    Unauthorized,
    access_from_kubeconfig,
    access_from_kubeconfig_text,
    access_in_cluster,
    api_error,
)
from libcalico.datastore.kubernetes_convert import convert_uid, from_cr, go_json, to_cr
from libcalico.datastore.kubernetes_ipam import affinity_name, cidr_to_name, hostname_hash
from libcalico.datastore.kubernetes_ipam import from_cr as ipam_from_cr
from libcalico.datastore.kubernetes_ipam import target as ipam_target
from libcalico.datastore.kubernetes_ipam import to_cr as ipam_to_cr
from libcalico.datastore.kubernetes_node import merge_into_node, node_to_v3, parse_as_number
from libcalico.datastore.kubernetes_pod import (
    PodError,
    finished,
    parse_wep_name,
    pod_ips,
    pod_to_wep,
    valid,
    wep_name,
)
from libcalico.datastore.kubernetes_profile import (
    namespace_to_profile,
    parse_profile_name,
    serviceaccount_to_profile,
    split_revision,
)
from libcalico.errors import (
    AlreadyExists,
    Compacted,
    ConfigError,
    Conflict,
    DatastoreError,
    NotFound,
    Unavailable,
)

CR_UID = "d0965ab0-9e1b-4be7-ae35-76eeb7e496b4"
V3_UID = "0b695a0d-79d8-4be7-aeac-6e77ed27692d"


def test_convert_uid_is_calicos_and_its_own_inverse() -> None:
    assert convert_uid(CR_UID) == V3_UID
    assert convert_uid(V3_UID) == CR_UID
    assert convert_uid("") == ""


def test_go_json_escapes_as_go_does() -> None:
    assert go_json({"a": "<b>&\u2028é"}) == '{"a":"\\u003cb\\u003e\\u0026\\u2028é"}'


def _pool(**md: object) -> dict[str, object]:
    return {"kind": "IPPool", "apiVersion": "projectcalico.org/v3",
            "metadata": {"name": "p1", "uid": V3_UID, "creationTimestamp": "2026-12-04T20:00:00Z",
                         **md},
            "spec": {"cidr": "10.1.0.0/16"}}


def test_to_cr_keeps_identity_on_the_cr_and_the_rest_in_the_annotation() -> None:
    cr = to_cr(_pool(labels={"z": "1", "projectcalico.org/a": "2"},
                     annotations={"note": "x"}), resource_version="42")
    assert cr["apiVersion"] == "crd.projectcalico.org/v1"
    md = cr["metadata"]
    assert md["name"] == "p1" and md["uid"] == CR_UID and md["resourceVersion"] == "42"
    assert md["labels"] == {"projectcalico.org/a": "2"}
    assert md["annotations"]["projectcalico.org/metadata"] == (
        '{"creationTimestamp":"2026-12-04T20:00:00Z",'
        '"labels":{"projectcalico.org/a":"2","z":"1"},"annotations":{"note":"x"}}')
    assert cr["spec"] == {"cidr": "10.1.0.0/16"}


def test_policies_keep_their_name_in_the_annotation() -> None:
    doc = {"kind": "GlobalNetworkPolicy", "apiVersion": "projectcalico.org/v3",
           "metadata": {"name": "allow"}, "spec": {}}
    stored = to_cr(doc)["metadata"]["annotations"]["projectcalico.org/metadata"]
    assert stored == '{"name":"allow","creationTimestamp":null}'


def test_round_trip() -> None:
    doc = _pool(labels={"z": "1"})
    cr = to_cr(doc)
    cr["metadata"] = {**cr["metadata"], "resourceVersion": "7",
                      "creationTimestamp": "2026-12-05T00:00:00Z"}
    back = from_cr(cr)
    assert back == {**doc, "metadata": {**doc["metadata"]}}  # type: ignore[dict-item]


def test_from_cr_without_annotation_uses_the_crs_metadata() -> None:
    cr = {"apiVersion": "crd.projectcalico.org/v1", "kind": "IPPool",
          "metadata": {"name": "p1", "uid": CR_UID, "resourceVersion": "9",
                       "creationTimestamp": "2026-12-05T00:00:00Z", "labels": {"a": "b"}},
          "spec": {"cidr": "10.1.0.0/16"}}
    md = from_cr(cr)["metadata"]
    assert md == {"name": "p1", "uid": V3_UID, "creationTimestamp": "2026-12-05T00:00:00Z",
                  "labels": {"a": "b"}}


def test_from_cr_strips_the_legacy_default_tier_prefix() -> None:
    cr = {"kind": "NetworkPolicy", "metadata": {
        "name": "default.web", "namespace": "ns1",
        "annotations": {"projectcalico.org/metadata": '{"creationTimestamp":null}'}},
        "spec": {"tier": "default"}}
    assert from_cr(cr)["metadata"]["name"] == "web"


def _kubeconfig(tmp: Path, name: str, **extra: object) -> Path:
    doc = {
        "apiVersion": "v1", "kind": "Config", "current-context": "c1",
        "clusters": [{"name": "k1", "cluster": {"server": "https://10.0.0.1:6443/",
                                                 "certificate-authority": "ca.pem"}}],
        "users": [{"name": "u1", "user": {"token": "t1"}}],
        "contexts": [{"name": "c1", "context": {"cluster": "k1", "user": "u1"}}],
        **extra,
    }
    p = tmp / name
    p.write_text(json.dumps(doc))
    return p


def test_kubeconfig_first_file_wins_and_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(b"CA")
    first = _kubeconfig(tmp_path, "a", **{"current-context": "c2", "contexts": [
        {"name": "c2", "context": {"cluster": "k1", "user": "u1"}}]})
    second = _kubeconfig(tmp_path, "b")
    acc = access_from_kubeconfig(f"{first}:{tmp_path / 'missing'}:{second}")
    assert acc.server == "https://10.0.0.1:6443"
    assert acc.ca_pem == b"CA" and acc.token == "t1"
    assert "t1" not in repr(acc)
    assert access_from_kubeconfig(str(second), context="c1").server == acc.server
    with pytest.raises(ConfigError, match="context 'nope' not found"):
        access_from_kubeconfig(str(second), context="nope")
    with pytest.raises(ConfigError, match="no such file"):
        access_from_kubeconfig(str(tmp_path / "missing"))


def test_kubeconfig_inline_data_and_refused_plugins() -> None:
    text = json.dumps({
        "current-context": "c",
        "clusters": [{"name": "k", "cluster": {
            "server": "https://h:1",
            "certificate-authority-data": base64.b64encode(b"CA").decode()}}],
        "users": [{"name": "u", "user": {"exec": {"command": "aws"}}}],
        "contexts": [{"name": "c", "context": {"cluster": "k", "user": "u"}}]})
    with pytest.raises(ConfigError, match="exec and auth-provider"):
        access_from_kubeconfig_text(text)
    ok = text.replace('{"exec": {"command": "aws"}}', '{"token": "x"}')
    assert access_from_kubeconfig_text(ok).ca_pem == b"CA"


def test_in_cluster(tmp_path: Path) -> None:
    assert access_in_cluster({}, tmp_path) is None
    (tmp_path / "token").write_text("tok")
    env = {"KUBERNETES_SERVICE_HOST": "fd00::1", "KUBERNETES_SERVICE_PORT": "443"}
    acc = access_in_cluster(env, tmp_path)
    assert acc is not None and acc.server == "https://[fd00::1]:443"
    assert acc.token_file == tmp_path / "token"


@pytest.mark.parametrize(("code", "status", "error"), [
    (409, {"reason": "AlreadyExists"}, AlreadyExists),
    (404, {"reason": "NotFound"}, NotFound),
    (401, {"reason": "Unauthorized"}, Unauthorized),
    (403, {"reason": "Forbidden"}, Unauthorized),
    (409, {"reason": "Conflict", "message": "Precondition failed: UID in precondition: a"},
     NotFound),
    (409, {"reason": "Conflict", "message": "the object has been modified"}, Conflict),
    (410, {"reason": "Expired"}, Compacted),
    (422, {"reason": "Invalid", "details": {"causes": [{"field": "metadata.uid"}]}}, NotFound),
    (422, {"reason": "Invalid", "details": {"causes": [{"field": "metadata.resourceVersion"}]}},
     Conflict),
    (422, {"reason": "Invalid", "details": {"causes": [{"field": "spec.cidr"}]}},
     DatastoreError),
    (429, {"reason": "TooManyRequests"}, Unavailable),
    (503, {"reason": "ServiceUnavailable"}, Unavailable),
])
def test_error_mapping_is_calicos(code: int, status: dict[str, object],
                                  error: type[Exception]) -> None:
    err = api_error(code, status, "/some/key")
    assert type(err) is error


def test_as_numbers_plain_and_dotted() -> None:
    assert parse_as_number("64512") == 64512
    assert parse_as_number("1.10") == 65546
    assert parse_as_number("4294967295") == 4294967295
    for bad in ("4294967296", "1.65536", "-1", "a", "1.2.3", "+5", ""):
        assert parse_as_number(bad) is None, bad


def test_node_without_labels_and_with_bad_annotations() -> None:
    v3 = node_to_v3({"metadata": {"name": "n1", "annotations": {
        "projectcalico.org/IPv4Address": "10.0.0.1/33",
        "projectcalico.org/VXLANTunnelMACAddr": "66:3e:ca:4a:2c:f1",
        "projectcalico.org/Interfaces": '[{"name":"eth0","addresses":["10.0.0.1"]}]'}},
        "status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"},
                                 {"type": "Hostname", "address": "n1"}]}})
    assert v3["metadata"]["annotations"] == {"projectcalico.org/kube-labels": "null"}
    assert "bgp" not in v3["spec"]
    assert v3["spec"]["vxlanTunnelMACAddr"] == "66:3e:ca:4a:2c:f1"
    assert v3["spec"]["addresses"] == [{"address": "10.0.0.1", "type": "InternalIP"}]
    assert v3["spec"]["interfaces"] == [{"name": "eth0", "addresses": ["10.0.0.1"]}]


def test_node_merge_drops_inherited_labels_and_clears_bgp() -> None:
    k8s = {"metadata": {"name": "n1", "labels": {"k": "1"}, "annotations": {
        "projectcalico.org/IPv4Address": "10.0.0.1/24", "projectcalico.org/ASNumber": "1",
        "other": "kept"}}}
    v3 = node_to_v3(k8s)
    v3["metadata"]["labels"]["mine"] = "2"
    del v3["spec"]["bgp"]
    out = merge_into_node(v3, k8s)
    assert out["metadata"]["labels"] == {"k": "1"}
    assert out["metadata"]["annotations"] == {"other": "kept",
                                              "projectcalico.org/labels": '{"mine":"2"}'}
    assert k8s["metadata"]["annotations"]["projectcalico.org/ASNumber"] == "1"  # not mutated


def test_v3_owner_references_are_stored_as_v1_ones() -> None:
    owner = {"apiVersion": "projectcalico.org/v3", "kind": "Tier", "name": "t", "uid": V3_UID}
    cr = to_cr(_pool(ownerReferences=[owner]))
    stored = json.loads(cr["metadata"]["annotations"]["projectcalico.org/metadata"])
    assert stored["ownerReferences"] == [{**owner, "apiVersion": "crd.projectcalico.org/v1",
                                          "uid": CR_UID}]
    assert from_cr(cr)["metadata"]["ownerReferences"] == [owner]


def test_workload_endpoint_names() -> None:
    assert wep_name("ip-10-0-0-1", "nginx-7d8") == "ip--10--0--0--1-k8s-nginx--7d8-eth0"
    assert parse_wep_name("ip--10--0--0--1-k8s-nginx--7d8-eth0") == (
        "ip-10-0-0-1", "k8s", "nginx-7d8", "eth0")
    assert parse_wep_name("a-k8s-b") is None
    assert parse_wep_name("a-k8s--b-eth0") is None  # three parts: a, k8s-b, eth0


def _podj(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"metadata": {"name": "p", "namespace": "ns",
                                            "annotations": {}},
                               "spec": {"nodeName": "n1"}, "status": {}}
    for k, v in kw.items():
        assert isinstance(base[k], dict)
        base[k] = {**base[k], **v}  # type: ignore[dict-item]
    return base


def test_pod_ip_sources_and_finished_pods() -> None:
    assert [str(i) for i in pod_ips(_podj(status={"podIP": "10.0.0.1"}))] == ["10.0.0.1/32"]
    both = _podj(status={"podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}], "podIP": "x"})
    assert [str(i) for i in pod_ips(both)] == ["10.0.0.1/32", "fd00::1/128"]
    ann = _podj(metadata={"annotations": {"cni.projectcalico.org/podIPs": "10.0.0.2/32,fd00::2",
                                          "cni.projectcalico.org/podIP": "10.0.0.9"}})
    assert [str(i) for i in pod_ips(ann)] == ["10.0.0.2/32", "fd00::2/128"]
    with pytest.raises(PodError):
        pod_ips(_podj(status={"podIP": "10.0.0.300"}))
    assert finished(_podj(status={"phase": "Succeeded"}))
    deleting = _podj(metadata={"deletionTimestamp": "2026-12-04T00:00:00Z",
                               "annotations": {"cni.projectcalico.org/podIP": ""}})
    assert finished(deleting)
    assert not finished(_podj(metadata={"deletionTimestamp": "2026-12-04T00:00:00Z"}))
    assert "ipNetworks" not in pod_to_wep({**deleting, "status": {"podIP": "10.0.0.1"}})["spec"]


def test_pod_to_wep_nats_prefixes_and_ports() -> None:
    pod = _podj(
        metadata={"annotations": {"cni.projectcalico.org/floatingIPs": '["192.0.2.1","fd00::9"]',
                                  "cni.projectcalico.org/allowedSourcePrefixes":
                                      '["10.1.2.3/24"]'}},
        spec={"serviceAccountName": "x" * 63, "containers": [{"ports": [
            {"containerPort": 53, "protocol": "UDP", "name": "dns"},
            {"containerPort": 80, "hostPort": 8080},
            {"containerPort": 81, "protocol": "ICMP", "name": "bad"}]}],
            "initContainers": [{"ports": [{"containerPort": 9, "name": "init"}]}]},
        status={"podIP": "10.0.0.1"})
    wep = pod_to_wep(pod, "tap,cali")
    spec = wep["spec"]
    assert spec["ipNATs"] == [{"internalIP": "10.0.0.1", "externalIP": "192.0.2.1"}]
    assert spec["allowSpoofedSourcePrefixes"] == ["10.1.2.0/24"]
    assert [(p["name"], p["protocol"], p["port"], p["hostPort"]) for p in spec["ports"]] == [
        ("dns", "UDP", 53, 0), ("", "TCP", 80, 8080), ("init", "TCP", 9, 0)]
    assert spec["interfaceName"].startswith("tap") and len(spec["interfaceName"]) == 14
    assert "projectcalico.org/serviceaccount" not in wep["metadata"]["labels"]
    assert spec["profiles"] == ["kns.ns", f"ksa.ns.{'x' * 63}"]
    assert not valid(_podj(spec={"hostNetwork": True}))
    assert not valid(_podj(spec={"nodeName": ""}))


def test_profile_names_and_revisions() -> None:
    assert parse_profile_name("kns.default") == ("default", None)
    assert parse_profile_name("ksa.ns1.my.sa") == ("ns1", "my.sa")
    for bad in ("kns.", "ksa.ns1", "ksa..x", "projectcalico-default-allow", "other"):
        assert parse_profile_name(bad) is None, bad
    assert split_revision("") == ("", "") and split_revision("0") == ("", "")
    assert split_revision("12/") == ("12", "") and split_revision("12") is None
    sa = serviceaccount_to_profile({"metadata": {"name": "s", "namespace": ""}})
    assert sa["metadata"]["name"] == "ksa.default.s"
    assert namespace_to_profile({"metadata": {"name": "n", "uid": CR_UID}})["metadata"][
        "uid"] == V3_UID


def test_ipam_object_names() -> None:
    assert cidr_to_name("10.244.0.0/26") == "10-244-0-0-26"
    assert cidr_to_name("fd00:10:244::/122") == "fd00-10-244---122"
    assert affinity_name("node-1", "10.244.0.0/26") == "node-1-10-244-0-0-26"
    long = affinity_name("h" * 250, "10.244.0.0/26")
    assert len(long) == 252 and long.startswith("h" * 226 + "-10-244-0-0-26-")
    assert len(hostname_hash("node-1")) == 52


def test_ipam_values_round_trip() -> None:
    import ipaddress as ipa

    from libcalico.model import keys as k
    cidr = ipa.ip_network("10.244.0.0/26")
    block = json.dumps({"cidr": "10.244.0.0/26", "affinity": "host:n1",
                        "affinity_claim_time": "2026-12-04T00:00:00Z", "allocations": [None],
                        "unallocated": [], "attributes": [], "sequenceNumber": 1,
                        "sequenceNumberForAllocation": {}, "deleted": False})
    cr = ipam_to_cr(k.block_key(cidr), block)
    assert cr["metadata"]["name"] == "10-244-0-0-26"
    assert cr["spec"]["affinityClaimTime"] == "2026-12-04T00:00:00Z"
    assert cr["spec"]["strictAffinity"] is False
    assert json.loads(ipam_from_cr("ipamblocks", cr)[1]) == json.loads(block)
    aff_key = k.affinity_key("n1", cidr)
    aff = ipam_to_cr(aff_key, '{"state":"pending","deleted":false}')
    assert aff["spec"]["deleted"] == "false" and aff["metadata"]["name"] == "n1-10-244-0-0-26"
    assert ipam_from_cr("blockaffinities", aff) == (aff_key, '{"state":"pending","deleted":false}')
    cfg = ipam_to_cr(k.IPAM_CONFIG_KEY, "{}")
    assert cfg["spec"] == {"strictAffinity": False, "autoAllocateBlocks": False}
    assert ipam_from_cr("ipamconfigs", cfg) == (k.IPAM_CONFIG_KEY, "{}")
    assert ipam_target(k.ipam_host_key("n1")) is None
    assert ipam_target(k.handle_key("A.B")) == ("ipamhandles", "a.b")


def test_secret_keys_and_values() -> None:
    from libcalico.datastore.kubernetes_secret import parse_key, values

    assert parse_key("/calico/secrets/bgp/peer-a") == ("bgp", "peer-a")
    assert parse_key("/calico/secrets/bgp/") == ("bgp", None)
    assert parse_key("/calico/secrets/") is None
    secret = {"metadata": {"name": "bgp"},
              "data": {"a": base64.b64encode(b"pw").decode(),
                       "bin": base64.b64encode(b"\xff\xfe").decode(), "bad": "%%%"}}
    assert values(secret) == {"/calico/secrets/bgp/a": "pw"}


def test_affinity_selectors() -> None:
    from libcalico.datastore.kubernetes_ipam import affinity_selector
    from libcalico.model import keys as k

    h = hostname_hash("n1")
    assert affinity_selector(k.affinity_prefix("n1")) == \
        f"projectcalico.org/hostname-hash={h},projectcalico.org/affinity-type=host"
    assert affinity_selector(k.affinity_prefix("n1", 6)) == \
        f"projectcalico.org/hostname-hash={h},projectcalico.org/affinity-type=host," \
        "projectcalico.org/ip-version=6"
    assert affinity_selector(k.affinity_prefix()) is None
    assert affinity_selector(k.IPAM_ROOT + "host/n") is None


@pytest.mark.parametrize(("annotation", "value"), [
    ("projectcalico.org/IPv4Address", "192.0.2.1/24\n  protocol bgp evil {"),
    ("projectcalico.org/IPv4Address", "192.0.2.1/24; }"),
    ("projectcalico.org/IPv6Address", "fd00::1/64 }"),
    ("projectcalico.org/ASNumber", "64512; import all"),
    ("projectcalico.org/RouteReflectorClusterID", "1.2.3.4\n}"),
    ("projectcalico.org/IPv4IPIPTunnelAddr", "10.0.0.1 extra"),
    ("projectcalico.org/VXLANTunnelMACAddr", "66:3e:ca:4a:2c:f1\n"),
    ("projectcalico.org/IPv4VXLANTunnelAddr", "fd00::1"),
])
def test_hostile_node_annotations_are_dropped(annotation: str, value: str) -> None:
    v3 = node_to_v3({"metadata": {"name": "n1", "annotations": {annotation: value}}})
    text = json.dumps(v3)
    assert value not in text and json.dumps(value)[1:-1] not in text
    assert "bgp" not in v3["spec"] and "vxlanTunnelMACAddr" not in v3["spec"]


def test_hostile_pod_ips_fail_the_conversion() -> None:
    for bad in ("10.0.0.1\n", "10.0.0.1 ", "10.0.0.1;", "10.0.0.1/32}"):
        with pytest.raises(PodError):
            pod_ips(_podj(metadata={"annotations": {"cni.projectcalico.org/podIPs": bad}}))


def test_hostile_interfaces_annotation_is_dropped() -> None:
    for bad in ('[{"name":"eth0; rm","addresses":["10.0.0.1"]}]',
                '[{"name":"eth0","addresses":["10.0.0.1\\n}"]}]',
                '{"name":"eth0"}', "not json"):
        v3 = node_to_v3({"metadata": {"name": "n1",
                                      "annotations": {"projectcalico.org/Interfaces": bad}}})
        assert "interfaces" not in v3["spec"], bad


def test_access_resolution_as_calico(tmp_path: Path) -> None:
    from libcalico.datastore.config import DatastoreConfig
    from libcalico.datastore.kubernetes_access import access

    (tmp_path / "ca.pem").write_bytes(b"CA")
    kc = _kubeconfig(tmp_path, "kc")
    (tmp_path / "other-ca.pem").write_bytes(b"OTHER")
    cfg = DatastoreConfig.from_env({"DATASTORE_TYPE": "kubernetes", "KUBECONFIG": str(kc),
                                    "K8S_API_ENDPOINT": "https://10.9.9.9:6443/",
                                    "K8S_CA_FILE": str(tmp_path / "other-ca.pem"),
                                    "K8S_API_TOKEN": "override"})
    acc = access(cfg, {})
    assert (acc.server, acc.ca_pem, acc.token) == ("https://10.9.9.9:6443", b"OTHER",
                                                   "override")
    # No kubeconfig and no endpoint: $HOME/.kube/config, then the in-cluster account.
    home = tmp_path / "home"
    (home / ".kube").mkdir(parents=True)
    bare = DatastoreConfig.from_env({"DATASTORE_TYPE": "kubernetes"})
    with pytest.raises(ConfigError, match="needs KUBECONFIG"):
        access(bare, {"HOME": str(home)})
    kc.rename(home / ".kube" / "config")
    (home / ".kube" / "ca.pem").write_bytes(b"CA")
    assert access(bare, {"HOME": str(home)}).server == "https://10.0.0.1:6443"
    # CalicoAPIConfig spelling.
    text = ("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\nspec:\n"
            "  datastoreType: kubernetes\n  k8sAPIEndpoint: https://h:1\n"
            "  k8sInsecureSkipTLSVerify: true\n")
    acc = access(DatastoreConfig.from_yaml(text), {})
    assert acc.server == "https://h:1" and acc.insecure
