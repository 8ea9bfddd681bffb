"""The daemon as the console script builds it from the environment (etcd + KUBECONFIG, all
five controllers): every controller passes once, readiness turns Ready, and the passes log
their INFO summary lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from calico_kube_controllers.config import Config
from calico_kube_controllers.daemon import Daemon
from calico_kube_controllers.status import check
from calico_node.kubelab.apiserver import ControlPlane
from tests.fixtures.etcd import EtcdServer


def test_daemon_from_environment_gets_ready(kube_apiserver: ControlPlane, etcd: EtcdServer,
                                            tmp_path: Path, caplog: pytest.LogCaptureFixture
                                            ) -> None:
    status = tmp_path / "status.json"
    cfg = Config.from_env({
        "ETCD_ENDPOINTS": etcd.endpoint, "KUBECONFIG": str(kube_apiserver.kubeconfig),
        "ENABLED_CONTROLLERS": "node,namespace,serviceaccount,workloadendpoint,policy",
        "STATUS_FILE": str(status)})
    caplog.set_level(logging.INFO, logger="calico_kube_controllers")
    d = Daemon(cfg)
    try:
        d.start()
        for loop in d.loops:
            assert loop.wait_passes(1, 60), loop.name
        assert check(status) == (True, "Ready")
    finally:
        d.stop()
    summaries = [r.getMessage() for r in caplog.records if " pass: " in r.getMessage()
                 or r.getMessage().startswith("node controller pass")]
    assert {m.split(" controller pass")[0] for m in summaries} >= {
        "node", "namespace", "serviceaccount", "workloadendpoint"}
