"""A bounded memory of a stream's recent items, so window offsets can be mapped back to telemetry.

Stored as whole per-request chunks (no per-event Python work beyond the extraction lists). Chunks
older than ``capacity`` events are dropped; the newest chunk is always kept whole.
"""

from __future__ import annotations

import base64
from collections import deque
from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class RingChunk:
    first_offset: int
    trace_ids: list[bytes]
    span_ids: list[bytes]
    times: list[int]
    positions: list[int]
    request_seq: int
    """Which request (its detection ticket, in arrival order) the items arrived in; -1 after a restore."""

    @property
    def end_offset(self) -> int:
        return self.first_offset + len(self.times)


@dataclass(frozen=True, slots=True)
class RingItem:
    offset: int
    trace_id: bytes
    span_id: bytes
    time_unix_nano: int
    position: int
    request_seq: int


class EventRing:
    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self._chunks: deque[RingChunk] = deque()
        self._size = 0

    def append(self, chunk: RingChunk) -> None:
        self._chunks.append(chunk)
        self._size += len(chunk.times)
        while len(self._chunks) > 1 and self._size - len(self._chunks[0].times) >= self.capacity:
            self._size -= len(self._chunks.popleft().times)

    def get(self, offset: int) -> RingItem | None:
        for chunk in reversed(self._chunks):
            if chunk.first_offset <= offset < chunk.end_offset:
                i = offset - chunk.first_offset
                return RingItem(offset, chunk.trace_ids[i], chunk.span_ids[i], chunk.times[i],
                                chunk.positions[i], chunk.request_seq)
            if chunk.end_offset <= offset:
                return None
        return None

    def time_at(self, offset: int) -> int:
        """The event time of the item at ``offset`` (0 when unknown or no longer kept)."""
        for chunk in reversed(self._chunks):
            if chunk.first_offset <= offset < chunk.end_offset:
                return chunk.times[offset - chunk.first_offset]
            if chunk.end_offset <= offset:
                return 0
        return 0

    def __len__(self) -> int:
        return self._size

    # --- persistence (part of a stream snapshot); positions/request numbers do not survive a restart
    def dump(self) -> list[dict[str, Any]]:
        return [{"first": c.first_offset, "trace": _b64(b"".join(_pad(t, 16) for t in c.trace_ids)),
                 "span": _b64(b"".join(_pad(s, 8) for s in c.span_ids)), "times": c.times}
                for c in self._chunks]

    @classmethod
    def load(cls, capacity: int, data: list[dict[str, Any]]) -> EventRing:
        ring = cls(capacity)
        for c in data:
            n = len(c["times"])
            traces, spans = base64.b64decode(c["trace"]), base64.b64decode(c["span"])
            ring.append(RingChunk(int(c["first"]), [_unpad(traces[i * 16:(i + 1) * 16]) for i in range(n)],
                                  [_unpad(spans[i * 8:(i + 1) * 8]) for i in range(n)],
                                  [int(t) for t in c["times"]], [-1] * n, -1))
        return ring


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _pad(value: bytes, width: int) -> bytes:
    # ids of the wrong length (invalid but possible on the wire) are cut/padded; an absent id is all zero
    return value[:width].ljust(width, b"\0")


def _unpad(value: bytes) -> bytes:
    return b"" if not value.strip(b"\0") else value
