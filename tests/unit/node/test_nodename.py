from __future__ import annotations

from pathlib import Path

import pytest

from calico_node import nodename
from libcalico.errors import ConfigError


def test_order_nodename_then_file_then_hostname_env_then_kernel() -> None:
    assert nodename.determine({"NODENAME": "a", "HOSTNAME": "b"}, "c", "d") == "a"
    assert nodename.determine({"HOSTNAME": "b"}, "c\n", "d") == "c"
    assert nodename.determine({"HOSTNAME": "Bee"}, None, "d") == "bee"
    assert nodename.determine({}, "  ", "Dee.Example") == "dee.example"


def test_invalid_name_names_its_source() -> None:
    with pytest.raises(ConfigError, match="NODENAME='Bad_Name'"):
        nodename.determine({"NODENAME": "Bad_Name"}, None, "x")
    with pytest.raises(ConfigError, match="nodename file"):
        nodename.determine({}, "-x-", "x")


def test_write_then_read_round_trip(tmp_path: Path) -> None:
    env = {"CALICO_NODENAME_FILE": str(tmp_path / "sub" / "nodename")}
    path = nodename.write(env, "node-1")
    assert path.read_text() == "node-1"
    assert nodename.read(env) == "node-1"
    assert [p.name for p in path.parent.iterdir()] == ["nodename"]
