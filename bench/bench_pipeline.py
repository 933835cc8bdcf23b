"""The detection pipeline in one process, without gRPC or the exporter: where a request's CPU goes.

On the shared generator's never-repeated traffic (``bench/traffic.py``), for spans and for log records,
CPU per item against the upb parse + serialize floor of the same requests, in one run:

(a) floor: ``FromString(raw).SerializeToString()``;
(b) decode: the receivers' codec without extraction (the wire walk validates and counts);
(c) decode + extract: the same walk with extraction (canonical events per stream: fragments rendered and
    masked in Python on a memo miss, assembled by numba);
(d) scoring alone: the extracted events fed to one cbad detector per stream, one thread;
(e) the pipeline: the receivers' ingest path (``IngestCore`` on a 2-thread ``DecodePool`` with extraction)
    into a ``DetectionStage`` (2 shard threads) ahead of a no-op next stage, driven closed-loop with
    ``--concurrency`` requests in flight: process CPU per item (every thread) and items per wall second;
    then paced open-loop at 50 % of that rate: p50/p99 of the ingest call (what a client waits, minus the
    network);
(f) memory: ``--memory-streams`` streams each fed ``--memory-events`` events through the stage: RSS growth
    per live stream and where it is, snapshot bytes, the CPU of one snapshot + restore round trip, and the
    Python heap (tracemalloc) of a stream restored from its snapshot.

Thread CPU (``time.thread_time``) for (a)-(d), process CPU for (e); the load average is printed.

    python bench/bench_pipeline.py [--signal traces|logs|both] [--requests 120] [--warm-requests 240]
                                   [--streams 48] [--memory-streams 300] [--memory-events 900]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
import tracemalloc
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import (
    ITEM,
    closed_loop_calls,
    floor_seconds_per_item,
    load_average,
    ms,
    paced_calls,
    percentile,
    rss_bytes,
    us,
)
from sinks import NullConsumer
from traffic import TrafficGenerator

from detectors import EventBatch, compressors, event_blocks, registry
from otlp_gateway.detection import DetectionStage
from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.otlp.codec import ExtractionOptions, RequestCodec
from otlp_gateway.otlp.signals import SIGNAL_SPECS
from otlp_gateway.receiver.admission import AdmissionController
from otlp_gateway.receiver.decoding import DecodePool
from otlp_gateway.receiver.ingest import IngestCore
from otlp_gateway.receiver.settings import AdmissionSettings
from otlp_gateway.streams.live import LiveStream
from otlp_gateway.telemetry.metrics import GatewayMetrics

ITEMS = 512



def thread_cpu(fn: Any, payloads: list[bytes]) -> float:
    start = time.thread_time()
    for p in payloads:
        fn(p)
    return time.thread_time() - start


def scoring_cpu(signal: str, warm: list[bytes], payloads: list[bytes]) -> float:
    """One cbad detector per stream, warmed on ``warm``'s events; thread CPU of scoring ``payloads``'."""
    codec = RequestCodec(ExtractionOptions())
    detectors: dict[str, Any] = {}

    def feed(extractions: list[Any]) -> None:
        for ex in extractions:
            for sid, batch in ex.streams.items():
                detectors.setdefault(sid, registry.create("cbad")).update(EventBatch(batch.events))

    feed([codec.decode(signal, p).extraction for p in warm])  # type: ignore[arg-type]
    extractions = [codec.decode(signal, p).extraction for p in payloads]  # type: ignore[arg-type]
    start = time.thread_time()
    feed(extractions)
    return time.thread_time() - start


class Pipeline:
    """The receivers' ingest path into a detection stage, in this process."""

    def __init__(self, settings: DetectionSettings, decode_workers: int = 2):
        self.metrics = GatewayMetrics()
        self.stage = DetectionStage.create(settings, NullConsumer(), None, None, self.metrics, "bench")
        admission = AdmissionController(AdmissionSettings(max_inflight_items=10_000_000), self.metrics)
        self.pool = DecodePool(decode_workers, ExtractionOptions.of(settings))
        self.core = IngestCore("grpc", self.stage, self.metrics, admission, None, None, self.pool)

    async def start(self) -> None:
        await self.stage.start()
        await asyncio.wrap_future(self.pool.warm_up())

    async def ingest(self, signal: str, body: bytes) -> None:
        self.core.gate()
        await self.core.ingest(SIGNAL_SPECS[signal], body)

    def scored(self, signal: str) -> float:
        return self.metrics.registry.get_sample_value("driftlock_detector_events_total",
                                                      {"stream_type": signal}) or 0.0

    async def shutdown(self) -> None:
        await self.stage.shutdown(5)
        self.pool.close()


async def pipeline(signal: str, warm: list[bytes], payloads: list[bytes], paced: list[bytes],
                   concurrency: int) -> dict[str, Any]:
    pipe = Pipeline(DetectionSettings(max_live_streams=100_000))
    await pipe.start()
    for p in warm:
        await pipe.ingest(signal, p)
    await pipe.stage.drain(300)
    states: dict[str, int] = {}
    for stream in pipe.stage.streams.streams():
        states[stream.state] = states.get(stream.state, 0) + 1
    before = pipe.scored(signal)
    cpu0 = time.process_time()
    wall = await closed_loop_calls(lambda p: pipe.ingest(signal, p), payloads, concurrency)
    await pipe.stage.drain(300)  # events past the detection budget are still being scored
    cpu = time.process_time() - cpu0
    scored = pipe.scored(signal) - before
    items = len(payloads) * ITEMS
    rate = len(payloads) / wall
    latencies = await paced_calls(lambda p: pipe.ingest(signal, p), paced, rate / 2)
    await pipe.stage.drain(300)
    await pipe.shutdown()
    return {"cpu": cpu / items, "rate": items / wall, "scored": scored, "items": items, "states": states,
            "paced_rate": rate / 2 * ITEMS, "p50": percentile(latencies, 0.5),
            "p99": percentile(latencies, 0.99)}


async def memory(n_streams: int, events: int, seed: int) -> dict[str, float]:
    """RSS growth per live stream once ``n_streams`` streams have seen ``events`` each
    (the rarest route of every service at least that many)."""
    gen = TrafficGenerator(seed=seed, streams=n_streams, resources_per_request=8)
    per_service = ITEMS // gen.resources_per_request
    rounds = -(-events * 100 // (6 * per_service))  # the rarest route gets 6 % of a service's spans
    count = rounds * -(-len(gen.services) // gen.resources_per_request)
    pipe = Pipeline(DetectionSettings(max_live_streams=n_streams * 2))
    await pipe.start()
    other = TrafficGenerator(seed=seed + 1, first_service=100_000)  # streams of its own
    for payload in other.requests("traces", 8, ITEMS):  # the decode threads' codecs, memos, buffers
        await pipe.ingest("traces", payload)
    await pipe.stage.drain(60)
    gc.collect()
    before = {s.key.stream_id for s in pipe.stage.streams.streams()}
    rss0 = rss_bytes()
    for _ in range(count):
        await pipe.ingest("traces", gen.traces(ITEMS))
    await pipe.stage.drain(600)
    gc.collect()
    rss = rss_bytes() - rss0
    streams = [s for s in pipe.stage.streams.streams() if s.key.stream_id not in before]
    live = len(streams)
    sizes, cpu, cpu_restore = [], 0.0, 0.0
    for stream in streams[:200]:  # each snapshot freed before the next, as once the store has it
        start = time.thread_time()
        data = stream.snapshot()
        middle = time.thread_time()
        LiveStream.restore(data, stream.key, stream.spec, stream.shard)
        end = time.thread_time()
        cpu += end - start
        cpu_restore += end - middle
        sizes.append(len(data))
    seen = sorted(s.events_seen for s in streams)
    parts = stream_parts(streams[:100])
    restored, again = restored_size([(s.snapshot(), s) for s in streams[:100]])
    await pipe.shutdown()
    return {"live": live, "rss": rss / live, "snapshot": sum(sizes) / len(sizes),
            "roundtrip": cpu / len(sizes), "restore": cpu_restore / len(sizes), "restored": restored,
            "again": again,
            "events_min": seen[0], "events_median": seen[len(seen) // 2], "requests": count, "parts": parts}


def restored_size(snapshots: list[tuple[bytes, LiveStream]]) -> tuple[float, float]:
    """Python heap (tracemalloc) per stream restored from its snapshot, as an evicted stream comes back, and
    the CPU of a snapshot + restore round trip of those restored streams (evicted again)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = [LiveStream.restore(data, s.key, s.spec, s.shard) for data, s in snapshots]
    _release_idle_tables()
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    del snapshots[:]  # freed, as in the round trips timed before
    start = time.thread_time()
    for s in kept:
        LiveStream.restore(s.snapshot(), s.key, s.spec, s.shard)
    return grown / max(1, len(kept)), (time.thread_time() - start) / max(1, len(kept))


def _release_idle_tables() -> None:
    """Compact the count tables of the models not in use and rest the newest events of the event stores not
    in use, as all but the most recently used streams hold them (detectors.compressors,
    detectors.event_blocks; absent before them)."""
    for module, name in ((compressors, "release_idle_tables"), (event_blocks, "rest_idle_stores")):
        release = getattr(module, name, None)
        if release is not None:
            release()


def _deep_size(obj: Any, skip: set[int], found: list[int] | None = None) -> int:
    """Bytes of ``obj`` and of the containers, bytes and numbers it holds (numpy arrays: their buffer),
    leaving out the objects whose ids are in ``skip``; ``found`` collects the ids of the arrays met."""
    if id(obj) in skip:
        return 0
    if isinstance(obj, np.ndarray):
        if found is not None:
            found.append(id(obj))
        return obj.nbytes + 112
    size = sys.getsizeof(obj)
    items: Any = ()
    if isinstance(obj, dict):
        items = [*obj.keys(), *obj.values()]
    elif isinstance(obj, list | tuple | deque | set):
        items = obj
    elif hasattr(obj, "__slots__"):
        items = [getattr(obj, name) for name in obj.__slots__ if hasattr(obj, name)]
    elif hasattr(obj, "__dict__"):
        items = vars(obj).values()
    return size + sum(_deep_size(v, skip, found) for v in items)


def stream_parts(streams: list[LiveStream]) -> dict[str, float]:
    """Where a live stream's memory is, averaged over ``streams`` (bytes): the count table (allocated, and
    its 4 KiB pages holding a non-zero count, i.e. resident), the events the detector retains (baseline,
    window tail, held), its other state, the ring of recent items. Arrays every detector shares (lookup
    tables) are left out."""
    _release_idle_tables()
    seen: dict[int, int] = {}
    for stream in streams:
        found: list[int] = []
        _deep_size(stream.detector, set(), found)
        for array in set(found):
            seen[array] = seen.get(array, 0) + 1
    shared = {array for array, count in seen.items() if count > 1}
    parts: dict[str, float] = {}

    def add(name: str, size: float) -> None:
        parts[name] = parts.get(name, 0.0) + size / len(streams)

    for stream in streams:
        det = stream.detector
        model = getattr(det, "_model", None)
        table = getattr(model, "table", None)
        skip = set(shared)
        if hasattr(model, "compact"):  # held as its nonzero slots between calls, or dense (recently used)
            held = ([model._slots, model._slot_counts] if model.compact  # type: ignore[union-attr]
                    else [model._counts.table])  # type: ignore[union-attr]
            add("count table as held (nonzero slots, or dense)", sum(a.nbytes for a in held))
            skip |= {id(a) for a in held}
        elif isinstance(table, np.ndarray):
            add("count table, allocated", table.nbytes)
            pages = table.view(np.uint8)[: table.nbytes // 4096 * 4096].reshape(-1, 4096)
            add("count table, pages touched (resident)", 4096 * int(np.count_nonzero(pages.any(axis=1))))
            skip.add(id(table))
        # the event store (detectors/event_blocks.py); before it, the baseline, tail and held lists of bytes
        retained = sum(_deep_size(getattr(det, name, []), skip)
                       for name in ("_events", "_baseline", "_tail", "_held"))
        add("retained events (baseline, tail, held)", retained)
        add("rest of the detector (calibration, per-event arrays, ...)", _deep_size(det, skip) - retained)
        add("ring of recent items (ids, times, positions)", _deep_size(stream.ring, set()))
    return parts


def run_signal(args: argparse.Namespace, signal: str) -> None:
    gen = TrafficGenerator(seed=args.seed, streams=args.streams)
    warm = gen.requests(signal, args.warm_requests, ITEMS)
    payloads = gen.requests(signal, args.requests, ITEMS)
    items = len(payloads) * ITEMS
    floor = floor_seconds_per_item(signal, payloads, ITEMS)
    plain, extracting = RequestCodec(None), RequestCodec(ExtractionOptions())
    for p in warm[:20]:
        plain.decode(signal, p)  # type: ignore[arg-type]
        extracting.decode(signal, p)  # type: ignore[arg-type]
    decode = thread_cpu(lambda p: plain.decode(signal, p), payloads) / items
    # a fresh codec per measurement would start with an empty memo: this one saw the warm-up only
    extract = thread_cpu(lambda p: extracting.decode(signal, p), payloads) / items
    score = scoring_cpu(signal, warm, payloads) / items
    paced_count = max(20, args.requests // 2)
    paced = gen.requests(signal, paced_count, ITEMS)
    result = asyncio.run(pipeline(signal, warm, payloads, paced, args.concurrency))

    item = ITEM[signal]
    streams = gen.span_streams if signal == "traces" else gen.log_streams
    print(f"== {signal}: {args.requests} requests x {ITEMS} {item}s (after {args.warm_requests} warm-up "
          f"requests), {streams} streams; {load_average()}")

    def line(label: str, seconds: float) -> None:
        print(f"{label:<44} {us(seconds):>8} us CPU/{item}  {seconds / floor:6.1f}x floor")

    line("(a) floor: upb parse + serialize", floor)
    line("(b) decode: the validating wire walk", decode)
    line("(c) decode + extract (canonical events)", extract)
    line("(d) cbad scoring alone, one thread", score)
    line("(e) pipeline: ingest -> detection stage", result["cpu"])
    print(f"    {result['rate'] / 1e3:.1f} k {item}s/s wall at concurrency {args.concurrency}; scored "
          f"{int(result['scored'])} of {result['items']}; streams after warm-up: {result['states']}")
    print(f"    at 50% load ({result['paced_rate'] / 1e3:.1f} k {item}s/s, open loop): ingest p50 "
          f"{ms(result['p50'])} ms, p99 {ms(result['p99'])} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--signal", choices=["traces", "logs", "both", "none"], default="both",
                    help="none: only the memory measurement")
    ap.add_argument("--requests", type=int, default=120)
    ap.add_argument("--warm-requests", type=int, default=240,
                    help="requests before measuring (the 48 default streams leave their warm-up)")
    ap.add_argument("--streams", type=int, default=None)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--memory-streams", type=int, default=300, help="0: skip the memory measurement")
    ap.add_argument("--memory-events", type=int, default=900)
    args = ap.parse_args()
    # What the gateway does at start: compile or load every kernel, so no one-time cache load is timed.
    from otlp_gateway.jit import warm_up_kernels

    warm_up_kernels()
    if args.memory_streams:  # first, while this process's heap holds nothing else
        m = asyncio.run(memory(args.memory_streams, args.memory_events, args.seed + 100))
        print(f"== memory: {int(m['live'])} live span streams after {int(m['requests'])} requests (events "
              f"per stream: min {int(m['events_min'])}, median {int(m['events_median'])}); {load_average()}")
        print(f"    per live stream: RSS growth {m['rss'] / 1024:.0f} KiB; snapshot "
              f"{m['snapshot'] / 1024:.0f} KiB; snapshot + restore {m['roundtrip'] * 1e3:.2f} ms CPU "
              f"(restore {m['restore'] * 1e3:.2f}; again, of the restored streams {m['again'] * 1e3:.2f}); "
              f"a restored stream {m['restored'] / 1024:.0f} KiB (tracemalloc); where it is:")
        for part, size in m["parts"].items():
            print(f"    {part:<58} {size / 1024:7.0f} KiB")
    for signal in {"both": ("traces", "logs"), "none": ()}.get(args.signal, (args.signal,)):
        run_signal(args, signal)


if __name__ == "__main__":
    main()
