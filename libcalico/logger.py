"""Loggers for code that also runs in processes of one call (the CNI plugins): `logging` is
imported when a record at an enabled level is first emitted, not when the module is.

`get(name)` gives a `Logger` with the stdlib methods the project uses (`debug`, `info`,
`warning`, `error`, `exception`; same arguments) that hands each record to
`logging.getLogger(name)`. Records below `threshold` are dropped without importing anything.
The default threshold (0) drops nothing, so a daemon that configures `logging` sees no
difference. A process that knows its level before anything logs sets `threshold` to it and
registers its `logging` configuration with `on_import`: importing `logging` costs ~5 ms,
a tenth of a CNI ADD, and is then paid only when something is worth printing.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40

threshold = 0
_on_import: list[Callable[[], None]] = []


def on_import(fn: Callable[[], None]) -> None:
    """Run `fn` once, right after `logging` is first imported for a record (now, if the
    process has imported it already)."""
    if "logging" in sys.modules:
        fn()
    else:
        _on_import.append(fn)


class Logger:
    __slots__ = ("_real", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self._real: Any = None

    def _emit(self, level: int, msg: object, args: tuple[object, ...],
              kwargs: dict[str, Any]) -> None:
        if level < threshold:
            return
        if self._real is None:
            import logging

            while _on_import:
                _on_import.pop(0)()
            self._real = logging.getLogger(self.name)
        kwargs.setdefault("stacklevel", 3)  # the caller's line, not this module's
        self._real.log(level, msg, *args, **kwargs)

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._emit(DEBUG, msg, args, kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._emit(INFO, msg, args, kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._emit(WARNING, msg, args, kwargs)

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        self._emit(ERROR, msg, args, kwargs)

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("exc_info", True)
        self._emit(ERROR, msg, args, kwargs)


_loggers: dict[str, Logger] = {}


def get(name: str) -> Logger:
    lg = _loggers.get(name)
    if lg is None:
        lg = _loggers[name] = Logger(name)
    return lg
