"""An anomalous window's times are its events' times, never the wall clock, also when its first event has
long left the stream's ring (here: a gap of unscorable points wider than the ring between the window's
first values and its last)."""

from __future__ import annotations

import datetime as dt
import time

import numpy as np

from otlp_gateway.otlp.extract import StreamBatch
from otlp_gateway.streams.live import LiveStream, build_record, detector_spec
from otlp_gateway.streams.routing import StreamKey
from otlp_gateway.streams.settings import StreamSettings

S = 1_000_000_000
T0 = 1_600_000_000 * S  # September 2020: far from the wall clock, so a fallback to it cannot pass


def batch(key: StreamKey, values: np.ndarray, first: int) -> StreamBatch:
    """Gauge points at offsets ``first..``, one per second of event time (offset i at T0 + i s)."""
    out = StreamBatch(key)
    for i, v in enumerate(values.tolist()):
        out.add(v, b"", b"", T0 + (first + i) * S, -1)
    return out


def test_window_start_is_event_time_when_its_first_event_left_the_ring() -> None:
    key = StreamKey("metrics/shop/queue.depth", "metrics", "shop", "queue.depth")
    stream = LiveStream(key, detector_spec("metrics", 1, "zstd", StreamSettings(profile="balanced")), 0)
    rng = np.random.default_rng(3)
    parts = [50 + rng.normal(0, 1, 1020),  # warm-up and baseline, then the first values of the window
             np.full(stream.spec.ring_capacity() + 100, np.nan),  # unscorable: offsets, no window places
             np.full(40, 400.0)]  # the fault: completes windows that began before the gap
    offset, windows = 0, []
    for part in parts:
        for lo in range(0, part.size, 20):  # small requests: the ring drops the chunks before the gap
            chunk = part[lo:lo + 20]
            windows.extend(stream.score(batch(key, chunk, offset), offset).windows)
            offset += chunk.size
    spanning = [w for w in windows if w.start_offset < 1020]
    assert spanning, "no anomalous window reached back before the gap"
    assert stream.ring.get(spanning[0].start_offset) is None  # the situation under test
    for w in windows:
        assert w.start_time_ns == T0 + w.start_offset * S
        assert w.end_time_ns == T0 + (w.end_offset - 1) * S
        record = build_record(stream, w, engine_version="test", received_at=time.time())
        assert record.window_start == dt.datetime.fromtimestamp((T0 + w.start_offset * S) / 1e9, dt.UTC)
        assert record.window_start < record.window_end
