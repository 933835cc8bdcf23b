"""Receiver CPU per span on 512-span requests versus a bare upb parse + serialize of the same bytes.

Everything the gRPC/HTTP handlers run between the transport and the next stage, through the real path:
the gate (rate limit + admission), ``IngestCore.ingest`` (decode on the decode pool's thread, admission,
hand-over to a no-op next stage), the response. Process CPU time (all threads: the decode thread does the
work; the machine is shared, so no wall clock), medians over repetitions that are interleaved so that load
from other jobs drifts over all variants alike. Every repetition uses requests never seen before (new
seeds), so the fragment memo of the extraction only helps as much as it would in production.

(a) floor: ``ExportTraceServiceRequest.FromString(raw).SerializeToString()``;
(b) receiver, protobuf, all valid, detection off (validate + count in the wire walk);
(c) the same with one invalid span per request (rare path: upb parse, drop it, re-serialize);
(d) the same requests as OTLP/JSON (hex ids), for scale;
(e) receiver, protobuf, detection on: the same walk also extracts the per-stream canonical events, which
    the detection stage then uses as they are (before this, the stage walked the bytes a second time).

    python bench/bench_receiver.py [--requests 40] [--reps 5]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
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
from otlp_gateway.otlp.codec import Encoding, ExtractionOptions
from otlp_gateway.otlp.signals import SIGNAL_SPECS
from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.receiver.admission import AdmissionController
from otlp_gateway.receiver.decoding import DecodePool
from otlp_gateway.receiver.ingest import IngestCore
from otlp_gateway.receiver.settings import AdmissionSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

SPANS = 512
TRACES = SIGNAL_SPECS["traces"]


class NullConsumer:
    async def consume(self, batch: TelemetryBatch) -> None:
        return None


def make_core(extraction: ExtractionOptions | None) -> IngestCore:
    metrics = GatewayMetrics()
    admission = AdmissionController(AdmissionSettings(), metrics)
    return IngestCore("grpc", NullConsumer(), metrics, admission, TokenBucket(1e12, 10**12), None,
                      DecodePool(1, extraction))


def receive_all(core: IngestCore, bodies: list[bytes], encoding: Encoding) -> None:
    async def run() -> None:
        for body in bodies:
            core.gate()
            (await core.ingest(TRACES, body, encoding)).SerializeToString()

    asyncio.run(run())


def one_bad(raw: bytes) -> bytes:
    message = ExportTraceServiceRequest.FromString(raw)
    message.resource_spans[0].scope_spans[0].spans[7].trace_id = b"\x01" * 15
    return message.SerializeToString()


def as_otlp_json(raw: bytes) -> bytes:
    """The OTLP/JSON a client would send for ``raw``: ids as hex, enums as integers."""
    doc = json_format.MessageToDict(ExportTraceServiceRequest.FromString(raw), use_integers_for_enums=True)
    for resource in doc["resourceSpans"]:
        for scope in resource["scopeSpans"]:
            for span in scope["spans"]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in span:
                        span[key] = base64.b64decode(span[key]).hex()
    return json.dumps(doc).encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=40, help="new 512-span requests per repetition")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args()

    plain, extracting = make_core(None), make_core(ExtractionOptions())
    warm = [trace_request(SPANS, seed=-1 - i) for i in range(4)]  # kernels compiled or loaded, memo primed
    receive_all(plain, warm, "protobuf")
    receive_all(extracting, warm, "protobuf")

    def floor(bodies: list[bytes]) -> None:
        for raw in bodies:
            ExportTraceServiceRequest.FromString(raw).SerializeToString()

    variants: dict[str, tuple[Callable[[list[bytes]], None], Callable[[bytes], bytes]]] = {
        "a": (floor, lambda raw: raw),
        "b": (lambda bodies: receive_all(plain, bodies, "protobuf"), lambda raw: raw),
        "c": (lambda bodies: receive_all(plain, bodies, "protobuf"), one_bad),
        "d": (lambda bodies: receive_all(plain, bodies, "json"), as_otlp_json),
        "e": (lambda bodies: receive_all(extracting, bodies, "protobuf"), lambda raw: raw),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    seed = 0
    sizes = []
    for _ in range(args.reps):
        for name, (run, shape) in variants.items():
            count = args.requests if name != "d" else max(2, args.requests // 8)  # JSON is slow to build
            raws = [trace_request(SPANS, seed=seed + i) for i in range(count)]
            seed += count
            sizes.extend(map(len, raws))
            bodies = [shape(raw) for raw in raws]
            start = time.process_time()
            run(bodies)
            samples[name].append((time.process_time() - start) / (count * SPANS))
    a, b, c, d, e = (statistics.median(samples[k]) for k in "abcde")
    print(f"512-span requests, {args.requests} new ones per variant and repetition, {args.reps} repetitions, "
          f"{sum(sizes) // len(sizes)} bytes each on average")
    print(f"(a) floor  upb parse + serialize          {a * 1e6:7.3f} us/span  "
          f"({1 / a / 1e6:.2f} M spans/s/core)")
    print(f"(b) receiver, protobuf, all valid          {b * 1e6:7.3f} us/span  ratio b/a = {b / a:.2f}")
    print(f"(c) receiver, protobuf, 1 invalid span     {c * 1e6:7.3f} us/span  ratio c/a = {c / a:.2f}")
    print(f"(d) receiver, OTLP/JSON, all valid         {d * 1e6:7.3f} us/span  ratio d/a = {d / a:.2f}")
    print(f"(e) receiver + extraction (detection on)   {e * 1e6:7.3f} us/span  ratio e/a = {e / a:.2f}")


if __name__ == "__main__":
    main()
