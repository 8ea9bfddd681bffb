"""Template resource TOML parsing (confd.resource)."""

from __future__ import annotations

from pathlib import Path

import pytest

from confd import resource
from libcalico.errors import ConfigError

REPO = Path(__file__).resolve().parents[3]

GOOD = """
[template]
src = "bird_aggr.cfg.template"
dest = "/etc/calico/confd/config/bird_aggr.cfg"
prefix = "/calico/"
keys = ["/bgp/v1/host", "/ipam/v2/host//NODENAME/ipv4/block"]
check_cmd = "bird -p -c {{.src}}"
reload_cmd = "birdc configure"
mode = "0640"
uid = 12
gid = 34
"""


def test_parse_reads_every_field() -> None:
    r = resource.parse(GOOD, name="x.toml", node="n1")
    assert r.name == "x.toml"
    assert r.src == "bird_aggr.cfg.template"
    assert r.dest == Path("/etc/calico/confd/config/bird_aggr.cfg")
    assert r.prefix == "/calico/"
    assert r.keys == ("/bgp/v1/host", "/ipam/v2/host//NODENAME/ipv4/block")
    assert r.check_cmd == "bird -p -c {{.src}}"
    assert r.reload_cmd == "birdc configure"
    assert r.mode == 0o640
    assert (r.uid, r.gid) == (12, 34)
    job = r.job()
    assert (job.src, job.prefix, job.keys) == (r.src, r.prefix, r.keys)


def test_unknown_key_is_an_error_naming_key_and_file() -> None:
    text = GOOD.replace('reload_cmd = "birdc configure"', 'reload_command = "birdc configure"')
    with pytest.raises(ConfigError, match=r"bird\.toml: unknown key 'reload_command'"):
        resource.parse(text, name="bird.toml", node="n1")


def test_unknown_table_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"x\.toml: unknown table or key 'extra'"):
        resource.parse(GOOD + "\n[extra]\na = 1\n", name="x.toml", node="n1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[template]\ndest = '/x'\n", "'src' is required"),
        ("[template]\nsrc = 'a'\n", "'dest' is required"),
        ("[template]\nsrc = 'a'\ndest = '/x'\nmode = 'rw'\n", "'mode' is not an octal"),
        ("[template]\nsrc = 'a'\ndest = '/x'\nkeys = 'k'\n", "'keys' must be a list"),
        ("[template]\nsrc = 'a'\ndest = '/x'\nuid = 'root'\n", "'uid' must be an integer"),
        ("[template]\nsrc = '../etc/passwd'\ndest = '/x'\n", "'src' must be a file name"),
        ("[template\nsrc = 'a'\n", "invalid TOML"),
        ("a = 1\n", "unknown table or key 'a'"),
    ],
)
def test_bad_resources_are_rejected(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resource.parse(text, name="bad.toml", node="n1")


def test_defaults_mode_owner() -> None:
    r = resource.parse("[template]\nsrc = 'a'\ndest = '/x'\n", name="a.toml", node="n",
                       default_uid=7, default_gid=8)
    assert r.mode is None
    assert (r.uid, r.gid) == (7, 8)
    assert r.prefix == "/"


def test_dest_root_redirects_absolute_dest(tmp_path: Path) -> None:
    r = resource.parse(GOOD, name="x.toml", node="n1", dest_root=tmp_path)
    assert r.dest == tmp_path / "etc/calico/confd/config/bird_aggr.cfg"


def test_shipped_resources_load_and_order_fragments_first() -> None:
    res = resource.load_dir(REPO, node="n1")
    names = [r.name for r in res]
    assert sorted(names) == sorted(["bird.toml", "bird6.toml", "bird_aggr.toml",
                                    "bird6_aggr.toml", "bird_ipam.toml", "bird6_ipam.toml"])
    for r in res:
        assert r.dest.parent == Path("/etc/calico/confd/config")
        assert r.reload_cmd and "configure" in r.reload_cmd
    checked = {r.name: r.check_cmd for r in res if r.check_cmd}
    assert checked == {"bird.toml": "bird -p -c {{.src}}", "bird6.toml": "bird6 -p -c {{.src}}"}
    order = [r.name for r in resource.processing_order(res)]
    assert order[-2:] == ["bird.toml", "bird6.toml"]


def test_duplicate_dest_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    for n in ("a", "b"):
        (tmp_path / "conf.d" / f"{n}.toml").write_text("[template]\nsrc='s'\ndest='/same'\n")
    with pytest.raises(ConfigError, match=r"also the dest of a\.toml"):
        resource.load_dir(tmp_path, node="n")


def test_missing_conf_d_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no conf\.d"):
        resource.load_dir(tmp_path, node="n")
