"""The detection stage's own CPU per item: what the gateway's process spends on detection, beside decoding.

Requests of ``bench/traffic.py`` (512 items, 48 streams) are extracted once, as the receivers extract them
while decoding; the timed part feeds them to a ``DetectionStage`` (``--workers`` shard threads, a no-op
next stage) closed-loop with ``--inflight`` requests in flight, until every event is scored. Printed per
item: this process's CPU (every thread: the stage, the shard threads, the event loop; extraction is not
in it) and, with ``--detector-processes``, the detector processes' CPU. ``--rounds`` rounds of new
requests on the same streams, after a warm-up of ``--warm-requests`` (every stream past its warm-up).

``--profile PATH`` profiles the timed rounds with yappi (CPU clock, every thread) and writes the functions
by own and by inclusive time to ``PATH`` (yappi costs CPU: the figures of a profiled run are not the
unprofiled ones).

    python bench/bench_stage_cpu.py [--signal traces|logs] [--detector-processes] [--requests 120]
                                    [--rounds 3] [--inflight 16] [--profile PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import ITEM, load_average
from sinks import NullConsumer
from traffic import TrafficGenerator

from otlp_gateway.batch import TelemetryBatch
from otlp_gateway.detection import DetectionStage
from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.otlp.codec import ExtractionOptions, RequestCodec
from otlp_gateway.telemetry.metrics import GatewayMetrics

ITEMS = 512



def process_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def extracted(codec: RequestCodec, signal: str, payloads: list[bytes]) -> list[TelemetryBatch]:
    batches = []
    for payload in payloads:
        decoded = codec.decode(signal, payload)
        batches.append(TelemetryBatch(signal, payload, ITEMS, extraction=decoded.extraction))  # type: ignore
    return batches


async def feed(stage: DetectionStage, batches: list[TelemetryBatch], inflight: int) -> None:
    queue = list(reversed(batches))

    async def client() -> None:
        while queue:
            await stage.consume(queue.pop())

    await asyncio.gather(*(client() for _ in range(inflight)))
    await stage.drain(600)


def scored(metrics: GatewayMetrics, signal: str) -> float:
    labels = {"stream_type": signal}
    return metrics.registry.get_sample_value("driftlock_detector_events_total", labels) or 0.0


async def run(args: argparse.Namespace) -> None:
    signal = args.signal
    generator = TrafficGenerator(seed=args.seed)
    codec = RequestCodec(ExtractionOptions())
    warm = extracted(codec, signal, generator.requests(signal, args.warm_requests, ITEMS))
    settings = DetectionSettings(max_live_streams=100_000, workers=args.workers, queue_max_bytes=1 << 34,
                                 detector_processes=args.detector_processes)
    metrics = GatewayMetrics()
    stage = DetectionStage.create(settings, NullConsumer(), None, None, metrics, "bench")
    await stage.start()
    await feed(stage, warm, args.inflight)
    profiling = None
    if args.profile:
        import yappi

        yappi.set_clock_type("cpu")
        profiling = yappi
    try:
        for _ in range(args.rounds):
            batches = extracted(codec, signal, generator.requests(signal, args.requests, ITEMS))
            pids = [pid for pid in (p.pid() for p in stage.detector_processes) if pid is not None]
            before = scored(metrics, signal)
            own0, children0 = time.process_time(), sum(process_cpu(pid) for pid in pids)
            if profiling is not None:
                profiling.start(builtins=True, profile_threads=True)
            t0 = time.monotonic()
            await feed(stage, batches, args.inflight)
            wall = time.monotonic() - t0
            if profiling is not None:
                profiling.stop()
            own = time.process_time() - own0
            children = sum(process_cpu(pid) for pid in pids) - children0
            items = len(batches) * ITEMS
            done = scored(metrics, signal) - before
            mode = "detector processes" if args.detector_processes else "in-process"
            print(f"{signal} {mode}: {items} {ITEM[signal]}s ({int(done)} scored) in {wall:.2f} s; "
                  f"this process "
                  f"{own / items * 1e6:6.2f} us CPU/{ITEM[signal]}, detector processes "
                  f"{children / items * 1e6:6.2f} us; {load_average()}", flush=True)
    finally:
        await stage.shutdown(10)
    if profiling is not None:
        write_profile(profiling, args.profile)


def write_profile(yappi: Any, path: str) -> None:
    stats = yappi.get_func_stats()
    rows = [(s.ttot, s.tsub, s.ncall, f"{s.module}:{s.lineno} {s.name}") for s in stats]
    with open(path, "w") as out:
        out.write("by own time (s, inclusive s, calls)\n")
        for ttot, tsub, ncall, name in sorted(rows, key=lambda r: -r[1])[:80]:
            out.write(f"{tsub:8.3f} {ttot:8.3f} {ncall:9d} {name}\n")
        out.write("\nby inclusive time (s, own s, calls)\n")
        for ttot, tsub, ncall, name in sorted(rows, key=lambda r: -r[0])[:120]:
            out.write(f"{ttot:8.3f} {tsub:8.3f} {ncall:9d} {name}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signal", choices=["traces", "logs"], default="traces")
    parser.add_argument("--detector-processes", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--requests", type=int, default=120)
    parser.add_argument("--warm-requests", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", metavar="PATH")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
