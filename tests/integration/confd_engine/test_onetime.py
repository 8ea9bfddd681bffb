"""calico-confd --onetime against a real etcd, with Debian's bird -p as check_cmd."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.integration.confd_engine import cluster as c

pytestmark = pytest.mark.etcd


@pytest.fixture
def three_nodes(etcd: EtcdServer) -> EtcdServer:
    be = c.backend(etcd.endpoint)
    try:
        c.node(be, "n1", "10.20.0.1/24")
        c.node(be, "n2", "10.20.0.2/24")
        c.node(be, "n3", "10.20.0.3/24")
        c.pool(be, "default-ipv4-ippool", "192.168.0.0/16")
        c.affinity(be, "n1", "192.168.1.0/26")
    finally:
        be.close()
    return etcd


def onetime(etcd: EtcdServer, confdir: Path, out: Path, *extra: str,
            node: str = "n1") -> tuple[int, str, str]:
    r = c.run_confd(etcd.endpoint, node, "--onetime", "--confdir", str(confdir),
                    "--dest-root", str(out), *extra)
    return r.returncode, r.stdout, r.stderr


def test_renders_all_six_files_that_bird_accepts(three_nodes: EtcdServer, tmp_path: Path) -> None:
    log = tmp_path / "reloads"
    confdir = c.make_confdir(tmp_path, reload_log=log)
    rc, _, err = onetime(three_nodes, confdir, tmp_path / "out")
    assert rc == 0, err
    cfg = tmp_path / "out" / c.CONFIG_DIR
    assert sorted(os.listdir(cfg)) == sorted(c.FILES), "six files and no stage files"
    bird = (cfg / "bird.cfg").read_text()
    assert "protocol bgp Mesh_10_20_0_2" in bird and "protocol bgp Mesh_10_20_0_3" in bird
    assert "192.168.1.0/26" in (cfg / "bird_aggr.cfg").read_text()
    # one reload per BIRD, not one per changed file
    assert sorted(c.text(log).split()) == ["bird", "bird6"]
    for f in c.FILES:
        assert stat.S_IMODE((cfg / f).stat().st_mode) == 0o644


def test_second_run_changes_nothing(three_nodes: EtcdServer, tmp_path: Path) -> None:
    log = tmp_path / "reloads"
    confdir = c.make_confdir(tmp_path, reload_log=log)
    assert onetime(three_nodes, confdir, tmp_path / "out")[0] == 0
    cfg = tmp_path / "out" / c.CONFIG_DIR
    before = {f: (cfg / f).stat() for f in c.FILES}
    log.unlink()
    rc, _, err = onetime(three_nodes, confdir, tmp_path / "out")
    assert rc == 0, err
    for f in c.FILES:
        st = (cfg / f).stat()
        assert (st.st_ino, st.st_mtime_ns) == (before[f].st_ino, before[f].st_mtime_ns), f
    assert not log.exists(), "no reload when nothing changed"


def test_check_failure_keeps_dest_and_exits_non_zero(three_nodes: EtcdServer,
                                                     tmp_path: Path) -> None:
    log = tmp_path / "reloads"
    confdir = c.make_confdir(tmp_path, reload_log=log, copy_templates=True)
    assert onetime(three_nodes, confdir, tmp_path / "out")[0] == 0
    cfg = tmp_path / "out" / c.CONFIG_DIR
    good = (cfg / "bird.cfg").read_text()
    inode = (cfg / "bird.cfg").stat().st_ino
    # A template that renders something stock BIRD rejects: the real `bird -p` must refuse it.
    tpl = confdir / "templates" / "bird.cfg.template"
    tpl.write_text(tpl.read_text() + "\nprotocol bogus {\n")
    log.unlink()
    rc, _, err = onetime(three_nodes, confdir, tmp_path / "out")
    assert rc == 1
    assert "bird.toml: check_cmd failed" in err
    assert (cfg / "bird.cfg").read_text() == good
    assert (cfg / "bird.cfg").stat().st_ino == inode
    assert sorted(os.listdir(cfg)) == sorted(c.FILES), "stage file removed"
    assert not log.exists()


def test_keep_stage_file_keeps_the_rejected_stage(three_nodes: EtcdServer,
                                                  tmp_path: Path) -> None:
    confdir = c.make_confdir(tmp_path, reload_log=tmp_path / "r",
                             check_cmds={"bird": "bird -p -c {{.src}} && false"})
    rc, _, _ = onetime(three_nodes, confdir, tmp_path / "out", "--keep-stage-file")
    assert rc == 1
    cfg = tmp_path / "out" / c.CONFIG_DIR
    staged = [n for n in os.listdir(cfg) if n.startswith(".bird.cfg")]
    assert len(staged) == 1
    assert "protocol bgp Mesh_10_20_0_2" in (cfg / staged[0]).read_text()
    assert not (cfg / "bird.cfg").exists()


def test_template_error_keeps_dest_and_exits_non_zero(three_nodes: EtcdServer,
                                                      tmp_path: Path) -> None:
    confdir = c.make_confdir(tmp_path, reload_log=tmp_path / "r", copy_templates=True)
    assert onetime(three_nodes, confdir, tmp_path / "out")[0] == 0
    cfg = tmp_path / "out" / c.CONFIG_DIR
    good = (cfg / "bird_ipam.cfg").read_text()
    tpl = confdir / "templates" / "bird_ipam.cfg.template"
    tpl.write_text(tpl.read_text() + "\n{{ no_such_variable.field }}\n")
    be = c.backend(three_nodes.endpoint)
    try:
        c.pool(be, "second", "172.30.0.0/16")
    finally:
        be.close()
    rc, _, err = onetime(three_nodes, confdir, tmp_path / "out")
    assert rc == 1
    assert "bird_ipam.toml: render failed" in err
    assert (cfg / "bird_ipam.cfg").read_text() == good
    assert "172.30.0.0/16" not in (cfg / "bird_ipam.cfg").read_text()


def test_noop_prints_a_diff_and_writes_nothing(three_nodes: EtcdServer, tmp_path: Path) -> None:
    log = tmp_path / "reloads"
    confdir = c.make_confdir(tmp_path, reload_log=log)
    assert onetime(three_nodes, confdir, tmp_path / "out")[0] == 0
    cfg = tmp_path / "out" / c.CONFIG_DIR
    before = {f: ((cfg / f).read_text(), (cfg / f).stat().st_mtime_ns) for f in c.FILES}
    log.unlink()
    be = c.backend(three_nodes.endpoint)
    try:
        c.node(be, "n4", "10.20.0.4/24")
    finally:
        be.close()
    rc, out, err = onetime(three_nodes, confdir, tmp_path / "out", "--noop")
    assert rc == 0, err
    assert f"+++ {cfg / 'bird.cfg'}" in out
    assert any(line.startswith("+protocol bgp Mesh_10_20_0_4") for line in out.splitlines())
    for f in c.FILES:
        assert ((cfg / f).read_text(), (cfg / f).stat().st_mtime_ns) == before[f]
    assert sorted(os.listdir(cfg)) == sorted(c.FILES)
    assert not log.exists()


def test_sync_only_runs_neither_check_nor_reload(three_nodes: EtcdServer, tmp_path: Path) -> None:
    log = tmp_path / "reloads"
    confdir = c.make_confdir(tmp_path, reload_log=log,
                             check_cmds={"bird": "false", "bird6": "false"})
    rc, _, err = onetime(three_nodes, confdir, tmp_path / "out", "--sync-only")
    assert rc == 0, err
    assert (tmp_path / "out" / c.CONFIG_DIR / "bird.cfg").exists()
    assert not log.exists()


def test_missing_node_resource_writes_nothing(three_nodes: EtcdServer, tmp_path: Path) -> None:
    confdir = c.make_confdir(tmp_path, reload_log=tmp_path / "r")
    rc, _, err = onetime(three_nodes, confdir, tmp_path / "out", node="ghost")
    assert rc == 1
    assert "no Node resource 'ghost'" in err
    assert not (tmp_path / "out").exists()


def test_unknown_toml_key_is_a_startup_error(etcd: EtcdServer, tmp_path: Path) -> None:
    confdir = c.make_confdir(tmp_path, reload_log=tmp_path / "r")
    p = confdir / "conf.d" / "bird.toml"
    p.write_text(p.read_text() + 'owner = "root"\n')
    rc, _, err = onetime(etcd, confdir, tmp_path / "out")
    assert rc == 1
    assert "bird.toml: unknown key 'owner'" in err
    assert not (tmp_path / "out").exists()


def test_unreachable_datastore_fails_onetime(tmp_path: Path) -> None:
    from tests.fixtures.etcd import free_port
    confdir = c.make_confdir(tmp_path, reload_log=tmp_path / "r")
    r = c.run_confd(f"http://127.0.0.1:{free_port()}", "n1", "--onetime", "--confdir",
                    str(confdir), "--dest-root", str(tmp_path / "out"))
    assert r.returncode == 1
    assert not (tmp_path / "out").exists()


def test_fragment_bird_rejects_is_put_back(three_nodes: EtcdServer, tmp_path: Path) -> None:
    """bird_aggr.cfg has no check_cmd of its own: it is checked through bird.cfg (real bird -p
    on the installed bird.cfg, which includes it) and put back when BIRD rejects it."""
    log = tmp_path / "reloads"
    confdir = c.make_confdir(tmp_path, reload_log=log, copy_templates=True)
    assert onetime(three_nodes, confdir, tmp_path / "out")[0] == 0
    cfg = tmp_path / "out" / c.CONFIG_DIR
    good = (cfg / "bird_aggr.cfg").read_text()
    tpl = confdir / "templates" / "bird_aggr.cfg.template"
    tpl.write_text(tpl.read_text() + "\nfunction broken ( { }\n")
    log.unlink()
    rc, _, err = onetime(three_nodes, confdir, tmp_path / "out")
    assert rc == 1
    assert "bird_aggr.toml: rejected by bird.toml's check_cmd" in err
    assert (cfg / "bird_aggr.cfg").read_text() == good
    assert sorted(os.listdir(cfg)) == sorted(c.FILES)
    assert not log.exists(), "no reload for a rejected fragment"
    # BIRD still accepts what is on disk
    subprocess.run(["bird", "-p", "-c", str(cfg / "bird.cfg")], check=True, timeout=30)
