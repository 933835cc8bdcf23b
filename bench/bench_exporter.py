"""Exporter throughput and CPU cost: consume() -> downstream for 512-span requests, spool on vs off.

Run: /work/venv/bin/python bench/bench_exporter.py [--requests 1000] [--rounds 3] [--compression gzip]

The recording downstream runs in a child process, so the CPU measured here (process CPU time: the
event loop, grpc's C threads, the SQLite thread) is the exporter's own. Modes alternate round by
round so background load on this shared machine hits both alike; medians are printed, then the
spool/memory ratios. consume latency is what a client waits for its OK (the spool's group commit).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from otlp_gateway.batch import TelemetryBatch  # noqa: E402
from otlp_gateway.exporter import Exporter  # noqa: E402
from otlp_gateway.exporter.settings import ExporterSettings  # noqa: E402
from otlp_gateway.telemetry.metrics import GatewayMetrics  # noqa: E402

SPANS = 512
PRODUCERS = 32


def build_request(spans: int = SPANS) -> bytes:
    """A realistic traces request: one resource with 8 attributes, spans with 10 attributes each."""
    request = ExportTraceServiceRequest()
    rs = request.resource_spans.add()
    for i in range(8):
        rs.resource.attributes.add(key=f"resource.attr{i}", value={"string_value": f"value-{i}"})
    scope = rs.scope_spans.add()
    for i in range(spans):
        span = scope.spans.add(name=f"GET /api/v1/items/{i % 17}", trace_id=os.urandom(16),
                               span_id=os.urandom(8), parent_span_id=os.urandom(8), kind=2,
                               start_time_unix_nano=1_700_000_000_000_000_000 + i,
                               end_time_unix_nano=1_700_000_000_000_500_000 + i)
        for k in range(5):
            span.attributes.add(key=f"attr.s{k}", value={"string_value": f"str-{(i * k) % 97}"})
        for k in range(3):
            span.attributes.add(key=f"attr.i{k}", value={"int_value": i * k})
        span.attributes.add(key="attr.b", value={"bool_value": i % 2 == 0})
        span.attributes.add(key="attr.d", value={"double_value": i / 3})
        span.status.code = 1
    return request.SerializeToString()


async def one_round(endpoint: str, persistent: bool, payload: bytes, n: int, compression: str) -> dict:
    metrics = GatewayMetrics()
    settings = ExporterSettings.model_validate({
        "endpoint": endpoint, "compression": compression,
        "queue": {"persistent": persistent, "capacity_requests": n + 1},
        "retry": {"initial_interval_seconds": 0.01, "max_interval_seconds": 0.1, "max_elapsed_seconds": 0}})
    with tempfile.TemporaryDirectory(prefix="bench-exporter-") as data_dir:
        exporter = Exporter(settings, Path(data_dir), metrics)
        await exporter.start()
        latencies: list[float] = []
        remaining = n

        async def producer() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                t = time.perf_counter()
                await exporter.consume(TelemetryBatch("traces", payload, SPANS))
                latencies.append(time.perf_counter() - t)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(PRODUCERS)))
        consumed_wall = time.perf_counter() - wall0
        target = n * SPANS
        while (metrics.registry.get_sample_value("otelcol_exporter_sent_spans_total") or 0) < target:
            await asyncio.sleep(0.002)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        commits = exporter.queue.fifo.commits if exporter.queue and exporter.queue.persistent else 0
        await exporter.shutdown(grace=5)
    latencies.sort()
    return {"req_s": n / wall, "cpu_ms": 1000 * cpu / n, "consume_req_s": n / consumed_wall,
            "p50_ms": 1000 * latencies[len(latencies) // 2],
            "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
            "per_commit": n / commits if commits else 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compression", choices=["gzip", "none"], default="gzip")
    args = parser.parse_args()

    payload = build_request()
    child = subprocess.Popen([sys.executable, "-m", "tests.fixtures.downstream"], cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)}, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        endpoint = child.stdout.readline().split()[1]
        print(f"{args.requests} requests x {SPANS} spans ({len(payload)} bytes each), {PRODUCERS} concurrent "
              f"producers, compression {args.compression}, downstream {endpoint} (child process)")
        results: dict[str, list[dict]] = {"memory": [], "spool": []}

        async def all_rounds() -> None:
            await one_round(endpoint, False, payload, 100, args.compression)  # warm-up
            for _ in range(args.rounds):
                for mode in ("memory", "spool"):
                    results[mode].append(await one_round(endpoint, mode == "spool", payload, args.requests,
                                                         args.compression))

        asyncio.run(all_rounds())
    finally:
        child.terminate()
        child.wait(timeout=10)

    med = {mode: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
           for mode, rows in results.items()}
    print(f"{'mode':8} {'req/s':>8} {'spans/s':>10} {'CPU ms/req':>11} {'consume req/s':>14} "
          f"{'consume p50/p99 ms':>19} {'req/commit':>11}")
    for mode, m in med.items():
        print(f"{mode:8} {m['req_s']:8.0f} {m['req_s'] * SPANS:10.0f} {m['cpu_ms']:11.3f} "
              f"{m['consume_req_s']:14.0f} {m['p50_ms']:9.2f}/{m['p99_ms']:<9.2f} {m['per_commit']:11.1f}")
    print(f"ratio spool/memory: throughput {med['spool']['req_s'] / med['memory']['req_s']:.2f}x, "
          f"CPU per request {med['spool']['cpu_ms'] / med['memory']['cpu_ms']:.2f}x "
          f"(median of {args.rounds} alternating rounds)")


if __name__ == "__main__":
    main()
