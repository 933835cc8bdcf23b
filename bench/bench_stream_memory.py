"""Memory and snapshot round trip of a live stream's parts, A/B in one process.

The span streams of ``bench/traffic.py`` (never-repeated traffic) are extracted as the gateway extracts
them.

Detector: each stream's events copied (so the detectors own their bytes, as in the gateway) and fed to one
detector per stream, once with the old default table (2**17 slots; its snapshot stripped of the table, so
a restore recounts the baseline as before) and once with the current default (the snapshot carries the
table). Per detector: tracemalloc growth, snapshot bytes, CPU of ``snapshot()`` + ``restore``.

Ring of recent items: each stream's per-request items (ids, times, positions, made afresh as extraction
makes them) appended to one ring per stream of the default profile's capacity, alternately to the previous
ring (Python lists per request, JSON in the stream snapshot) and to ``streams.ring.EventRing`` (columnar
numpy, raw arrays), ``--rounds`` times each. Per ring: tracemalloc growth, CPU of the appends (in a second
fill, without tracemalloc), snapshot bytes, CPU of a snapshot + restore of the ring's part.

    python bench/bench_stream_memory.py [--requests 60] [--part detector|ring|both] [--rounds 3]
                                        [--streams 48] [--resources-per-request 4]
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import time
import tracemalloc
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from traffic import TrafficGenerator

from detectors import EventBatch, compressors, event_blocks, registry, snapshot
from detectors.compressors import DEFAULT_TABLE_BITS
from otlp_gateway.otlp.codec import ExtractionOptions, RequestCodec
from otlp_gateway.streams.live import detector_spec
from otlp_gateway.streams.ring import EventRing, RingChunk
from otlp_gateway.streams.settings import StreamSettings

ITEMS = 512
OLD_TABLE_BITS = 17
ROUNDS = 3


def traffic(args: argparse.Namespace) -> list[bytes]:
    gen = TrafficGenerator(seed=1, streams=args.streams, resources_per_request=args.resources_per_request)
    return gen.requests("traces", args.requests, ITEMS)


def stream_events(payloads: list[bytes]) -> list[list[bytes]]:
    codec = RequestCodec(ExtractionOptions())
    per: dict[str, list[bytes]] = {}
    for payload in payloads:
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
    # all but the most recently used streams hold their count tables compact (detectors.compressors) and their
    # newest events sealed (detectors.event_blocks): as every stream but a few at scale
    for module, name in ((compressors, "release_idle_tables"), (event_blocks, "rest_idle_stores")):
        release = getattr(module, name, None)
        if release is not None:
            release()
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
            for name in ("table", "table_slots", "table_counts"):  # dense before version 8, then its slots
                snap.arrays.pop(name, None)
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


# --- the ring of recent items ------------------------------------------------------------------------
class PreviousRing:
    """The ring before it was columnar (as it was in ``otlp_gateway/streams/ring.py``): the extraction's
    lists kept per request, the snapshot part JSON (ids in base64)."""

    def __init__(self, capacity: int):
        self.capacity = capacity
        self._chunks: deque[RingChunk] = deque()
        self._size = 0

    def append(self, chunk: RingChunk) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk.times)
        while len(self._chunks) > 1 and self._size - len(self._chunks[0].times) >= self.capacity:
            self._size -= len(self._chunks.popleft().times)

    def __len__(self) -> int:
        return self._size

    def dump(self) -> bytes:  # the ring's part of the JSON header
        return json.dumps([{"first": c.first_offset,
                            "trace": _b64(b"".join(t[:16].ljust(16, b"\0") for t in c.trace_ids)),
                            "span": _b64(b"".join(s[:8].ljust(8, b"\0") for s in c.span_ids)),
                            "times": c.times} for c in self._chunks], separators=(",", ":")).encode()

    @classmethod
    def load(cls, capacity: int, data: bytes) -> PreviousRing:
        ring = cls(capacity)
        for c in json.loads(data):
            n = len(c["times"])
            traces, spans = base64.b64decode(c["trace"]), base64.b64decode(c["span"])
            ring.append(RingChunk(int(c["first"]), [_unpad(traces[i * 16:(i + 1) * 16]) for i in range(n)],
                                  [_unpad(spans[i * 8:(i + 1) * 8]) for i in range(n)],
                                  [int(t) for t in c["times"]], [-1] * n, -1))
        return ring


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unpad(value: bytes) -> bytes:
    return b"" if not value.strip(b"\0") else value


Request = tuple[bytes, bytes, np.ndarray, np.ndarray]
"""One request's items of one stream: trace ids and span ids side by side, times, positions."""


def stream_requests(payloads: list[bytes]) -> list[list[Request]]:
    codec = RequestCodec(ExtractionOptions())
    per: dict[str, list[Request]] = {}
    for payload in payloads:
        for sid, batch in codec.decode("traces", payload).extraction.streams.items():  # type: ignore[union-attr]
            per.setdefault(sid, []).append((b"".join(batch.trace_ids), b"".join(batch.span_ids),
                                            np.array(batch.times, np.uint64), np.array(batch.positions)))
    return list(per.values())


def fill_rings(kind: Any, capacity: int, streams: list[list[Request]]) -> tuple[list[Any], float]:
    """One ring per stream, fed its requests as a live stream feeds it: the ids, times and positions of each
    request are new objects, as the extraction makes them (the previous ring kept them); the columnar ring
    gets the times as the uint64 array the stream converts once (for the detector's stamps too, which the
    previous code converted to float64 instead: that conversion is left out of both). Returns the rings and
    the appends' CPU."""
    rings, cpu = [], 0.0
    for requests in streams:
        ring, offset = kind(capacity), 0
        for seq, (traces, spans, times, positions) in enumerate(requests):
            n = len(times)
            listed = times.tolist()
            chunk = RingChunk(offset, [traces[i:i + 16] for i in range(0, 16 * n, 16)],
                              [spans[i:i + 8] for i in range(0, 8 * n, 8)],
                              listed if kind is PreviousRing else np.asarray(listed, np.uint64),
                              positions.tolist(), seq)
            start = time.thread_time()
            ring.append(chunk)
            cpu += time.thread_time() - start
            offset += n
        rings.append(ring)
    return rings, cpu


def measure_rings(streams: list[list[Request]], rounds: int) -> None:
    capacity = detector_spec("traces", 1, "zstd", StreamSettings()).ring_capacity()
    sizes = sorted(len(r[2]) for requests in streams for r in requests)
    print(f"ring of recent items: {len(streams)} span streams, {len(sizes) // len(streams)} requests each, "
          f"median {sizes[len(sizes) // 2]} items per request; capacity {capacity} (default profile)",
          flush=True)
    figures: dict[str, list[dict[str, float]]] = {"previous": [], "columnar": []}
    for _ in range(rounds):
        for name, kind in (("previous", PreviousRing), ("columnar", EventRing)):
            tracemalloc.start()
            before = tracemalloc.get_traced_memory()[0]
            rings, _ = fill_rings(kind, capacity, streams)
            grown = tracemalloc.get_traced_memory()[0] - before
            tracemalloc.stop()
            del rings
            rings, append_cpu = fill_rings(kind, capacity, streams)  # timed without tracemalloc's hooks
            start = time.thread_time()
            snaps = [ring.dump() for ring in rings]
            for data in snaps:
                kind.load(capacity, data)
            roundtrip = time.thread_time() - start
            n = len(rings)
            figures[name].append({"bytes": grown / n, "items": sum(map(len, rings)) / n,
                                  "append": append_cpu / sum(sizes), "snapshot": sum(map(len, snaps)) / n,
                                  "roundtrip": roundtrip / n})
    for name, rows in figures.items():
        m = {k: float(np.median([row[k] for row in rows])) for k in rows[0]}
        each = ", ".join(f"{r['bytes'] / 1024:.1f} KiB {r['roundtrip'] * 1e6:.0f} us" for r in rows)
        print(f"  {name:<9} tracemalloc {m['bytes'] / 1024:5.1f} KiB per ring ({m['items']:.0f} items, "
              f"{m['bytes'] / m['items']:.0f} B/item); append {m['append'] * 1e9:4.0f} ns CPU/item; snapshot "
              f"part {m['snapshot'] / 1024:5.1f} KiB; snapshot + restore {m['roundtrip'] * 1e6:6.1f} us CPU "
              f"per ring (median of {rounds} rounds: {each})", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=60)
    ap.add_argument("--part", choices=["detector", "ring", "both"], default="both")
    ap.add_argument("--rounds", type=int, default=ROUNDS, help="alternating A/B rounds of the ring part")
    ap.add_argument("--streams", type=int, default=48, help="span streams of the traffic")
    ap.add_argument("--resources-per-request", type=int, default=4,
                    help="services per request (more: fewer items per stream in each request)")
    args = ap.parse_args()
    payloads = traffic(args)
    if args.part in ("detector", "both"):
        streams = stream_events(payloads)
        print(f"{len(streams)} span streams, median {sorted(map(len, streams))[len(streams) // 2]} events")
        measure(streams, OLD_TABLE_BITS, recount=True)
        measure(streams, DEFAULT_TABLE_BITS, recount=False)
    if args.part in ("ring", "both"):
        measure_rings(stream_requests(payloads), args.rounds)


if __name__ == "__main__":
    main()
