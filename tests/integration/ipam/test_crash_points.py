"""calico-ipam ADD stopped after each of its datastore writes in turn, against a real etcd:
the next ADD on the host settles what the stopped one left unfinished (its affinities are
clean right after it), and once the runtime's DELs ran the IPAM check is clean.

Both write paths: the batching gateway backend the CNI uses (a claim is one transaction) and
a plain Backend (Calico's two-phase claim: pending affinity, block, confirmation), where a
stop between the phases leaves a pending affinity with a block naming the host.

Scenarios: the host's first block is being claimed; or the host's block is full, the
stopped ADD was claiming a second one, and the DEL of an earlier container then frees room
in the first block, so the next ADD is served from the first block and never reaches the
unfinished claim (the case `tests/netns/cni/test_kill_add.py` once caught).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from libcalico.datastore.gateway import GatewayBackend
from libcalico.ipam.check import Report, check
from libcalico.model import keys
from tests.fixtures.etcd import EtcdServer
from tests.integration.ipam import seed

ROOT = Path(__file__).resolve().parents[3]
BLOCK = 4  # addresses per block (blockSize 30)


def run(conf: dict[str, Any], command: str, cid: str, *, after: int = 0, plain: bool,
        count: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "CNI_COMMAND": command, "CNI_CONTAINERID": cid,
           "CNI_NETNS": "/var/run/netns/none", "CNI_IFNAME": "eth0", "CNI_PATH": "/nonexistent",
           "CRASHPOINT_AFTER": str(after), "CRASHPOINT_PLAIN": "1" if plain else "0",
           "CRASHPOINT_COUNT": str(count or "")}
    return subprocess.run([sys.executable, "-m", "tests.integration.ipam.crashpoint",
                           "calico-ipam"], input=json.dumps(conf), env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)


def ok(r: subprocess.CompletedProcess[str]) -> None:
    assert r.returncode == 0, (r.stdout, r.stderr)


def state(be: GatewayBackend, etcd: EtcdServer) -> None:
    etcd.wipe()
    seed.cluster(be, ["n1"], {"p": {"cidr": "10.62.0.0/24", "blockSize": 30}})


def problems(r: Report) -> list[str]:
    return r.affinity_problems + r.block_problems


@pytest.mark.parametrize("plain", [False, True], ids=["batch", "plain"])
@pytest.mark.parametrize("second_block", [False, True], ids=["first-block", "second-block"])
def test_add_stopped_after_every_write_heals(etcd: EtcdServer, tmp_path: Path, plain: bool,
                                             second_block: bool) -> None:
    be = GatewayBackend([etcd.endpoint])
    conf = {"cniVersion": "1.0.0", "name": "net", "type": "calico-ipam",
            "etcd_endpoints": etcd.endpoint, "nodename": "n1",
            "ipam_lock_file": str(tmp_path / "lock")}
    earlier = [f"early{i}" for i in range(BLOCK)] if second_block else []

    def prepare() -> None:
        state(be, etcd)
        for cid in earlier:  # fill the host's first block
            ok(run(conf, "ADD", cid, plain=plain))

    try:
        # how many writes a complete ADD makes here
        prepare()
        counter = tmp_path / "writes"
        ok(run(conf, "ADD", "stopped", plain=plain, count=counter))
        total = int(counter.read_text())
        assert total >= (2 if not plain else 4), total
        unfinished_seen = False
        for n in range(1, total + 1):
            prepare()
            r = run(conf, "ADD", "stopped", after=n, plain=plain)
            assert r.returncode == 137, (n, r.stdout, r.stderr)  # even after its last write
            before = check(be)
            unfinished_seen |= any("pending" in p for p in before.affinity_problems)
            if earlier:
                ok(run(conf, "DEL", earlier[0], plain=plain))  # room in the first block again
            ok(run(conf, "ADD", "next", plain=plain))
            after_add = check(be)
            assert problems(after_add) == [], (n, before.lines(), after_add.lines())
            for cid in [*earlier, "stopped", "next"]:
                ok(run(conf, "DEL", cid, plain=plain))
            final = check(be)
            assert final.clean and final.allocations == {}, (n, final.lines())
            assert be.list(keys.HANDLE_PREFIX).kvs == ()
        if plain:
            assert unfinished_seen, "no stop fell between the phases of a claim"
    finally:
        be.close()
