"""Logging setup. Only entry points call `configure`; no other module adds handlers."""

from __future__ import annotations

import logging
import os
import sys

_FORMAT = "%(asctime)s [%(levelname)s] %(name)s: %(message)s"


def configure(component: str, level: str | None = None) -> None:
    """Configure the root logger for one process. `level` defaults to $LOG_LEVEL or INFO."""
    name = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    if name == "WARN":
        name = "WARNING"
    numeric = logging.getLevelName(name)
    if not isinstance(numeric, int):
        numeric = logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(f"{component} " + _FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
