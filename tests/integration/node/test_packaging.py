"""Packaging: the systemd unit passes `systemd-analyze verify`; its environment file is a
configuration calico-node accepts; the container entrypoint dispatches as documented."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from calico_node import nodename, settings

ROOT = Path(__file__).resolve().parents[3]
UNIT = ROOT / "docker" / "systemd" / "calico-node.service"
ENV_FILE = ROOT / "docker" / "systemd" / "calico-node.env"
BIN = Path(sys.executable).parent


def verify(unit: Path) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("systemd-analyze")
    assert exe, "systemd-analyze is missing (Debian package systemd, see .ci/packages.txt)"
    return subprocess.run([exe, "verify", "--man=no", str(unit)], capture_output=True,
                          text=True, timeout=60, check=False)


def installed(tmp_path: Path, bindir: Path) -> Path:
    """The unit as installed with calico-node in `bindir` (the only path that varies)."""
    out = tmp_path / UNIT.name
    out.write_text(UNIT.read_text().replace("/usr/local/bin/", f"{bindir}/"))
    return out


def test_unit_verifies_when_calico_node_is_installed(tmp_path: Path) -> None:
    r = verify(installed(tmp_path, BIN))
    assert r.returncode == 0, r.stderr
    assert "calico-node.service" not in r.stderr, r.stderr


def test_verify_catches_a_missing_binary(tmp_path: Path) -> None:
    r = verify(installed(tmp_path, tmp_path / "nowhere"))
    assert r.returncode != 0
    assert "not executable" in r.stderr


def _env_file() -> dict[str, str]:
    env = {}
    for line in ENV_FILE.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            k, _, v = line.partition("=")
            env[k] = v
    return env


def test_environment_file_is_a_valid_configuration() -> None:
    env = _env_file()
    cfg = settings.parse(env)
    assert cfg.backend == "bird"
    assert [str(p.cidr) for p in cfg.pools] == ["192.168.0.0/16"]
    assert env["ETCD_ENDPOINTS"].startswith("http")
    # an empty NODENAME falls back to the host name
    assert nodename.determine(env, None, "host-a") == "host-a"


@pytest.mark.parametrize("args,expected", [
    ([], ["calico-node"]),
    (["-felix-ready"], ["calico-node", "-felix-ready"]),
    (["calicoctl", "node", "status"], ["calicoctl", "node", "status"]),
])
def test_entrypoint_dispatch(tmp_path: Path, args: list[str], expected: list[str]) -> None:
    for name in ("calico-node", "calicoctl"):
        fake = tmp_path / name
        fake.write_text('#!/bin/sh\nprintf "%s\\n" "$(basename "$0")" "$@"\n')
        fake.chmod(0o755)
    r = subprocess.run(["/bin/sh", str(ROOT / "docker" / "entrypoint.sh"), *args],
                       capture_output=True, text=True, timeout=10, check=True,
                       env={"PATH": f"{tmp_path}:/usr/bin:/bin"})
    assert r.stdout.split() == expected
