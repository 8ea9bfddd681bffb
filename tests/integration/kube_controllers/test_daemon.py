"""The daemon as the console script builds it from the environment (etcd + KUBECONFIG, all
five controllers): the leak grace period comes from the `default` KubeControllersConfiguration,
every controller passes once, readiness turns Ready, and the passes log their INFO summary
lines."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from calico_kube_controllers.config import Config
from calico_kube_controllers.daemon import Daemon
from calico_kube_controllers.node import NodeController
from calico_kube_controllers.status import check
from calico_node.kubelab.apiserver import ControlPlane
from libcalico.client import Client
from libcalico.datastore import connect
from libcalico.model import codec
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
    backend = connect(cfg.datastore)
    Client(backend).create(codec.decode({
        "apiVersion": "projectcalico.org/v3", "kind": "KubeControllersConfiguration",
        "metadata": {"name": "default"},
        "spec": {"controllers": {"node": {"leakGracePeriod": "1m30s"}}}}))
    d = Daemon(cfg, backend=backend)
    node = next(c for c in d.controllers if isinstance(c, NodeController))
    assert node.grace == 90.0 and node.interval_s == 45.0
    try:
        d.start()
        for loop in d.loops:
            assert loop.wait_passes(1, 60), loop.name
        assert check(status) == (True, "Ready")
    finally:
        d.stop()
        backend.close()
    summaries = [r.getMessage() for r in caplog.records if " pass: " in r.getMessage()
                 or r.getMessage().startswith("node controller pass")]
    assert {m.split(" controller pass")[0] for m in summaries} >= {
        "node", "namespace", "serviceaccount", "workloadendpoint"}
