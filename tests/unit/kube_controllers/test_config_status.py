"""Configuration from the environment, the status file and check-status."""

from __future__ import annotations

from pathlib import Path

import pytest

from calico_kube_controllers import policy
from calico_kube_controllers.__main__ import main
from calico_kube_controllers.config import Config
from calico_kube_controllers.status import Status, check
from libcalico.errors import ConfigError


def test_enabled_controllers_default_and_kdd_drops_etcd_only_ones() -> None:
    assert Config.from_env({}).enabled == ("node",)
    all5 = "node,namespace,serviceaccount,workloadendpoint,policy"
    etcd = Config.from_env({"ENABLED_CONTROLLERS": all5})
    assert etcd.enabled == tuple(all5.split(",")) and not etcd.kdd and not etcd.dropped
    kdd = Config.from_env({"ENABLED_CONTROLLERS": all5, "DATASTORE_TYPE": "kubernetes",
                           "KUBECONFIG": "/nonexistent"})
    assert kdd.kdd and kdd.enabled == ("node",)
    assert kdd.dropped == ("namespace", "serviceaccount", "workloadendpoint", "policy")
    with pytest.raises(ConfigError, match=r"unknown controller.*flannelmigration"):
        Config.from_env({"ENABLED_CONTROLLERS": "node,flannelmigration"})
    assert repr(Config.from_env({"ETCD_PASSWORD": "s3cret"})).count("s3cret") == 0


def test_status_file_and_check_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                      ) -> None:
    f = tmp_path / "st" / "status.json"
    assert not check(f)[0]
    s = Status(f)
    s.set_ready("node", False, "node controller is starting")
    s.set_ready("namespace", True)
    assert check(f) == (False, "node controller is starting")
    assert main(["check-status", "-r", "-f", str(f)]) == 1
    s.set_ready("node", True)
    assert check(f) == (True, "Ready") and s.ready()
    assert main(["check-status", "-l", "-f", str(f)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "Ready"
    assert main(["check-status", "-f", str(f)]) == 1


def test_policy_converter_seam() -> None:
    assert policy.converter() is None
    policy.set_converter(lambda obj: None)
    try:
        conv = policy.converter()
        assert conv is not None and conv({}) is None
    finally:
        policy.set_converter(None)
