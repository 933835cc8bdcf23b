"""Process gauges refreshed on every ``/metrics`` scrape (cheap: a few syscalls, no heap walk)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import threading

import psutil

from otlp_gateway.telemetry.metrics import GatewayMetrics


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
                 "fordblks", "keepcost")]


def _load_mallinfo2():  # glibc >= 2.33; None elsewhere
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        func = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    func.restype = _MallInfo2
    func.argtypes = []
    return func


_mallinfo2 = _load_mallinfo2()
_process = psutil.Process()


def heap_bytes() -> int:
    """Bytes in use from the C allocator: numpy buffers, large Python objects, extension allocations.

    glibc's ``mallinfo2`` (in-use arena chunks + mmapped chunks). CPython's small-object arenas are
    mmapped directly and not included, so this is a lower bound; without glibc it falls back to the
    process's data segment size.
    """
    if _mallinfo2 is not None:
        info = _mallinfo2()
        return int(info.uordblks + info.hblkhd)
    return int(getattr(_process.memory_info(), "data", 0))


def pending_tasks() -> int:
    try:
        return len([t for t in asyncio.all_tasks() if not t.done()])
    except RuntimeError:  # no running loop
        return 0


def refresh_process_metrics(metrics: GatewayMetrics) -> None:
    """Update memory and concurrency gauges.

    ``driftlock_goroutines`` keeps the runbook's Go name so its dashboards and alert rules work
    unchanged; here it counts live threads plus pending asyncio tasks of the running loop.
    """
    metrics.memory_allocated.set(_process.memory_info().rss)
    metrics.memory_heap.set(heap_bytes())
    metrics.goroutines.set(threading.active_count() + pending_tasks())
