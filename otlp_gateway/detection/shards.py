"""The detection worker threads: one thread per shard; a stream always runs on the same shard.

One thread per shard keeps each stream's work in submission order (determinism) while several shards
use several cores: the detector kernels are numba ``nogil`` functions, so shards run in parallel. With
``processes``, each shard's span and log detectors live in a process of the shard's own
(``detector_processes``): their per-window Python then runs beside the gateway's, not under its GIL.

A shard's queue is a ``queue.SimpleQueue`` that the event loop appends to without a lock of Python's: a
request queues one job per stream, and a ``ThreadPoolExecutor``'s ``submit`` (two locks, a work item, a
semaphore) with a lock shared with the shard thread (which the event loop waited on whenever the shard
thread held it while waiting for the GIL) cost more than the job's own bookkeeping. The thread takes every
job queued when it wakes: the score jobs among them, one after another, run together (one round trip to
the detector process for their updates).
"""

from __future__ import annotations

import logging
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Future
from queue import Empty, SimpleQueue
from typing import Any, TypeVar

from otlp_gateway.detection.detector_processes import DetectorProcess, ScoreJob, score_together
from otlp_gateway.otlp.extract import StreamBatch
from otlp_gateway.streams.live import LiveStream, ScoreOutcome
from otlp_gateway.streams.places import LOCAL, DetectorPlace

T = TypeVar("T")
log = logging.getLogger(__name__)

_Call = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]
"""A job of a shard: a call, or (with ``_SCORE`` for the function) a score job ``(stream, batch, ticket)``."""


def _SCORE() -> None:
    raise AssertionError("the score marker is not called")


class ShardThread:
    """One shard's thread: runs its jobs in the order queued (any thread queues, without waiting)."""

    def __init__(self, name: str, process: DetectorProcess | None):
        self.name = name
        self._process = process
        self._queue: SimpleQueue[_Call | None] = SimpleQueue()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    def submit(self, fn: Callable[..., T], *args: Any) -> Future[T]:
        future: Future[T] = Future()
        self._put((future, fn, args))
        return future

    def score(self, stream: LiveStream, batch: StreamBatch, ticket: int) -> Future[ScoreOutcome]:
        future: Future[ScoreOutcome] = Future()
        self._put((future, _SCORE, (stream, batch, ticket)))
        return future

    def _put(self, call: _Call) -> None:
        if self._thread is None:
            self._start()
        if self._closed:
            raise RuntimeError(f"shard {self.name} is shut down: no new jobs")
        self._queue.put(call)

    def _start(self) -> None:
        with self._start_lock:
            if self._thread is None and not self._closed:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def shutdown(self, wait: bool = True) -> None:
        """Stop taking jobs; with ``wait=False`` the jobs not started are cancelled (idempotent)."""
        with self._start_lock:
            self._closed = True
            thread = self._thread
        if not wait:
            self._cancel_queued()
        self._queue.put(None)
        if wait and thread is not None and thread is not threading.current_thread():
            thread.join()

    def _cancel_queued(self) -> None:
        while True:
            try:
                call = self._queue.get_nowait()
            except Empty:
                return
            if call is not None:
                call[0].cancel()

    def _run(self) -> None:
        queue = self._queue
        while True:
            calls = [queue.get()]
            while True:  # every job queued meanwhile: the score jobs among them run together
                try:
                    calls.append(queue.get_nowait())
                except Empty:
                    break
            scores: list[ScoreJob] = []
            for call in calls:
                if call is None:
                    self._score(scores)
                    self._cancel_queued()  # shut down without waiting: nothing queued runs
                    return
                future, fn, args = call
                if fn is _SCORE:
                    stream, batch, ticket = args
                    scores.append((stream, batch, ticket, future))
                    continue
                self._score(scores)
                scores = []
                _run_call(future, fn, args)
            self._score(scores)

    def _score(self, jobs: list[ScoreJob]) -> None:
        if not jobs:
            return
        if self._process is not None:
            try:
                score_together(self._process, jobs)
            except BaseException as exc:  # a defect: every job not answered yet hears it
                for *_, future in jobs:
                    if not future.done():
                        future.set_exception(exc)
            return
        for stream, batch, ticket, future in jobs:
            _run_call(future, stream.score, (batch, ticket))


def _run_call(future: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    if not future.set_running_or_notify_cancel():
        return
    try:
        result = fn(*args)
    except BaseException as exc:
        future.set_exception(exc)
    else:
        future.set_result(result)


class ShardPool:
    def __init__(self, shards: int, name: str = "driftlock-detect", *, processes: bool = False):
        self._processes = [DetectorProcess(f"{name}-{i}") for i in range(shards)] if processes else []
        self._threads = [ShardThread(f"{name}-{i}", self._processes[i] if processes else None)
                         for i in range(shards)]

    def __len__(self) -> int:
        return len(self._threads)

    def shard_of(self, stream_id: str) -> int:
        """Stable across processes (unlike ``hash``), so a restart shards streams the same way."""
        return zlib.crc32(stream_id.encode()) % len(self._threads)

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
        """``fn(*args)`` on the shard's thread, after the jobs queued before it."""
        return self._threads[shard].submit(fn, *args)

    def score(self, shard: int, stream: LiveStream, batch: StreamBatch, ticket: int) -> Future[ScoreOutcome]:
        """``stream.score(batch, ticket)`` on the shard, after the jobs queued before it. With detector
        processes, score jobs queued one after another run together: their updates reach the process in one
        round trip instead of one each."""
        return self._threads[shard].score(stream, batch, ticket)

    def shutdown(self, wait: bool = True) -> None:
        for thread in self._threads:
            thread.shutdown(wait=wait)
        for process in self._processes:
            process.close()
