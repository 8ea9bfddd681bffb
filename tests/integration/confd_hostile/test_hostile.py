"""Hostile datastore values: names, labels, peer addresses, AS numbers, passwords, community
strings, interface patterns and filter rules crafted to inject BIRD syntax are rejected (the
resource is left out, with a warning naming it and the field) or quoted safely. Whatever the
datastore holds, the rendered files parse with Debian's bird/bird6 and hold no injected protocol,
and passwords never reach the logs."""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from confd.render import CALICO_JOBS, Renderer, RenderError, RenderJob
from libcalico.model import keys
from tests.unit.confd_view import snap

pytestmark = pytest.mark.bird

EVIL = '"; }; protocol bgp evil { neighbor 6.6.6.6 as 666; }; protocol bgp x {'
SECRET = "s3cr3t-Value-7f"


def base() -> dict[str, str]:
    return snap.snapshot(
        snap.node("a", "10.0.0.2/16", "fd00::2/64"), snap.node("b", "10.0.0.3/16", "fd00::3/64"),
        snap.pool("p", "10.10.0.0/16"), snap.affinity("a", "10.10.0.0/26"),
    )


def render_and_parse(s: dict[str, str], tmp_path: Path, node: str = "a",
                     env: dict[str, str] | None = None) -> tuple[dict[str, str], Renderer]:
    r = Renderer(snap.TEMPLATES)
    out = r.render(s, node, {"NODENAME": node, **(env or {})}, CALICO_JOBS)
    for job in CALICO_JOBS:
        (tmp_path / job.src.removesuffix(".template")).write_text(out[job.src])
    for daemon, name in (("bird", "bird.cfg"), ("bird6", "bird6.cfg")):
        binary = shutil.which(daemon) or f"/usr/sbin/{daemon}"
        p = subprocess.run([binary, "-p", "-c", str(tmp_path / name)], capture_output=True,
                           text=True, timeout=30, check=False)
        assert p.returncode == 0, f"{daemon} -p failed: {p.stderr}\n{out}"
    text = "".join(out.values())
    assert not re.search(r"^\s*protocol\s+bgp\s+(evil|x)\b", text, re.M)
    assert "6.6.6.6" not in text
    return out, r


def put(s: dict[str, str], kind: str, name: str, spec: dict[str, object],
        labels: dict[str, str] | None = None) -> None:
    meta: dict[str, object] = {"name": name}
    if labels:
        meta["labels"] = labels
    s[keys.resource_key(kind, name)] = json.dumps(
        {"kind": kind, "apiVersion": "projectcalico.org/v3", "metadata": meta, "spec": spec})


def test_hostile_names_are_left_out(tmp_path: Path) -> None:
    s = base()
    put(s, "Node", EVIL, {"bgp": {"ipv4Address": "10.0.0.9/16"}})
    put(s, "BGPPeer", "x'() { accept; } function 'y", {"peerIP": "192.0.2.1", "asNumber": 1})
    put(s, "BGPFilter", "f'() { accept; }", {"exportV4": [{"action": "Accept"}]})
    put(s, "BGPConfiguration", "node.a; protocol", {"listenPort": 1})
    out, r = render_and_parse(s, tmp_path)
    assert "10.0.0.9" not in out["bird.cfg.template"]
    assert "192.0.2.1" not in out["bird.cfg.template"]
    assert any("not a valid resource name" in w for w in r.warnings)


def test_hostile_labels_never_reach_bird(tmp_path: Path) -> None:
    s = base()
    put(s, "Node", "c", {"bgp": {"ipv4Address": "10.0.0.4/16"}}, labels={"x": EVIL})
    put(s, "BGPPeer", "sel", {"node": "a", "peerSelector": "has(x)"})
    out, _ = render_and_parse(s, tmp_path)
    assert "protocol bgp Node_10_0_0_4" in out["bird.cfg.template"]
    assert EVIL not in "".join(out.values())


@pytest.mark.parametrize(("field", "value"), [
    ("peerIP", "10.0.0.1; protocol bgp evil {"),
    ("peerIP", "10.0.0.1\nprotocol bgp evil {"),
    ("asNumber", "1; protocol bgp evil {"),
    ("localASNumber", "64512 ; }"),
    ("reachableBy", "10.0.0.1; }"),
    ("ttlSecurity", "1; multihop 2"),
    ("sourceAddress", "UseNodeIP; protocol"),
    ("filters", ["f'(); protocol"]),
    ("maxRestartTime", "10s; }"),
    ("nodeSelector", "has(x) ; protocol {"),
])
def test_hostile_bgppeer_fields_reject_the_peer(field: str, value: object,
                                               tmp_path: Path) -> None:
    s = base()
    spec: dict[str, object] = {"node": "a", "peerIP": "192.0.2.1", "asNumber": 65001}
    spec[field] = value
    put(s, "BGPPeer", "hostile", spec)
    out, r = render_and_parse(s, tmp_path)
    assert "192.0.2.1" not in out["bird.cfg.template"]
    assert any(f"spec.{field}" in w and "hostile" in w for w in r.warnings), r.warnings


@pytest.mark.parametrize("spec", [
    {"asNumber": "64512; protocol bgp evil {"},
    {"listenPort": "179; protocol"},
    {"communities": [{"name": "c", "value": "1:1)); bgp_community.add((6"}],
     "prefixAdvertisements": [{"cidr": "10.0.0.0/8", "communities": ["c"]}]},
    {"prefixAdvertisements": [{"cidr": "10.0.0.0/8 ) then { accept; } if ( net ~ 1.0.0.0/8",
                               "communities": ["1:1"]}]},
    {"ignoredInterfaces": ['eth0", "*"; }; protocol bgp evil {']},
    {"ignoredInterfaces": ["eth0\n"]},
    {"serviceClusterIPs": [{"cidr": "10.96.0.0/12; protocol"}]},
    {"nodeMeshMaxRestartTime": "1s; }"},
    {"logSeverityScreen": ["debug"]},
])
def test_hostile_bgpconfiguration_is_ignored_whole(spec: dict[str, object],
                                                   tmp_path: Path) -> None:
    s = base()
    put(s, "BGPConfiguration", "default", {"nodeToNodeMeshEnabled": False, **spec})
    out, r = render_and_parse(s, tmp_path)
    # Ignored as a whole: the mesh (default on) is back, the bad field named in the warning.
    assert "protocol bgp Mesh_10_0_0_3" in out["bird.cfg.template"]
    assert any("BGPConfiguration 'default' ignored" in w for w in r.warnings), r.warnings


@pytest.mark.parametrize("rule", [
    {"action": "Accept", "interface": 'eth*"; accept; } protocol bgp evil {'},
    {"action": "Accept", "cidr": "10.0.0.0/8)) then { accept; }", "matchOperator": "In"},
    {"action": "Accept; protocol"},
    {"action": "Accept", "communities": {"values": ["1:1) ~ x; protocol"]}},
    {"action": "Accept", "asPathPrefix": ["65000 * =]; protocol"]},
    {"action": "Accept", "operations": [{"addCommunity": {"value": "1:1)); x(("}}]},
    {"action": "Accept", "cidr": "fd00::/64", "matchOperator": "In"},
])
def test_hostile_bgpfilter_rules_reject_the_filter(rule: dict[str, object],
                                                  tmp_path: Path) -> None:
    s = base()
    put(s, "BGPFilter", "f", {"exportV4": [{"action": "Reject"}, rule]})
    put(s, "BGPPeer", "p", {"node": "a", "peerIP": "192.0.2.1", "asNumber": 65001,
                            "filters": ["f"]})
    out, r = render_and_parse(s, tmp_path)
    assert "bgp_f_exportFilterV4" not in out["bird.cfg.template"]
    assert "protocol bgp Node_192_0_2_1" in out["bird.cfg.template"]
    assert any("BGPFilter 'f' ignored" in w for w in r.warnings)


def test_hostile_pool_and_affinity_keys(tmp_path: Path) -> None:
    s = base()
    put(s, "IPPool", "bad", {"cidr": "10.20.0.0/16) then { accept; }"})
    s["/calico/ipam/v2/host/a/ipv4/block/10.30.0.0-26; protocol"] = '{"state":"confirmed"}'
    s["/calico/ipam/v2/host/a/ipv4/block/10.31.0.0-26"] = '{"state": "confirmed; }"}'
    out, _ = render_and_parse(s, tmp_path)
    text = "".join(out.values())
    assert "10.20.0.0" not in text and "10.30.0.0" not in text


def test_passwords_are_quoted_or_refused_and_never_logged(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    caplog.set_level(logging.DEBUG)
    s = base()
    ok_secret = SECRET + " {};# protocol bgp evil {"
    s["/calico/secrets/bgp/ok"] = ok_secret
    s["/calico/secrets/bgp/bad"] = SECRET + '"; } protocol bgp evil { password "'
    s["/calico/secrets/bgp/mesh"] = SECRET + "-mesh"
    put(s, "BGPPeer", "good", {"node": "a", "peerIP": "192.0.2.1", "asNumber": 65001,
                               "password": {"secretKeyRef": {"name": "bgp", "key": "ok"}}})
    put(s, "BGPPeer", "evil", {"node": "a", "peerIP": "192.0.2.2", "asNumber": 65001,
                               "password": {"secretKeyRef": {"name": "bgp", "key": "bad"}}})
    put(s, "BGPConfiguration", "default",
        {"nodeMeshPassword": {"secretKeyRef": {"name": "bgp", "key": "mesh"}}})
    out, r = render_and_parse(s, tmp_path)
    bird = out["bird.cfg.template"]
    assert f'password "{ok_secret}";' in bird
    assert f'password "{SECRET}-mesh";' in bird
    assert "192.0.2.2" not in bird           # the peer whose password cannot be quoted
    assert any("'evil'" in w and "password" in w for w in r.warnings)
    logged = "\n".join(rec.getMessage() for rec in caplog.records) + "\n".join(r.warnings)
    assert SECRET not in logged


def test_hostile_router_id_and_node_name_fail_the_render() -> None:
    r = Renderer(snap.TEMPLATES)
    with pytest.raises(RenderError, match="CALICO_ROUTER_ID"):
        r.render(base(), "a", {"CALICO_ROUTER_ID": "1.2.3.4; protocol bgp evil {"},
                 CALICO_JOBS)
    with pytest.raises(RenderError):
        r.render(base(), 'a"; protocol', {}, CALICO_JOBS)


def test_custom_template_cannot_print_a_hostile_key_unquoted(tmp_path: Path) -> None:
    (tmp_path / "t.template").write_text(
        '{% for h in lsdir("/bgp/v1/host") %}neighbor {{ getv("/bgp/v1/host/" ~ h ~ '
        '"/rr_cluster_id") }};\n{% endfor %}')
    s = base()
    s[keys.resource_key("Node", "b")] = json.dumps({"metadata": {"name": "b"}, "spec": {
        "bgp": {"ipv4Address": "10.0.0.3/16", "routeReflectorClusterID": EVIL}}})
    r = Renderer(tmp_path)
    out = r.render(s, "a", {}, [RenderJob("t.template", "/calico/", ("/bgp/v1/host",))])
    assert EVIL not in out["t.template"]  # the Node was refused at decode time
    # And a value that did reach the key space is refused by the output gate.
    (tmp_path / "u.template").write_text('x {{ "a; protocol bgp evil {" }}\n')
    with pytest.raises(RenderError, match="not a plain token"):
        r.render(s, "a", {}, [RenderJob("u.template", "/calico/", ())])
