"""libcalico.logger: the plugins' loggers import `logging` only for a record worth printing,
and then behave as stdlib loggers (caller's line, exc_info, the plugin's configuration)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from calico_cni import context
from libcalico import logger


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records(monkeypatch: pytest.MonkeyPatch) -> Iterator[Records]:
    monkeypatch.setattr(logger, "threshold", 0)
    monkeypatch.setattr(logger, "_on_import", [])
    h = Records()
    real = logging.getLogger("test.lazy")
    real.addHandler(h)
    real.setLevel(logging.DEBUG)
    yield h
    real.removeHandler(h)


def test_records_below_the_threshold_are_dropped(records: Records) -> None:
    log = logger.get("test.lazy")
    logger.threshold = logger.WARNING
    log.debug("no")
    log.info("no")
    log.warning("yes %s", 1)
    log.error("yes %s", 2)
    assert [(r.levelno, r.getMessage()) for r in records.records] == [
        (logging.WARNING, "yes 1"), (logging.ERROR, "yes 2")]


def test_a_record_names_its_caller_and_keeps_exc_info(records: Records) -> None:
    log = logger.get("test.lazy")
    try:
        raise ValueError("boom")
    except ValueError:
        log.exception("failed")
    log.debug("caught", exc_info=ValueError("x"))
    first, second = records.records
    assert first.funcName == "test_a_record_names_its_caller_and_keeps_exc_info"
    assert first.exc_info is not None and first.exc_info[0] is ValueError
    assert second.levelno == logging.DEBUG and second.exc_info is not None
    assert logger.get("test.lazy") is log


def test_on_import_runs_at_once_when_logging_is_loaded(records: Records) -> None:
    ran: list[int] = []
    logger.on_import(lambda: ran.append(1))
    assert ran == [1] and logger._on_import == []


def test_the_plugin_level_sets_the_threshold(records: Records,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging, "basicConfig", lambda **kw: None)
    context.setup_logging("info")
    assert logger.threshold == logger.INFO
    context.setup_logging("")
    assert logger.threshold == logger.WARNING
    context.setup_logging("debug")
    logger.get("test.lazy").debug("seen")
    assert [r.getMessage() for r in records.records] == ["seen"]
