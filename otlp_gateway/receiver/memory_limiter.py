"""The memory limiter: refuse new ingest while the process's resident memory is high.

Modelled on the OpenTelemetry Collector's ``memory_limiter``. Every ``check_interval_seconds`` the
resident set is read (``MemoryReader``) and compared with two limits:

* the soft limit (hard limit minus ``spike_limit_mib``): at or above it the limiter is *refusing*; both
  receivers refuse new requests before decoding them, with a retry hint, and ``/readyz`` says not ready
  so a load balancer sends clients elsewhere. Data already accepted is never dropped: it keeps flowing
  through detection and the export queue, which is what brings memory down again.
* the hard limit: at or above it the limiter also frees what it can: a full garbage collection, then the
  allocator's freed pages handed back to the kernel (``malloc_trim``), plus any relief registered by the
  gateway. At most once per ``RELIEF_INTERVAL_SECONDS``.

While refusing, every check also returns freed heap pages to the kernel: the resident set of a CPython
process does not shrink by itself when objects are freed, and without this a limiter reading RSS could
keep refusing after the memory it saw is no longer in use.

Transitions are logged (WARNING on entering the refusing state, INFO on leaving it), at most one episode
per ``LOG_QUIET_SECONDS``; episodes in between are counted and named in the next message.
"""

from __future__ import annotations

import asyncio
import enum
import gc
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from otlp_gateway.component import cancel_task
from otlp_gateway.receiver.memory import (
    MemoryReader,
    cgroup_level,
    malloc_trim,
    memory_ceiling,
    memory_reader,
)
from otlp_gateway.receiver.settings import MemoryLimiterSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

MiB = 1024 * 1024
RELIEF_INTERVAL_SECONDS = 10.0
"""Above the hard limit, garbage collection and the registered relief run at most this often."""
LOG_QUIET_SECONDS = 30.0
"""At most one refusing episode is logged per this many seconds (the gauge shows every one)."""
DEFAULT_SPIKE_FRACTION = 0.2
"""Spike headroom when ``spike_limit_mib`` is not set: a fifth of the hard limit (the collector's)."""


class LimiterState(enum.IntEnum):
    """The value of ``driftlock_memory_limiter_state``."""

    ACCEPTING = 0
    REFUSING = 1   # at or above the soft limit
    HARD = 2       # at or above the hard limit: refusing and freeing memory


@dataclass(frozen=True)
class MemoryLimits:
    hard_bytes: int
    soft_bytes: int
    basis: str
    """How the hard limit was chosen (for the start-up log line)."""

    @classmethod
    def resolve(cls, settings: MemoryLimiterSettings,
                ceiling: Callable[[], tuple[int, str]] = memory_ceiling) -> MemoryLimits:
        if settings.limit_mib is not None:
            hard = settings.limit_mib * MiB
            basis = "limit_mib"
        else:
            total, source = ceiling()
            hard = total * settings.limit_percentage // 100
            basis = f"{settings.limit_percentage} % of {total / MiB:.0f} MiB, {source}"
        spike = (settings.spike_limit_mib * MiB if settings.spike_limit_mib is not None
                 else int(hard * DEFAULT_SPIKE_FRACTION))
        if spike >= hard:
            raise ValueError(f"receiver.memory_limiter: spike_limit_mib ({spike // MiB}) must be below the "
                             f"hard limit ({hard // MiB} MiB, {basis})")
        return cls(hard, hard - spike, basis)


class MemoryLimiter:
    """A component (``start`` begins the periodic check); ``refusing`` is what the receivers read, once
    per request, so it is a plain attribute."""

    def __init__(self, settings: MemoryLimiterSettings, metrics: GatewayMetrics, *,
                 reader: MemoryReader | None = None, limits: MemoryLimits | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 free_heap: Callable[[], None] = malloc_trim):
        self.interval = settings.check_interval_seconds
        self.retry_after = settings.retry_after_seconds
        self.limits = limits if limits is not None else MemoryLimits.resolve(settings)
        self.reading = "a reader of the caller's"
        """What the limiter reads, in words (for the start-up log line)."""
        if reader is None:
            # a limit taken from the cgroup is compared with the cgroup's use (every process of the container,
            # each page once); ``limit_mib`` with the gateway's own processes, as the Collector's is
            reader, self.reading = memory_reader(cgroup_level if settings.limit_mib is None else lambda: None)
        self._reader = reader
        self._metrics = metrics
        self._clock = clock
        self._free_heap = free_heap
        self._relief: list[Callable[[], object]] = []
        self.state = LimiterState.ACCEPTING
        self.refusing = False
        self.rss = 0
        """The last reading, in bytes."""
        self._episode_started = 0.0
        self._episode_logged = False
        self._episode_refused = 0
        self._hard_logged = False
        self._last_logged = -LOG_QUIET_SECONDS
        self._unlogged_episodes = 0
        self._last_relief = -RELIEF_INTERVAL_SECONDS
        self._task: asyncio.Task[None] | None = None
        metrics.memory_limiter_limit.labels("hard").set(self.limits.hard_bytes)
        metrics.memory_limiter_limit.labels("soft").set(self.limits.soft_bytes)
        metrics.memory_limiter_state.set(0)

    def add_relief(self, relief: Callable[[], object]) -> None:
        """``relief()`` is called (on the event loop) when memory is above the hard limit."""
        self._relief.append(relief)

    # --- the receivers' side -------------------------------------------------------------------
    def note_refused(self, transport: str) -> None:
        self._episode_refused += 1
        self._metrics.memory_limiter_refused.labels(transport).inc()

    def message(self) -> str:
        return (f"the gateway is low on memory ({self.rss / MiB:.0f} MiB resident, refusing from "
                f"{self.limits.soft_bytes / MiB:.0f} MiB); retry later")

    def reason(self) -> str | None:
        """Why the gateway is not ready because of memory, or None (a ``HealthState`` condition)."""
        if not self.refusing:
            return None
        return (f"memory limiter refusing ingest: {self.rss / MiB:.0f} MiB resident, soft limit "
                f"{self.limits.soft_bytes / MiB:.0f} MiB, hard limit {self.limits.hard_bytes / MiB:.0f} MiB")

    # --- the check ------------------------------------------------------------------------------
    def check(self) -> LimiterState:
        """Read the resident memory, move to the state it calls for, free memory when above a limit."""
        now = self._clock()
        rss = self._reader.rss_bytes()
        if rss >= self.limits.soft_bytes:
            # freed objects stay in the allocator's heap: hand them back first, so the reading (and the
            # decision) is about memory in use, not memory once used
            self._free_heap()
            rss = self._reader.rss_bytes()
        if rss >= self.limits.hard_bytes and now - self._last_relief >= RELIEF_INTERVAL_SECONDS:
            self._last_relief = now
            self._relieve()
            rss = self._reader.rss_bytes()
        self.rss = rss
        self._metrics.memory_limiter_rss.set(rss)
        state = (LimiterState.HARD if rss >= self.limits.hard_bytes
                 else LimiterState.REFUSING if rss >= self.limits.soft_bytes else LimiterState.ACCEPTING)
        self._move(state, now)
        return state

    def _relieve(self) -> None:
        for relief in self._relief:
            try:
                relief()
            except Exception:  # relief is best effort; the refusals already protect the process
                log.exception("memory limiter: a relief step failed")
        gc.collect()
        self._free_heap()

    def _move(self, state: LimiterState, now: float) -> None:
        was_refusing = self.refusing
        self.state = state
        self.refusing = state is not LimiterState.ACCEPTING
        self._metrics.memory_limiter_state.set(int(state))
        if self.refusing and not was_refusing:
            self._episode_started = now
            self._episode_refused = 0
            self._episode_logged = False
            self._hard_logged = False
        if self.refusing:
            if not self._episode_logged and now - self._last_logged >= LOG_QUIET_SECONDS:
                self._log_refusing(now)
            if state is LimiterState.HARD and self._episode_logged and not self._hard_logged:
                self._hard_logged = True
                log.warning("memory limiter: %.0f MiB resident, at or above the hard limit of %.0f MiB: "
                            "collecting garbage and returning freed memory", self.rss / MiB,
                            self.limits.hard_bytes / MiB)
        elif was_refusing:
            if self._episode_logged:
                log.info("memory limiter: %.0f MiB resident, below the soft limit of %.0f MiB: accepting "
                         "again after %.1f s (%d requests refused)", self.rss / MiB,
                         self.limits.soft_bytes / MiB, now - self._episode_started, self._episode_refused)
            else:
                self._unlogged_episodes += 1

    def _log_refusing(self, now: float) -> None:
        self._episode_logged = True
        self._last_logged = now
        earlier = (f" ({self._unlogged_episodes} shorter episodes since the last message)"
                   if self._unlogged_episodes else "")
        self._unlogged_episodes = 0
        log.warning("memory limiter: %.0f MiB resident, at or above the soft limit of %.0f MiB (hard limit "
                    "%.0f MiB): refusing new ingest with a retry hint until it falls below%s",
                    self.rss / MiB, self.limits.soft_bytes / MiB, self.limits.hard_bytes / MiB, earlier)

    # --- component --------------------------------------------------------------------------------
    async def start(self) -> None:
        self.check()
        log.info("memory limiter: soft limit %.0f MiB, hard limit %.0f MiB (%s); reading %s: %.0f MiB now",
                 self.limits.soft_bytes / MiB, self.limits.hard_bytes / MiB, self.limits.basis, self.reading,
                 self.rss / MiB)
        self._task = asyncio.create_task(self._run(), name="driftlock-memory-limiter")

    async def shutdown(self, grace: float = 0.0) -> None:
        """Idempotent; the limiter keeps its last state (draining receivers refuse anyway)."""
        task, self._task = self._task, None
        await cancel_task(task)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                self.check()
            except Exception:  # a failed reading must not stop the checks
                log.exception("memory limiter: the check failed")
