"""Detection pipeline throughput and memory, measured in one run (CPU-time clocks: the machine is shared).

Figures printed:
* spans per CPU-second through ``DetectionStage.consume`` with detection on (512-span requests, a few streams,
  real cbad detector, no store), i.e. spans/s per core;
* CPU per span against a bare upb parse + serialize floor of the same requests, and the split between
  extraction (the codec's decode: one walk of the request bytes that validates and extracts, what the
  receivers run; the tests' reference extraction, parse + per-span fields + ``detectors.canonical``
  without memo, for comparison) and scoring; the same two extraction figures for log requests of the same
  size;
* ``Pipeline.consume`` gets batches without an extraction here, so the stage runs the same decode itself
  (through the receivers, the batch carries the receiver's extraction);
* memory per live stream (tracemalloc, which sees numpy buffers) and snapshot bytes per stream.

Run: .venv/bin/python bench/bench_pipeline.py [--requests 60] [--streams 4]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from detectors import EventBatch, registry
from otlp_gateway.batch import TelemetryBatch, Unreserved
from otlp_gateway.detection import DetectionStage
from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.otlp.codec import ExtractionOptions, RequestCodec
from otlp_gateway.streams.routing import StreamRouter
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.otlp.otlp_data import LogSpec, SpanSpec, logs_request, traces_request
from tests.otlp.reference import ReferenceExtractor

SPANS_PER_REQUEST = 512


class NullConsumer:
    async def consume(self, batch: TelemetryBatch) -> None:
        return None

    def reserve(self, batch: TelemetryBatch) -> Unreserved:
        return Unreserved(self)


def make_requests(n: int, streams: int, seed: int) -> list[bytes]:
    """Requests shaped like measured-limits section 3: 8 resource attributes, 10 span attributes."""
    rng = random.Random(seed)
    names = [f"GET /api/v1/resource{i}" for i in range(streams)]
    resource = {"host.name": "node-7", "k8s.pod.name": "checkout-5d9f", "k8s.namespace.name": "shop",
                "service.version": "1.4.2", "telemetry.sdk.name": "opentelemetry",
                "telemetry.sdk.language": "python", "deployment.environment": "prod"}
    out = []
    t = 1_700_000_000 * 10**9
    for _ in range(n):
        spans = []
        for j in range(SPANS_PER_REQUEST):
            t += 100_000
            spans.append(SpanSpec(
                "checkout", names[j % streams], rng.randint(1_000_000, 9_000_000),
                status=rng.choice((0, 0, 1)),
                attrs={"http.method": "GET", "http.route": f"/api/v1/r{j % 7}", "http.scheme": "https",
                       "net.host.name": "checkout", "user_agent.original": "okhttp/4.9",
                       "http.status_code": 200, "net.peer.port": rng.randint(30000, 60000),
                       "http.response_content_length": rng.randint(100, 9000), "http.flavor_ok": True,
                       "server.duration_ms": rng.random() * 10},
                trace_id=rng.randbytes(16), span_id=rng.randbytes(8), start_ns=t))
        out.append(traces_request(spans, resource).SerializeToString())
    return out


def make_log_requests(n: int, seed: int) -> list[bytes]:
    """Log requests of the same size: a few templates with varying numbers, 4 attributes each."""
    rng = random.Random(seed)
    templates = ("GET /api/v1/items/{n} took {ms} ms", "cache miss for key user:{n}",
                 "retrying job {n} in {ms}s", "payment {n} authorized")
    out = []
    for i in range(n):
        records = [LogSpec("checkout", f"app.module{4 * j // SPANS_PER_REQUEST}",
                           templates[j % 4].format(n=rng.randint(1, 10**6), ms=rng.randint(1, 900)),
                           severity=rng.choice((9, 9, 13)),
                           attrs={"thread": f"worker-{j % 8}", "http.status_code": 200,
                                  "bytes": rng.randint(100, 90000), "request_id": rng.randbytes(8).hex()},
                           trace_id=rng.randbytes(16), span_id=rng.randbytes(8),
                           time_ns=10**18 + i * 10**6 + j)
                   for j in range(SPANS_PER_REQUEST)]
        out.append(logs_request(records).SerializeToString())
    return out


def log_extraction_cpu(payloads: list[bytes], warm: list[bytes]) -> tuple[float, float]:
    """(reference, the codec's decode: validation + wire extraction) CPU of log requests."""
    fast = RequestCodec(ExtractionOptions())
    slow = ReferenceExtractor(StreamRouter(["signal", "service.name", "name"]))
    for p in warm:
        fast.decode("logs", p)
        slow.extract("logs", ExportLogsServiceRequest.FromString(p))
    start = time.process_time()
    for p in payloads:
        slow.extract("logs", ExportLogsServiceRequest.FromString(p))
    reference = time.process_time() - start
    start = time.process_time()
    for p in payloads:
        fast.decode("logs", p)
    return reference, time.process_time() - start


def floor_cpu(payloads: list[bytes]) -> float:
    start = time.process_time()
    for p in payloads:
        ExportTraceServiceRequest.FromString(p).SerializeToString()
    return time.process_time() - start


def extraction_cpu(payloads: list[bytes], warm: list[bytes] = ()) -> tuple[float, list[Any]]:
    """The receiver's decode with extraction (validation + the wire path from request bytes), after a
    warm-up."""
    codec = RequestCodec(ExtractionOptions())
    for p in warm:
        codec.decode("traces", p)
    start = time.process_time()
    out = [codec.decode("traces", p).extraction for p in payloads]
    return time.process_time() - start, out


def reference_extraction_cpu(payloads: list[bytes]) -> float:
    """The reference (the tests' oracle): upb parse, then per-span field access and the canonical form."""
    extractor = ReferenceExtractor(StreamRouter(["signal", "service.name", "name"]))
    start = time.process_time()
    for p in payloads:
        extractor.extract("traces", ExportTraceServiceRequest.FromString(p))
    return time.process_time() - start


def scoring_cpu(warm: list[Any], extractions: list[Any]) -> float:
    """The detectors alone on the already extracted events (after the same warm-up), one thread."""
    detectors: dict[str, Any] = {}
    for ex in warm:
        for sid, batch in ex.streams.items():
            detectors.setdefault(sid, registry.create("cbad")).update(EventBatch(batch.events))
    start = time.process_time()
    for ex in extractions:
        for sid, batch in ex.streams.items():
            detectors.setdefault(sid, registry.create("cbad")).update(EventBatch(batch.events))
    return time.process_time() - start


async def pipeline_cpu(payloads: list[bytes], warm: list[bytes],
                       concurrency: int) -> tuple[float, float, float]:
    metrics = GatewayMetrics()
    pipe = DetectionStage.create(DetectionSettings(workers=2), NullConsumer(), None, None, metrics, "bench")
    await pipe.start()
    for p in warm:  # warm-up: JIT cache load, detector baselines
        await pipe.consume(TelemetryBatch("traces", p, SPANS_PER_REQUEST))
    await pipe.drain()
    sem = asyncio.Semaphore(concurrency)

    async def one(p: bytes) -> None:
        async with sem:
            await pipe.consume(TelemetryBatch("traces", p, SPANS_PER_REQUEST))

    def scored() -> float:
        labels = {"stream_type": "traces"}
        return metrics.registry.get_sample_value("driftlock_detector_events_total", labels) or 0.0

    before = scored()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(one(p) for p in payloads))
    await pipe.drain(60)  # requests past the detection budget are still being scored
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    after = scored()
    await pipe.shutdown(5)
    return cpu, wall, after - before


async def memory_per_stream(n_streams: int, events_per_stream: int) -> tuple[float, float]:
    pipe = DetectionStage.create(DetectionSettings(max_live_streams=n_streams + 1), NullConsumer(), None,
                                 None, GatewayMetrics(), "bench")
    rng = random.Random(3)
    spans = [SpanSpec("svc", f"op-{i}", rng.randint(10**6, 9 * 10**6), attrs={"k": "v"},
                      trace_id=rng.randbytes(16), span_id=rng.randbytes(8), start_ns=10**18 + j)
             for j in range(events_per_stream) for i in range(n_streams)]
    payload = traces_request(spans).SerializeToString()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    await pipe.consume(TelemetryBatch("traces", payload, len(spans)))
    await pipe.drain()
    used = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    snap = sum(len(s.snapshot()) for s in pipe.streams.streams()) / n_streams
    await pipe.shutdown(5)
    return used / n_streams, snap


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--concurrency", type=int, default=4)
    args = ap.parse_args()
    # What the gateway does at start: compile or load every kernel, so no one-time cache load is timed.
    from otlp_gateway.jit import warm_up_kernels

    warm_up_kernels()
    warm = make_requests(4, args.streams, 1)
    payloads = make_requests(args.requests, args.streams, 2)
    spans = args.requests * SPANS_PER_REQUEST
    floor = floor_cpu(payloads)
    reference = reference_extraction_cpu(payloads)
    extract, extractions = extraction_cpu(payloads, warm)
    score = scoring_cpu(extraction_cpu(warm)[1], extractions)
    log_reference, log_fast = log_extraction_cpu(make_log_requests(args.requests, 2), make_log_requests(4, 1))
    cpu, wall, scored = asyncio.run(pipeline_cpu(payloads, warm, args.concurrency))
    per_stream, snap = asyncio.run(memory_per_stream(50, 600))
    us = 1e6 / spans
    print(f"requests={args.requests} x {SPANS_PER_REQUEST} spans, streams={args.streams}, "
          f"concurrency={args.concurrency}, workers=2, profile=balanced, compressor=cm")
    def line(label: str, seconds: float) -> str:
        return f"{label:<30}: {seconds * us:7.2f} us CPU/span ({spans / seconds:>9,.0f} spans/CPU-s)"

    print(line("floor: upb parse+serialize", floor))
    print(line("extraction, reference (tests)", reference))
    print(line("decode: validate + extract", extract))
    print(line("cbad scoring alone", score))
    print(line("logs: extraction, reference", log_reference).replace("span", "log"))
    print(line("logs: decode + extract", log_fast).replace("span", "log"))
    print(line("pipeline, detection on", cpu) + f", wall {spans / wall:,.0f} spans/s")
    rest = (cpu - extract - score) * us
    print(f"pipeline / floor CPU ratio    : {cpu / floor:7.1f}x; pipeline overhead ~{rest:.2f} us/span")
    print(f"events scored                 : {scored:,.0f} of {spans:,}")
    print(f"memory per live stream        : {per_stream / 1024:,.0f} KiB (tracemalloc); "
          f"snapshot {snap / 1024:,.0f} KiB")


if __name__ == "__main__":
    main()
