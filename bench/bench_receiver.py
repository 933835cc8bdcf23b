"""Receiver CPU per item on 512-item requests versus a bare upb parse + serialize of the same bytes.

Everything the gRPC/HTTP handlers run between the transport and the next stage, through the real path:
the gate (rate limit + admission), ``IngestCore.ingest`` (decode on the decode pool's thread, admission,
hand-over to a no-op next stage), the response. Process CPU time (all threads: the decode thread does the
work; the machine is shared, so no wall clock), medians over repetitions that are interleaved so that load
from other jobs drifts over all variants alike. Every repetition uses requests never seen before (the
shared generator, ``bench/traffic.py``), so the fragment memo of the extraction only helps as much as it
would in production. For spans and for log records:

(a) floor: ``Export*ServiceRequest.FromString(raw).SerializeToString()``;
(b) receiver, protobuf, all valid, detection off (validate + count in the wire walk);
(c) the same with one invalid item per request (rare path: upb parse, drop it, re-serialize);
(d) the same requests as OTLP/JSON (hex ids), for scale;
(e) receiver, protobuf, detection on: the same walk also extracts the per-stream canonical events;
(f) latency: (b) and (e) on a 2-thread decode pool, closed loop with 16 requests in flight for the
    maximum, then an open-loop paced client at 50 % of it: p50/p99 of the ingest call.

    python bench/bench_receiver.py [--signal traces|logs|both] [--requests 40] [--reps 5]
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from harness import ITEM, REQUEST_TYPES, closed_loop_calls, load_average, ms, paced_calls, percentile
from sinks import NullConsumer
from traffic import TrafficGenerator

from otlp_gateway.otlp.codec import Encoding, ExtractionOptions
from otlp_gateway.otlp.signals import SIGNAL_SPECS
from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.receiver.admission import AdmissionController
from otlp_gateway.receiver.decoding import DecodePool
from otlp_gateway.receiver.ingest import IngestCore
from otlp_gateway.receiver.settings import AdmissionSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

ITEMS = 512



def make_core(extraction: ExtractionOptions | None, workers: int = 1) -> IngestCore:
    metrics = GatewayMetrics()
    admission = AdmissionController(AdmissionSettings(max_inflight_items=10_000_000), metrics)
    pool = DecodePool(workers, extraction)
    pool.warm_up().result()  # until the kernels are ready the pool decodes with upb, without extraction
    return IngestCore("grpc", NullConsumer(), metrics, admission, TokenBucket(1e12, 10**12), None, pool)


async def ingest(core: IngestCore, signal: str, body: bytes, encoding: Encoding = "protobuf") -> None:
    core.gate()
    (await core.ingest(SIGNAL_SPECS[signal], body, encoding)).SerializeToString()


def receive_all(core: IngestCore, signal: str, bodies: list[bytes], encoding: Encoding) -> None:
    async def run() -> None:
        for body in bodies:
            await ingest(core, signal, body, encoding)

    asyncio.run(run())


def one_bad(signal: str, raw: bytes) -> bytes:
    message = REQUEST_TYPES[signal].FromString(raw)
    if signal == "traces":
        message.resource_spans[0].scope_spans[0].spans[7].trace_id = b"\x01" * 15
    else:
        message.resource_logs[0].scope_logs[0].log_records[0].span_id = b"\x01" * 7
    return message.SerializeToString()


def as_otlp_json(signal: str, raw: bytes) -> bytes:
    """The OTLP/JSON a client would send for ``raw``: ids as hex, enums as integers."""
    doc = json_format.MessageToDict(REQUEST_TYPES[signal].FromString(raw), use_integers_for_enums=True)
    outer, inner, items = (("resourceSpans", "scopeSpans", "spans") if signal == "traces"
                           else ("resourceLogs", "scopeLogs", "logRecords"))
    for resource in doc[outer]:
        for scope in resource[inner]:
            for item in scope[items]:
                for key in ("traceId", "spanId", "parentSpanId"):
                    if key in item:
                        item[key] = base64.b64decode(item[key]).hex()
    return json.dumps(doc).encode()


def latency(signal: str, extraction: ExtractionOptions | None, gen: TrafficGenerator,
            count: int) -> tuple[float, float, float]:
    """(max items/s, p50, p99 seconds at half of it) of the ingest call on a 2-thread decode pool."""
    core = make_core(extraction, workers=2)
    receive_all(core, signal, gen.requests(signal, 4, ITEMS), "protobuf")
    loaded, paced = gen.requests(signal, count, ITEMS), gen.requests(signal, count // 2, ITEMS)

    async def run() -> tuple[float, list[float]]:
        wall = await closed_loop_calls(lambda b: ingest(core, signal, b), loaded, 16)
        rate = count / wall
        return rate, await paced_calls(lambda b: ingest(core, signal, b), paced, rate / 2)

    rate, latencies = asyncio.run(run())
    core.decoder.close()
    return rate * ITEMS, percentile(latencies, 0.5), percentile(latencies, 0.99)


def run_signal(args: argparse.Namespace, signal: str) -> None:
    gen = TrafficGenerator(seed=args.seed)
    plain, extracting = make_core(None), make_core(ExtractionOptions())
    warm = gen.requests(signal, 8, ITEMS)  # kernels compiled or loaded, memo primed
    receive_all(plain, signal, warm, "protobuf")
    receive_all(extracting, signal, warm, "protobuf")
    parse = REQUEST_TYPES[signal].FromString

    def floor(bodies: list[bytes]) -> None:
        for raw in bodies:
            parse(raw).SerializeToString()

    variants: dict[str, tuple[Callable[[list[bytes]], None], Callable[[bytes], bytes]]] = {
        "a": (floor, lambda raw: raw),
        "b": (lambda bodies: receive_all(plain, signal, bodies, "protobuf"), lambda raw: raw),
        "c": (lambda bodies: receive_all(plain, signal, bodies, "protobuf"),
              lambda raw: one_bad(signal, raw)),
        "d": (lambda bodies: receive_all(plain, signal, bodies, "json"),
              lambda raw: as_otlp_json(signal, raw)),
        "e": (lambda bodies: receive_all(extracting, signal, bodies, "protobuf"), lambda raw: raw),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    sizes = []
    for _ in range(args.reps):
        for name, (run, shape) in variants.items():
            count = args.requests if name != "d" else max(2, args.requests // 8)  # JSON is slow to build
            raws = gen.requests(signal, count, ITEMS)
            sizes.extend(map(len, raws))
            bodies = [shape(raw) for raw in raws]
            start = time.process_time()
            run(bodies)
            samples[name].append((time.process_time() - start) / (count * ITEMS))
    a, b, c, d, e = (statistics.median(samples[k]) for k in "abcde")
    item = ITEM[signal]
    print(f"== {signal}: {ITEMS}-{item} requests, {args.requests} new ones per variant and repetition, "
          f"{args.reps} repetitions, {sum(sizes) // len(sizes)} bytes each on average; {load_average()}")
    print(f"(a) floor  upb parse + serialize          {a * 1e6:7.3f} us/{item}  "
          f"({1 / a / 1e6:.2f} M {item}s/s/core)")
    print(f"(b) receiver, protobuf, all valid          {b * 1e6:7.3f} us/{item}  ratio b/a = {b / a:.2f}")
    print(f"(c) receiver, protobuf, 1 invalid item     {c * 1e6:7.3f} us/{item}  ratio c/a = {c / a:.2f}")
    print(f"(d) receiver, OTLP/JSON, all valid         {d * 1e6:7.3f} us/{item}  ratio d/a = {d / a:.2f}")
    print(f"(e) receiver + extraction (detection on)   {e * 1e6:7.3f} us/{item}  ratio e/a = {e / a:.2f}")
    for label, extraction in (("(b)", None), ("(e)", ExtractionOptions())):
        rate, p50, p99 = latency(signal, extraction, gen, args.latency_requests)
        print(f"(f) {label} max {rate / 1e3:.0f} k {item}s/s wall (2 decode threads); at 50% load: ingest "
              f"p50 {ms(p50)} ms, p99 {ms(p99)} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", choices=["traces", "logs", "both"], default="both")
    parser.add_argument("--requests", type=int, default=40, help="new requests per variant and repetition")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--latency-requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    for signal in ("traces", "logs") if args.signal == "both" else (args.signal,):
        run_signal(args, signal)


if __name__ == "__main__":
    main()
