"""Write the fixture of ``tests/streams/test_snapshot_compat.py``: a stream snapshot of version 1.

Run once with the code that wrote version 1 (the ring of recent items as JSON in the snapshot header; it was
run at ebf9e8a):
``python -m tests.streams.legacy.generate``. The case stores the snapshot of a log stream taken mid-stream
and, as that code saw them after restoring it, the ring's item at every offset, before and after the rest of
the stream was fed, so a restore by later code can be checked against them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from detectors.synthetic import synthetic_logs
from otlp_gateway.otlp.extract import StreamBatch
from otlp_gateway.streams.live import LiveStream, detector_spec
from otlp_gateway.streams.routing import StreamKey
from otlp_gateway.streams.settings import StreamSettings

HERE = Path(__file__).parent
KEY = StreamKey("logs/shop/checkout", "logs", "shop", "checkout")
SETTINGS = StreamSettings(profile="sensitive")
T0 = 1_700_000_000_000_000_000
CUT = 260
TOTAL = 380
SIZES = (1, 7, 16, 3, 30, 2, 11, 1, 1, 5)
"""Request sizes, cycled: chunks small and large, so the ring drops whole chunks of every size."""


def ids(i: int) -> tuple[bytes, bytes]:
    """Item ``i``'s ids: absent, all zero (allowed for a log record), or distinct."""
    if i % 5 == 0:
        return b"", b""
    if i % 5 == 1:
        return bytes(16), bytes(8)
    return (0xA5 << 120 | i).to_bytes(16, "big"), (0x5A << 56 | i).to_bytes(8, "big")


def requests(first: int, last: int) -> list[StreamBatch]:
    events = synthetic_logs(TOTAL, seed=4)
    out, i, k = [], first, 0
    while i < last:
        n = min(SIZES[k % len(SIZES)], last - i)
        batch = StreamBatch(KEY)
        for j in range(n):
            trace, span = ids(i + j)
            time = 0 if (i + j) % 13 == 0 else T0 + (i + j) * 1_000_000
            batch.add(events[i + j], trace, span, time, j * 2 + 1)
        out.append(batch)
        i, k = i + n, k + 1
    return out


def ring_items(stream: LiveStream) -> list[Any]:
    """The ring's item at every offset the stream has seen: null, or [trace, span, time, position,
    request]."""
    out: list[Any] = []
    for offset in range(stream.events_seen):
        item = stream.ring.get(offset)
        out.append(None if item is None else [item.trace_id.hex(), item.span_id.hex(), item.time_unix_nano,
                                              item.position, item.request_seq])
    return out


def main() -> None:
    spec = detector_spec("logs", 1, "zstd", SETTINGS)
    stream = LiveStream(KEY, spec, 0)
    for seq, batch in enumerate(requests(0, CUT)):
        stream.score(batch, seq)
    data = stream.snapshot()
    (HERE / "stream_v1.snap").write_bytes(data)
    restored = LiveStream.restore(data, KEY, spec, 0)
    at_restore = ring_items(restored)
    for seq, batch in enumerate(requests(CUT, TOTAL), start=1000):
        restored.score(batch, seq)
    case = {"file": "stream_v1.snap", "sha256": hashlib.sha256(data).hexdigest(), "cut": CUT,
            "total": TOTAL, "ring_capacity": spec.ring_capacity(), "at_restore": at_restore,
            "after_continuation": ring_items(restored)}
    (HERE / "stream_v1.json").write_text(json.dumps(case, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
