"""CNI spec handling: environment, config checks, error JSON, result shapes; Calico names."""

from __future__ import annotations

import json

import pytest

from calico_cni import naming, netconf, spec
from calico_cni.spec import CNIError, Interface, IPConfig, Result, Route

ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "abc", "CNI_NETNS": "/var/run/netns/x",
       "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}


def test_env_parsing_and_errors() -> None:
    e = spec.parse_env({**ENV, "CNI_ARGS": "IgnoreUnknown=1;K8S_POD_NAME=p;IP=10.0.0.1"})
    assert e.args == {"IgnoreUnknown": "1", "K8S_POD_NAME": "p", "IP": "10.0.0.1"}
    assert e.path == ("/opt/cni/bin",)
    with pytest.raises(CNIError) as ei:
        spec.parse_env({k: v for k, v in ENV.items() if k not in ("CNI_NETNS", "CNI_PATH")})
    assert ei.value.code == 4 and ei.value.msg == \
        "required env variables [CNI_NETNS,CNI_PATH] missing"
    # DEL does not need a netns
    spec.parse_env({k: v for k, v in {**ENV, "CNI_COMMAND": "DEL"}.items() if k != "CNI_NETNS"})
    with pytest.raises(CNIError) as ei:
        spec.parse_env({**ENV, "CNI_CONTAINERID": ""})
    assert ei.value.code == 3
    with pytest.raises(CNIError) as ei:
        spec.parse_env({**ENV, "CNI_CONTAINERID": "-bad id"})
    assert ei.value.code == 4 and "containerID" in ei.value.msg
    with pytest.raises(CNIError) as ei:
        spec.parse_env({**ENV, "CNI_IFNAME": "a-very-long-interface"})
    assert ei.value.code == 4
    with pytest.raises(CNIError) as ei:
        spec.parse_env({**ENV, "CNI_COMMAND": "FROB"})
    assert ei.value.code == 4 and "FROB" in ei.value.msg
    assert spec.parse_env({"CNI_COMMAND": "VERSION"}).command == "VERSION"
    for bad_ns in ("relative/ns", "/var/run/netns/a b", "/var/run/netns/x'y"):
        with pytest.raises(CNIError) as ei:
            spec.parse_env({**ENV, "CNI_NETNS": bad_ns})
        assert ei.value.code == 4 and "CNI_NETNS" in ei.value.msg
    # libcni validates configurations with VERSION and CNI_NETNS=dummy
    assert spec.parse_env({"CNI_COMMAND": "VERSION", "CNI_NETNS": "dummy"}).netns == "dummy"


def test_config_checks() -> None:
    assert spec.check_config({"name": "n", "cniVersion": "1.1.0"}, "GC") == "1.1.0"
    assert spec.check_config({"name": "n"}, "ADD") == "0.1.0"
    with pytest.raises(CNIError) as ei:
        spec.check_config({"name": "n", "cniVersion": "2.0.0"}, "ADD")
    assert ei.value.code == 1 and ei.value.msg == "incompatible CNI versions"
    assert ei.value.details.startswith('config is "2.0.0", plugin supports ["0.1.0"')
    with pytest.raises(CNIError) as ei:
        spec.check_config({"name": "n", "cniVersion": "0.3.1"}, "CHECK")
    assert ei.value.code == 1 and ei.value.msg == "config version does not allow CHECK"
    with pytest.raises(CNIError) as ei:
        spec.check_config({"name": "n", "cniVersion": "1.0.0"}, "STATUS")
    assert ei.value.code == 1
    with pytest.raises(CNIError) as ei:
        spec.check_config({"name": "bad name!", "cniVersion": "1.0.0"}, "ADD")
    assert ei.value.code == 7
    with pytest.raises(CNIError) as ei:
        spec.decode_config(b"{not json")
    assert ei.value.code == 6
    err = json.loads(CNIError(11, "try later", "why").to_json())
    assert err == {"code": 11, "msg": "try later", "details": "why"}
    assert json.loads(spec.version_output())["supportedVersions"] == list(spec.SUPPORTED_VERSIONS)


RES = Result(interfaces=(Interface("cali123"), Interface("eth0", "aa:bb:cc:dd:ee:ff", 1400,
                                                        "/var/run/netns/x")),
             ips=(IPConfig("10.0.0.5/32", 1), IPConfig("fd00::5/128", 1)))


def test_result_shapes_per_version() -> None:
    r1 = spec.format_result(RES, "1.0.0")
    assert r1 == {"cniVersion": "1.0.0",
                  "interfaces": [{"name": "cali123"},
                                 {"name": "eth0", "mac": "aa:bb:cc:dd:ee:ff",
                                  "sandbox": "/var/run/netns/x"}],
                  "ips": [{"interface": 1, "address": "10.0.0.5/32"},
                          {"interface": 1, "address": "fd00::5/128"}], "dns": {}}
    assert spec.format_result(RES, "1.1.0")["interfaces"][1]["mtu"] == 1400
    r04 = spec.format_result(RES, "0.4.0")
    assert r04["ips"][0] == {"version": "4", "interface": 1, "address": "10.0.0.5/32"}
    assert r04["ips"][1]["version"] == "6"
    r02 = spec.format_result(Result(ips=(IPConfig("10.0.0.5/26"),),
                                    routes=(Route("10.0.0.0/26"),)), "0.2.0")
    assert r02 == {"cniVersion": "0.2.0", "ip4": {"ip": "10.0.0.5/26",
                                                  "routes": [{"dst": "10.0.0.0/26"}]}, "dns": {}}
    # parse back what other plugins print (host-local 1.0.0 and 0.2.0 shapes)
    hl = spec.parse_result({"cniVersion": "1.0.0", "ips": [{"address": "10.22.0.2/24",
                            "gateway": "10.22.0.1"}], "routes": [{"dst": "0.0.0.0/0"}]})
    assert hl.ips[0].address == "10.22.0.2/24" and hl.routes[0].dst == "0.0.0.0/0"
    old = spec.parse_result({"ip4": {"ip": "10.22.0.4/24", "gateway": "10.22.0.1"}})
    assert old.ips[0].address == "10.22.0.4/24"


def test_calico_names() -> None:
    assert naming.veth_name_k8s("namespace", "podname", "eni") == "eni82111e10a96"
    assert naming.veth_name_k8s("default", "nginx-7d8b49557c-x2k4j") == "cali76c0a28a3a3"
    assert naming.veth_name_cni("4f2a9c1e0b7d55") == "cali4f2a9c1e0b7"
    assert naming.wep_name("ip-10-0-0-1", "k8s", "nginx-7d8b49557c-x2k4j", "eth0") == \
        "ip--10--0--0--1-k8s-nginx--7d8b49557c--x2k4j-eth0"
    assert naming.wep_name("node1", "cni", "4f2a9c1e0b7d", "eth0") == "node1-cni-4f2a9c1e0b7d-eth0"
    assert naming.handle_id("k8s-pod-network", "abc") == "k8s-pod-network.abc"
    assert naming.interface_prefix("tap,cali") == "tap" and naming.interface_prefix(None) == "cali"


def test_netconf_fields_and_errors() -> None:
    doc = {"name": "k8s-pod-network", "cniVersion": "1.0.0", "type": "calico",
           "etcd_endpoints": "http://127.0.0.1:2379", "nodename": "n1", "mtu": 1440,
           "ipam": {"type": "calico-ipam", "assign_ipv4": "true", "assign_ipv6": "true",
                    "ipv4_pools": ["10.0.0.0/16", "pool-a"], "routes": [{"dst": "10.96.0.0/12"}]},
           "policy": {"type": "k8s", "k8s_api_root": "http://127.0.0.1:1"},
           "feature_control": {"ip_addrs_no_ipam": True},
           "container_settings": {"allow_ip_forwarding": True}, "unknown_key": 1}
    c = netconf.parse(doc, "1.0.0")
    assert c.ipam.assign_ipv6 and c.ipam.ipv4_pools == ("10.0.0.0/16", "pool-a")
    assert c.ipam.routes == ("10.96.0.0/12",) and c.policy_type == "k8s"
    odd = netconf.parse({**doc, "ipam": {"routes": [{"dst": "10.96.1.0/12"}]}}, "1.0.0")
    assert odd.ipam.routes == ("10.96.0.0/12",), "routes are normalised before use"
    assert c.ip_addrs_no_ipam and c.allow_ip_forwarding and c.mtu == 1440
    for bad, what in (({"mtu": "x"}, "mtu"), ({"ipam": {"assign_ipv4": "yes"}}, "assign_ipv4"),
                      ({"datastore_type": "kdd"}, "datastore_type"),
                      ({"device_type": "netkit"}, "device_type"),
                      ({"ipam": {"routes": [{"dst": "nope"}]}}, "ipam.routes")):
        with pytest.raises(CNIError) as ei:
            netconf.parse({**doc, **bad}, "1.0.0")
        assert ei.value.code == 7 and what in ei.value.msg
