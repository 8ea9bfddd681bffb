"""calicoctl as a subprocess against a real etcd: CRUD, replace/patch, validation, output."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from libcalico.model import keys
from tests.integration.calicoctl.conftest import Ctl

POOLS = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 10.1.0.0/16
  ipipMode: CrossSubnet
  natOutgoing: true
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-b
spec:
  cidr: fd00:1::/64
  vxlanMode: Always
  nodeSelector: has(edge) && zone == "a"
"""

PEER = """\
{"apiVersion": "projectcalico.org/v3", "kind": "BGPPeer",
 "metadata": {"name": "tor-1"},
 "spec": {"peerIP": "192.0.2.1", "asNumber": 65001, "node": "node-1"}}
"""

POOL_A = keys.resource_key("IPPool", "pool-a")
POOL_B = keys.resource_key("IPPool", "pool-b")


def test_crud_round_trip(ctl: Ctl, tmp_path: Path) -> None:
    f = tmp_path / "pools.yaml"
    f.write_text(POOLS)
    r = ctl("create", "-f", str(f))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Successfully created 2 'IPPool' resource(s)\n"
    # Calico's etcd layout and JSON value, read back with etcdctl.
    stored = json.loads(ctl.etcd_get(POOL_A))
    assert stored["kind"] == "IPPool" and stored["apiVersion"] == "projectcalico.org/v3"
    assert stored["spec"]["cidr"] == "10.1.0.0/16" and stored["spec"]["blockSize"] == 26
    assert stored["spec"]["nodeSelector"] == "all()"
    assert "resourceVersion" not in stored["metadata"]
    assert json.loads(ctl.etcd_get(POOL_B))["spec"]["blockSize"] == 122

    r = ctl("get", "ippools")
    assert r.returncode == 0, r.stderr
    assert [line.split(None, 2) for line in r.stdout.splitlines()] == [
        ["NAME", "CIDR", "SELECTOR"], ["pool-a", "10.1.0.0/16", "all()"],
        ["pool-b", "fd00:1::/64", 'has(edge) && zone == "a"']]

    r = ctl("create", "-f", str(f))
    assert r.returncode == 1
    assert r.stderr.strip() == \
        "Failed to create 'IPPool' resource: [resource already exists: IPPool(pool-a)]"

    r = ctl("apply", "-f", str(f))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Successfully applied 2 'IPPool' resource(s)\n"

    r = ctl("delete", "ippool", "pool-a")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Successfully deleted 1 'IPPool' resource(s)\n"
    assert ctl.etcd_get(POOL_A) == ""
    r = ctl("delete", "-f", str(f))
    assert r.returncode == 1 and "resource does not exist: IPPool(pool-a)" in r.stderr
    r = ctl("delete", "-f", str(f), "--skip-not-exists")
    assert r.returncode == 0, r.stderr
    assert ctl.etcd_get(POOL_B) == ""


def test_bad_document_writes_nothing(ctl: Ctl, tmp_path: Path) -> None:
    bad = POOLS + "---\n" + PEER.replace('"asNumber": 65001', '"asNumber": "not-a-number"')
    f = tmp_path / "bad.yaml"
    f.write_text(bad)
    r = ctl("apply", "-f", str(f))
    assert r.returncode == 1
    assert f"{f} document 3 (BGPPeer 'tor-1')" in r.stderr
    assert "error with field spec.asNumber = 'not-a-number'" in r.stderr
    assert "Nothing was written" in r.stderr
    assert ctl.etcd.ctl("get", "/calico", "--prefix", "--keys-only").strip() == ""


def test_stdin_json_and_aliases(ctl: Ctl) -> None:
    r = ctl("apply", "-f", "-", input=PEER)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Successfully applied 1 'BGPPeer' resource(s)\n"
    for alias in ("bgppeer", "bgppeers", "bgpp", "BGPPeer"):
        r = ctl("get", alias, "tor-1", "-o", "json")
        assert r.returncode == 0, (alias, r.stderr)
        doc = json.loads(r.stdout)
        assert doc["spec"]["peerIP"] == "192.0.2.1" and doc["spec"]["asNumber"] == 65001
    r = ctl("get", "bgpp")
    assert r.stdout.splitlines()[1].split() == ["tor-1", "192.0.2.1", "node-1", "65001"]


def test_output_formats(ctl: Ctl) -> None:
    assert ctl("apply", "-f", "-", input=POOLS).returncode == 0
    listed = yaml.safe_load(ctl("get", "ippool", "-o", "yaml").stdout)
    assert listed["kind"] == "IPPoolList" and listed["apiVersion"] == "projectcalico.org/v3"
    assert [i["metadata"]["name"] for i in listed["items"]] == ["pool-a", "pool-b"]
    rev = listed["items"][0]["metadata"]["resourceVersion"]
    # resourceVersion is the key's etcd mod revision
    assert int(rev) == json.loads(ctl.etcd.ctl("get", POOL_A, "-w", "json"))["kvs"][0][
        "mod_revision"]
    one = json.loads(ctl("get", "ipp", "pool-b", "-o", "json").stdout)
    assert one["kind"] == "IPPool" and one["spec"]["vxlanMode"] == "Always"
    wide = ctl("get", "ippools", "-o", "wide").stdout.splitlines()
    assert wide[0].split() == ["NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE", "DISABLED",
                               "DISABLEBGPEXPORT", "SELECTOR"]
    assert wide[1].split() == ["pool-a", "10.1.0.0/16", "true", "CrossSubnet", "Never",
                               "false", "false", "all()"]


def test_replace_and_patch(ctl: Ctl) -> None:
    assert ctl("create", "-f", "-", input=POOLS).returncode == 0
    before = json.loads(ctl.etcd_get(POOL_A))
    current = yaml.safe_load(ctl("get", "ippool", "pool-a", "-o", "yaml").stdout)

    r = ctl("patch", "ippool", "pool-a", "-p", '{"spec":{"natOutgoing":false,"disabled":true}}')
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Successfully patched 1 'IPPool' resource\n"
    patched = json.loads(ctl.etcd_get(POOL_A))
    assert patched["spec"]["disabled"] is True and not patched["spec"].get("natOutgoing")
    assert patched["metadata"]["uid"] == before["metadata"]["uid"]

    # A replace carrying the stale resourceVersion loses the compare-and-swap.
    current["spec"]["ipipMode"] = "Always"
    r = ctl("replace", "-f", "-", input=yaml.safe_dump(current))
    assert r.returncode == 1
    assert "update conflict: IPPool(pool-a)" in r.stderr
    assert json.loads(ctl.etcd_get(POOL_A)) == patched

    # Without a resourceVersion, replace overwrites the current version.
    del current["metadata"]["resourceVersion"]
    r = ctl("replace", "-f", "-", input=yaml.safe_dump(current))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Successfully replaced 1 'IPPool' resource(s)\n"
    replaced = json.loads(ctl.etcd_get(POOL_A))
    assert replaced["spec"]["ipipMode"] == "Always" and not replaced["spec"].get("disabled")

    r = ctl("patch", "ippool", "pool-a", "-p", '{"spec":{"cidr":"10.1.0.1/16"}}')
    assert r.returncode == 1 and "spec.cidr = '10.1.0.1/16'" in r.stderr
    assert json.loads(ctl.etcd_get(POOL_A)) == replaced
    r = ctl("replace", "-f", "-", input=PEER)
    assert r.returncode == 1 and "resource does not exist: BGPPeer(tor-1)" in r.stderr


def test_config_file_and_unreachable_datastore(ctl: Ctl, tmp_path: Path) -> None:
    assert ctl("apply", "-f", "-", input=POOLS).returncode == 0
    # The config file names the real etcd while the environment names a dead port.
    r = ctl("get", "ippool", "-o", "json", "--config", str(ctl.config),
            env={"ETCD_ENDPOINTS": "http://127.0.0.1:1"})
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["items"]) == 2
    r = ctl("get", "ippool", "--config", str(tmp_path / "missing.cfg"))
    assert r.returncode == 1 and "does not exist" in r.stderr


def test_version(ctl: Ctl) -> None:
    ctl.etcd.ctl("put", keys.resource_key("ClusterInformation", "default"), json.dumps({
        "kind": "ClusterInformation", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "default", "uid": "u1",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"clusterGUID": "abc", "clusterType": "bgp,etcd",
                 "calicoVersion": "v3.28.0", "datastoreReady": True}}))
    r = ctl("version", "--allow-version-mismatch")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("Client Version:    v")
    assert "Cluster Version:   v3.28.0" in lines
    assert "Cluster Type:      bgp,etcd" in lines


ALL_KINDS = """\
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: default}
spec: {logSeverityScreen: Info, reportingInterval: 0s, vxlanEnabled: true}
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata: {name: eth0-node1, labels: {role: host}}
spec: {node: node1, interfaceName: eth0, expectedIPs: [10.0.0.1], profiles: [p1]}
---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: p1}
spec: {labelsToApply: {team: a}}
---
apiVersion: projectcalico.org/v3
kind: IPReservation
metadata: {name: res}
spec: {reservedCIDRs: [10.5.0.0/24]}
---
apiVersion: projectcalico.org/v3
kind: KubeControllersConfiguration
metadata: {name: default}
spec: {controllers: {node: {reconcilerPeriod: 5m}}}
---
apiVersion: projectcalico.org/v3
kind: ClusterInformation
metadata: {name: default}
spec: {calicoVersion: v3.28.0, clusterType: bgp, datastoreReady: true}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 65000, nodeToNodeMeshEnabled: true, logSeverityScreen: Info}
---
apiVersion: projectcalico.org/v3
kind: BGPFilter
metadata: {name: f1}
spec: {exportV4: [{action: Accept, matchOperator: In, cidr: 10.0.0.0/8}]}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node1}
spec: {bgp: {ipv4Address: 10.0.0.1/24}}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: rr}
spec: {peerSelector: has(rr), nodeSelector: "!has(rr)"}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool}
spec: {cidr: 10.244.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node1-k8s-nginx-eth0, namespace: prod}
spec: {node: node1, orchestrator: k8s, pod: nginx, endpoint: eth0,
       interfaceName: cali0ef24ba1234, ipNetworks: [10.244.0.5/32], profiles: [p1]}
---
apiVersion: projectcalico.org/v3
kind: IPAMConfiguration
metadata: {name: default}
spec: {strictAffinity: false, maxBlocksPerHost: 0}
"""


def test_every_kind_round_trips(ctl: Ctl) -> None:
    r = ctl("apply", "-f", "-", input=ALL_KINDS)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Successfully applied 13 resource(s)\n"
    docs = [d for d in yaml.safe_load_all(ALL_KINDS)]
    for doc in docs:
        kind, meta = doc["kind"], doc["metadata"]
        args = ["get", kind.lower(), meta["name"], "-o", "json"]
        if "namespace" in meta:
            args += ["-n", meta["namespace"]]
        r = ctl(*args)
        assert r.returncode == 0, (kind, r.stderr)
        got = json.loads(r.stdout)
        assert got["kind"] == kind and got["metadata"]["name"] == meta["name"]
        for field, value in doc["spec"].items():
            if isinstance(value, dict | list):
                continue
            if field in got["spec"]:
                assert str(got["spec"][field]) == str(value), (kind, field)
            else:  # omitted as Calico omits empty values
                assert value in (0, False, "", "0s"), (kind, field)
        key = keys.resource_key(kind, meta["name"], meta.get("namespace"))
        assert json.loads(ctl.etcd_get(key))["metadata"]["uid"] == got["metadata"]["uid"]
    r = ctl("delete", "-f", "-", input=ALL_KINDS)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Successfully deleted 13 resource(s)\n"
    assert ctl.etcd.ctl("get", "/calico", "--prefix", "--keys-only").strip() == ""


def test_label_node_for_route_reflection(ctl: Ctl) -> None:
    node = ("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: rr1}\n"
            "spec: {bgp: {ipv4Address: 10.0.0.1/24, routeReflectorClusterID: 224.0.0.1}}\n")
    assert ctl("apply", "-f", "-", input=node).returncode == 0
    r = ctl("label", "nodes", "rr1", "route-reflector=true")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Successfully set label route-reflector on nodes rr1\n"
    stored = json.loads(ctl.etcd_get(keys.resource_key("Node", "rr1")))
    assert stored["metadata"]["labels"] == {"route-reflector": "true"}
    assert stored["spec"]["bgp"]["routeReflectorClusterID"] == "224.0.0.1"
