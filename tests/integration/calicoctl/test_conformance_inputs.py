"""Every non-Kubernetes confd conformance case input applies cleanly with `calicoctl apply`.

The cases are read from ../shared/conformance/calico-confd at test time (never copied here);
without the kit the run fails with a clear message (tests.fixtures.conformance). A case is
non-Kubernetes when the kit's MANIFEST does not mark it `kdd_only`; the Kubernetes-only ones
are not collected and are listed with their reason in the report header (conftest.py).
Oneshot cases apply input/input.yaml; multistep cases run their steps' ops in order
(apply/upsert -> apply, create -> create, update -> replace, delete -> delete KIND NAME) into
a fresh etcd.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from libcalico.model import keys
from tests.fixtures import conformance
from tests.integration.calicoctl.conftest import Ctl


def _cases() -> list[Path]:
    return sorted(conformance.KIT / c["dir"] for c in conformance.in_scope())


def _ops(case: dict[str, Any]) -> list[dict[str, Any]]:
    if case.get("kind") == "multistep":
        return [op for step in case["steps"] for op in step.get("ops", [])]
    return [{"op": "apply", "file": "input/input.yaml"}]


def _names(path: Path) -> list[tuple[str, str]]:
    out = []
    for doc in yaml.safe_load_all(path.read_text()):
        if isinstance(doc, dict):
            out.append((doc["kind"], doc["metadata"]["name"]))
    return out


CASE_DIRS = _cases()


@pytest.mark.parametrize("case_dir", CASE_DIRS or [None],
                         ids=[d.name for d in CASE_DIRS] or [conformance.ABSENT])
def test_case_input_applies_cleanly(ctl: Ctl, case_dir: Path | None) -> None:
    if case_dir is None:
        pytest.fail(conformance.missing(), pytrace=False)
    case = json.loads((case_dir / "case.json").read_text())
    expect: dict[tuple[str, str], bool] = {}
    for op in _ops(case):
        kind = op["op"]
        if kind == "delete":
            r = ctl("delete", op["kind"], op["name"])
            expect[(op["kind"], op["name"])] = False
        else:
            f = case_dir / op["file"]
            verb = {"apply": "apply", "upsert": "apply", "create": "create",
                    "update": "replace"}[kind]
            r = ctl(verb, "-f", str(f))
            for k, n in _names(f):
                expect[(k, n)] = True
        assert r.returncode == 0, f"{case_dir.name} {op}: {r.stderr}"
        assert r.stdout.startswith("Successfully "), r.stdout
    assert expect, f"{case_dir.name}: no resources"
    for (k, n), present in expect.items():
        value = ctl.etcd_get(keys.resource_key(k, n))
        if present:
            assert json.loads(value)["metadata"]["name"] == n, (k, n)
        else:
            assert value == "", (k, n)
