"""Stream snapshots already in users' stores keep restoring: version 1 (the ring of recent items as JSON in
the header), written by that code (``tests/streams/legacy/generate.py``), maps every offset to the item
that code mapped it to, before and after the rest of the stream; version 2 round trips."""

from __future__ import annotations

import hashlib
import json
import struct
from pathlib import Path
from typing import Any

from otlp_gateway.streams.live import SNAPSHOT_VERSION, LiveStream, detector_spec
from tests.streams.legacy.generate import CUT, KEY, SETTINGS, TOTAL, requests, ring_items

LEGACY = Path(__file__).parent / "legacy"
CASE = json.loads((LEGACY / "stream_v1.json").read_text())


def _header(data: bytes) -> dict[str, Any]:
    (length,) = struct.unpack(">I", data[4:8])
    return json.loads(data[8:8 + length])


def test_a_version_1_stream_snapshot_restores_its_ring_and_goes_on_as_that_code_did() -> None:
    data = (LEGACY / CASE["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == CASE["sha256"]
    assert _header(data)["v"] == 1 and "ring" in _header(data)
    spec = detector_spec("logs", 1, "zstd", SETTINGS)
    assert spec.ring_capacity() == CASE["ring_capacity"]
    stream = LiveStream.restore(data, KEY, spec, 0)
    assert stream.detector.events_seen == CUT  # the detector restored, not a fresh one
    assert ring_items(stream) == CASE["at_restore"]
    for seq, batch in enumerate(requests(CUT, TOTAL), start=1000):
        stream.score(batch, seq)
    assert ring_items(stream) == CASE["after_continuation"]
    # and rewritten in the current version, the same again
    again = LiveStream.restore(stream.snapshot(), KEY, spec, 0)
    assert _header(stream.snapshot())["v"] == SNAPSHOT_VERSION == 2
    assert ring_items(again) == [None if i is None else [*i[:3], -1, -1] for i in CASE["after_continuation"]]


def test_a_version_2_snapshot_keeps_absent_and_all_zero_ids_apart() -> None:
    spec = detector_spec("logs", 1, "zstd", SETTINGS)
    stream = LiveStream(KEY, spec, 0)
    for seq, batch in enumerate(requests(0, 40)):
        stream.score(batch, seq)
    before = ring_items(stream)
    assert ["", ""] in [i[:2] for i in before if i] and ["0" * 32, "0" * 16] in [i[:2] for i in before if i]
    restored = LiveStream.restore(stream.snapshot(), KEY, spec, 0)
    assert ring_items(restored) == [None if i is None else [*i[:3], -1, -1] for i in before]
    assert restored.events_seen == stream.events_seen
