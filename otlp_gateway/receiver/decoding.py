"""The receivers' decode threads: a request's CPU work (walk, upb, JSON, extraction) never runs on the
event loop, so one 20 MB request does not hold up other clients; the numba walk releases the GIL.

Each thread keeps its own ``RequestCodec``s (codecs reuse their tables and memo, so they are per thread):
one that extracts events for detection, one that only validates (``decode(extract=False)``: a request
detection will not take while decoding costs forwarding only the validating walk). One pool serves both
receivers of a gateway.

The pool keeps the time each queued request started waiting for a thread: admission control refuses new
requests while the oldest has waited too long (``queue_wait``), instead of letting the queue grow until
clients' deadlines pass.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

from otlp_gateway.batch import Signal
from otlp_gateway.otlp.codec import DecodedRequest, Encoding, ExtractionOptions, RequestCodec, warm_up

log = logging.getLogger(__name__)


class DecodePool:
    """``workers`` threads decoding requests; with ``extraction`` they also extract events for detection."""

    def __init__(self, workers: int, extraction: ExtractionOptions | None = None):
        if workers < 1:
            raise ValueError("the decode pool needs at least one thread")
        self.extraction = extraction
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="otlp-decode")
        self._local = threading.local()
        self._closed = False
        self._queue_lock = threading.Lock()
        self._queued: dict[int, float] = {}
        """Requests waiting for a thread, in submission order (the executor's FIFO): number → when queued."""
        self._next_number = 0
        self._kernels_ready = threading.Event()
        """Set once the codec's kernels are compiled (or loaded from the JIT cache): until then requests
        are decoded by upb alone, so no client waits for the compiler."""

    def _codec(self, extract: bool) -> RequestCodec:
        name = "extracting" if extract else "plain"
        codec: RequestCodec | None = getattr(self._local, name, None)
        if codec is None:
            codec = RequestCodec(self.extraction if extract else None)
            setattr(self._local, name, codec)
        return codec

    def queue_wait(self) -> float:
        """Seconds the oldest request still waiting for a decode thread has waited (0.0 when none waits)."""
        with self._queue_lock:
            oldest = next(iter(self._queued.values()), None)
        return 0.0 if oldest is None else time.monotonic() - oldest

    @property
    def queued(self) -> int:
        """Requests waiting for a decode thread."""
        return len(self._queued)

    def _start(self, number: int, signal: Signal, body: bytes, encoding: Encoding,
               extract: bool) -> DecodedRequest:
        with self._queue_lock:
            self._queued.pop(number, None)
        return self._decode(signal, body, encoding, extract)

    def _decode(self, signal: Signal, body: bytes, encoding: Encoding, extract: bool) -> DecodedRequest:
        codec = self._codec(extract and self.extraction is not None)
        if not self._kernels_ready.is_set():
            return codec.decode_without_kernels(signal, body, encoding)
        return codec.decode(signal, body, encoding)

    async def decode(self, signal: Signal, body: bytes, encoding: Encoding = "protobuf", *,
                     extract: bool = True) -> DecodedRequest:
        """``RequestCodec.decode`` on a decode thread (raises ``MalformedRequest`` the same way). With
        ``extract=False`` the events are not extracted even when the pool has extraction options (detection
        will extract the request later, or not score it): the validating walk alone."""
        with self._queue_lock:
            number = self._next_number
            self._next_number += 1
            self._queued[number] = time.monotonic()
        try:
            job = self._pool.submit(self._start, number, signal, body, encoding, extract)
        except BaseException:  # closed: nothing will start it
            with self._queue_lock:
                self._queued.pop(number, None)
            raise
        return await asyncio.wrap_future(job)

    def warm_up(self) -> Future[None]:
        """Compile (or load from cache) the codec's kernels on a decode thread, ahead of the first request
        (a failure is logged; the kernels then compile on first use)."""
        future = self._warm_up_thread()
        future.add_done_callback(_log_failure)
        return future

    def wait_for_kernels(self, timeout: float | None = None) -> bool:
        """Whether the kernels became ready within ``timeout`` seconds (tests that assert on the fast
        path wait for it)."""
        return self._kernels_ready.wait(timeout)

    def _warm_up_thread(self) -> Future[None]:
        """Compile on a thread of its own, not a decode thread: decoding goes on (by upb) meanwhile."""
        future: Future[None] = Future()

        def run() -> None:
            try:
                warm_up()
            except BaseException as exc:  # reported by _log_failure; decoding stays on upb until restart
                future.set_exception(exc)
                return
            self._kernels_ready.set()
            future.set_result(None)

        threading.Thread(target=run, name="otlp-codec-warm-up", daemon=True).start()
        return future

    async def start(self) -> None:
        """A component: start compiling (or loading) the kernels in the background."""
        self.warm_up()

    async def shutdown(self, grace: float = 0.0) -> None:
        """A component: stop after the receivers (they stop first, upstream)."""
        self.close()

    def close(self) -> None:
        """Stop taking work; queued decodes are cancelled (idempotent)."""
        if not self._closed:
            self._closed = True
            self._pool.shutdown(wait=False, cancel_futures=True)
            with self._queue_lock:  # the cancelled ones never start: they wait no more
                self._queued.clear()


def _log_failure(future: Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("warming up the codec kernels failed", exc_info=future.exception())
