"""A bounded memory of a stream's recent items, so window offsets can be mapped back to telemetry.

Kept per request as chunks (the items one request brought). Chunks older than ``capacity`` items are
dropped whole; the newest chunk is always kept whole.

Columnar, so a stream costs bytes per item rather than Python objects: one row per item (trace id 16 bytes,
span id 8, time, position in its request, which ids were present) and one row per chunk (first offset,
first item row, request number, time base), each in numpy arrays used as a bounded ring (``_Rows``). An
item's time is kept as 4 bytes, its distance from its chunk's time base (the items of one request lie
within a few seconds of each other); a chunk whose times spread wider (or mix unknown times, 0, with known
ones) keeps them whole beside the columns (``_wide``). A snapshot is the raw arrays (the times whole).
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

TRACE_ID_BYTES = 16
SPAN_ID_BYTES = 8
SNAPSHOT_TAG = b"RING"
SNAPSHOT_VERSION = 1
_HEAD = struct.Struct("<4sBII")
"""A dumped ring: tag, version, number of chunks, number of items; then the columns of ``_LAYOUT``."""


class _Stored(NamedTuple):
    name: str
    dtype: np.dtype
    """As stored: little-endian (read into the machine's order)."""
    width: int
    """Values per row."""
    per_chunk: bool
    """One row per chunk, else per item."""

    def values(self, chunks: int, items: int) -> int:
        return (chunks if self.per_chunk else items) * self.width


_LAYOUT = (_Stored("first_offset", np.dtype("<i8"), 1, True), _Stored("first_row", np.dtype("<i8"), 1, True),
           _Stored("trace", np.dtype("u1"), TRACE_ID_BYTES, False),
           _Stored("span", np.dtype("u1"), SPAN_ID_BYTES, False),
           _Stored("time", np.dtype("<u8"), 1, False), _Stored("flags", np.dtype("u1"), 1, False))
"""The columns in the order dumped. A fixed layout rather than the detectors' snapshot codec: its JSON header
and per-array dtype handling cost several times the copy of a ring's few KiB, and a stream snapshot is taken
on every eviction."""
_HAS_TRACE, _HAS_SPAN = 1, 2
"""Bits of an item's ``flags``: an absent id and an all-zero one (allowed in a log record) differ."""


@dataclass(slots=True)
class RingChunk:
    """The items of one request, as extraction lists them (aligned sequences)."""

    first_offset: int
    trace_ids: Sequence[bytes]
    span_ids: Sequence[bytes]
    times: Sequence[int] | np.ndarray
    """Unix nanoseconds (a uint64 array is copied as it is)."""
    positions: Sequence[int]
    request_seq: int
    """Which request (its detection ticket, in arrival order) the items arrived in; -1 after a restore."""


@dataclass(frozen=True, slots=True)
class RingItem:
    offset: int
    trace_id: bytes
    span_id: bytes
    time_unix_nano: int
    position: int
    request_seq: int


class _Rows:
    """Equal-length named columns whose live rows are ``[head, tail)`` of their arrays: rows are appended
    at the tail and dropped from the head. When the tail reaches the end the live rows move to the front;
    the arrays are reallocated, with slack, when too small, and when far too large (a large request's chunk
    has left), so memory follows what is kept."""

    __slots__ = ("allocated", "columns", "head", "tail")

    def __init__(self, columns: dict[str, np.ndarray]):
        self.columns = columns
        self.allocated = len(next(iter(columns.values())))
        self.head = 0
        self.tail = self.allocated

    def __len__(self) -> int:
        return self.tail - self.head

    def __getitem__(self, name: str) -> np.ndarray:
        return self.columns[name]

    def live(self, name: str) -> np.ndarray:
        return self.columns[name][self.head:self.tail]

    def reserve(self, n: int) -> int:
        """Room for ``n`` more rows at the tail; returns the array index of the first of them."""
        need = self.tail - self.head + n
        allocated = self.allocated
        if self.tail + n > allocated or allocated > 4 * need + 64:
            # move the live rows to the front when that leaves room for a few more appends like this one,
            # else reallocate with that room
            roomy = need + need // 8 + n <= allocated <= 4 * need + 64
            self._move(allocated if roomy else need + need // 4 + 2 * n + 32)
        first = self.tail
        self.tail += n
        return first

    def drop(self, n: int) -> None:
        self.head += n
        if self.head == self.tail:
            self.head = self.tail = 0

    def _move(self, allocated: int) -> None:
        head, size = self.head, self.tail - self.head
        for name, column in self.columns.items():
            if len(column) == allocated:
                column[:size] = column[head:head + size]  # numpy buffers overlapping copies
            else:
                moved = np.empty((allocated, *column.shape[1:]), dtype=column.dtype)
                moved[:size] = column[head:head + size]
                self.columns[name] = moved
        self.allocated = allocated
        self.head, self.tail = 0, size


def _item_rows() -> _Rows:
    return _Rows({"trace": np.zeros((0, TRACE_ID_BYTES), np.uint8),
                  "span": np.zeros((0, SPAN_ID_BYTES), np.uint8), "time": np.zeros(0, np.uint32),
                  "position": np.zeros(0, np.int32), "flags": np.zeros(0, np.uint8)})


def _chunk_rows() -> _Rows:
    return _Rows({"first_offset": np.zeros(0, np.int64), "first_row": np.zeros(0, np.int64),
                  "request_seq": np.zeros(0, np.int64), "time_base": np.zeros(0, np.uint64)})


def _counts(first_row: np.ndarray, rows: int) -> np.ndarray:
    """Items per chunk of chunks starting at ``first_row`` (ascending, from 0) of ``rows`` items."""
    counts = np.empty_like(first_row)
    if counts.size:
        np.subtract(first_row[1:], first_row[:-1], out=counts[:-1])
        counts[-1] = rows - first_row[-1]
    return counts


_U64 = (1 << 64) - 1
_SPREAD = 1 << 32


def _narrow_times(times: Sequence[int] | np.ndarray) -> tuple[int, np.ndarray | None]:
    """(base, the times' distances from it as uint32) when every time lies within 2**31 ns (~2.1 s) either
    side of the first one (arithmetic mod 2**64, as uint64 is), else (0, None)."""
    t = np.asarray(times, np.uint64)
    base = (int(t[0]) - (1 << 31)) & _U64  # below 0 (a time 0: unknown) wraps, as uint64 differences do
    deltas = t - np.uint64(base)
    if int(deltas.max()) >= _SPREAD:
        return 0, None
    return int(base), deltas.astype(np.uint32)


class EventRing:
    __slots__ = ("_appended", "_chunks", "_items", "_wide", "capacity")

    def __init__(self, capacity: int):
        self.capacity = max(1, capacity)
        self._items = _item_rows()
        self._chunks = _chunk_rows()
        self._appended = 0
        """Item rows ever appended: the row number of the next item (chunks name their first row so)."""
        self._wide: dict[int, np.ndarray] = {}
        """The times (uint64) of the chunks kept whole, by their first row (see the module)."""

    def append(self, chunk: RingChunk) -> None:
        n = len(chunk.times)
        self._drop_old(n)
        c = self._chunks.reserve(1)
        columns = self._chunks.columns
        columns["first_offset"][c] = chunk.first_offset
        columns["first_row"][c] = self._appended
        columns["request_seq"][c] = chunk.request_seq
        columns["time_base"][c] = 0
        if n:
            i = self._items.reserve(n)
            columns = self._items.columns
            traces, has_trace = _fixed_width(chunk.trace_ids, TRACE_ID_BYTES)
            spans, has_span = _fixed_width(chunk.span_ids, SPAN_ID_BYTES)
            # through a byte view: numpy would first need an array of the bytes (several times the cost)
            columns["trace"].data.cast("B")[i * TRACE_ID_BYTES:(i + n) * TRACE_ID_BYTES] = traces
            columns["span"].data.cast("B")[i * SPAN_ID_BYTES:(i + n) * SPAN_ID_BYTES] = spans
            base, deltas = _narrow_times(chunk.times)
            if deltas is None:
                self._wide[self._appended] = np.asarray(chunk.times, np.uint64).copy()
                columns["time"][i:i + n] = 0
            else:
                self._chunks.columns["time_base"][c] = base
                columns["time"][i:i + n] = deltas
            columns["position"][i:i + n] = chunk.positions
            flags = has_trace * _HAS_TRACE + has_span * _HAS_SPAN
            if isinstance(flags, int):  # the same for every item (spans, metric points): bytes are cheaper
                columns["flags"].data[i:i + n] = bytes((flags,)) * n
            else:
                columns["flags"][i:i + n] = flags
        self._appended += n

    def _drop_old(self, incoming: int) -> None:
        """Drop the oldest chunks while the rest, with the ``incoming`` items of a new chunk, still hold
        ``capacity`` items (the new chunk always stays)."""
        items, chunks = self._items, self._chunks
        kept = items.tail - items.head
        spare = kept + incoming - self.capacity  # items that may go
        count = chunks.tail - chunks.head
        if spare <= 0 or not count:
            return
        first_row, head = chunks.columns["first_row"], chunks.head
        base = self._appended - kept  # the oldest chunk's first row
        dropped = rows = 0
        while dropped < count:
            # .item: a Python int without a numpy scalar in between
            end = first_row.item(head + dropped + 1) if dropped + 1 < count else self._appended
            if end - base > spare:
                break
            dropped += 1
            rows = end - base
        if dropped:
            chunks.drop(dropped)
            items.drop(rows)
            if self._wide:
                oldest = base + rows
                for row in [row for row in self._wide if row < oldest]:
                    del self._wide[row]

    def _find(self, offset: int) -> tuple[int, int] | None:
        """(item array index, chunk array index) of the item at ``offset``, if still kept."""
        chunks = self._chunks
        count = len(chunks)
        if not count:
            return None
        head = chunks.head
        first_offset = chunks["first_offset"]
        c = count - 1  # usually the newest chunk: no search
        if offset < first_offset.item(head + c):
            c = int(np.searchsorted(chunks.live("first_offset"), offset, side="right")) - 1
            if c < 0:
                return None
        first_row = chunks["first_row"]
        start = first_row.item(head + c)
        end = first_row.item(head + c + 1) if c + 1 < count else self._appended
        i = offset - first_offset.item(head + c)
        if i >= end - start:
            return None
        oldest_row = self._appended - len(self._items)
        return self._items.head + start - oldest_row + i, head + c

    def get(self, offset: int) -> RingItem | None:
        found = self._find(offset)
        if found is None:
            return None
        i, c = found
        items = self._items
        flags = items["flags"].item(i)
        return RingItem(offset, items["trace"][i].tobytes() if flags & _HAS_TRACE else b"",
                        items["span"][i].tobytes() if flags & _HAS_SPAN else b"", self._time(i, c),
                        items["position"].item(i), self._chunks["request_seq"].item(c))

    def time_at(self, offset: int) -> int:
        """The event time of the item at ``offset`` (0 when unknown or no longer kept)."""
        found = self._find(offset)
        return 0 if found is None else self._time(*found)

    def _time(self, i: int, c: int) -> int:
        """The time of the item at array index ``i`` of the chunk at array index ``c``."""
        first_row = self._chunks["first_row"].item(c)
        wide = self._wide.get(first_row)
        if wide is not None:
            return wide.item(i - self._items.head - (first_row - (self._appended - len(self._items))))
        return (self._chunks["time_base"].item(c) + self._items["time"].item(i)) & _U64

    def __len__(self) -> int:
        return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays behind the ring (their slack included)."""
        return (sum(column.nbytes for rows in (self._items, self._chunks) for column in rows.columns.values())
                + sum(times.nbytes for times in self._wide.values()))

    # --- persistence (part of a stream snapshot); positions/request numbers do not survive a restart
    def dump(self) -> bytes:
        """``_HEAD`` (tag, version, chunks, items), then the live rows of each column of ``_LAYOUT``."""
        items, chunks = self._items, self._chunks
        oldest_row = self._appended - len(items)
        first_row = chunks.live("first_row") - oldest_row
        columns = {"first_offset": chunks.live("first_offset"), "first_row": first_row,
                   "trace": items.live("trace"), "span": items.live("span"),
                   "time": self._whole_times(first_row), "flags": items.live("flags")}
        head = _HEAD.pack(SNAPSHOT_TAG, SNAPSHOT_VERSION, len(chunks), len(items))
        return b"".join([head, *(columns[c.name].astype(c.dtype, copy=False).tobytes() for c in _LAYOUT)])

    def _whole_times(self, first_row: np.ndarray) -> np.ndarray:
        """The live items' times (uint64), each chunk's base added (``first_row``: the live chunks' first
        rows, from 0)."""
        items = self._items
        counts = _counts(first_row, len(items))
        times = np.repeat(self._chunks.live("time_base"), counts) + items.live("time")  # uint64: mod 2**64
        oldest_row = self._appended - len(items)
        for row, wide in self._wide.items():
            times[row - oldest_row:row - oldest_row + wide.size] = wide
        return times

    @classmethod
    def load(cls, capacity: int, data: bytes | memoryview) -> EventRing:
        """The ring ``dump`` wrote; ValueError when the bytes are not one."""
        if len(data) < _HEAD.size:
            raise ValueError("corrupt ring snapshot: truncated")
        tag, version, n_chunks, n_items = _HEAD.unpack_from(data)
        if tag != SNAPSHOT_TAG or version != SNAPSHOT_VERSION:
            raise ValueError(f"not a ring snapshot of version {SNAPSHOT_VERSION}")
        if _HEAD.size + sum(c.values(n_chunks, n_items) * c.dtype.itemsize for c in _LAYOUT) != len(data):
            raise ValueError("corrupt ring snapshot: its length does not match its counts")
        a: dict[str, np.ndarray] = {}
        pos = _HEAD.size
        for c in _LAYOUT:
            count = c.values(n_chunks, n_items)
            column = np.frombuffer(data, c.dtype, count, pos).astype(c.dtype.newbyteorder("="))  # owned copy
            a[c.name] = column.reshape(-1, c.width) if c.width > 1 else column
            pos += count * c.dtype.itemsize
        first_row = a["first_row"]
        if n_chunks:
            covered = first_row[0] == 0 and first_row[-1] <= n_items and bool(np.all(np.diff(first_row) >= 0))
        else:
            covered = n_items == 0
        if not covered:
            raise ValueError("corrupt ring snapshot: its chunks do not cover its items")
        return cls._of(capacity, a["trace"], a["span"], a["time"], a["flags"], a["first_offset"], first_row)

    @classmethod
    def load_v1(cls, capacity: int, data: list[dict[str, Any]]) -> EventRing:
        """The ring of a stream snapshot of version 1 (JSON chunks: ids in base64, cut/padded to their
        width, an all-zero id read as absent)."""
        times = [int(t) for c in data for t in c["times"]]
        traces = b"".join(base64.b64decode(c["trace"]) for c in data)
        spans = b"".join(base64.b64decode(c["span"]) for c in data)
        n = len(times)
        trace = np.frombuffer(traces, np.uint8).reshape(n, TRACE_ID_BYTES).copy()
        span = np.frombuffer(spans, np.uint8).reshape(n, SPAN_ID_BYTES).copy()
        flags = np.zeros(n, np.uint8)
        flags[trace.any(axis=1)] |= _HAS_TRACE
        flags[span.any(axis=1)] |= _HAS_SPAN
        sizes = [len(c["times"]) for c in data]
        return cls._of(capacity, trace, span, np.array(times, np.uint64), flags,
                       np.array([int(c["first"]) for c in data], np.int64),
                       np.cumsum([0, *sizes[:-1]], dtype=np.int64)[:len(sizes)])

    @classmethod
    def _of(cls, capacity: int, trace: np.ndarray, span: np.ndarray, times: np.ndarray, flags: np.ndarray,
            first_offset: np.ndarray, first_row: np.ndarray) -> EventRing:
        """The ring of restored rows (positions and request numbers unknown: -1); the times whole."""
        n_items, n_chunks = len(times), len(first_row)
        # as _narrow_times, every chunk at once: bases 2**31 ns before each chunk's first time (mod 2**64)
        counts = _counts(first_row, n_items)
        wide: dict[int, np.ndarray] = {}
        if counts.all():  # the usual case: no empty chunk
            filled = None
            time_base = times[first_row] - np.uint64(1 << 31)
        else:
            filled = counts > 0
            time_base = np.zeros(n_chunks, np.uint64)
            time_base[filled] = times[first_row[filled]] - np.uint64(1 << 31)
        spread = times - np.repeat(time_base, counts)
        if n_items:
            if filled is None:
                too_wide = np.flatnonzero(np.maximum.reduceat(spread, first_row) >= _SPREAD)
            else:
                too_wide = np.flatnonzero(filled)[np.maximum.reduceat(spread, first_row[filled]) >= _SPREAD]
            for c in too_wide.tolist():
                a, b = int(first_row[c]), int(first_row[c]) + int(counts[c])
                wide[a] = times[a:b].copy()
                time_base[c] = 0
                spread[a:b] = 0
        deltas = spread.astype(np.uint32)
        ring = cls.__new__(cls)  # not __init__: its empty columns would be replaced at once
        ring.capacity = max(1, capacity)
        ring._items = _Rows({"trace": trace, "span": span, "time": deltas,
                             "position": np.full(n_items, -1, np.int32), "flags": flags})
        ring._chunks = _Rows({"first_offset": first_offset, "first_row": first_row,
                              "request_seq": np.full(n_chunks, -1, np.int64), "time_base": time_base})
        ring._appended, ring._wide = n_items, wide
        ring._drop_old(0)  # as appending the chunks one by one would have
        return ring


def _fixed_width(ids: Sequence[bytes], width: int) -> tuple[bytes, bool | np.ndarray]:
    """The ids side by side, ``width`` bytes each, and whether each was present (one bool for all alike).

    Ids of the wrong length cannot pass validation; were one to arrive it is cut/padded, an absent id is all
    zero."""
    joined = b"".join(ids)
    if len(joined) == width * len(ids):
        return joined, True
    if not joined:  # metric points, log records without ids
        return bytes(width * len(ids)), False
    return (b"".join(i[:width].ljust(width, b"\0") for i in ids),
            np.fromiter(map(len, ids), np.int64, len(ids)) > 0)
