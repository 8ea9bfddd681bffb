"""Pausing the cyclic garbage collector while many long-lived objects are built at once."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

PURE = True


@contextlib.contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a listing is decoded. Decoding builds a few
    long-lived objects per value and no reference cycles; with the collector running, the
    whole heap is rescanned several times while they pile up (a third of the time of a
    10,000-object list in bench/datastore.py). Reference counting still frees everything;
    the collector's previous state is restored (another thread that paused it keeps it)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
