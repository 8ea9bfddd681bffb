"""Rendering the shipped templates: determinism, StrictUndefined, errors, the six files."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from confd.render import CALICO_JOBS, Renderer, RenderError, RenderJob
from tests.unit.confd_view import snap


def cluster() -> dict[str, str]:
    s = snap.mesh(12)
    s |= snap.snapshot(
        snap.config(communities=[{"name": "c", "value": "100:1"}],
                    prefixAdvertisements=[{"cidr": "10.0.0.0/16", "communities": ["c"]}],
                    listenPort=1790),
        snap.pool("p1", "10.10.0.0/16", ipipMode="CrossSubnet"),
        snap.pool("p2", "fd10::/64"),
        snap.peer("edge", peerIP="192.0.2.1", asNumber=65001, filters=["f"]),
        snap.bgpfilter("f", exportV4=[{"action": "Accept", "cidr": "10.10.0.0/16",
                                       "matchOperator": "In"}]),
        snap.affinity("node-0000", "10.10.0.0/26"), snap.affinity("node-0000", "fd10::/122"),
    )
    return s


def render(s: dict[str, str], renderer: Renderer | None = None, node: str = "node-0000"
           ) -> dict[str, str]:
    r = renderer or Renderer(snap.TEMPLATES)
    return r.render(s, node, {"NODENAME": node}, CALICO_JOBS)


def test_renders_all_six_files_with_the_expected_peers() -> None:
    out = render(cluster())
    assert set(out) == {j.src for j in CALICO_JOBS}
    bird = out["bird.cfg.template"]
    assert bird.count("protocol bgp Mesh_") == 11
    assert "protocol bgp Global_192_0_2_1 from bgp_template" in bird
    assert "'bgp_f_exportFilterV4'();" in bird
    assert "router id 10.0.0.1;" in bird and "listen bgp port 1790;" in bird
    assert "route 10.10.0.0/26 blackhole;" in out["bird_aggr.cfg.template"]
    assert "route fd10::/122 blackhole;" in out["bird6_aggr.cfg.template"]
    assert "krt_tunnel" not in "".join(out.values())


def test_same_input_gives_identical_bytes_whatever_the_snapshot_order() -> None:
    s = cluster()
    first = render(s)
    items = list(s.items())
    for seed in range(3):
        random.Random(seed).shuffle(items)
        assert render(dict(items)) == first
    # The same renderer again (cached decode) gives the same bytes too.
    r = Renderer(snap.TEMPLATES)
    assert render(s, r) == render(dict(reversed(items)), r) == first


def test_decode_cache_follows_changes() -> None:
    r = Renderer(snap.TEMPLATES)
    s = cluster()
    assert "Mesh_10_0_0_12" in render(s, r)["bird.cfg.template"]
    k, v = snap.node("node-0011", "10.0.0.99/16")
    s[k] = v
    bird = render(s, r)["bird.cfg.template"]
    assert "Mesh_10_0_0_99" in bird and "Mesh_10_0_0_12" not in bird


def test_strict_undefined_and_template_errors_are_render_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.template").write_text("router id {{ v4.no_such_field }};\n")
    (tmp_path / "syntax.template").write_text("{% if %}\n")
    (tmp_path / "keys.template").write_text('{{ getv("/nope") }}\n')
    r = Renderer(tmp_path)
    s = cluster()
    for src, msg in (("bad.template", "no_such_field"), ("syntax.template", "syntax"),
                     ("keys.template", "key does not exist"), ("absent.template", "not found")):
        with pytest.raises(RenderError, match=msg):
            r.render(s, "node-0000", {}, [RenderJob(src, "/calico/", ("/bgp",))])


def test_unknown_node_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="no Node resource"):
        render(cluster(), node="ghost")


def test_custom_template_walks_keys() -> None:
    tpl_dir = Path(__file__).parent / "_tpl"
    r = Renderer(tpl_dir)
    out = r.render(cluster(), "node-0000", {}, [RenderJob("hosts.template", "/calico/",
                                                          ("/bgp/v1/host",))])
    text = out["hosts.template"]
    assert text.splitlines()[:2] == ["# node-0000 10.0.0.1", "# node-0001 10.0.0.2"]
