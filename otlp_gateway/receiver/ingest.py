"""The transport-independent part of receiving: authenticate, gate, decode, admit, hand over.

Both receivers call the same ``IngestCore``; failures are raised as one ``Refusal`` whose ``kind`` each
transport maps onto its wire (gRPC status + trailers, HTTP status + headers). Errors are classified here,
once, as the OpenTelemetry Collector's receivers do: only a body that does not decode is the client's
fault (INVALID_ARGUMENT / 400); the next stage's ``RetryableError`` asks the client to retry (UNAVAILABLE
/ 503 or 429), its ``PermanentError`` is a server-side failure (INTERNAL / 500: the data is fine, a stage
of ours failed), and any other error is retryable (UNAVAILABLE / 503).
"""

from __future__ import annotations

import asyncio
import enum
import hmac
import logging

from google.protobuf.message import Message
from pydantic import SecretStr

from otlp_gateway.batch import BatchConsumer, ScoringConsumer, TelemetryBatch
from otlp_gateway.errors import OverloadedError, PermanentError, RateLimitedError, RetryableError
from otlp_gateway.otlp.codec import Encoding, MalformedRequest
from otlp_gateway.otlp.signals import SignalSpec
from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.receiver.admission import AdmissionController, Transit
from otlp_gateway.receiver.decoding import DecodePool
from otlp_gateway.receiver.memory_limiter import MemoryLimiter
from otlp_gateway.receiver.refusals import IngestRefusals
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

_AT_LIMIT = "the gateway is at its in-flight limit; retry later"
_QUEUE_NAMES = {"decode": "decode queue", "event_loop": "event loop"}


class RefusalKind(enum.Enum):
    MALFORMED = "malformed"              # gRPC INVALID_ARGUMENT, HTTP 400
    TOO_LARGE = "too_large"              # RESOURCE_EXHAUSTED (no RetryInfo), 413
    UNAUTHENTICATED = "unauthenticated"  # UNAUTHENTICATED, 401
    OVERLOADED = "overloaded"            # UNAVAILABLE + RetryInfo, 503 + Retry-After
    RATE_LIMITED = "rate_limited"        # UNAVAILABLE + RetryInfo, 429 + Retry-After
    MEMORY_LIMITED = "memory_limited"    # RESOURCE_EXHAUSTED + RetryInfo, 503 + Retry-After
    UNAVAILABLE = "unavailable"          # UNAVAILABLE + RetryInfo, 503 + Retry-After (a stage failed)
    INTERNAL = "internal"                # INTERNAL, 500


class Refusal(Exception):
    """A request the receiver answers with an error; ``retry_after`` is set for the retryable kinds."""

    def __init__(self, kind: RefusalKind, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.retry_after = retry_after
        self.cut_short = False
        """The request body was left partly unread (the connection should be closed)."""


class IngestCore:
    """One per receiver (``transport`` labels its metrics); the admission controller is shared."""

    def __init__(self, transport: str, consumer: BatchConsumer, metrics: GatewayMetrics,
                 admission: AdmissionController, rate_limiter: TokenBucket | None,
                 bearer_token: SecretStr | None, decoder: DecodePool,
                 refusals: IngestRefusals | None = None, memory_limiter: MemoryLimiter | None = None):
        self.transport = transport
        self.decoder = decoder
        self._refusals = refusals
        self._consumer = consumer
        self._wants_events = consumer.wants_events if isinstance(consumer, ScoringConsumer) else None
        self._metrics = metrics
        self._admission = admission
        self._rate_limiter = rate_limiter
        self._memory_limiter = memory_limiter
        self._expected_token = bearer_token.get_secret_value().encode() if bearer_token else None
        self.draining = False
        admission.watch_delay("decode", decoder.queue_wait)

    def watch_loop(self) -> None:
        """Called on the receivers' event loop when a receiver starts: admission watches its lag."""
        self._admission.watch_loop(asyncio.get_running_loop())

    def stop_watching_loop(self) -> None:
        """When a receiver shuts down (on the loop): the loop is no longer watched."""
        self._admission.stop_watching(asyncio.get_running_loop())

    # ------------------------------------------------------------------------------------ before the body
    def authenticate(self, authorization: str | None) -> None:
        """Check ``Authorization: Bearer <token>`` when a token is configured (constant-time compare)."""
        if self._expected_token is None:
            return
        scheme, _, token = (authorization or "").strip().partition(" ")
        presented = token.strip().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented, self._expected_token):
            raise Refusal(RefusalKind.UNAUTHENTICATED,
                          "missing or invalid bearer token (expected 'authorization: Bearer <token>')")

    def gate(self) -> None:
        """Refuse cheaply, before the body is read or parsed: draining, memory limiter, rate limit,
        admission full, the decode queue behind."""
        if self.draining:
            raise self._retry_later(RefusalKind.OVERLOADED, "draining",
                                    "the gateway is shutting down; retry against another instance")
        memory = self._memory_limiter
        if memory is not None and memory.refusing:  # before the rate limit: a refusal spends no token
            memory.note_refused(self.transport)
            raise self._retry_later(RefusalKind.MEMORY_LIMITED, "memory_limiter", memory.message(),
                                    memory.retry_after)
        if self._rate_limiter is not None:
            wait = self._rate_limiter.try_acquire(1)
            if wait:
                self._metrics.rate_limited.labels("ingest").inc()
                raise self._retry_later(RefusalKind.RATE_LIMITED, "rate_limited",
                                        "ingest rate limit exceeded; retry later", wait)
        if self._admission.saturated:
            raise self._refuse_admission()
        behind = self._admission.behind()
        if behind is not None:  # clients would wait in a queue past their deadlines: shed load now
            queue, delay = behind
            raise self._refuse_admission(
                f"the gateway's {_QUEUE_NAMES.get(queue, queue)} is {delay:.1f} s behind; retry later",
                "queue_delay")

    # ------------------------------------------------------------------------------------ the body
    async def ingest(self, spec: SignalSpec, body: bytes, encoding: Encoding = "protobuf",
                     transit: Transit | None = None) -> Message:
        """Decode (on a decode thread), admit and hand the request to the next stage; return the
        Export*ServiceResponse. ``body`` is the decompressed request; it is forwarded as it is when it
        was protobuf and every item in it is valid. ``transit`` holds the bytes of the body read so far
        (OTLP/HTTP); without one (OTLP/gRPC, whose requests arrive whole) the body's bytes are held here
        until admission takes them over, so requests waiting for a decode thread count too."""
        if transit is not None:
            transit.arrived()
            return await self._ingest(spec, body, encoding, transit)
        held = self._admission.hold_arrived(len(body))
        if held is None:
            raise self._refuse_admission()
        with held:  # released here unless admission took the bytes over
            return await self._ingest(spec, body, encoding, held)

    async def _ingest(self, spec: SignalSpec, body: bytes, encoding: Encoding, transit: Transit) -> Message:
        signal = spec.signal
        try:
            # no extraction for a request detection has no room for: forwarding never pays for it
            extract = self._wants_events is None or self._wants_events(len(body))
            decoded = await self.decoder.decode(signal, body, encoding, extract=extract)
        except MalformedRequest as exc:
            raise Refusal(RefusalKind.MALFORMED, str(exc)) from None
        if decoded.rejected:
            self._metrics.count_refused(signal, self.transport, "invalid", decoded.rejected)
            log.debug("%s %s: %s", self.transport, signal, decoded.rejection)
        for reason, count in decoded.capped.items():
            self._metrics.detection_capped_attributes.labels(signal, reason).inc(count)
        if decoded.accepted == 0:  # empty request, or nothing valid in it: nothing to hand over
            return spec.response(decoded.rejected, decoded.rejection)
        admission = self._admission.try_admit(decoded.accepted, max(len(body), len(decoded.payload)), transit)
        if admission is None:
            self._metrics.count_refused(signal, self.transport, "admission", decoded.accepted)
            raise self._refuse_admission()
        batch = TelemetryBatch(signal, decoded.payload, decoded.accepted, decoded.message,
                               extraction=decoded.extraction)
        with admission:
            try:
                await self._consumer.consume(batch)
            except Exception as exc:
                raise self._classify(signal, decoded.accepted, exc) from None
        self._metrics.count_accepted(signal, self.transport, decoded.accepted)
        if self._refusals is not None:
            self._refusals.accepted()
        return spec.response(decoded.rejected, decoded.rejection)

    def refuse_transit(self) -> Refusal:
        """A body being read no longer fits the bytes-in-transit budget (the rest is left unread)."""
        refusal = self._refuse_admission("the gateway holds too many request bodies being uploaded; "
                                         "retry later")
        refusal.cut_short = True
        return refusal

    # ------------------------------------------------------------------------------------ errors
    def _refuse_admission(self, message: str = _AT_LIMIT, reason: str = "admission") -> Refusal:
        self._note_refused(message)
        return self._retry_later(RefusalKind.OVERLOADED, reason, message)

    def _note_refused(self, why: str) -> None:
        if self._refusals is not None:
            self._refusals.refused(why)

    def _retry_later(self, kind: RefusalKind, reason: str, message: str,
                     retry_after: float | None = None) -> Refusal:
        self._metrics.ingest_throttled.labels(self.transport, reason).inc()
        return Refusal(kind, message, retry_after if retry_after else self._admission.retry_after)

    def _classify(self, signal: str, items: int, exc: Exception) -> Refusal:
        """Map the next stage's error class onto a refusal kind, once (the collector's mapping)."""
        if isinstance(exc, RetryableError):
            reason = ("rate_limited" if isinstance(exc, RateLimitedError)
                      else "overloaded" if isinstance(exc, OverloadedError) else "retryable")
            self._metrics.count_refused(signal, self.transport, reason, items)
            if not isinstance(exc, RateLimitedError):
                self._note_refused(str(exc))
            kind = RefusalKind.RATE_LIMITED if isinstance(exc, RateLimitedError) else RefusalKind.OVERLOADED
            return self._retry_later(kind, reason, f"temporarily unable to accept {signal}: {exc}",
                                     exc.retry_after)
        if isinstance(exc, PermanentError):  # a stage of ours cannot take it: not the client's data
            self._metrics.count_refused(signal, self.transport, "permanent", items)
            log.error("%s %s: the next stage failed permanently: %s", self.transport, signal, exc)
            return Refusal(RefusalKind.INTERNAL, f"{signal} could not be accepted: a server stage failed")
        self._metrics.count_refused(signal, self.transport, "internal", items)
        self._note_refused("the next stage failed unexpectedly")
        log.error("%s %s: the next stage failed unexpectedly", self.transport, signal, exc_info=exc)
        return Refusal(RefusalKind.UNAVAILABLE, f"{signal} could not be accepted now; retry later",
                       self._admission.retry_after)
