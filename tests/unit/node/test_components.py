from __future__ import annotations

from pathlib import Path

from calico_node import components
from calico_node.__main__ import _normalise, seed_confdir


def test_bird_backend_runs_bird_bird6_confd_felix_as_calico_does() -> None:
    paths = components.Paths()
    comps = components.components("bird", "node-1", {"DATASTORE_TYPE": "etcdv3"}, paths, "/b")
    assert [c.name for c in comps] == ["bird", "bird6", "confd", "felix"]
    bird = comps[0]
    assert bird.argv == ("bird", "-R", "-s", "/var/run/calico/bird.ctl", "-d", "-c",
                         "/etc/calico/confd/config/bird.cfg")
    assert bird.requires == ("/etc/calico/confd/config/bird.cfg",)
    assert comps[2].argv == ("/b/calico-confd", "--confdir", "/etc/calico/confd")
    felix = comps[3]
    assert felix.env is not None
    assert felix.env["FELIX_FELIXHOSTNAME"] == "node-1"
    assert felix.env["FELIX_DATASTORETYPE"] == "etcdv3"
    assert felix.env["FELIX_HEALTHENABLED"] == "true"


def test_vxlan_and_none_run_felix_only_and_felix_can_be_disabled() -> None:
    p = components.Paths.from_env({"CALICO_RUN_DIR": "/r"})
    assert p.run_dir == "/r" and p.confdir == "/etc/calico/confd"
    for backend in ("vxlan", "none"):
        assert [c.name for c in components.components(backend, "n", {}, p, "/b")] == ["felix"]
    assert components.components("none", "n", {}, p, "/b", disable_felix=True) == []
    env = {"FELIX_HEALTHENABLED": "false"}
    (felix,) = components.components("vxlan", "n", env, p, "/b")
    assert felix.env is not None and felix.env["FELIX_HEALTHENABLED"] == "false"


def test_single_dash_flags_are_accepted() -> None:
    assert _normalise(["-startup", "-felix-ready", "--bird-ready", "-h"]) == [
        "--startup", "--felix-ready", "--bird-ready", "-h"]


def test_seed_confdir_installs_shipped_files_but_never_overwrites(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "conf.d").mkdir(parents=True)
    (src / "templates").mkdir()
    (src / "conf.d" / "bird.toml").write_text("shipped")
    dst = tmp_path / "confd"
    (dst / "templates").mkdir(parents=True)
    (dst / "templates" / "mine.template").write_text("user's")
    seed_confdir(dst, src)
    assert (dst / "conf.d" / "bird.toml").read_text() == "shipped"
    assert [p.name for p in (dst / "templates").iterdir()] == ["mine.template"]
    assert (dst / "config").is_dir()
