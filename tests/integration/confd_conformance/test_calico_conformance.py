"""Calico conformance: every visible case of the shared confd kit, on etcd and on KDD.

For each case the input is written into the datastore as Calico stores it, `calico-confd
--onetime --sync-only` renders the six files (watch mode for multistep cases, one step after
another), and the kit's bird_semantic_diff.py compares each with Calico's golden file. Every
rendered bird.cfg/bird6.cfg must also pass Debian's `bird -p`/`bird6 -p`.

- **etcd** (`etcd-<case>`): the 40 cases that do not need Kubernetes, against the real etcd
  fixture: v3 resources at /calico/resources/v3/projectcalico.org/..., block affinities at
  /calico/ipam/v2/host/....
- **KDD** (`kdd-<case>`): all 48 cases, against the session's real kube-apiserver
  (`tests/fixtures/kube.py`), with confd on `DATASTORE_TYPE=kubernetes`: Calico resources
  through the Kubernetes backend (custom resources; a Node is a Kubernetes Node created first,
  then given its Calico spec, as Calico's harness does), block affinities as BlockAffinity
  resources, and the Kubernetes objects of the Kubernetes-only cases (Services,
  EndpointSlices, Secrets in kube-system) as API objects. Each case deletes what it made, so
  one API server serves the session.

The kit is read from ../shared at test time (never copied); without it the run fails with a
clear message (tests.fixtures.conformance).
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
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from confd import offline
from libcalico.datastore import connect
from libcalico.datastore.api import Backend
from libcalico.datastore.config import DatastoreConfig
from libcalico.errors import DatastoreError, NotFound
from libcalico.model import keys as calico_keys
from tests.fixtures import conformance
from tests.fixtures.conformance import KIT

REPO = Path(__file__).resolve().parents[3]
FILES = ("bird.cfg", "bird6.cfg", "bird_aggr.cfg", "bird6_aggr.cfg", "bird_ipam.cfg",
         "bird6_ipam.cfg")
DEST = Path("etc/calico/confd/config")
STEP_WAIT = 20.0
SECRETS_NS = "kube-system"
K8S_NS = "default"

pytestmark = [pytest.mark.etcd, pytest.mark.bird]


def _all_cases() -> list[dict[str, Any]]:
    if not conformance.MANIFEST.is_file():
        return []
    cases: list[dict[str, Any]] = json.loads(conformance.MANIFEST.read_text())["cases"]
    return cases


PARAMS: list[tuple[str, dict[str, Any] | None]] = (
    [("etcd", c) for c in conformance.in_scope()] + [("kdd", c) for c in _all_cases()]
    or [("etcd", None)])
IDS = [f"{ds}-{c['name']}" if c else conformance.ABSENT for ds, c in PARAMS]


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


# ---------------------------------------------------------------------------------------------
# The two datastores


class Store:
    """Writes a case's input into one datastore and removes it again."""

    def __init__(self, backend: Backend, env: dict[str, str]) -> None:
        self.backend = backend
        self.env = env
        self._undo: list[Callable[[], None]] = []

    def calico(self, key: str, value: str) -> None:
        self.backend.apply(key, value)
        self._undo.append(lambda: self._forget(key))

    def _forget(self, key: str) -> None:
        with contextlib.suppress(NotFound):
            self.backend.delete(key)

    def document(self, doc: Mapping[str, Any], where: str) -> None:
        for key, value in offline.snapshot_from_documents([doc], where).items():
            self.calico(key, value)

    def delete(self, op: Mapping[str, Any]) -> None:
        with contextlib.suppress(NotFound):
            self.backend.delete(calico_keys.resource_key(op["kind"], op["name"]))

    def reset(self) -> None:
        """Remove everything the case made (newest first), even after a failure."""
        errors = []
        for undo in reversed(self._undo):
            try:
                undo()
            except DatastoreError as exc:
                errors.append(str(exc))
        self._undo.clear()
        assert not errors, errors


KUBE_PATHS = {"Service": f"/api/v1/namespaces/{K8S_NS}/services",
              "EndpointSlice": f"/apis/discovery.k8s.io/v1/namespaces/{K8S_NS}/endpointslices",
              "Secret": f"/api/v1/namespaces/{SECRETS_NS}/secrets",
              "Node": "/api/v1/nodes"}
"""Where the Kubernetes objects of the cases are created."""


class KubeStore(Store):
    """KDD: Calico resources through the Kubernetes backend, Kubernetes objects as API
    objects of the session's API server."""

    def __init__(self, backend: Backend, env: dict[str, str], cp: Any) -> None:
        super().__init__(backend, env)
        self.cp = cp

    def calico(self, key: str, value: str) -> None:
        if key.startswith(calico_keys.resource_prefix("Node")):
            self.backend.apply(key, value)  # removed with its Kubernetes Node
            return
        super().calico(key, value)

    def _kube(self, kind: str, doc: Mapping[str, Any], replace: bool = True) -> None:
        coll = KUBE_PATHS[kind]
        name = doc["metadata"]["name"]
        body = {k: v for k, v in doc.items() if k != "status"}
        body["metadata"] = {k: v for k, v in doc["metadata"].items() if k != "namespace"}
        status, reply = self.cp.request("POST", coll, body)
        if status == 409 and replace:
            _, cur = self.cp.request("GET", f"{coll}/{name}")
            body["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"]
            status, reply = self.cp.request("PUT", f"{coll}/{name}", body)
        elif status == 201:
            self._undo.append(lambda: self._kube_delete(kind, name))
        assert status in (200, 201, 409), f"{kind} {name}: {status} {reply}"

    def _kube_delete(self, kind: str, name: str) -> None:
        status, reply = self.cp.request("DELETE",
                                        f"{KUBE_PATHS[kind]}/{name}?gracePeriodSeconds=0")
        assert status in (200, 202, 404), f"delete {kind} {name}: {status} {reply}"

    def document(self, doc: Mapping[str, Any], where: str) -> None:
        kind = doc.get("kind")
        if kind in ("Service", "EndpointSlice", "Secret"):
            self._kube(str(kind), doc)
            return
        if kind == "Node":  # a Calico Node is a Kubernetes Node: made first, as Calico's harness
            name = doc["metadata"]["name"]
            self._kube("Node", {"apiVersion": "v1", "kind": "Node", "metadata": {
                "name": name, "labels": {"kubernetes.io/hostname": name}}}, replace=False)
        super().document(doc, where)

    def delete(self, op: Mapping[str, Any]) -> None:
        if op["kind"] in KUBE_PATHS:
            self._kube_delete(op["kind"], op["name"])
            return
        super().delete(op)


@pytest.fixture
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    datastore, entry = request.param
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CALICO_", "ETCD_", "K8S_")) and k not in ("KUBECONFIG",
                                                                           "NAMESPACE")}
    env.update(GRPC_ENABLE_FORK_SUPPORT="false", PYTHONPATH=str(REPO))
    if entry is None:
        yield Store(None, env)  # type: ignore[arg-type]  # kit absent: the test fails first
        return
    if datastore == "etcd":
        etcd = request.getfixturevalue("etcd")
        backend: Backend = request.getfixturevalue("etcd_backend")
        env.update(ETCD_ENDPOINTS=etcd.endpoint, DATASTORE_TYPE="etcdv3")
        s = Store(backend, env)
        yield s
        return
    cp = request.getfixturevalue("kube_apiserver")
    env.update(DATASTORE_TYPE="kubernetes", KUBECONFIG=str(cp.kubeconfig))
    backend = connect(DatastoreConfig.from_env(env))
    s = KubeStore(backend, env, cp)
    try:
        yield s
    finally:
        try:
            s.reset()
        finally:
            backend.close()


# ---------------------------------------------------------------------------------------------
# Running a case


def _confd_argv(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "confd", "--confdir", str(REPO), "--dest-root", str(out),
            "--sync-only", *extra]


def _apply_file(store: Store, path: Path) -> None:
    docs = offline.load_documents(path.read_text(), str(path))
    for i, doc in enumerate(docs):
        store.document(doc, f"{path.name}: document {i + 1}: ")


def _run_ops(store: Store, case_dir: Path, ops: list[dict[str, Any]]) -> None:
    for op in ops:
        kind = op["op"]
        if kind in ("apply", "upsert", "create", "update"):
            if Path(op["file"]).name.startswith("kubectl-") and not isinstance(store,
                                                                              KubeStore):
                continue  # Kubernetes objects: skipped on etcd, as Calico's harness does
            _apply_file(store, case_dir / op["file"])
        elif kind == "delete":
            store.delete(op)
        elif kind == "endpoint_status_files":
            pass  # copied into place before confd starts (_case_env)
        else:
            raise AssertionError(f"conformance op {kind!r} is not supported by this harness")


def _case_env(case: Mapping[str, Any], case_dir: Path, store: Store, tmp: Path
              ) -> dict[str, str]:
    env = dict(store.env)
    for k, v in (case.get("env") or {}).items():
        if "<case>" in v:  # endpoint-status files: a copy of the kit's, as Felix would write
            src = Path(v.replace("<case>", str(case_dir)))
            dst = tmp / "epstatus"
            shutil.copytree(src, dst)
            v = str(dst)
        env[k] = v
    env["NODENAME"] = case["node_name"]
    return env


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


def _load_affinities(store: Store, case: Mapping[str, Any]) -> None:
    for key, value in offline.affinity_snapshot(case.get("block_affinities") or []).items():
        store.calico(key, value)


@pytest.mark.parametrize("store", PARAMS, ids=IDS, indirect=True)
def test_calico_case(store: Store, tmp_path: Path, semantic_diff: ModuleType,
                     request: pytest.FixtureRequest) -> None:
    entry = request.node.callspec.params["store"][1]
    if entry is None:
        pytest.fail(conformance.missing(), pytrace=False)
    case_dir = KIT / entry["dir"]
    case = json.loads((case_dir / "case.json").read_text())
    out = tmp_path / "out"
    _load_affinities(store, case)
    env = _case_env(case, case_dir, store, tmp_path)
    if entry["kind"] == "oneshot":
        _run_ops(store, case_dir, case["ops"])
        p = subprocess.run(_confd_argv(out, "--onetime"), env=env, cwd=REPO,
                           capture_output=True, text=True, timeout=120, check=False)
        assert p.returncode == 0, f"calico-confd --onetime failed:\n{p.stderr}"
        rendered = out / DEST
        problems = _compare(semantic_diff, case_dir / "expected", rendered)
        problems += _bird_parse(rendered)
        assert not problems, "\n".join(problems) + f"\n--- confd log ---\n{p.stderr[-3000:]}"
        return
    _multistep(case, case_dir, env, out, store, semantic_diff)


def _multistep(case: Mapping[str, Any], case_dir: Path, env: dict[str, str], out: Path,
               store: Store, semantic_diff: ModuleType) -> None:
    log_path = out.parent / "confd.log"
    with open(log_path, "w") as log:
        proc = subprocess.Popen(_confd_argv(out, "--min-interval", "0.2"), env=env, cwd=REPO,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for step in case["steps"]:
            _run_ops(store, case_dir, step["ops"])
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
            _run_ops(store, case_dir, step.get("post_ops") or [])
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
