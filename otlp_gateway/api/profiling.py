"""On-demand diagnostics, the Python analogue of the runbook's ``go tool pprof`` step.

CPU: pyinstrument samples the event-loop thread for N seconds with ``async_mode="disabled"``, so every
coroutine, callback and the loop machinery that ran during the window is in the profile (not only the
request that asked for it). Worker threads (numba ``nogil`` kernels) are not sampled: pyinstrument
profiles one thread, and time inside compiled kernels is opaque to Python profilers anyway; their cost
shows up as the callers awaiting them.

Memory: tracemalloc (started for the report when it is off) plus the garbage collector's object counts.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import time
import tracemalloc
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from .runtime_metrics import _process, heap_bytes
from .schemas import MemoryAllocation, MemoryReport, ObjectTypeCount

if TYPE_CHECKING:  # pyinstrument is loaded by the first profile, not at start-up
    from pyinstrument.session import Session

ProfileFormat = Literal["text", "html", "speedscope"]
MEDIA_TYPES: dict[str, str] = {"text": "text/plain", "html": "text/html", "speedscope": "application/json"}


class DiagnosticsBusyError(RuntimeError):
    """One profile (or memory trace) at a time: they share process-wide hooks."""


@dataclass(frozen=True, slots=True)
class CpuProfile:
    body: str
    media_type: str
    samples: int
    duration_seconds: float


class Diagnostics:
    def __init__(self, sample_interval_seconds: float = 0.001):
        self._interval = sample_interval_seconds
        self._cpu_lock = asyncio.Lock()
        self._memory_lock = asyncio.Lock()

    async def cpu_profile(self, seconds: float, fmt: ProfileFormat) -> CpuProfile:
        if self._cpu_lock.locked():
            raise DiagnosticsBusyError("a CPU profile is already running; try again when it ends")
        async with self._cpu_lock:
            from pyinstrument import Profiler

            profiler = Profiler(interval=self._interval, async_mode="disabled")
            profiler.start()
            try:
                await asyncio.sleep(seconds)
            finally:
                session = profiler.stop()  # also on cancellation (client went away)
        return CpuProfile(body=_render(session, fmt), media_type=MEDIA_TYPES[fmt],
                          samples=session.sample_count, duration_seconds=session.duration)

    async def memory_report(self, top: int, seconds: float) -> MemoryReport:
        if self._memory_lock.locked():
            raise DiagnosticsBusyError("a memory report is already being made; try again when it ends")
        async with self._memory_lock:
            started_here = not tracemalloc.is_tracing()
            began = time.monotonic()
            if started_here:
                tracemalloc.start(1)
            try:
                if started_here:
                    await asyncio.sleep(seconds)
                snapshot = tracemalloc.take_snapshot()
                current, peak = tracemalloc.get_traced_memory()
            finally:
                if started_here:
                    tracemalloc.stop()
            traced = time.monotonic() - began if started_here else 0.0
            allocations, types = await asyncio.to_thread(_summarise, snapshot, top)
        return MemoryReport(rss_bytes=_process.memory_info().rss, heap_bytes=heap_bytes(),
                            traced_seconds=traced, traced_current_bytes=current, traced_peak_bytes=peak,
                            top_allocations=allocations, object_types=types)


def _render(session: Session, fmt: ProfileFormat) -> str:
    from pyinstrument.renderers import ConsoleRenderer, HTMLRenderer, SpeedscopeRenderer

    if fmt == "html":
        return HTMLRenderer().render(session)
    if fmt == "speedscope":
        return SpeedscopeRenderer().render(session)
    return ConsoleRenderer(unicode=True, color=False, show_all=False).render(session)


def _summarise(snapshot: tracemalloc.Snapshot,
               top: int) -> tuple[list[MemoryAllocation], list[ObjectTypeCount]]:
    snapshot = snapshot.filter_traces([tracemalloc.Filter(False, tracemalloc.__file__)])
    allocations = [MemoryAllocation(where=str(stat.traceback[0]) if stat.traceback else "?",
                                    size_bytes=stat.size, count=stat.count)
                   for stat in snapshot.statistics("lineno")[:top]]
    counts = collections.Counter(type(obj).__qualname__ for obj in gc.get_objects())
    types = [ObjectTypeCount(type=name, count=n) for name, n in counts.most_common(top)]
    return allocations, types
