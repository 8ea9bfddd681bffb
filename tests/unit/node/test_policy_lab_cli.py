"""`calico-node policy-lab` with a bad file or bad usage: exit 2 with a clear message, and
nothing started (the runner is never called)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from calico_node import __main__ as node_main
from calico_node.policylab import cli, runner


@pytest.fixture(autouse=True)
def no_run(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **k: Any) -> None:
        raise AssertionError("the lab must not start for a bad file")

    monkeypatch.setattr(runner, "run", refuse)


def _exit(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        node_main.main(["policy-lab", *argv])
    out, err = capsys.readouterr()
    assert isinstance(exc.value.code, int)
    return exc.value.code, out, err


def test_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _exit([str(tmp_path / "nope.json")], capsys)
    assert code == 2 and out == ""
    assert "bad lab file" in err and "cannot read" in err


def test_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "lab.json"
    f.write_text("{\"namespaces\": ")
    code, out, err = _exit([str(f)], capsys)
    assert code == 2 and out == "" and "not valid JSON" in err


def test_every_problem_listed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "lab.json"
    f.write_text(json.dumps({
        "namespaces": {"x": {}},
        "pods": [{"namespace": "x", "name": "a", "ip": "10.244.1.1"},
                 {"namespace": "q", "name": "b", "ip": "192.168.0.1"}],
        "steps": [{"name": "s", "probes": [{"port": 70000}]}]}))
    code, out, err = _exit([str(f)], capsys)
    assert code == 2 and out == ""
    assert "pods[1].namespace: 'q' is not one of the file's namespaces" in err
    assert "pods[1].ip: 192.168.0.1 must be an IPv4 address in the lab's pool" in err
    assert "steps[0].probes[0].port: must be a port number 1-65535" in err


def test_expect_without_expected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = tmp_path / "lab.json"
    f.write_text(json.dumps({
        "namespaces": {"x": {}},
        "pods": [{"namespace": "x", "name": "a", "ip": "10.244.1.1"},
                 {"namespace": "x", "name": "b", "ip": "10.244.2.1"}],
        "steps": [{"name": "s", "probes": [{"port": 80}]}]}))
    code, _, err = _exit([str(f), "--expect"], capsys)
    assert code == 2 and "no probe has \"expected\"" in err


def test_bad_usage(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _exit(["lab.json", "--nodes", "0"], capsys)
    assert code == 2 and "--nodes must be between 1 and 40" in err
    code, _, err = _exit([], capsys)
    assert code == 2 and "file" in err
    assert cli.PREFIX == "cplab"
