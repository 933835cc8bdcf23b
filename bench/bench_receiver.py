"""Receiver CPU per span on 512-span requests versus a bare upb parse + serialize of the same bytes.

Measured in one run with thread CPU time (the machine is shared): medians of 7 repetitions.
(a) floor: ``ExportTraceServiceRequest.FromString(raw).SerializeToString()``;
(b) receiver, protobuf path: the gate (rate limit + admission), parse, id validation, admission, hand-over
    to a no-op next stage, response serialization -- everything the gRPC/HTTP handlers run between the
    transport and the next stage;
(c) the same with one invalid span per request (slow path: drop it and re-serialize);
(d) the OTLP/JSON path of the same requests (hex ids rewritten, json_format), for scale.

    python bench/bench_receiver.py [--requests 8] [--rounds 10]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

from google.protobuf import json_format
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from otlp_load import trace_request

from otlp_gateway.batch import TelemetryBatch
from otlp_gateway.otlp.json_codec import parse_otlp_json
from otlp_gateway.otlp.receiving import RECEIVER_SIGNALS
from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.receiver.admission import AdmissionController
from otlp_gateway.receiver.ingest import IngestCore
from otlp_gateway.receiver.settings import AdmissionSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

SPANS = 512
TRACES = RECEIVER_SIGNALS["traces"]


class NullConsumer:
    async def consume(self, batch: TelemetryBatch) -> None:
        return None


def _drive(coroutine):
    """Run a coroutine that never suspends (the no-op next stage) without an event loop's overhead."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        return done.value
    raise RuntimeError("the coroutine suspended")


def cpu_per_span(variants: dict[str, tuple[Callable[[bytes], object], list[bytes], int]],
                 reps: int = 7) -> dict[str, float]:
    """Median thread-CPU seconds per span of each variant; the variants are interleaved within every
    repetition so that load from other jobs drifts over all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        for name, (step, requests, rounds) in variants.items():
            start = time.thread_time()
            for _ in range(rounds):
                for raw in requests:
                    step(raw)
            samples[name].append((time.thread_time() - start) / (rounds * len(requests) * SPANS))
    return {name: statistics.median(values) for name, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=8, help="distinct 512-span requests")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()

    requests = [trace_request(SPANS, seed=i) for i in range(args.requests)]
    metrics = GatewayMetrics()
    admission = AdmissionController(AdmissionSettings(), metrics)
    core = IngestCore("grpc", NullConsumer(), metrics, admission, TokenBucket(1e12, 10**12), None)

    def floor(raw: bytes) -> None:
        ExportTraceServiceRequest.FromString(raw).SerializeToString()

    def receiver(raw: bytes) -> None:
        core.gate()
        message = core.parse_protobuf(TRACES, raw)
        _drive(core.ingest(TRACES, message, raw, len(raw))).SerializeToString()

    def one_bad(raw: bytes) -> bytes:
        message = ExportTraceServiceRequest.FromString(raw)
        message.resource_spans[0].scope_spans[0].spans[7].trace_id = b"\x01" * 15
        return message.SerializeToString()

    bad_requests = [one_bad(raw) for raw in requests]
    json_requests = [_as_otlp_json(raw) for raw in requests]
    json_sizes = {id(body): len(body) for body in json_requests}

    def receiver_json(body: bytes) -> None:
        core.gate()
        message = parse_otlp_json(body, "traces", TRACES.request_type)
        _drive(core.ingest(TRACES, message, None, json_sizes[id(body)])).SerializeToString()

    figures = cpu_per_span({"a": (floor, requests, args.rounds), "b": (receiver, requests, args.rounds),
                            "c": (receiver, bad_requests, args.rounds),
                            "d": (receiver_json, json_requests, max(1, args.rounds // 10))})
    a, b, c, d = (figures[k] for k in "abcd")
    size = sum(map(len, requests)) // len(requests)
    print(f"512-span requests: {args.requests} distinct, {size} bytes each on average")
    print(f"(a) floor  upb parse + serialize          {a * 1e6:7.3f} us/span  "
          f"({1 / a / 1e6:.2f} M spans/s/core)")
    print(f"(b) receiver, protobuf, all valid          {b * 1e6:7.3f} us/span  ratio b/a = {b / a:.2f}")
    print(f"(c) receiver, protobuf, 1 invalid span     {c * 1e6:7.3f} us/span  ratio c/a = {c / a:.2f}")
    print(f"(d) receiver, OTLP/JSON, all valid         {d * 1e6:7.3f} us/span  ratio d/a = {d / a:.2f}")


def _as_otlp_json(raw: bytes) -> bytes:
    """The OTLP/JSON a client would send for ``raw``: ids as hex, enums as integers."""
    doc = json_format.MessageToDict(ExportTraceServiceRequest.FromString(raw), use_integers_for_enums=True)
    for resource in doc["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = _b64_to_hex(span[key])
    return json.dumps(doc).encode()


def _b64_to_hex(value: str) -> str:
    import base64

    return base64.b64decode(value).hex()


if __name__ == "__main__":
    main()
