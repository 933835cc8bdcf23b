"""The detection worker threads: one ``SerialExecutor`` per shard; a stream always runs on the same shard.

One thread per shard keeps each stream's work in submission order (determinism) while several shards
use several cores: the detector kernels are numba ``nogil`` functions, so shards run in parallel. With
``processes``, each shard's span and log detectors live in a process of the shard's own
(``detector_processes``): their per-window Python then runs beside the gateway's, not under its GIL.
"""

from __future__ import annotations

import functools
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from otlp_gateway.detection.detector_processes import DetectorProcess, ScoreJob, score_together
from otlp_gateway.otlp.extract import StreamBatch
from otlp_gateway.serial import SerialExecutor
from otlp_gateway.streams.live import LiveStream, ScoreOutcome
from otlp_gateway.streams.places import LOCAL, DetectorPlace

T = TypeVar("T")


class ShardPool:
    def __init__(self, shards: int, name: str = "driftlock-detect", *, processes: bool = False):
        self._executors = [SerialExecutor(f"{name}-{i}") for i in range(shards)]
        self._processes = [DetectorProcess(f"{name}-{i}") for i in range(shards)] if processes else []
        self._lock = threading.Lock()
        self._open: list[list[ScoreJob] | None] = [None] * shards
        """Per shard, the score jobs queued since its last other job: they run together (one round trip to
        the detector process for their updates)."""

    def __len__(self) -> int:
        return len(self._executors)

    def shard_of(self, stream_id: str) -> int:
        """Stable across processes (unlike ``hash``), so a restart shards streams the same way."""
        return zlib.crc32(stream_id.encode()) % len(self._executors)

    def place(self, shard: int) -> DetectorPlace:
        return self._processes[shard] if self._processes else LOCAL

    @property
    def processes(self) -> list[DetectorProcess]:
        """The shards' detector processes (empty: detectors run in this process)."""
        return self._processes

    def start(self) -> list[Future[None]]:
        """Start the detector processes, each on its shard's thread (ahead of the streams' first jobs)."""
        return [self.submit(shard, process.start) for shard, process in enumerate(self._processes)]

    def submit(self, shard: int, fn: Callable[..., T], *args: Any) -> Future[T]:
        with self._lock:
            self._open[shard] = None  # later score jobs run after this one
            return self._executors[shard].submit(fn, *args)

    def score(self, shard: int, stream: LiveStream, batch: StreamBatch, ticket: int) -> Future[ScoreOutcome]:
        """``stream.score(batch, ticket)`` on the shard, after the jobs submitted before it. With detector
        processes, score jobs queued one after another run together: their updates reach the process in one
        round trip instead of one each."""
        if not self._processes:
            return self._executors[shard].submit(stream.score, batch, ticket)
        future: Future[ScoreOutcome] = Future()
        with self._lock:
            group = self._open[shard]
            if group is None:
                group = self._open[shard] = []
                job = self._executors[shard].submit(self._score_group, shard, group)
                job.add_done_callback(functools.partial(_fail_if_cancelled, group))
            group.append((stream, batch, ticket, future))
        return future

    def _score_group(self, shard: int, group: list[ScoreJob]) -> None:
        with self._lock:
            if self._open[shard] is group:
                self._open[shard] = None  # closed: later jobs start a new group
        score_together(self._processes[shard], group)

    def shutdown(self, wait: bool = True) -> None:
        for executor in self._executors:
            executor.shutdown(wait=wait)
        for process in self._processes:
            process.close()


def _fail_if_cancelled(group: list[ScoreJob], job: Future[None]) -> None:
    """A group cancelled with the shard's queue (shutdown) still answers each of its jobs."""
    if job.cancelled():
        for *_, future in group:
            future.cancel()
