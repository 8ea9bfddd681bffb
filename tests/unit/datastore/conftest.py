from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def own_tmp() -> Iterator[Path]:
    """A private temporary directory, removed afterwards. (pytest's tmp_path lives under
    /tmp/pytest-of-<user>/, which a concurrent pytest run on the same machine may prune.)"""
    d = Path(tempfile.mkdtemp(prefix="calico-test-datastore-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
