"""Memory and snapshot round trip of one cbad detector per stream, A/B of the count table in one process.

The span streams of ``bench/traffic.py`` (never-repeated traffic) are extracted as the gateway extracts
them, each stream's events copied (so the detectors own their bytes, as in the gateway) and fed to one
detector per stream, once with the old default table (2**17 slots; its snapshot stripped of the table, so
a restore recounts the baseline as before) and once with the current default (the snapshot carries the
table). Per detector: tracemalloc growth, snapshot bytes, CPU of ``snapshot()`` + ``restore``.

    python bench/bench_stream_memory.py [REQUESTS=60]
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from traffic import TrafficGenerator

from detectors import EventBatch, registry, snapshot
from detectors.compressors import DEFAULT_TABLE_BITS
from otlp_gateway.otlp.codec import ExtractionOptions, RequestCodec

ITEMS = 512
OLD_TABLE_BITS = 17
ROUNDS = 3


def stream_events(requests: int) -> list[list[bytes]]:
    codec = RequestCodec(ExtractionOptions())
    per: dict[str, list[bytes]] = {}
    for payload in TrafficGenerator(seed=1, streams=48).requests("traces", requests, ITEMS):
        for sid, batch in codec.decode("traces", payload).extraction.streams.items():  # type: ignore[union-attr]
            per.setdefault(sid, []).extend(batch.events)
    return list(per.values())


def measure(streams: list[list[bytes]], bits: int, recount: bool) -> None:
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    detectors = []
    for events in streams:
        det = registry.create("cbad", table_bits=bits)
        det.update(EventBatch([bytes(bytearray(e)) for e in events]))
        detectors.append(det)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    start = time.thread_time()
    for det in detectors:
        det.snapshot()
    snapshot_cpu = time.thread_time() - start
    snaps = []
    for det in detectors:
        data = det.snapshot()
        if recount:  # what a restore did before snapshots carried the table
            snap = snapshot.decode(data, b"CBAD")
            del snap.arrays["table"]
            data = snapshot.encode(b"CBAD", snap.version, snap.header, snap.arrays)
        snaps.append(data)
    start = time.thread_time()
    for _ in range(ROUNDS):
        for data in snaps:
            registry.restore("cbad", data)
    restore_cpu = (time.thread_time() - start) / ROUNDS
    n = len(detectors)
    print(f"table 2**{bits}{' (restore recounts the baseline)' if recount else ''}: tracemalloc "
          f"{grown / n / 1024:.0f} KiB per detector; snapshot {sum(map(len, snaps)) / n / 1024:.0f} KiB; "
          f"snapshot + restore {(snapshot_cpu + restore_cpu) / n * 1e3:.2f} ms CPU per detector", flush=True)


def main(requests: int) -> None:
    streams = stream_events(requests)
    print(f"{len(streams)} span streams, median {sorted(map(len, streams))[len(streams) // 2]} events")
    measure(streams, OLD_TABLE_BITS, recount=True)
    measure(streams, DEFAULT_TABLE_BITS, recount=False)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
