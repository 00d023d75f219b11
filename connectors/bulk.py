"""Garbage collection while a sync reads a vendor in bulk.

A sync makes a few dozen objects for every record it reads (the parsed page, the
validated items, the records), most of them gone a page later. CPython's collector, at
its default thresholds, looks at the youngest objects every 700 allocations and at the
whole heap every hundred of those, so it walked the page being read, and everything
the process had imported, over and over: with bench/sync.py's pages replayed in
process, a Mailchimp full sync of 25,000 people spent about 0.3 s of its 0.75 s
collecting, a Netvisor one 0.2 s of 0.9 s. While a sync runs, the youngest generation
is collected every 10,000 allocations instead: the Mailchimp sync then took 0.59 s.
Reference counting still frees at once everything that is not in a cycle, and what is
in one waits for at most that many allocations, so memory stays flat in the number of
records read; the peak grew by 12-20 MB (bench/sync.py prints it). 50,000 saved
another 0.08 s and held 40 MB more.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

YOUNG_THRESHOLD = 10_000

_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] = gc.get_threshold()


@contextmanager
def bulk_reading() -> Iterator[None]:
    """The collector's youngest generation at ``YOUNG_THRESHOLD`` allocations while
    any sync of this process runs; its thresholds as they were once the last ends."""
    global _active, _saved
    with _lock:
        if _active == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(YOUNG_THRESHOLD, _saved[0]), *_saved[1:])
        _active += 1
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0:
                gc.set_threshold(*_saved)
