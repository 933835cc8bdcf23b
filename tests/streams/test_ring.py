"""The ring of recent items maps stream offsets to the items as a list of per-request chunks does (the
reference model below: whole chunks dropped once the rest holds ``capacity`` items, the newest kept), in
memory and through its snapshot."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from otlp_gateway.streams.ring import EventRing, RingChunk, RingItem


@dataclass
class ReferenceRing:
    capacity: int
    chunks: list[RingChunk]

    def append(self, chunk: RingChunk) -> None:
        self.chunks.append(chunk)
        while len(self.chunks) > 1 and sum(len(c.times) for c in self.chunks[1:]) >= self.capacity:
            self.chunks.pop(0)

    def get(self, offset: int) -> RingItem | None:
        for c in reversed(self.chunks):
            if c.first_offset <= offset < c.first_offset + len(c.times):
                i = offset - c.first_offset
                return RingItem(offset, c.trace_ids[i], c.span_ids[i], c.times[i], c.positions[i],
                                c.request_seq)
            if c.first_offset + len(c.times) <= offset:
                return None
        return None


def _id(rng: random.Random, width: int) -> bytes:
    kind = rng.random()
    if kind < 0.15:
        return b""  # a log record without ids
    if kind < 0.2:
        return bytes(width)  # all zero: allowed in a log record, and not the same as absent
    return rng.randbytes(width)


def _chunk(rng: random.Random, first: int, size: int, seq: int) -> RingChunk:
    full = rng.random() < 0.5  # the usual span request: every id present
    traces = [rng.randbytes(16) if full else _id(rng, 16) for _ in range(size)]
    spans = [rng.randbytes(8) if full else _id(rng, 8) for _ in range(size)]
    mode = rng.random()
    if mode < 0.4:  # anything, unknown (0) among them: kept whole
        times = [rng.choice([0, rng.randrange(2**64)]) for _ in range(size)]
    else:  # a request's times: within ~2 s of each other (kept as 4 bytes each), or at times wider
        now, spread = rng.randrange(2**64), rng.choice([10**6, 2**31 - 1, 2**31, 10**10])
        times = [(now + rng.randrange(-spread, spread + 1)) % 2**64 for _ in range(size)]
    return RingChunk(first, traces, spans, times, [rng.randrange(-1, 5000) for _ in range(size)], seq)


def _after_restore(item: RingItem | None) -> RingItem | None:
    # positions and request numbers do not survive a restart
    return None if item is None else RingItem(item.offset, item.trace_id, item.span_id, item.time_unix_nano,
                                              -1, -1)


@pytest.mark.parametrize("seed", range(12))
def test_offsets_map_to_the_items_of_the_reference_model(seed: int) -> None:
    rng = random.Random(seed)
    capacity = rng.choice([1, 7, 64, 264])
    ring, reference = EventRing(capacity), ReferenceRing(capacity, [])
    offset = 0
    for seq in range(300):
        size = rng.choice([0, 1, 1, 2, 5, 10, 40, capacity + rng.randrange(3 * capacity)])
        offset += rng.choice([0, 0, 0, 3])  # offsets with no place in the ring (a detector change)
        chunk = _chunk(rng, offset, size, seq)
        ring.append(chunk)
        reference.append(chunk)
        offset += size
        assert len(ring) == sum(len(c.times) for c in reference.chunks)
        if seq % 25 == 0 or seq == 299:
            low = max(0, offset - 3 * capacity - 100)
            for o in range(low, offset + 3):
                want = reference.get(o)
                assert ring.get(o) == want
                assert ring.time_at(o) == (want.time_unix_nano if want else 0)
            restored = EventRing.load(capacity, ring.dump())
            assert len(restored) == len(ring)
            assert [restored.get(o) for o in range(low, offset + 3)] == [
                _after_restore(reference.get(o)) for o in range(low, offset + 3)]


def test_a_restored_ring_goes_on_as_the_reference_model() -> None:
    rng = random.Random(5)
    ring, reference = EventRing(50), ReferenceRing(50, [])
    offset = 0
    for seq in range(60):
        size = rng.choice([1, 3, 9, 30])
        chunk = _chunk(rng, offset, size, seq)
        offset += size
        if seq == 30:
            ring = EventRing.load(50, ring.dump())
            reference.chunks = [RingChunk(c.first_offset, c.trace_ids, c.span_ids, c.times,
                                          [-1] * len(c.times), -1) for c in reference.chunks]
        ring.append(chunk)
        reference.append(chunk)
    assert [ring.get(o) for o in range(offset + 1)] == [reference.get(o) for o in range(offset + 1)]


def test_memory_follows_what_is_kept() -> None:
    ring = EventRing(264)
    offset = 0
    for seq in range(200):
        ring.append(_chunk(random.Random(seq), offset, 10, seq))
        offset += 10
    steady = ring.nbytes
    assert steady < 280 * 40 * 1.5  # ~37 bytes per item kept, with slack
    ring.append(_chunk(random.Random(1), offset, 50_000, 200))  # one large request: kept whole
    offset += 50_000
    assert len(ring) == 50_000 and ring.nbytes > 50_000 * 37
    for seq in range(201, 260):
        ring.append(_chunk(random.Random(seq), offset, 10, seq))
        offset += 10
    assert len(ring) < 280 and ring.nbytes <= steady * 2


def test_times_of_a_request_take_4_bytes_each() -> None:
    ring = EventRing(264)
    rng = random.Random(3)
    now = 1_767_000_000 * 10**9
    times = [now + rng.randrange(2 * 10**9) for _ in range(300)]
    ring.append(RingChunk(0, [b"t" * 16] * 300, [b"s" * 8] * 300, times, list(range(300)), 1))
    assert ring._items["time"].dtype.itemsize == 4 and not ring._wide
    assert [ring.time_at(o) for o in range(300)] == times
    wide = [0, *times[1:]]  # an unknown time among known ones: the chunk's times kept whole
    ring.append(RingChunk(300, [b"t" * 16] * 300, [b"s" * 8] * 300, wide, list(range(300)), 2))
    assert [ring.time_at(o) for o in range(300, 600)] == wide and len(ring._wide) == 1
    ring.append(RingChunk(600, [b"t" * 16] * 300, [b"s" * 8] * 300, times, list(range(300)), 3))
    assert not ring._wide  # left with its chunk
    assert [EventRing.load(264, ring.dump()).time_at(o) for o in range(600, 900)] == times


def test_a_corrupt_ring_snapshot_is_refused() -> None:
    ring = EventRing(10)
    ring.append(_chunk(random.Random(1), 0, 5, 0))
    data = ring.dump()
    with pytest.raises(ValueError):
        EventRing.load(10, data[:-3])
    with pytest.raises(ValueError):
        EventRing.load(10, b"XXXX" + data[4:])
