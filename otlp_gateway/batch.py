"""The unit of work that flows from the receiver through detection to the exporter; the stages' contract."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Signal = Literal["traces", "metrics", "logs"]
SIGNALS: tuple[Signal, ...] = ("traces", "metrics", "logs")


@dataclass(slots=True)
class TelemetryBatch:
    """One accepted OTLP export request.

    ``payload`` is the serialized ``Export*ServiceRequest`` to forward: the client's original bytes
    (after decompression) when nothing was dropped or annotated, otherwise a re-serialization.
    ``message`` is the parsed request when a stage already parsed it (may be ``None``).
    ``extraction`` is the request's per-stream events (``otlp_gateway.otlp.extract.Extraction``) when the
    receiver extracted them while decoding (detection on), so the detection stage does not parse again.
    """

    signal: Signal
    payload: bytes
    item_count: int
    message: object | None = None
    received_at: float = field(default_factory=time.time)
    """Wall-clock seconds at receipt (for latency metrics and window timestamps)."""
    extraction: object | None = None


class BatchConsumer(Protocol):
    """Next stage of the pipeline. ``consume`` returns once the batch is durably handed over.

    Raises ``RetryableError`` (the receiver answers UNAVAILABLE/503 with a retry hint) or
    ``PermanentError`` (the receiver answers INVALID_ARGUMENT/400). Once ``consume`` returns, the
    caller must not touch ``batch`` again (the collector's ownership rule).
    """

    async def consume(self, batch: TelemetryBatch) -> None: ...


@runtime_checkable
class ScoringConsumer(BatchConsumer, Protocol):
    """A consumer that scores the events of what it takes (detection): the receivers extract a request's
    events while decoding only when it will score them, so a request detection has no room for costs
    forwarding only the validating walk."""

    def wants_events(self, size: int) -> bool:
        """Whether a request of ``size`` bytes arriving now would be scored (a hint: it may change)."""
        ...


class Reservation(Protocol):
    """A place held in the next stage for one batch: ``consume`` hands the batch over in that place (once);
    ``release`` gives the place back unused (idempotent, a no-op after ``consume``)."""

    async def consume(self, batch: TelemetryBatch) -> None: ...

    def release(self) -> None: ...


class ReservingConsumer(BatchConsumer, Protocol):
    """A consumer that can promise, before the caller does costly work on a batch, to take it afterwards."""

    def reserve(self, batch: TelemetryBatch) -> Reservation:
        """Hold a place for ``batch`` (its size as it is now), or raise ``RetryableError`` (the client
        retries) when ``consume`` would refuse it now."""
        ...


class Unreserved:
    """The ``Reservation`` of a consumer that never refuses for lack of room: it holds nothing."""

    def __init__(self, consumer: BatchConsumer):
        self._consumer = consumer

    async def consume(self, batch: TelemetryBatch) -> None:
        await self._consumer.consume(batch)

    def release(self) -> None:
        pass
