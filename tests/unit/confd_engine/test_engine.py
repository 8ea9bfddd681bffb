"""One pass of the engine (confd.processor.Engine) with a fake renderer and shell."""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from confd import processor, resource, stage
from confd.render import RenderError, RenderJob
from libcalico import proc
from libcalico.errors import CommandFailed
from libcalico.model import keys

NODE_KEY = keys.resource_key("Node", "n1")
SNAP = {NODE_KEY: "{}"}


class FakeRender:
    """Renders `<src> rev=<snapshot['rev']>`; fails for sources listed in `broken`."""

    def __init__(self) -> None:
        self.broken: set[str] = set()
        self.calls = 0

    def __call__(self, snapshot: Mapping[str, str], node: str, environ: Mapping[str, str],
                 jobs: Sequence[RenderJob]) -> dict[str, str]:
        self.calls += 1
        for j in jobs:
            if j.src in self.broken:
                raise RenderError(f"template {j.src}: 'view' is undefined")
        return {j.src: f"{j.src} rev={snapshot.get('rev', '0')}\n" for j in jobs}


class Shell:
    def __init__(self) -> None:
        self.calls: list[str] = []
        self.fail: set[str] = set()
        self.fail_if: Callable[[str], bool] = lambda command: False

    def __call__(self, command: str) -> proc.Completed:
        self.calls.append(command)
        if any(f in command for f in self.fail) or self.fail_if(command):
            raise CommandFailed(["sh", "-c", command], 1, "", "boom")
        return proc.Completed(("sh",), 0, "", "")


def resources(tmp_path: Path) -> list[resource.TemplateResource]:
    out = []
    for name, check, reload in (
        ("bird", "check4 {{.src}}", "reload4"), ("bird_aggr", "", "reload4"),
        ("bird_ipam", "", "reload4"), ("bird6", "check6 {{.src}}", "reload6"),
    ):
        text = (f'[template]\nsrc = "{name}.t"\ndest = "/cfg/{name}.cfg"\n'
                f'check_cmd = "{check}"\nreload_cmd = "{reload}"\n')
        out.append(resource.parse(text, name=f"{name}.toml", node="n1", dest_root=tmp_path,
                                  default_uid=os.geteuid(), default_gid=os.getegid()))
    return out


def engine(tmp_path: Path, **kw: object) -> tuple[processor.Engine, FakeRender, Shell]:
    r, sh = FakeRender(), Shell()
    e = processor.Engine(resources(tmp_path), r, "n1", {}, shell=sh, **kw)  # type: ignore[arg-type]
    return e, r, sh


def test_first_pass_writes_fragments_before_checked_files(tmp_path: Path) -> None:
    e, _, sh = engine(tmp_path)
    result = e.apply(SNAP, 5)
    assert result.ok
    assert result.changed == ("bird_aggr.toml", "bird_ipam.toml", "bird.toml", "bird6.toml")
    assert [c.split()[0] for c in sh.calls] == ["check4", "check6", "reload4", "reload6"]
    assert (tmp_path / "cfg/bird.cfg").read_text() == "bird.t rev=0\n"


def test_one_reload_per_command_per_pass_and_none_without_change(tmp_path: Path) -> None:
    e, _, sh = engine(tmp_path)
    e.apply(SNAP)
    sh.calls.clear()
    assert e.apply(SNAP).changed == ()
    assert sh.calls == []
    e.apply({**SNAP, "rev": "2"})
    assert sh.calls.count("reload4") == 1 and sh.calls.count("reload6") == 1


def test_render_error_keeps_that_dest_and_updates_the_others(tmp_path: Path) -> None:
    e, r, _ = engine(tmp_path)
    e.apply(SNAP)
    r.broken.add("bird_ipam.t")
    result = e.apply({**SNAP, "rev": "3"})
    assert set(result.failed) == {"bird_ipam.toml"}
    assert "render failed" in result.failed["bird_ipam.toml"]
    assert (tmp_path / "cfg/bird_ipam.cfg").read_text() == "bird_ipam.t rev=0\n"
    assert (tmp_path / "cfg/bird.cfg").read_text() == "bird.t rev=3\n"


def test_check_failure_is_reported_and_dest_kept(tmp_path: Path) -> None:
    e, _, sh = engine(tmp_path)
    e.apply(SNAP)
    sh.fail.add("check6")
    result = e.apply({**SNAP, "rev": "4"})
    assert set(result.failed) == {"bird6.toml"}
    assert (tmp_path / "cfg/bird6.cfg").read_text() == "bird6.t rev=0\n"
    assert "reload6" not in sh.calls[-2:]


def test_missing_node_resource_blocks_the_pass_and_wipes_nothing(tmp_path: Path) -> None:
    e, r, _ = engine(tmp_path)
    e.apply(SNAP)
    for snapshot in ({}, {"rev": "9"}):
        result = e.apply(snapshot)
        assert result.blocked and not result.ok
        assert "no Node resource 'n1'" in result.blocked
    assert r.calls == 1
    assert (tmp_path / "cfg/bird.cfg").read_text() == "bird.t rev=0\n"


def test_failed_reload_is_retried_on_the_next_pass(tmp_path: Path) -> None:
    e, _, sh = engine(tmp_path)
    sh.fail.add("reload4")
    first = e.apply(SNAP)
    assert "bird.toml" in first.failed and "reload_cmd failed" in first.failed["bird.toml"]
    sh.fail.clear()
    sh.calls.clear()
    second = e.apply(SNAP)
    assert second.ok and second.changed == ()
    assert sh.calls == ["reload4"]


def test_sync_only_runs_no_commands(tmp_path: Path) -> None:
    e, _, sh = engine(tmp_path, options=stage.Options(sync_only=True))
    assert e.apply(SNAP).ok
    assert sh.calls == []
    assert (tmp_path / "cfg/bird6.cfg").exists()


def test_noop_prints_diffs_and_writes_nothing(tmp_path: Path) -> None:
    out = io.StringIO()
    e, _, sh = engine(tmp_path, options=stage.Options(noop=True), diff_out=out)
    result = e.apply(SNAP)
    assert len(result.changed) == 4
    assert "+bird.t rev=0" in out.getvalue()
    assert sh.calls == []
    assert not (tmp_path / "cfg").exists()


def test_prefixes_cover_the_renderer_snapshot() -> None:
    p = processor.prefixes("n1")
    assert "/calico/resources/v3/projectcalico.org/nodes/" in p
    assert "/calico/resources/v3/projectcalico.org/bgppeers/" in p
    assert "/calico/resources/v3/projectcalico.org/ippools/" in p
    assert "/calico/ipam/v2/host/n1/" in p


def aggr_is_bad(tmp_path: Path) -> Callable[[str], bool]:
    """A check4 that, like `bird -p`, reads the fragment bird.cfg includes from dest's dir."""
    def pred(command: str) -> bool:
        aggr = tmp_path / "cfg/bird_aggr.cfg"
        return command.startswith("check4") and aggr.exists() and "BAD" in aggr.read_text()
    return pred


class BadAggr(FakeRender):
    def __call__(self, snapshot: Mapping[str, str], node: str, environ: Mapping[str, str],
                 jobs: Sequence[RenderJob]) -> dict[str, str]:
        out = super().__call__(snapshot, node, environ, jobs)
        if "bird_aggr.t" in out and snapshot.get("aggr") == "bad":
            out["bird_aggr.t"] = "BAD\n"
        return out


def test_fragment_rejected_by_the_including_file_is_put_back(tmp_path: Path) -> None:
    sh = Shell()
    sh.fail_if = aggr_is_bad(tmp_path)
    e = processor.Engine(resources(tmp_path), BadAggr(), "n1", {}, shell=sh)
    assert e.apply(SNAP).ok
    aggr = tmp_path / "cfg/bird_aggr.cfg"
    good = aggr.read_text()
    sh.calls.clear()
    # only the fragment changes: bird.cfg is unchanged, so it is checked on dest
    result = e.apply({**SNAP, "aggr": "bad"})
    assert set(result.failed) == {"bird_aggr.toml"}
    assert "rejected by bird.toml's check_cmd" in result.failed["bird_aggr.toml"]
    assert "put back as it was" in result.failed["bird_aggr.toml"]
    assert aggr.read_text() == good
    assert "reload4" not in sh.calls
    assert sorted(os.listdir(tmp_path / "cfg")) == sorted(
        ["bird.cfg", "bird_aggr.cfg", "bird_ipam.cfg", "bird6.cfg"])


def test_fragment_checked_through_a_changed_including_file(tmp_path: Path) -> None:
    sh = Shell()
    sh.fail_if = aggr_is_bad(tmp_path)
    e = processor.Engine(resources(tmp_path), BadAggr(), "n1", {}, shell=sh)
    assert e.apply(SNAP).ok
    aggr = tmp_path / "cfg/bird_aggr.cfg"
    good, bird = aggr.read_text(), (tmp_path / "cfg/bird.cfg").read_text()
    # both change: bird.cfg's stage check sees the new fragment and fails; both stay old
    result = e.apply({**SNAP, "aggr": "bad", "rev": "7"})
    assert {"bird.toml", "bird_aggr.toml"} <= set(result.failed)
    assert aggr.read_text() == good
    assert (tmp_path / "cfg/bird.cfg").read_text() == bird
    # a good fragment passes the same route
    result = e.apply({**SNAP, "rev": "8"})
    assert result.ok and "bird_aggr.toml" in result.changed


def test_first_run_check_failure_installs_no_bird_cfg(tmp_path: Path) -> None:
    sh = Shell()
    sh.fail.add("check4")
    e = processor.Engine(resources(tmp_path), FakeRender(), "n1", {}, shell=sh)
    result = e.apply(SNAP)
    assert "bird.toml" in result.failed
    # bird.cfg never existed: nothing BIRD could load, the fragments may stay for the retry
    assert not (tmp_path / "cfg/bird.cfg").exists()


def test_two_resources_may_share_a_template(tmp_path: Path) -> None:
    res = resources(tmp_path)
    text = ('[template]\nsrc = "bird.t"\ndest = "/cfg/copy.cfg"\nprefix = "/other"\n')
    res.append(resource.parse(text, name="copy.toml", node="n1", dest_root=tmp_path,
                              default_uid=os.geteuid(), default_gid=os.getegid()))
    render = FakeRender()
    e = processor.Engine(res, render, "n1", {}, shell=Shell())
    assert e.apply(SNAP).ok
    assert (tmp_path / "cfg/copy.cfg").read_text() == "bird.t rev=0\n"
    assert render.calls == 2, "one render call per batch of distinct templates"
