"""Exporter throughput and CPU cost: consume() -> downstream for 512-item requests, spool on vs off.

Run: python bench/bench_exporter.py [--signal traces|logs|both] [--requests 1000] [--rounds 3]
                                    [--compression gzip|none]

The shared generator's never-repeated requests (``bench/traffic.py``). The counting downstream runs in a
child process (``bench/downstream.py``), so the CPU measured here (process CPU time: the event loop,
grpc's C threads, the SQLite thread) is the exporter's own. Modes alternate round by round so background
load on this shared machine hits both alike; medians are printed, then the spool/memory ratios and the
CPU per item against the upb parse + serialize floor of the same requests. consume latency is what a
client waits for its OK (the spool's group commit); it is measured twice: with 32 producers as fast as
the exporter takes them, and paced open-loop at 50 % of that rate.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import ITEM, floor_seconds_per_item, load_average, paced_calls, percentile
from traffic import TrafficGenerator

from otlp_gateway.batch import TelemetryBatch
from otlp_gateway.exporter import Exporter
from otlp_gateway.exporter.settings import ExporterSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

REPO = Path(__file__).resolve().parents[1]
ITEMS = 512
PRODUCERS = 32
SENT = {"traces": "otelcol_exporter_sent_spans_total", "logs": "otelcol_exporter_sent_log_records_total"}


async def one_round(endpoint: str, signal: str, persistent: bool, payloads: list[bytes], compression: str,
                    paced: list[bytes] | None = None) -> dict[str, float]:
    metrics = GatewayMetrics()
    n = len(payloads)
    settings = ExporterSettings.model_validate({
        "endpoint": endpoint, "compression": compression,
        "queue": {"persistent": persistent, "capacity_requests": n + 1},
        "retry": {"initial_interval_seconds": 0.01, "max_interval_seconds": 0.1, "max_elapsed_seconds": 0}})
    with tempfile.TemporaryDirectory(prefix="bench-exporter-") as data_dir:
        exporter = Exporter(settings, Path(data_dir), metrics)
        await exporter.start()
        latencies: list[float] = []
        queue = list(reversed(payloads))

        async def consume(payload: bytes) -> None:
            await exporter.consume(TelemetryBatch(signal, payload, ITEMS))

        async def producer() -> None:
            while queue:
                payload = queue.pop()
                t = time.perf_counter()
                await consume(payload)
                latencies.append(time.perf_counter() - t)

        async def delivered(target: int) -> None:
            while (metrics.registry.get_sample_value(SENT[signal]) or 0) < target:
                await asyncio.sleep(0.002)

        cpu0, wall0 = time.process_time(), time.perf_counter()
        await asyncio.gather(*(producer() for _ in range(PRODUCERS)))
        consumed_wall = time.perf_counter() - wall0
        await delivered(n * ITEMS)
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        commits = exporter.queue.fifo.commits if exporter.queue and exporter.queue.persistent else 0
        result = {"req_s": n / wall, "cpu_ms": 1000 * cpu / n, "consume_req_s": n / consumed_wall,
                  "p50_ms": 1000 * percentile(latencies, 0.5), "p99_ms": 1000 * percentile(latencies, 0.99),
                  "per_commit": n / commits if commits else 0.0}
        if paced:
            paced_latencies = await paced_calls(consume, paced, n / wall / 2)
            await delivered((n + len(paced)) * ITEMS)
            result.update(paced_p50_ms=1000 * percentile(paced_latencies, 0.5),
                          paced_p99_ms=1000 * percentile(paced_latencies, 0.99))
        await exporter.shutdown(grace=5)
    return result


def run_signal(args: argparse.Namespace, signal: str, endpoint: str) -> None:
    gen = TrafficGenerator(seed=args.seed)
    item = ITEM[signal]
    results: dict[str, list[dict[str, float]]] = {"memory": [], "spool": []}
    floors = []

    async def all_rounds() -> None:
        await one_round(endpoint, signal, False, gen.requests(signal, 50, ITEMS), args.compression)  # warm-up
        for _ in range(args.rounds):
            for mode in ("memory", "spool"):
                payloads = gen.requests(signal, args.requests, ITEMS)
                floors.append(floor_seconds_per_item(signal, payloads[:100], ITEMS, rounds=1))
                paced = gen.requests(signal, args.requests // 2, ITEMS)
                results[mode].append(await one_round(endpoint, signal, mode == "spool", payloads,
                                                     args.compression, paced))

    asyncio.run(all_rounds())
    floor_us = statistics.median(floors) * 1e6
    med = {mode: {k: statistics.median(r[k] for r in rows) for k in rows[0]}
           for mode, rows in results.items()}
    print(f"== {signal}: {args.requests} requests x {ITEMS} {item}s per round, {PRODUCERS} producers, "
          f"compression {args.compression}; {load_average()}")
    print(f"floor upb parse + serialize {floor_us:.2f} us/{item}")
    print(f"{'mode':8} {'req/s':>7} {item + 's/s':>12} {'CPU ms/req':>11} {'us/' + item:>10} {'x floor':>8} "
          f"{'consume p50/p99 ms (max)':>25} {'(at 50%)':>14} {'req/commit':>11}")
    for mode, m in med.items():
        per_item = m["cpu_ms"] * 1000 / ITEMS
        print(f"{mode:8} {m['req_s']:7.0f} {m['req_s'] * ITEMS:12.0f} {m['cpu_ms']:11.3f} {per_item:10.2f} "
              f"{per_item / floor_us:8.2f} {m['p50_ms']:12.2f}/{m['p99_ms']:<12.2f} "
              f"{m['paced_p50_ms']:6.2f}/{m['paced_p99_ms']:<7.2f} {m['per_commit']:11.1f}")
    print(f"ratio spool/memory: throughput {med['spool']['req_s'] / med['memory']['req_s']:.2f}x, "
          f"CPU per request {med['spool']['cpu_ms'] / med['memory']['cpu_ms']:.2f}x "
          f"(median of {args.rounds} alternating rounds)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signal", choices=["traces", "logs", "both"], default="both")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--compression", choices=["gzip", "none"], default="gzip")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    child = subprocess.Popen([sys.executable, str(REPO / "bench" / "downstream.py")], stdout=subprocess.PIPE,
                             text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert child.stdout is not None
        endpoint = child.stdout.readline().split()[1]
        for signal in ("traces", "logs") if args.signal == "both" else (args.signal,):
            run_signal(args, signal, endpoint)
    finally:
        child.terminate()
        child.wait(timeout=10)


if __name__ == "__main__":
    main()
