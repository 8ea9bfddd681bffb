"""calicoctl with the policy kinds against a real etcd: Calico's keys and stored JSON,
defaults (tier, types, tier label), ps/wide columns, tiers listed by order, delete."""

from __future__ import annotations

import json

import yaml

from libcalico.model import keys
from tests.integration.calicoctl.conftest import Ctl

POLICIES = """\
apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: security
spec:
  order: 100
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: default
spec:
  order: 1000000
  defaultAction: Deny
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-api
  namespace: prod
spec:
  order: 1000
  selector: app == 'db' && has(team)
  ingress:
  - action: Allow
    protocol: TCP
    source:
      selector: app == 'api'
    destination:
      ports: [5432, metrics]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: deny-ssh
spec:
  tier: security
  order: 10
  selector: all()
  egress:
  - action: Deny
    protocol: TCP
    destination:
      ports: [22]
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata:
  name: dbs
  namespace: prod
  labels: {role: db}
spec:
  nets: [198.51.100.0/28]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata:
  name: blocklist
spec:
  nets: [203.0.113.7/32, 2001:db8::/48]
---
apiVersion: projectcalico.org/v3
kind: StagedNetworkPolicy
metadata:
  name: try-deny
  namespace: prod
spec:
  selector: app == 'web'
  ingress: [{action: Deny}]
---
apiVersion: projectcalico.org/v3
kind: StagedGlobalNetworkPolicy
metadata:
  name: try-global
spec:
  stagedAction: Learn
  egress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: StagedKubernetesNetworkPolicy
metadata:
  name: try-knp
  namespace: prod
spec:
  podSelector: {matchLabels: {app: db}}
  policyTypes: [Ingress]
---
apiVersion: projectcalico.org/v3
kind: HostEndpoint
metadata:
  name: node1-eth0
  labels: {host-endpoint: "true"}
spec:
  node: node1
  interfaceName: eth0
  expectedIPs: [192.0.2.10]
"""

PREFIX = "/calico/resources/v3/projectcalico.org/"


def _stored(ctl: Ctl, kind: str, name: str, namespace: str | None = None) -> str:
    return ctl.etcd_get(keys.resource_key(kind, name, namespace))


def _ident(stored: str) -> str:
    md = json.loads(stored)["metadata"]
    return f'"uid":"{md["uid"]}","creationTimestamp":"{md["creationTimestamp"]}"'


def test_apply_stores_calicos_keys_and_json(ctl: Ctl) -> None:
    r = ctl("apply", "-f", "-", input=POLICIES)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Successfully applied 10 resource(s)\n"
    listed = ctl.etcd.ctl("get", PREFIX, "--prefix", "--keys-only").split()
    assert sorted(k[len(PREFIX):] for k in listed) == [
        "globalnetworkpolicies/deny-ssh", "globalnetworksets/blocklist",
        "hostendpoints/node1-eth0", "networkpolicies/prod/allow-api", "networksets/prod/dbs",
        "stagedglobalnetworkpolicies/try-global",
        "stagedkubernetesnetworkpolicies/prod/try-knp", "stagednetworkpolicies/prod/try-deny",
        "tiers/default", "tiers/security"]
    np = _stored(ctl, "NetworkPolicy", "allow-api", "prod")
    assert np == (
        '{"kind":"NetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":'
        '"allow-api","namespace":"prod",' + _ident(np) + '},"spec":{"tier":"default",'
        '"order":1000,"ingress":[{"action":"Allow","protocol":"TCP","source":{"selector":'
        '"app == \'api\'"},"destination":{"ports":[5432,"metrics"]}}],"selector":'
        '"app == \'db\' \\u0026\\u0026 has(team)","types":["Ingress"]}}')
    gnp = _stored(ctl, "GlobalNetworkPolicy", "deny-ssh")
    assert gnp == (
        '{"kind":"GlobalNetworkPolicy","apiVersion":"projectcalico.org/v3","metadata":{"name":'
        '"deny-ssh",' + _ident(gnp) + ',"labels":{"projectcalico.org/tier":"security"}},'
        '"spec":{"tier":"security","order":10,"egress":[{"action":"Deny","protocol":"TCP",'
        '"source":{},"destination":{"ports":[22]}}],"selector":"all()","types":["Egress"]}}')
    tier = _stored(ctl, "Tier", "security")
    assert tier == ('{"kind":"Tier","apiVersion":"projectcalico.org/v3","metadata":{"name":'
                    '"security",' + _ident(tier) + '},"spec":{"order":100,"defaultAction":'
                    '"Deny"}}')
    snp = json.loads(_stored(ctl, "StagedNetworkPolicy", "try-deny", "prod"))
    assert snp["spec"] == {"stagedAction": "Set", "tier": "default", "ingress": [
        {"action": "Deny", "source": {}, "destination": {}}], "selector": "app == 'web'",
        "types": ["Ingress"]}
    sknp = json.loads(_stored(ctl, "StagedKubernetesNetworkPolicy", "try-knp", "prod"))
    assert sknp["spec"] == {"stagedAction": "Set", "podSelector": {"matchLabels": {
        "app": "db"}}, "policyTypes": ["Ingress"]}
    gns = json.loads(_stored(ctl, "GlobalNetworkSet", "blocklist"))
    assert gns["spec"] == {"nets": ["203.0.113.7/32", "2001:db8::/48"]}


def _keys(ctl: Ctl) -> list[str]:
    listed = ctl.etcd.ctl("get", PREFIX, "--prefix", "--keys-only").split()
    return sorted(k[len(PREFIX):] for k in listed)


def test_a_missing_builtin_tier_is_created(ctl: Ctl) -> None:
    r = ctl("apply", "-f", "-", input=POLICIES.split("---\n")[2])
    assert r.returncode == 0, r.stderr
    assert _keys(ctl) == ["networkpolicies/prod/allow-api", "tiers/default"]
    assert json.loads(_stored(ctl, "Tier", "default"))["spec"] == {
        "order": 1000000, "defaultAction": "Deny"}


def test_get_columns_and_tier_order(ctl: Ctl) -> None:
    assert ctl("apply", "-f", "-", input=POLICIES).returncode == 0
    r = ctl("get", "networkpolicies", "-n", "prod")
    assert r.returncode == 0, r.stderr
    assert [line.split() for line in r.stdout.splitlines()] == [
        ["NAME", "TIER"], ["allow-api", "default"]]
    r = ctl("get", "np", "-A", "-o", "wide")
    assert [line.split(None, 4) for line in r.stdout.splitlines()] == [
        ["NAMESPACE", "NAME", "TIER", "ORDER", "SELECTOR"],
        ["prod", "allow-api", "default", "1000", "app == 'db' && has(team)"]]
    r = ctl("get", "gnp", "-o", "wide")
    assert [line.split() for line in r.stdout.splitlines()] == [
        ["NAME", "ORDER", "SELECTOR"], ["deny-ssh", "10", "all()"]]
    r = ctl("get", "tiers")
    assert [line.split() for line in r.stdout.splitlines()] == [
        ["NAME", "ORDER"], ["security", "100"], ["default", "1e+06"]]
    r = ctl("get", "sgnp", "-o", "wide")
    assert [line.split() for line in r.stdout.splitlines()] == [
        ["NAME", "TIER", "ORDER", "SELECTOR"], ["try-global", "default", "<nil>"]]
    r = ctl("get", "netsets", "-n", "prod", "-o", "wide")
    assert r.stdout.splitlines()[1].split() == ["dbs", "198.51.100.0/28"]
    doc = yaml.safe_load(ctl("get", "gnp", "deny-ssh", "-o", "yaml").stdout)
    assert doc["spec"]["types"] == ["Egress"] and doc["spec"]["tier"] == "security"
    assert doc["metadata"]["labels"] == {"projectcalico.org/tier": "security"}


def test_delete_and_refusals(ctl: Ctl) -> None:
    assert ctl("apply", "-f", "-", input=POLICIES).returncode == 0
    r = ctl("delete", "networkpolicy", "allow-api", "-n", "prod")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "Successfully deleted 1 'NetworkPolicy' resource(s)\n"
    assert _stored(ctl, "NetworkPolicy", "allow-api", "prod") == ""
    r = ctl("delete", "tier", "default")
    assert r.returncode == 1
    assert "tier 'default' is built in and cannot be deleted" in r.stderr
    others = "---\n".join(d for d in POLICIES.split("---\n") if "name: default\n" not in d)
    r = ctl("delete", "-f", "-", "--skip-not-exists", input=others)
    assert r.returncode == 0, r.stderr
    assert _keys(ctl) == ["tiers/default"]
    bad = POLICIES.replace("protocol: TCP\n    destination:\n      ports: [22]",
                           "destination:\n      ports: [22]")
    r = ctl("apply", "-f", "-", input=bad)
    assert r.returncode == 1
    assert "spec.egress[0].destination.ports" in r.stderr
    assert "numeric port or port range must set protocol" in r.stderr
    assert "Nothing was written" in r.stderr
    r = ctl("apply", "-f", "-", input="kind: Tier\napiVersion: projectcalico.org/v3\n"
            "metadata: {name: default}\nspec: {order: 5}\n")
    assert r.returncode == 1 and "default tier order must be 1000000" in r.stderr
    assert _keys(ctl) == ["tiers/default"]
    # A policy needs its tier.
    r = ctl("apply", "-f", "-", input=POLICIES.split("---\n")[3])
    assert r.returncode == 1 and "tier 'security' does not exist" in r.stderr
    assert _keys(ctl) == ["tiers/default"]
    # kube-controllers' mirrors of Kubernetes policies are not calicoctl's to write.
    mirror = POLICIES.split("---\n")[2].replace("name: allow-api", "name: knp.default.x")
    r = ctl("apply", "-f", "-", input=mirror)
    assert r.returncode == 1
    assert ("operation create or apply is not supported on NetworkPolicy(prod/knp.default.x):"
            " kubernetes network policies must be managed through the kubernetes API") in r.stderr
    r = ctl("delete", "networkpolicy", "knp.default.x", "-n", "prod")
    assert r.returncode == 1 and "operation delete is not supported" in r.stderr
