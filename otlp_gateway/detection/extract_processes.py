"""Extraction in worker processes, for the requests the detection stage extracts itself (those the
receivers forwarded without extracting, because detection was behind).

Extraction renders the values it has not seen before in Python (masking) and holds the GIL for most of
its time: in the gateway's process it competes for one GIL with the event loop, the decode threads and
the shard threads, and a second core stays idle. A worker process has its own interpreter. It gets a
request's bytes and returns its ``Extraction``, which depends only on the bytes (a worker's fragment memo
is a cache), so results depend neither on the number of workers nor on which one extracted a request;
the stage still scores requests in arrival order.

The pool belongs to the stage alone: the receivers never queue behind it, so a request's ack and its
forwarding never wait for an extraction here (a 20 MB value masked in a worker delays only detection).
Workers start from a forkserver (never a fork of the gateway, whose gRPC threads and locks must not be
copied) and run niced, so on a busy machine the kernel runs forwarding first. Until a worker is ready
(starting, loading the kernels) and while a dead one is replaced, ``extract`` returns ``None`` and the
stage extracts in its own thread: slower, same results.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from otlp_gateway.otlp.codec import ExtractionOptions, RequestCodec, warm_up
from otlp_gateway.otlp.extract import Extraction

log = logging.getLogger(__name__)

START_METHOD = "forkserver"
WORKER_NICENESS = 10
"""Workers only extract for detection: the gateway's own process (receiving, forwarding) goes first."""


class ExtractionProcesses:
    """``processes`` worker processes extracting events with ``options``; ``start`` before use."""

    def __init__(self, processes: int, options: ExtractionOptions):
        if processes < 1:
            raise ValueError("at least one worker process")
        self.processes = processes
        self.options = options
        self._lock = threading.Lock()
        self._pool: ProcessPoolExecutor | None = None
        self._ready: ProcessPoolExecutor | None = None
        """The pool once one of its workers answered (kernels loaded): ``extract`` uses it."""
        self._closed = False
        self.extracted = 0
        """Requests extracted by a worker so far."""

    def start(self) -> None:
        """Start the workers in the background (returns at once)."""
        threading.Thread(target=self._start, name="driftlock-extract-start", daemon=True).start()

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                return
            pool = self._pool = self._new_pool()
        try:
            pool.submit(os.getpid).result()  # a worker warms its codec up before it takes a job
        except Exception as exc:  # no worker processes here: the stage's thread extracts (same results)
            log.warning("detection: extraction worker processes could not start (%s); extracting in a "
                        "thread", exc)
            pool.shutdown(wait=False, cancel_futures=True)
            return
        with self._lock:
            if self._pool is pool and not self._closed:
                self._ready = pool

    def _new_pool(self) -> ProcessPoolExecutor:
        context = multiprocessing.get_context(START_METHOD)
        return ProcessPoolExecutor(self.processes, mp_context=context, initializer=_start_worker,
                                   initargs=(self.options,))

    @property
    def ready(self) -> bool:
        return self._ready is not None

    async def extract(self, signal: str, payload: bytes) -> Extraction | None:
        """The request's extraction from a worker; ``None`` when no worker is ready (the caller extracts).
        Raises what extraction raises."""
        pool = self._ready
        if pool is None:
            return None
        try:
            extraction = await asyncio.wrap_future(pool.submit(_extract_in_worker, signal, payload))
        except BrokenProcessPool:  # a worker died (killed, out of memory): new ones, this one in a thread
            self._replace(pool)
            return None
        self.extracted += 1
        return extraction

    def worker_pids(self) -> list[int]:
        """The running workers' process ids (operators and tests)."""
        pool = self._pool
        return [] if pool is None else [p.pid for p in list(getattr(pool, "_processes", {}).values())]

    def _replace(self, broken: ProcessPoolExecutor) -> None:
        with self._lock:
            if self._pool is not broken or self._closed:
                return
            log.error("detection: an extraction worker process died; starting new ones")
            self._ready = None
            broken.shutdown(wait=False, cancel_futures=True)
        self.start()

    def shutdown(self) -> None:
        """Stop the workers; queued extractions are cancelled (idempotent)."""
        with self._lock:
            self._closed = True
            pool, self._pool, self._ready = self._pool, None, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


# --- inside a worker process ----------------------------------------------------------------------------
_codec: RequestCodec | None = None


def _start_worker(options: ExtractionOptions) -> None:
    global _codec
    os.nice(WORKER_NICENESS)
    warm_up()  # loads the kernels from the JIT cache (NUMBA_CACHE_DIR is inherited)
    _codec = RequestCodec(options)


def _extract_in_worker(signal: str, payload: bytes) -> Extraction:
    assert _codec is not None, "the worker was not started by ExtractionProcesses"
    return _codec.extract(signal, payload)  # type: ignore[arg-type]
