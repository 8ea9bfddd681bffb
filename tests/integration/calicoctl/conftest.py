"""Run the installed `calicoctl` console script against the test etcd."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fixtures.etcd import EtcdServer

CALICOCTL = Path(sys.executable).parent / "calicoctl"
DEFAULT_CONFIG = Path("/etc/calico/calicoctl.cfg")


@dataclass
class Ctl:
    etcd: EtcdServer
    config: Path

    def __call__(self, *args: str, input: str | None = None,
                 env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        argv = [str(CALICOCTL), *args]
        if DEFAULT_CONFIG.exists():
            # A default config file would win over ETCD_ENDPOINTS (calicoctl's rule).
            argv += ["--config", str(self.config)]
        base = {k: v for k, v in os.environ.items()
                if not k.startswith(("ETCD_", "CALICO_", "DATASTORE_"))}
        return subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=60, check=False,
            env={**base, "ETCD_ENDPOINTS": self.etcd.endpoint, "DATASTORE_TYPE": "etcdv3",
                 "GRPC_ENABLE_FORK_SUPPORT": "false", **(env or {})},
        )

    def etcd_get(self, key: str) -> str:
        """The raw value etcd holds for `key` ('' when absent), read with etcdctl."""
        return self.etcd.ctl("get", key, "--print-value-only").rstrip("\n")


@pytest.fixture
def ctl(etcd: EtcdServer, tmp_path: Path) -> Ctl:
    cfg = tmp_path / "calicoctl.cfg"
    cfg.write_text("apiVersion: projectcalico.org/v3\nkind: CalicoAPIConfig\nmetadata: {}\n"
                   f"spec:\n  datastoreType: etcdv3\n  etcdEndpoints: {etcd.endpoint}\n")
    return Ctl(etcd, cfg)
