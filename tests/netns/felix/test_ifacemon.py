"""The interface monitor's event-built map equals a fresh full listing after each change."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.fixtures.netns import NetnsFactory, ns_exec

pytestmark = pytest.mark.netns
REPO = Path(__file__).resolve().parents[3]


def test_event_built_interface_map_matches_listing(netns_factory: NetnsFactory) -> None:
    ns = netns_factory.new("fx-ifmon")
    env_py = f"PYTHONPATH={REPO}"
    r = ns_exec(ns, "env", env_py, sys.executable, str(Path(__file__).with_name(
        "ifacemon_probe.py")), timeout=180, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(r.stdout)
    bad = [x for x in results if not x["ok"]]
    assert not bad, bad
    assert len(results) == 12
