"""calico-felix's command line: bad configuration is reported and exits non-zero before
anything is touched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def felix(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("FELIX_", "ETCD_"))}
    return subprocess.run([sys.executable, "-m", "felix", *args], capture_output=True,
                          text=True, timeout=60, env={**base, "PYTHONPATH": str(REPO), **env},
                          cwd=REPO, check=False)


def test_bad_environment_value_exits_1_naming_it(tmp_path: Path) -> None:
    r = felix("-c", str(tmp_path / "none.cfg"), env={"FELIX_VXLANVNI": "lots"})
    assert r.returncode == 1
    assert "VXLANVNI from environment" in r.stderr


def test_bad_config_file_exits_1_naming_it(tmp_path: Path) -> None:
    cfg = tmp_path / "felix.cfg"
    cfg.write_text("[global]\nChainInsertMode = sideways\n")
    r = felix("-c", str(cfg), env={})
    assert r.returncode == 1
    assert "ChainInsertMode from config file" in r.stderr


def test_help() -> None:
    r = felix("--help", env={})
    assert r.returncode == 0 and "--config-file" in r.stdout


def test_felix_datastoretype_kubernetes_reads_kubeconfig(tmp_path: Path) -> None:
    """FELIX_DATASTORETYPE=kubernetes overrides DATASTORE_TYPE (as Calico's Felix); the
    kubeconfig named by KUBECONFIG is then what Felix must reach."""
    missing = tmp_path / "no-kubeconfig"
    r = felix("-c", str(tmp_path / "none.cfg"),
              env={"DATASTORE_TYPE": "etcdv3", "FELIX_DATASTORETYPE": "kubernetes",
                   "KUBECONFIG": str(missing)})
    assert r.returncode == 1
    assert f"kubeconfig {missing}: no such file" in r.stderr, r.stderr
