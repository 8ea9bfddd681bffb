"""A bind-mounted dest (as in a container whose config file is mounted from the host):
os.replace fails with EBUSY and calico-confd rewrites the file in place.

calico-confd runs in a private mount namespace (`unshare --mount`) so the bind mount never
touches the machine's own mount table and disappears with the process.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdServer
from tests.integration.confd_engine import cluster as c

pytestmark = [pytest.mark.netns, pytest.mark.etcd]


def test_bind_mounted_dest_is_rewritten_in_place(etcd: EtcdServer, tmp_path: Path) -> None:
    be = c.backend(etcd.endpoint)
    try:
        c.node(be, "n1", "10.20.0.1/24")
        c.node(be, "n2", "10.20.0.2/24")
    finally:
        be.close()
    confdir = c.make_confdir(tmp_path, reload_log=tmp_path / "reloads")
    cfg = tmp_path / "out" / c.CONFIG_DIR
    cfg.mkdir(parents=True)
    host_file = tmp_path / "host-bird.cfg"
    host_file.write_text("# placeholder from the host\n")
    (cfg / "bird.cfg").write_text("")
    confd = " ".join(c.CONFD)
    script = (f"mount --make-rprivate / && mount --bind {host_file} {cfg / 'bird.cfg'} && "
              f"{confd} --onetime --confdir {confdir} --dest-root {tmp_path / 'out'}")
    r = subprocess.run(["unshare", "--mount", "sh", "-c", script], env=c.env(etcd.endpoint, "n1"),
                       capture_output=True, text=True, timeout=60, cwd=c.REPO, check=False)
    assert r.returncode == 0, r.stderr
    assert "is busy (bind mount?), rewriting it in place" in r.stderr
    # the host side of the mount got the rendered configuration
    assert "protocol bgp Mesh_10_20_0_2" in host_file.read_text()
