"""Every calicoctl command through click's runner, against a Client over MemoryBackend.

The in-memory backend stands in for etcd here only to test parsing, messages and output;
tests/integration/calicoctl runs the same commands against a real etcd.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from calicoctl.cli import calicoctl
from calicoctl.context import Context
from libcalico.client import Client
from libcalico.datastore.memory import MemoryBackend
from libcalico.model import keys

POOLS = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-a
spec:
  cidr: 10.1.0.0/16
  ipipMode: Always
  natOutgoing: true
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata:
  name: pool-b
spec:
  cidr: 10.2.0.0/16
  vxlanMode: Always
  nodeSelector: has(edge)
"""

BAD_SECOND = """\
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: good-1}
spec: {cidr: 10.1.0.0/16}
---
apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: bad}
spec: {cidr: 10.2.0.0/33}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: good-2}
spec: {peerIP: 192.0.2.1, asNumber: 64512}
"""

MIXED = POOLS + """\
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: rr}
spec: {peerSelector: has(rr), nodeSelector: "!has(rr)"}
"""

Run = Callable[..., Result]


@pytest.fixture
def backend() -> MemoryBackend:
    return MemoryBackend()


@pytest.fixture
def run(backend: MemoryBackend, tmp_path: Path) -> Run:
    def invoke(*args: str, stdin: str | None = None, files: dict[str, str] | None = None) -> Result:
        for name, text in (files or {}).items():
            (tmp_path / name).write_text(text)
        argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
        ctx = Context(client_factory=lambda: Client(backend))
        return CliRunner().invoke(calicoctl, argv, input=stdin, obj=ctx)

    return invoke


def _keys(backend: MemoryBackend) -> list[str]:
    return [kv.key for kv in backend.list("/calico/").kvs]


def test_apply_writes_calico_keys_and_reports(run: Run, backend: MemoryBackend) -> None:
    r = run("apply", "-f", "{tmp}/pools.yaml", files={"pools.yaml": POOLS})
    assert r.exit_code == 0, r.output
    assert r.stdout == "Successfully applied 2 'IPPool' resource(s)\n"
    assert _keys(backend) == [keys.resource_key("IPPool", "pool-a"),
                              keys.resource_key("IPPool", "pool-b")]
    stored = json.loads(backend.get(keys.resource_key("IPPool", "pool-a")).value)
    assert stored["spec"]["cidr"] == "10.1.0.0/16"
    assert stored["spec"]["blockSize"] == 26  # Calico's default filled in
    assert stored["metadata"]["uid"]
    # apply again: updates, keeps the uid
    r2 = run("apply", "-f", "{tmp}/pools.yaml")
    assert r2.exit_code == 0, r2.output
    again = json.loads(backend.get(keys.resource_key("IPPool", "pool-a")).value)
    assert again["metadata"]["uid"] == stored["metadata"]["uid"]


def test_mixed_kinds_message(run: Run) -> None:
    r = run("create", "-f", "{tmp}/m.yaml", files={"m.yaml": MIXED})
    assert r.exit_code == 0, r.output
    assert r.stdout == "Successfully created 3 resource(s)\n"


def test_bad_document_writes_nothing_and_names_document_field_reason(
        run: Run, backend: MemoryBackend) -> None:
    r = run("apply", "-f", "{tmp}/bad.yaml", files={"bad.yaml": BAD_SECOND})
    assert r.exit_code == 1
    err = r.stderr
    assert "Failed to apply 'IPPool' resource:" in err
    assert "bad.yaml document 2 (IPPool 'bad')" in err
    assert "error with field spec.cidr = '10.2.0.0/33'" in err
    assert "Nothing was written" in err
    assert r.stdout == ""
    assert _keys(backend) == []


def test_every_bad_document_is_reported(run: Run, backend: MemoryBackend) -> None:
    text = BAD_SECOND + "---\nkind: Nonsense\napiVersion: projectcalico.org/v3\n" \
        "metadata: {name: x}\n"
    r = run("create", "-f", "{tmp}/bad.yaml", files={"bad.yaml": text})
    assert r.exit_code == 1
    assert "document 2 (IPPool 'bad')" in r.stderr
    assert "document 4 (Nonsense 'x')" in r.stderr
    assert "error with field kind = 'Nonsense'" in r.stderr
    assert "2 of 4 document(s) failed validation" in r.stderr
    assert _keys(backend) == []


def test_unparseable_file_and_missing_file(run: Run, backend: MemoryBackend) -> None:
    r = run("apply", "-f", "{tmp}/x.yaml", files={"x.yaml": "kind: [\n"})
    assert r.exit_code == 1 and "Failed to parse" in r.stderr and "invalid YAML" in r.stderr
    r = run("apply", "-f", "{tmp}/missing.yaml")
    assert r.exit_code == 1 and "Failed to read file" in r.stderr
    assert _keys(backend) == []


def test_stdin(run: Run, backend: MemoryBackend) -> None:
    r = run("create", "-f", "-", stdin=POOLS)
    assert r.exit_code == 0, r.output
    assert len(_keys(backend)) == 2
    r = run("create", "-f", "-", stdin=POOLS)
    assert r.exit_code == 1
    assert r.stderr.strip() == \
        "Failed to create 'IPPool' resource: [resource already exists: IPPool(pool-a)]"


def test_create_skip_exists_and_partial_success(run: Run, backend: MemoryBackend) -> None:
    run("create", "-f", "-", stdin=POOLS.split("---")[1])  # pool-b exists
    r = run("create", "-f", "-", stdin=POOLS)
    assert r.exit_code == 1
    assert "Partial success: created the first 1 out of 2 'IPPool' resources:" in r.stdout
    assert "resource already exists: IPPool(pool-b)" in r.stderr
    r = run("create", "--skip-exists", "-f", "-", stdin=POOLS)
    assert r.exit_code == 0, r.output


def test_get_table_wide_yaml_json(run: Run) -> None:
    assert run("apply", "-f", "-", stdin=POOLS).exit_code == 0
    r = run("get", "ippools")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["NAME", "CIDR", "SELECTOR"]
    assert [line.split() for line in lines[1:]] == [["pool-a", "10.1.0.0/16", "all()"],
                                                    ["pool-b", "10.2.0.0/16", "has(edge)"]]
    wide = run("get", "ipp", "-o", "wide").stdout.splitlines()
    assert wide[0].split()[:5] == ["NAME", "CIDR", "NAT", "IPIPMODE", "VXLANMODE"]
    assert wide[1].split() == ["pool-a", "10.1.0.0/16", "true", "Always", "Never", "false",
                               "false", "all()"]
    one = yaml.safe_load(run("get", "ippool", "pool-b", "-o", "yaml").stdout)
    assert one["kind"] == "IPPool" and one["metadata"]["name"] == "pool-b"
    assert one["metadata"]["resourceVersion"]
    many = yaml.safe_load(run("get", "IPPool", "-o", "yaml").stdout)
    assert many["kind"] == "IPPoolList" and many["apiVersion"] == "projectcalico.org/v3"
    assert [i["metadata"]["name"] for i in many["items"]] == ["pool-a", "pool-b"]
    js = json.loads(run("get", "ippool", "-o", "json").stdout)
    assert js["kind"] == "IPPoolList" and len(js["items"]) == 2
    two = yaml.safe_load(run("get", "ippool", "pool-a", "pool-b", "-o", "yaml").stdout)
    assert two["kind"] == "IPPoolList"


@pytest.mark.parametrize("alias", ["ippool", "ippools", "ipp", "IPPool", "pools"])
def test_get_aliases(run: Run, alias: str) -> None:
    run("apply", "-f", "-", stdin=POOLS)
    r = run("get", alias, "pool-a", "-o", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["metadata"]["name"] == "pool-a"


def test_get_errors(run: Run) -> None:
    r = run("get", "ippol")
    assert r.exit_code == 1
    assert r.stderr.strip() == "Failed to get resources: resource type 'ippol' is not supported"
    r = run("get", "ippool", "nope")
    assert r.exit_code == 1
    assert r.stderr.strip() == "Failed to get resources: resource does not exist: IPPool(nope)"
    r = run("get", "ippool", "-o", "xml")
    assert r.exit_code == 1 and "unrecognized output format 'xml'" in r.stderr


def test_get_empty_prints_header(run: Run) -> None:
    r = run("get", "bgppeers")
    assert r.exit_code == 0
    assert r.stdout.split() == ["NAME", "PEERIP", "NODE", "ASN"]


def test_delete_by_name_and_file(run: Run, backend: MemoryBackend) -> None:
    run("apply", "-f", "-", stdin=MIXED)
    r = run("delete", "ippool", "pool-a")
    assert r.exit_code == 0, r.output
    assert r.stdout == "Successfully deleted 1 'IPPool' resource(s)\n"
    r = run("delete", "ippool", "pool-a")
    assert r.exit_code == 1
    assert r.stderr.strip() == \
        "Failed to delete 'IPPool' resource: [resource does not exist: IPPool(pool-a)]"
    assert run("delete", "--skip-not-exists", "ippool", "pool-a").exit_code == 0
    r = run("delete", "-f", "-", stdin=MIXED.replace("pool-a", "pool-b", 1))
    # pool-b named twice: the second delete finds nothing
    assert r.exit_code == 1 and "Partial success: deleted the first 1 out of 3" in r.stdout
    assert _keys(backend) == [keys.resource_key("BGPPeer", "rr")]
    assert run("delete", "bgpp", "rr").exit_code == 0
    assert _keys(backend) == []


def test_replace(run: Run, backend: MemoryBackend) -> None:
    r = run("replace", "-f", "-", stdin=POOLS)
    assert r.exit_code == 1
    assert "resource does not exist: IPPool(pool-a)" in r.stderr
    run("create", "-f", "-", stdin=POOLS)
    before = json.loads(backend.get(keys.resource_key("IPPool", "pool-a")).value)
    r = run("replace", "-f", "-", stdin=POOLS.replace("natOutgoing: true", "natOutgoing: false"))
    assert r.exit_code == 0, r.output
    assert r.stdout == "Successfully replaced 2 'IPPool' resource(s)\n"
    after = json.loads(backend.get(keys.resource_key("IPPool", "pool-a")).value)
    assert after["spec"].get("natOutgoing", False) is False
    assert after["metadata"]["uid"] == before["metadata"]["uid"]


def test_replace_with_stale_resource_version_conflicts(run: Run, backend: MemoryBackend) -> None:
    run("create", "-f", "-", stdin=POOLS)
    current = yaml.safe_load(run("get", "ippool", "pool-a", "-o", "yaml").stdout)
    run("patch", "ippool", "pool-a", "-p", '{"spec":{"natOutgoing":false}}')
    current["spec"]["disabled"] = True
    r = run("replace", "-f", "-", stdin=yaml.safe_dump(current))
    assert r.exit_code == 1
    assert "update conflict: IPPool(pool-a)" in r.stderr
    stored = json.loads(backend.get(keys.resource_key("IPPool", "pool-a")).value)
    assert not stored["spec"].get("disabled")


def test_patch(run: Run, backend: MemoryBackend) -> None:
    run("create", "-f", "-", stdin=POOLS)
    r = run("patch", "ippool", "pool-b", "-p", '{"spec":{"disabled":true,"nodeSelector":null}}')
    assert r.exit_code == 0, r.output
    assert r.stdout == "Successfully patched 1 'IPPool' resource\n"
    stored = json.loads(backend.get(keys.resource_key("IPPool", "pool-b")).value)
    assert stored["spec"]["disabled"] is True
    assert stored["spec"]["nodeSelector"] == "all()"  # removed, so defaulted again
    before = backend.get(keys.resource_key("IPPool", "pool-b"))
    bad = run("patch", "ippool", "pool-b", "-p", '{"spec":{"blockSize":8}}')
    assert bad.exit_code == 1
    assert "error with field spec.blockSize = '8'" in bad.stderr
    assert backend.get(keys.resource_key("IPPool", "pool-b")) == before
    assert run("patch", "ippool", "pool-b", "-p", "{nope").exit_code == 1
    r = run("patch", "ippool", "pool-b", "-p", '{"metadata":{"name":"other"}}')
    assert r.exit_code == 1 and "metadata.name (cannot be changed)" in r.stderr
    r = run("patch", "ippool", "ghost", "-p", "{}")
    assert r.exit_code == 1 and "resource does not exist: IPPool(ghost)" in r.stderr


def test_version_reads_cluster_information(run: Run, backend: MemoryBackend) -> None:
    r = run("version")
    assert r.exit_code == 1  # as calicoctl: the client version, then the error
    assert r.stdout.startswith("Client Version:    v")
    assert "Unable to retrieve Cluster Version or Type" in r.stderr
    backend.create(keys.resource_key("ClusterInformation", "default"), json.dumps({
        "kind": "ClusterInformation", "apiVersion": "projectcalico.org/v3",
        "metadata": {"name": "default"},
        "spec": {"calicoVersion": "v3.28.0", "clusterType": "bgp", "datastoreReady": True}}))
    r = run("version")
    assert "Cluster Version:   v3.28.0" in r.stdout
    assert "Cluster Type:      bgp" in r.stdout


def test_global_and_per_command_options_accepted(run: Run) -> None:
    assert run("--allow-version-mismatch", "get", "ippool").exit_code == 0
    assert run("get", "ippool", "--allow-version-mismatch").exit_code == 0


def test_missing_config_file_is_an_error(tmp_path: Path) -> None:
    r = CliRunner().invoke(calicoctl, ["get", "ippool", "--config", str(tmp_path / "nope")])
    assert r.exit_code == 1
    assert "config file" in r.stderr and "does not exist" in r.stderr


def test_help_lists_commands() -> None:
    r = CliRunner().invoke(calicoctl, ["--help"])
    assert r.exit_code == 0
    for cmd in ("apply", "create", "replace", "delete", "get", "patch", "version", "node"):
        assert f"  {cmd}" in r.stdout


WEP = """\
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: node1-k8s-nginx-eth0
spec:
  node: node1
  orchestrator: k8s
  pod: nginx
  endpoint: eth0
  interfaceName: cali0ef24ba1234
  ipNetworks: [10.244.0.5/32]
"""


def test_namespaced_kind_defaults_namespace_and_lists_across(
        run: Run, backend: MemoryBackend) -> None:
    r = run("apply", "-f", "-", stdin=WEP)
    assert r.exit_code == 0, r.output
    assert _keys(backend) == [keys.resource_key("WorkloadEndpoint", "node1-k8s-nginx-eth0",
                                                "default")]
    r = run("create", "-n", "prod", "-f", "-", stdin=WEP)
    assert r.exit_code == 0, r.output
    ps = run("get", "weps").stdout.splitlines()
    assert ps[0].split() == ["WORKLOAD", "NODE", "NETWORKS", "INTERFACE"]
    assert ps[1].split() == ["nginx", "node1", "10.244.0.5/32", "cali0ef24ba1234"]
    assert len(ps) == 2
    everywhere = run("get", "wep", "-A").stdout.splitlines()
    assert [line.split()[0] for line in everywhere] == ["NAMESPACE", "default", "prod"]
    assert run("get", "wep", "-n", "other").stdout.splitlines()[1:] == []
    assert run("delete", "wep", "node1-k8s-nginx-eth0", "-n", "prod").exit_code == 0
    assert len(_keys(backend)) == 1


def test_node_wide_shows_global_asn(run: Run) -> None:
    node = ("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: node1}\n"
            "spec: {bgp: {ipv4Address: 10.0.0.1/24}}\n")
    assert run("apply", "-f", "-", stdin=node).exit_code == 0
    assert run("get", "nodes", "-o", "wide").stdout.splitlines()[1].split() == \
        ["node1", "(64512)", "10.0.0.1/24"]
    bgp = ("apiVersion: projectcalico.org/v3\nkind: BGPConfiguration\n"
           "metadata: {name: default}\nspec: {asNumber: 65001}\n")
    assert run("apply", "-f", "-", stdin=bgp).exit_code == 0
    assert run("get", "no", "-o", "wide").stdout.splitlines()[1].split()[1] == "(65001)"
    assert run("get", "node").stdout.split() == ["NAME", "node1"]


def test_unsupported_kind_in_get_delete_patch(run: Run) -> None:
    for args in (["get", "caliconodestatus"], ["delete", "caliconodestatus", "x"],
                 ["patch", "caliconodestatus", "x", "-p", "{}"]):
        r = run(*args)
        assert r.exit_code == 1
        assert "resource type 'caliconodestatus' is not supported" in r.stderr


def test_optional_groups_registered_when_their_module_exists() -> None:
    import importlib.util

    listed = CliRunner().invoke(calicoctl, ["--help"]).stdout
    for name in ("ipam", "node"):
        present = importlib.util.find_spec(f"calicoctl.commands.{name}") is not None
        assert (f"  {name} " in listed) is present, name


def test_create_refuses_resource_version_and_duplicates_before_writing(
        run: Run, backend: MemoryBackend) -> None:
    exported = POOLS.replace("name: pool-b", "name: pool-b\n  resourceVersion: '12'")
    r = run("create", "-f", "-", stdin=exported)
    assert r.exit_code == 1
    assert ("stdin document 2 (IPPool 'pool-b'): [error with field metadata.resourceVersion "
            "= '12' (must not be set when creating)]") in r.stderr
    r = run("create", "-f", "-", stdin=POOLS + "---\n" + POOLS.split("---\n")[0])
    assert r.exit_code == 1
    assert "stdin document 3 (IPPool 'pool-a'): [IPPool(pool-a) is also defined by stdin " \
        "document 1]" in r.stderr
    assert _keys(backend) == []


def test_exported_list_applies_back(run: Run, backend: MemoryBackend) -> None:
    assert run("create", "-f", "-", stdin=POOLS).exit_code == 0
    exported = run("get", "ippools", "-o", "yaml").stdout
    r = run("apply", "-f", "-", stdin=exported.replace("natOutgoing: true", "natOutgoing: false"))
    assert r.exit_code == 0, r.output
    assert r.stdout == "Successfully applied 2 'IPPool' resource(s)\n"
    stored = json.loads(backend.get(keys.resource_key("IPPool", "pool-a")).value)
    assert not stored["spec"].get("natOutgoing")
    # the exported resourceVersions are stale now: applying them again is a conflict
    r = run("apply", "-f", "-", stdin=exported)
    assert r.exit_code == 1 and "update conflict: IPPool(pool-a)" in r.stderr


def test_malformed_config_file(tmp_path: Path) -> None:
    cfg = tmp_path / "calicoctl.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\n"
                   "spec: {datastoreType: etcdv3, etcdEndpoint: http://x:2379}\n")
    r = CliRunner().invoke(calicoctl, ["get", "ippool", "-c", str(cfg)])
    assert r.exit_code == 1
    assert "etcdEndpoint" in r.stderr


def test_directory_input_validates_every_file_first(
        run: Run, backend: MemoryBackend, tmp_path: Path) -> None:
    d = tmp_path / "manifests"
    (d / "sub").mkdir(parents=True)
    (d / "a-pools.yaml").write_text(POOLS)
    (d / "b-peer.json").write_text(json.dumps({
        "apiVersion": "projectcalico.org/v3", "kind": "BGPPeer", "metadata": {"name": "p"},
        "spec": {"peerIP": "192.0.2.9", "asNumber": 65000}}))
    (d / "notes.txt").write_text("not a manifest")
    (d / "sub" / "c-bad.yml").write_text(BAD_SECOND)
    r = run("apply", "-f", str(d))
    assert r.exit_code == 0, r.output
    assert r.stdout == "Successfully applied 3 resource(s)\n"  # sub/ needs -R
    r = run("apply", "-R", "-f", str(d))
    assert r.exit_code == 1
    assert f"{d / 'sub' / 'c-bad.yml'} document 2 (IPPool 'bad')" in r.stderr
    assert keys.resource_key("IPPool", "good-1") not in _keys(backend)
    (d / "sub" / "c-bad.yml").write_text("")
    r = run("apply", "-R", "-f", str(d))
    assert r.exit_code == 1 and "No resources specified in" in r.stderr
    assert run("apply", "-R", "--skip-empty", "-f", str(d)).exit_code == 0
    r = run("delete", "-f", str(d))
    assert r.exit_code == 0, r.output
    assert _keys(backend) == []


def test_log_level_info_prints_one_summary_line(run: Run) -> None:
    import logging

    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    try:
        r = run("apply", "-f", "-", "-l", "info", stdin=POOLS)
        assert r.exit_code == 0, r.output
        summary = [ln for ln in r.stderr.splitlines() if "calicoctl apply" in ln]
        assert len(summary) == 1 and "resources=2 kind=IPPool" in summary[0]
    finally:
        root.setLevel(saved[0])
        root.handlers[:] = saved[1]


def test_context_backend_is_the_clients() -> None:
    backend = MemoryBackend()
    ctx = Context(client_factory=lambda: Client(backend))
    assert ctx.backend() is backend
    assert ctx.client() is ctx.client()


@pytest.mark.parametrize("alias", [
    "bgpconfigs", "bgpfilters", "bgppeers", "clusterinfos", "felixconfigs", "heps",
    "ipamconfigs", "ippools", "ipreservations", "kubecontrollersconfigs", "nodes", "profiles",
    "weps"])
@pytest.mark.parametrize("fmt", ["ps", "wide", "yaml", "json"])
def test_every_supported_kind_lists_in_every_format(run: Run, alias: str, fmt: str) -> None:
    r = run("get", alias, "-A" if alias == "weps" else "--allow-version-mismatch", "-o", fmt)
    assert r.exit_code == 0, r.output
    if fmt == "json":
        assert json.loads(r.stdout)["kind"].endswith("List")
    elif fmt == "yaml":
        assert yaml.safe_load(r.stdout)["kind"].endswith("List")
    else:
        assert r.stdout.split()[0] in ("NAME", "NAMESPACE")


def test_label_set_overwrite_remove(run: Run, backend: MemoryBackend) -> None:
    node = ("apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: rr1}\n"
            "spec: {bgp: {ipv4Address: 10.0.0.1/24}}\n")
    assert run("apply", "-f", "-", stdin=node).exit_code == 0
    key = keys.resource_key("Node", "rr1")
    r = run("label", "nodes", "rr1", "route-reflector=true")
    assert r.exit_code == 0, r.output
    assert r.stdout == "Successfully set label route-reflector on nodes rr1\n"
    assert json.loads(backend.get(key).value)["metadata"]["labels"] == {
        "route-reflector": "true"}
    r = run("label", "no", "rr1", "route-reflector=false")
    assert r.exit_code == 1
    assert "key route-reflector is already present. Please use '--overwrite'" in r.stderr
    assert run("label", "no", "rr1", "route-reflector=false", "--overwrite").exit_code == 0
    assert json.loads(backend.get(key).value)["metadata"]["labels"] == {
        "route-reflector": "false"}
    r = run("label", "node", "rr1", "bad key=x")
    assert r.exit_code == 1 and "metadata.labels" in r.stderr
    r = run("label", "node", "rr1", "route-reflector", "--remove")
    assert r.exit_code == 0, r.output
    assert r.stdout == "Successfully removed label route-reflector from nodes rr1\n"
    assert not json.loads(backend.get(key).value)["metadata"].get("labels")
    r = run("label", "node", "rr1", "route-reflector", "--remove")
    assert r.exit_code == 1 and "is not present" in r.stderr
    r = run("label", "node", "ghost", "a=b")
    assert r.exit_code == 1 and "resource does not exist: Node(ghost)" in r.stderr
    assert run("label", "node", "rr1", "justakey").exit_code == 2
