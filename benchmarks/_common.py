"""Helpers shared by the benchmarks: timing and peak memory of a call, printed as a table."""

from __future__ import annotations

import time
import tracemalloc


def timed(function, *args, repeat=1, **kwargs):
    """Best wall time of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args, **kwargs)
        best = min(best, time.perf_counter() - start)
    return best, result


def peak_memory(function, *args, **kwargs):
    """Peak bytes allocated (through Python's and numpy's allocators) during one call."""
    tracemalloc.start()
    tracemalloc.reset_peak()
    try:
        function(*args, **kwargs)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def print_table(rows, columns):
    widths = [max(len(c), *(len(str(r[c])) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(str(r[c]).ljust(w) for c, w in zip(columns, widths)))
