"""Streams that another gateway owns, whose events arrived here: held until the owner hands the stream over,
or refused (forwarded unscored) while the owner keeps it.

A held stream's jobs are futures the detection stage waits on like shard jobs: when the lease arrives
they are queued on the stream's shard in arrival order (the stage's turnstile order), so the results are
the same as if the stream had never moved; when the events are refused the futures fail with
``StreamNotScored``, which the stage treats as "forwarded unscored, already counted".
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from otlp_gateway.otlp.extract import StreamBatch
from otlp_gateway.streams.live import LiveStream, ScoreOutcome
from otlp_gateway.streams.routing import StreamKey


class StreamNotScored(Exception):
    """The batch was forwarded without being scored; whoever decided so counted it."""


HeldJob = tuple[StreamBatch, int, "Future[ScoreOutcome]"]


@dataclass(slots=True)
class HeldStream:
    key: StreamKey
    holder: str
    """The gateway that owns the stream (asked for it)."""
    since: float
    last_event: float
    """Monotonic time of the latest batch held or refused here."""
    jobs: list[HeldJob] = field(default_factory=list)
    refusing: bool = False
    """The owner kept the stream past the handoff timeout: new batches are refused at once."""

    def hold(self, batch: StreamBatch, ticket: int, now: float) -> Future[ScoreOutcome] | None:
        """A future for the batch's outcome; ``None`` when refused (the caller counts it)."""
        self.last_event = now
        if self.refusing:
            return None
        job: Future[ScoreOutcome] = Future()
        self.jobs.append((batch, ticket, job))
        return job

    @property
    def held_events(self) -> int:
        return sum(len(batch.times) for batch, _, _ in self.jobs)

    def refuse_all(self, reason: str) -> int:
        """Fail every held job (forwarded unscored); returns the events refused."""
        events = self.held_events
        for _, _, job in self.jobs:
            if not job.done():
                job.set_exception(StreamNotScored(reason))
        self.jobs.clear()
        return events

    def release_to(self, stream: LiveStream,
                   submit: Callable[[LiveStream, StreamBatch, int], Future[ScoreOutcome] | None]) -> None:
        """Queue every held batch on ``stream`` in arrival order; each held future follows its job."""
        for batch, ticket, job in self.jobs:
            queued = submit(stream, batch, ticket)
            if queued is None:
                job.set_exception(StreamNotScored("not scored here"))
            else:
                _follow(queued, job)
        self.jobs.clear()


def _follow(source: Future[ScoreOutcome], target: Future[ScoreOutcome]) -> None:
    def copy(done: Future[ScoreOutcome]) -> None:
        if target.done():
            return
        if done.cancelled():
            target.cancel()
            return
        exc = done.exception()
        if exc is not None:
            target.set_exception(exc)
        else:
            target.set_result(done.result())

    source.add_done_callback(copy)
