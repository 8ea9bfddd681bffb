"""Print, in every run's header, which confd conformance cases are out of scope and why.

A hook in a conftest below the root is only called when pytest starts in its directory, so
tests/conftest.py also loads this module as a plugin: the header then shows in whole-suite and
other-directory runs too, and the stash flag keeps it to one copy when both are loaded.
"""

from __future__ import annotations

import pytest

from tests.fixtures import conformance


def pytest_report_header(config: pytest.Config) -> list[str]:
    if config.stash.get(conformance.HEADER_SHOWN, False):
        return []
    config.stash[conformance.HEADER_SHOWN] = True
    return conformance.report_header()
