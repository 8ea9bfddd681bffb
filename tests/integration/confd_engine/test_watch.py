"""calico-confd in watch mode (the default) against a real etcd."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdFactory, EtcdServer
from tests.integration.confd_engine import cluster as c

pytestmark = pytest.mark.etcd


def seed(endpoint: str, nodes: int = 3) -> None:
    be = c.backend(endpoint)
    try:
        for i in range(1, nodes + 1):
            c.node(be, f"n{i}", f"10.20.0.{i}/24")
        c.pool(be, "default-ipv4-ippool", "192.168.0.0/16")
        c.affinity(be, "n1", "192.168.1.0/26")
    finally:
        be.close()


def watch_args(confdir: Path, out: Path) -> tuple[str, ...]:
    return ("--confdir", str(confdir), "--dest-root", str(out))


def test_bgppeer_change_rewrites_dest(etcd: EtcdServer, tmp_path: Path) -> None:
    seed(etcd.endpoint)
    log = tmp_path / "reloads"
    confdir = c.make_confdir(tmp_path, reload_log=log)
    bird = tmp_path / "out" / c.CONFIG_DIR / "bird.cfg"
    with c.daemon(etcd.endpoint, "n1", *watch_args(confdir, tmp_path / "out"),
                  log_path=tmp_path / "confd.log") as d:
        c.wait_for("first render", lambda: "Mesh_10_20_0_3" in c.text(bird), log=d.log)
        c.wait_for("first reload", lambda: "bird" in c.text(log).split(), log=d.log)
        be = c.backend(etcd.endpoint)
        try:
            c.put(be, "BGPPeer", "edge", {"peerIP": "10.20.0.254", "asNumber": 65001})
            c.wait_for("Global peer", lambda: "Global_10_20_0_254" in c.text(bird), log=d.log)
            c.wait_for("reload after the peer",
                       lambda: c.text(log).split().count("bird") == 2, log=d.log)
            c.put(be, "BGPPeer", "edge", {"peerIP": "10.20.0.253", "asNumber": 65001})
            c.wait_for("peer moved", lambda: "Global_10_20_0_253" in c.text(bird)
                       and "Global_10_20_0_254" not in c.text(bird), log=d.log)
            c.delete(be, "BGPPeer", "edge")
            c.wait_for("peer gone", lambda: "Global_10_20_0" not in c.text(bird), log=d.log)
        finally:
            be.close()
        assert "Traceback" not in d.log()


def test_burst_of_500_node_creations_gives_at_most_3_reloads(etcd: EtcdServer,
                                                             tmp_path: Path) -> None:
    seed(etcd.endpoint, nodes=1)
    log = tmp_path / "reloads"
    confdir = c.make_confdir(tmp_path, reload_log=log)
    bird = tmp_path / "out" / c.CONFIG_DIR / "bird.cfg"
    with c.daemon(etcd.endpoint, "n1", *watch_args(confdir, tmp_path / "out"),
                  log_path=tmp_path / "confd.log") as d:
        c.wait_for("first reload", lambda: "bird" in c.text(log).split(), log=d.log)
        log.unlink()
        be = c.backend(etcd.endpoint)
        try:
            for i in range(500):
                c.node(be, f"burst-{i:03d}", f"10.30.{i // 200}.{i % 200 + 1}/16")
        finally:
            be.close()
        c.wait_for("all 500 mesh peers", lambda: c.text(bird).count("protocol bgp Mesh_") == 500,
                   timeout=120, log=d.log)
        # the pass that wrote the last peers has run its reload; let any straggler show up
        c.wait_for("reload", lambda: "bird" in c.text(log).split(), log=d.log)
        time.sleep(2.5)
        reloads = c.text(log).split().count("bird")
        print(f"burst: {reloads} reloads, confd passes:", d.log().count("confd pass"))
        assert 1 <= reloads <= 3, f"{reloads} reloads for a burst of 500 nodes\n{d.log()}"


def test_losing_this_nodes_resource_keeps_the_working_config(etcd: EtcdServer,
                                                            tmp_path: Path) -> None:
    seed(etcd.endpoint)
    log = tmp_path / "reloads"
    confdir = c.make_confdir(tmp_path, reload_log=log)
    cfg = tmp_path / "out" / c.CONFIG_DIR
    with c.daemon(etcd.endpoint, "n1", *watch_args(confdir, tmp_path / "out"),
                  log_path=tmp_path / "confd.log") as d:
        c.wait_for("first pass", lambda: "confd pass" in d.log(), log=d.log)
        assert "Mesh_10_20_0_3" in c.text(cfg / "bird.cfg")
        before = {f: (cfg / f).read_text() for f in c.FILES}
        be = c.backend(etcd.endpoint)
        try:
            c.delete(be, "Node", "n1")
            c.wait_for("error logged", lambda: "no Node resource 'n1'" in d.log(), log=d.log)
            c.delete(be, "Node", "n2")  # more changes while our node is gone
            c.wait_for("second refusal",
                       lambda: d.log().count("no Node resource 'n1'") >= 2, log=d.log)
            assert {f: (cfg / f).read_text() for f in c.FILES} == before
            c.node(be, "n1", "10.20.0.1/24")
            c.wait_for("recovered", lambda: "Mesh_10_20_0_2" not in c.text(cfg / "bird.cfg")
                       and "Mesh_10_20_0_3" in c.text(cfg / "bird.cfg"), log=d.log)
        finally:
            be.close()


def test_etcd_outage_keeps_files_and_confd_recovers(etcd_factory: EtcdFactory,
                                                    tmp_path: Path) -> None:
    srv = etcd_factory.new("confd-outage")
    seed(srv.endpoint)
    log = tmp_path / "reloads"
    confdir = c.make_confdir(tmp_path, reload_log=log)
    cfg = tmp_path / "out" / c.CONFIG_DIR
    with c.daemon(srv.endpoint, "n1", *watch_args(confdir, tmp_path / "out"),
                  log_path=tmp_path / "confd.log") as d:
        c.wait_for("first pass", lambda: "confd pass" in d.log(), log=d.log)
        assert "Mesh_10_20_0_3" in c.text(cfg / "bird.cfg")
        before = {f: ((cfg / f).read_text(), (cfg / f).stat().st_ino) for f in c.FILES}
        srv.stop()
        c.wait_for("outage noticed", lambda: "holding the current configuration" in d.log(),
                   log=d.log)
        time.sleep(1.0)
        assert d.proc.poll() is None, "confd keeps running while etcd is down"
        assert {f: ((cfg / f).read_text(), (cfg / f).stat().st_ino) for f in c.FILES} == before
        srv.cluster_state = "existing"
        srv.start()
        be = c.backend(srv.endpoint)
        try:
            c.node(be, "n4", "10.20.0.4/24")
        finally:
            be.close()
        c.wait_for("change after recovery", lambda: "Mesh_10_20_0_4" in c.text(cfg / "bird.cfg"),
                   timeout=60, log=d.log)


def test_password_file_is_owner_only_and_password_not_logged(etcd: EtcdServer,
                                                             tmp_path: Path) -> None:
    seed(etcd.endpoint)
    secret = "Pa55-never-logged"
    be = c.backend(etcd.endpoint)
    try:
        be.apply("/calico/secrets/bgp-secrets/edge", secret)
        c.put(be, "BGPPeer", "edge", {"peerIP": "10.20.0.254", "asNumber": 65001,
                                      "password": {"secretKeyRef": {"name": "bgp-secrets",
                                                                    "key": "edge"}}})
    finally:
        be.close()
    confdir = c.make_confdir(tmp_path, reload_log=tmp_path / "r")
    cfg = tmp_path / "out" / c.CONFIG_DIR
    r = c.run_confd(etcd.endpoint, "n1", "--onetime", "--log-level", "debug",
                    *watch_args(confdir, tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert f'password "{secret}"' in (cfg / "bird.cfg").read_text()
    assert stat.S_IMODE((cfg / "bird.cfg").stat().st_mode) == 0o600
    assert stat.S_IMODE((cfg / "bird6.cfg").stat().st_mode) == 0o644
    assert secret not in r.stderr + r.stdout
    assert os.listdir(cfg)


def test_interval_mode_polls_the_datastore(etcd: EtcdServer, tmp_path: Path) -> None:
    seed(etcd.endpoint)
    log = tmp_path / "reloads"
    confdir = c.make_confdir(tmp_path, reload_log=log)
    bird = tmp_path / "out" / c.CONFIG_DIR / "bird.cfg"
    with c.daemon(etcd.endpoint, "n1", "--interval", "0.5",
                  *watch_args(confdir, tmp_path / "out"), log_path=tmp_path / "confd.log") as d:
        c.wait_for("first render", lambda: "Mesh_10_20_0_3" in c.text(bird), log=d.log)
        be = c.backend(etcd.endpoint)
        try:
            c.node(be, "n4", "10.20.0.4/24")
        finally:
            be.close()
        c.wait_for("polled change", lambda: "Mesh_10_20_0_4" in c.text(bird), log=d.log)
        c.wait_for("one pass per poll", lambda: d.log().count("confd pass") >= 4, log=d.log)
        assert c.text(log).split().count("bird") == 2, "reload only when something changed"


def test_onetime_and_interval_are_exclusive(etcd: EtcdServer, tmp_path: Path) -> None:
    r = c.run_confd(etcd.endpoint, "n1", "--onetime", "--interval", "5", "--confdir",
                    str(c.make_confdir(tmp_path)))
    assert r.returncode == 2
    assert "exclusive" in r.stderr
