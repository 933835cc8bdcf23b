"""Detectors in worker processes, one per shard, so scoring uses more than one core.

A shard thread holds the GIL while it runs the detectors' per-window Python (results, explanations,
calibration), and so do the event loop, the decode threads and the extraction: on two cores the gateway's
threads mostly take turns. With ``detection.detector_processes`` on, each shard has a process of its own
(``detector_worker``) that holds the detectors of the shard's streams. The shard thread stays, and still
runs each stream's jobs in arrival order; it sends a detector's events over a pipe and waits, without the
GIL, for the windows they complete. A stream's detector is only ever in its shard's process and sees the
same events in the same order as in-process, so results do not depend on this setting or on the number
of shards (tests compare them).

A detector is made (or restored) in the process by the first call that needs it, on the shard thread, so
opening a stream on the event loop costs no round trip. When the process dies (killed, out of memory),
the next call starts a new one; the detectors it held are lost, and their streams start over with fresh
detectors, their offsets continuing (``DetectorLost``), as when a snapshot cannot be read.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import multiprocessing
import pickle
import threading
from concurrent.futures import Future
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerContext
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, cast

from detectors import EventBatch
from detectors.base import WindowResult
from otlp_gateway.detection.detector_worker import PICKLE_PROTOCOL, serve
from otlp_gateway.streams.places import LOCAL, DetectorLost
from otlp_gateway.streams.windows import WindowRow, WindowRows

if TYPE_CHECKING:
    from otlp_gateway.otlp.extract import StreamBatch
    from otlp_gateway.streams.live import LiveStream, ScoreOutcome, ScoreStep

log = logging.getLogger(__name__)

START_METHOD = "forkserver"
"""Never a fork of the gateway, whose gRPC threads and locks must not be copied."""
PRELOAD = ["otlp_gateway.detection.detector_worker", "detectors.cbad", "detectors.numeric"]
"""Imported once by the forkserver: its children share those pages (numpy, numba, the detectors), ~85 MiB
less unique memory per process than importing them each."""
CLOSE_WAIT_SECONDS = 5.0
PROCESS_KINDS = frozenset({"cbad"})
"""Span and log detectors. Metric points' numeric detectors stay in the gateway's process: their work is
vectorised numpy, and they track no incidents (the proxy's incident actions are cbad's)."""


class DetectorProcess:
    """The detector process of one shard: a ``DetectorPlace`` whose detectors live in a child process.

    Calls come from the shard's thread, one at a time; proxies are made on any thread (no I/O), and a
    proxy let go of is forgotten by the process with the next call."""

    def __init__(self, name: str):
        self.name = name
        self._conn: Connection | None = None
        self._process: BaseProcess | None = None
        self._lock = threading.Lock()
        """Held for a call's round trip (the shard thread alone: uncontended), and by ``close``."""
        self._ids = itertools.count(1)
        self._dropped: collections.deque[int] = collections.deque()
        """Ids of detectors let go of; appended on any thread (a proxy's ``__del__`` may run inside a call,
        under ``_lock``), so a deque's atomic appends and pops rather than a lock."""
        self.generation = 0
        """How many processes were started: a proxy made in an older one lost its detector."""
        self.closed = False

    # --- DetectorPlace ----------------------------------------------------------------------------
    def create(self, kind: str, kwargs: dict[str, Any]) -> Any:
        if kind not in PROCESS_KINDS:
            return LOCAL.create(kind, kwargs)
        return RemoteDetector(self, next(self._ids), ("create", kind, kwargs), events_seen=0, warmed_up=False)

    def restore(self, kind: str, kwargs: dict[str, Any], data: bytes | memoryview, *, events_seen: int,
                warmed_up: bool) -> Any:
        if kind not in PROCESS_KINDS:
            return LOCAL.restore(kind, kwargs, data, events_seen=events_seen, warmed_up=warmed_up)
        # a copy: ``data`` may be a view into the whole stream snapshot, which is not kept
        return RemoteDetector(self, next(self._ids), ("restore", kind, kwargs, bytes(data)),
                              events_seen=events_seen, warmed_up=warmed_up)

    # --- the process ------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the process and wait until it has loaded the kernels (shard thread; idempotent)."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        if self._conn is not None or self.closed:
            return
        context = cast(ForkServerContext, multiprocessing.get_context(START_METHOD))
        context.set_forkserver_preload(PRELOAD)  # read when the forkserver starts (the first process)
        parent, child = context.Pipe(duplex=True)
        process = context.Process(target=serve, args=(child,), name=self.name, daemon=True)
        process.start()
        child.close()
        try:
            pickle.loads(parent.recv_bytes())  # sent once warmed up
        except (EOFError, OSError) as exc:
            parent.close()
            process.join(1.0)
            raise RuntimeError(f"detector process {self.name} did not start (exit code "
                               f"{process.exitcode})") from exc
        self._conn, self._process = parent, process
        self.generation += 1
        self._dropped.clear()

    def call(self, detector: RemoteDetector, op: str, args: tuple[Any, ...] = ()) -> Any:
        """Run ``op`` on ``detector`` in the process (shard thread); raises what the op raised, or
        ``DetectorLost``."""
        (answer,) = self.call_many([(detector, op, args)])
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def call_many(self, calls: list[tuple[RemoteDetector, str, tuple[Any, ...]]]) -> list[Any]:
        """Run each ``(detector, op, args)`` in the process, in order, in one round trip (shard thread).
        Each call's result, or the exception it raised (``DetectorLost`` for a detector that is gone)."""
        answers: list[Any] = [None] * len(calls)
        sent: list[int] = []
        with self._lock:
            for i, (detector, _, _) in enumerate(calls):
                if self.closed:
                    answers[i] = DetectorLost("the detector processes are shut down", detector.events_seen)
                elif self._conn is None and detector.generation is not None:  # its process died
                    detector.lost = detector.lost or "its detector process died"
                try:
                    if answers[i] is None:
                        detector.check()
                        sent.append(i)
                except DetectorLost as lost:
                    answers[i] = lost
            if not sent:
                return answers
            try:
                replies = self._exchange([(calls[i][0].init, calls[i][1], calls[i][0].id, calls[i][2])
                                          for i in sent])
            except (EOFError, OSError) as exc:
                self._died(exc)
                for i in sent:
                    detector = calls[i][0]
                    detector.lost = "its detector process died"
                    answers[i] = DetectorLost(detector.lost, detector.events_seen)
                return answers
            generation = self.generation
        for i, reply in zip(sent, replies, strict=True):
            detector = calls[i][0]
            detector.init = None
            detector.generation = generation
            if reply[0] == "restore_failed":
                detector.lost = f"its snapshot did not restore ({reply[1]})"
                answers[i] = DetectorLost(detector.lost, detector.events_seen)
            elif reply[0] == "error":
                answers[i] = reply[1]
            else:
                _, answers[i], stats = reply
                detector.events_seen, detector.warmed_up, detector.skipped_points, detector.config_hash = \
                    stats
        return answers

    def _exchange(self, calls: list[tuple[Any, ...]]) -> list[Any]:
        """One round trip (under ``_lock``): the process started if it is not, the ids let go of forgotten
        first, ``calls`` answered in order (see ``detector_worker``)."""
        self._start()
        assert self._conn is not None
        self._conn.send_bytes(pickle.dumps((_drain(self._dropped), calls), PICKLE_PROTOCOL))
        return pickle.loads(self._conn.recv_bytes())

    def _died(self, exc: BaseException) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        exit_code = process.exitcode if process is not None else None
        log.error("detection: detector process %s died (%s, exit code %s); its streams start over with "
                  "fresh detectors", self.name, exc, exit_code)
        if conn is not None:
            conn.close()
        if process is not None and process.is_alive():
            process.kill()

    def forget(self, detector_id: int, generation: int | None) -> None:
        """A proxy was let go of: its detector goes with the next call (any thread)."""
        if generation == self.generation and not self.closed:
            self._dropped.append(detector_id)

    def held(self) -> int:
        """How many detectors the process holds now (after forgetting those let go of; shard thread)."""
        with self._lock:
            ((_, count, _),) = self._exchange([(None, "held", 0, ())])
        return int(count)

    def pid(self) -> int | None:
        """The running process's id (operators and tests)."""
        process = self._process
        return process.pid if process is not None else None

    def close(self) -> None:
        """Stop the process (idempotent). Waits for a call in progress, up to ``CLOSE_WAIT_SECONDS``; past
        that the process is killed (the call fails: the stream's detector is lost, as at any shutdown)."""
        got = self._lock.acquire(timeout=CLOSE_WAIT_SECONDS)
        try:
            self.closed = True
            process, conn = self._process, self._conn
            self._process = self._conn = None
            if conn is not None and got:
                with contextlib.suppress(OSError):
                    conn.send_bytes(pickle.dumps(None, PICKLE_PROTOCOL))
            if process is not None:
                process.join(CLOSE_WAIT_SECONDS if got else 0.0)
                if process.is_alive():
                    process.kill()
                    process.join(1.0)
            if conn is not None:
                conn.close()
        finally:
            if got:
                self._lock.release()


class RemoteDetector:
    """A detector in a ``DetectorProcess``: what the stream reads of it between calls is kept here."""

    def __init__(self, process: DetectorProcess, detector_id: int, init: tuple[Any, ...], *,
                 events_seen: int, warmed_up: bool):
        self._process = process
        self.id = detector_id
        self.init: tuple[Any, ...] | None = init
        """How the process makes the detector, until the first call has."""
        self.generation: int | None = None
        """The process generation holding the detector (``None``: not made yet)."""
        self.lost: str | None = None
        self.events_seen = events_seen
        self.warmed_up = warmed_up
        self.skipped_points: dict[str, int] = {}
        self.config_hash = ""

    def check(self) -> None:
        """Raises ``DetectorLost`` when the detector is known lost (no round trip): its snapshot did not
        restore, or it was made in a process that has been replaced since."""
        made = self.generation
        if self.lost is None and made is not None and made != self._process.generation:
            self.lost = "its detector process died"
        if self.lost is not None:
            raise DetectorLost(self.lost, self.events_seen)

    def ready(self) -> None:
        """Make the detector now if it is not (raises ``DetectorLost`` when it is gone)."""
        if self.init is not None or self.lost is not None or self.generation != self._process.generation:
            self._process.call(self, "ready")

    def update(self, batch: EventBatch) -> WindowRows:
        return self.output(self._process.call(*self.update_call(batch)))

    def update_call(self, batch: EventBatch) -> tuple[RemoteDetector, str, tuple[Any, ...]]:
        """``update(batch)`` as a call for ``DetectorProcess.call_many``."""
        return self, "update", (batch.events, batch.times)

    @staticmethod
    def output(answer: tuple[list[WindowRow], list[WindowResult], list[Any]]) -> WindowRows:
        """What ``update`` returns, from the process's answer to an update call: the windows as rows."""
        return WindowRows(*answer)

    def snapshot(self) -> bytes:
        return self._process.call(self, "snapshot")

    def accept(self, seq: int) -> Any:
        return self._process.call(self, "accept", (seq,))

    def resolve(self, seq: int) -> Any:
        return self._process.call(self, "resolve", (seq,))

    def mark_false_positive(self, seq: int) -> Any:
        return self._process.call(self, "mark_false_positive", (seq,))

    def __del__(self) -> None:
        if self.generation is not None and self.lost is None:
            self._process.forget(self.id, self.generation)


ScoreJob = tuple["LiveStream", "StreamBatch", int, "Future[ScoreOutcome]"]
"""A batch of a stream for ``score_together``: the stream, the batch, its request's ticket, its outcome."""


def score_together(process: DetectorProcess, jobs: list[ScoreJob]) -> None:
    """Score the jobs (shard thread), in order: the updates of each run of distinct streams go to the
    process in one round trip. Each job's outcome, or what scoring it raised, goes to its future."""
    start = 0
    while start < len(jobs):
        streams: set[int] = set()
        end = start
        while end < len(jobs) and id(jobs[end][0]) not in streams:  # a stream's next batch needs its last
            streams.add(id(jobs[end][0]))
            end += 1
        _score_run(process, jobs[start:end])
        start = end


def _score_run(process: DetectorProcess, jobs: list[ScoreJob]) -> None:
    steps: list[tuple[LiveStream, ScoreStep, Future[ScoreOutcome]]] = []
    for stream, batch, ticket, future in jobs:
        if not future.set_running_or_notify_cancel():
            continue
        try:
            steps.append((stream, stream.begin_score(batch, ticket), future))
        except BaseException as exc:
            future.set_exception(exc)
    remote = [i for i, (stream, step, _) in enumerate(steps)
              if step.feed is not None and isinstance(stream.detector, RemoteDetector)]
    calls = [steps[i][0].detector.update_call(steps[i][1].feed) for i in remote]
    try:
        answers = process.call_many(calls)
    except BaseException as exc:  # a defect (nothing the process answered): every job of the run hears it
        for _, _, future in steps:
            future.set_exception(exc)
        return
    outputs: dict[int, Any] = dict(zip(remote, answers, strict=True))
    for i, (stream, step, future) in enumerate(steps):
        try:
            if i in outputs:
                output = outputs[i]
                if isinstance(output, BaseException) and not isinstance(output, DetectorLost):
                    raise output
                if not isinstance(output, BaseException):
                    output = RemoteDetector.output(output)
            else:  # nothing to feed, or a detector of this process (metric points)
                output = stream.run_feed(step)
            future.set_result(stream.finish_score(step, output))
        except BaseException as exc:
            future.set_exception(exc)


def _drain(ids: collections.deque[int]) -> list[int]:
    out = []
    while True:
        try:
            out.append(ids.popleft())
        except IndexError:
            return out
