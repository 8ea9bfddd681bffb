"""Calico conformance: every visible case of the shared confd kit, against a real etcd.

For each case the input is written into etcd as Calico stores it (v3 resources at
/calico/resources/v3/projectcalico.org/..., block affinities at /calico/ipam/v2/host/...),
`calico-confd --onetime --sync-only` renders the six files (watch mode for multistep cases,
one step after another), and the kit's bird_semantic_diff.py compares each with Calico's
golden file. Every rendered bird.cfg/bird6.cfg must also pass Debian's `bird -p`/`bird6 -p`.

The kit is read from ../shared at test time (never copied); without it the run fails with a
clear message (tests.fixtures.conformance). Kubernetes-only cases (Secrets, Services) are out of
scope: they are not collected, and conftest.py lists them with their reason in the report
header.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from confd import offline
from libcalico.datastore.api import Backend
from libcalico.datastore.etcd import EtcdBackend
from libcalico.errors import NotFound
from libcalico.model import keys as calico_keys
from tests.fixtures import conformance
from tests.fixtures.conformance import KIT
from tests.fixtures.etcd import EtcdServer

REPO = Path(__file__).resolve().parents[3]
FILES = ("bird.cfg", "bird6.cfg", "bird_aggr.cfg", "bird6_aggr.cfg", "bird_ipam.cfg",
         "bird6_ipam.cfg")
DEST = Path("etc/calico/confd/config")
STEP_WAIT = 20.0

pytestmark = [pytest.mark.etcd, pytest.mark.bird]


CASES = conformance.in_scope()
PARAMS: list[dict[str, Any] | None] = [*CASES] or [None]


@pytest.fixture(scope="module")
def semantic_diff() -> ModuleType:
    if not conformance.MANIFEST.is_file():
        return ModuleType("bird_semantic_diff")  # test_calico_case[kit-absent] fails
    spec = importlib.util.spec_from_file_location("bird_semantic_diff",
                                                  KIT / "bird_semantic_diff.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture
def backend(etcd_backend: EtcdBackend) -> EtcdBackend:
    return etcd_backend


def _env(case: Mapping[str, Any], etcd: EtcdServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CALICO_", "ETCD_"))}
    env.update(case.get("env") or {})
    env.update(NODENAME=case["node_name"], ETCD_ENDPOINTS=etcd.endpoint,
               DATASTORE_TYPE="etcdv3", GRPC_ENABLE_FORK_SUPPORT="false",
               PYTHONPATH=str(REPO))
    return env


def _confd_argv(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "confd", "--confdir", str(REPO), "--dest-root", str(out),
            "--sync-only", *extra]


def _apply_file(backend: Backend, path: Path) -> None:
    docs = offline.load_documents(path.read_text(), str(path))
    for key, value in offline.snapshot_from_documents(docs, f"{path.name}: ").items():
        backend.apply(key, value)


def _run_ops(backend: Backend, case_dir: Path, ops: list[dict[str, Any]]) -> None:
    for op in ops:
        kind = op["op"]
        if kind in ("apply", "upsert", "create", "update"):
            _apply_file(backend, case_dir / op["file"])
        elif kind == "delete":
            with contextlib.suppress(NotFound):
                backend.delete(calico_keys.resource_key(op["kind"], op["name"]))
        else:
            raise AssertionError(f"conformance op {kind!r} is not supported by this harness")


def _compare(semantic_diff: ModuleType, expected: Path, actual: Path) -> list[str]:
    problems = []
    for name in FILES:
        got = actual / name
        if not got.is_file():
            problems.append(f"{name}: not rendered")
            continue
        diffs, _warns = semantic_diff.compare_files(str(expected / name), str(got))
        problems.extend(f"{name}: {d}" for d in diffs)
    return problems


def _bird_parse(out: Path) -> list[str]:
    problems = []
    for daemon, name in (("bird", "bird.cfg"), ("bird6", "bird6.cfg")):
        binary = shutil.which(daemon) or f"/usr/sbin/{daemon}"
        p = subprocess.run([binary, "-p", "-c", str(out / name)], capture_output=True,
                           text=True, timeout=30, check=False)
        if p.returncode != 0:
            problems.append(f"{daemon} -p {name}: {p.stderr.strip()}")
    return problems


def _load_affinities(backend: Backend, case: Mapping[str, Any]) -> None:
    for key, value in offline.affinity_snapshot(case.get("block_affinities") or []).items():
        backend.apply(key, value)


@pytest.mark.parametrize("entry", PARAMS,
                         ids=[c["name"] for c in CASES] or [conformance.ABSENT])
def test_calico_case(entry: dict[str, Any] | None, etcd: EtcdServer, backend: Backend,
                     tmp_path: Path, semantic_diff: ModuleType) -> None:
    if entry is None:
        pytest.fail(conformance.missing(), pytrace=False)
    case_dir = KIT / entry["dir"]
    case = json.loads((case_dir / "case.json").read_text())
    out = tmp_path / "out"
    _load_affinities(backend, case)
    env = _env(case, etcd)
    if entry["kind"] == "oneshot":
        _apply_file(backend, case_dir / "input" / "input.yaml")
        p = subprocess.run(_confd_argv(out, "--onetime"), env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=120, check=False)
        assert p.returncode == 0, f"calico-confd --onetime failed:\n{p.stderr}"
        rendered = out / DEST
        problems = _compare(semantic_diff, case_dir / "expected", rendered)
        problems += _bird_parse(rendered)
        assert not problems, "\n".join(problems)
        return
    _multistep(case, case_dir, env, out, backend, semantic_diff)


def _multistep(case: Mapping[str, Any], case_dir: Path, env: dict[str, str], out: Path,
               backend: Backend, semantic_diff: ModuleType) -> None:
    log_path = out.parent / "confd.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(_confd_argv(out, "--min-interval", "0.2"), env=env, cwd=REPO,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for step in case["steps"]:
            _run_ops(backend, case_dir, step["ops"])
            rendered = out / DEST
            expected = case_dir / step["expected_dir"]
            # Converge: the daemon renders asynchronously after the watch delivers the change.
            deadline = time.monotonic() + STEP_WAIT
            while True:
                problems = _compare(semantic_diff, expected, rendered)
                if not problems or time.monotonic() > deadline or proc.poll() is not None:
                    break
                time.sleep(0.2)
            assert not problems, (f"step {step['name']}:\n" + "\n".join(problems)
                                  + f"\n--- confd log ---\n{log_path.read_text()[-3000:]}")
            assert not _bird_parse(rendered), _bird_parse(rendered)
            _run_ops(backend, case_dir, step.get("post_ops") or [])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
