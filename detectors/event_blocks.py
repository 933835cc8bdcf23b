"""A stream's retained events by stream offset: the newest as ``bytes``, older ones in compressed blocks.

cbad keeps a few hundred canonical events per stream (the baseline, the window tail, held events), ~290
bytes each as Python ``bytes``; most of them are only read again when they leave the baseline, for an
explanation or an incident's reference. :class:`EventBlocks` keeps the events from ``raw_start`` on as
``bytes`` (what every hop reads) and seals older ones, :data:`BLOCK` consecutive stream offsets at a time
(blocks aligned to multiples of ``BLOCK``; a block's first part may be sealed before the block is complete,
:data:`PARTIAL`), into one LZ4 block each: their event lengths and bytes, compressed ~26x (a sealed span
event costs ~10 bytes instead of ~330 as ``bytes``). Nothing is decompressed until it is read: the kernels'
layouts are built from a decompressed block without a ``bytes`` object per event; reads of single events
keep their decompressed blocks until :meth:`forget`.

Blocks are released by the owner (:meth:`release`) once every event in them is older than what it still
needs, except blocks holding an event it still refers to (baseline and held events, by stream offset): so
an offset once stored stays readable for as long as its owner pins it, and the store may hold a few events
beyond what the owner reads (a block is freed whole).

Between the owner's calls the ``bytes`` events rest sealed too (:meth:`close`): one block of all of them
(~60 span events, ~15 KiB as ``bytes``, ~1 KiB sealed), opened again by the next read or append. Sealing
and opening them costs ~10 us a call, so the stores of the :data:`OPEN_STORES` owners that called last stay
open (a stream fed often pays nothing; the others are held sealed), as the count tables of
``detectors.compressors`` are kept. A snapshot carries the sealed blocks and the resting block as they are
(:meth:`dump`, :meth:`load`): no per-event work.

>>> store = EventBlocks()
>>> store.extend(0, [b"GET /a OK", b"GET /b OK", b"POST /c ERROR"] * 30)
>>> store.seal_below(64)
>>> store.raw_start, store.get(1), store.take([0, 89, 2])
(64, b'GET /b OK', [b'GET /a OK', b'POST /c ERROR', b'POST /c ERROR'])
>>> store.rest()
>>> again = EventBlocks.load(*store.dump())
>>> again.range(60, 66) == store.range(60, 66) and again.raw_start == 64
True
"""

from __future__ import annotations

import contextlib
import itertools
import struct
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence

import lz4.block
import numpy as np

from detectors._kernels.layout import Events, layout

BLOCK = 64
"""Stream offsets per sealed block. 64 canonical span events (~250 B each) compress ~26x with LZ4 (32: ~19x,
16: ~12x); a block is compressed once and decompressed about once (when its events leave the baseline), and
a read decompresses the whole block, so smaller blocks cost more CPU per event on both sides (measured with
``bench/bench_detectors.py``: 32 was slower than 64 at 16-event batches)."""
PARTIAL = 16
"""The fewest events of a block sealed before the block is complete (then sealed again with the next ones):
the newest events are kept as ``bytes`` from no earlier than ``PARTIAL`` before where the owner reads, not
from the start of their block (~32 events, ~9 KiB of span events, on average), for a reseal every
``PARTIAL`` events or more."""
OPEN_STORES = 64
"""Stores whose newest events stay open (as ``bytes``) between their owner's calls: those of the owners that
called last (~15 KiB each for span streams); the others rest sealed (~1 KiB)."""
_HEAD = struct.Struct("<qI")  # a sealed block's first offset and its number of events, then their lengths


def _seal(start: int, events: Sequence[bytes]) -> bytes:
    n = len(events)
    return lz4.block.compress(b"".join([_HEAD.pack(start, n), struct.pack(f"<{n}I", *map(len, events)),
                                        *events]), store_size=True)


def _append(block: bytes, at: int, events: Sequence[bytes]) -> bytes:
    """``block`` (sealed) with ``events`` appended at offset ``at``, where its events end."""
    start, lens, raw = _open(block)
    if start + len(lens) != at:
        raise ValueError("a sealed block does not end where the bytes events start")
    n = len(lens) + len(events)
    data = _HEAD.size + 4 * len(lens)
    return lz4.block.compress(b"".join([_HEAD.pack(start, n), raw[_HEAD.size:data],
                                        struct.pack(f"<{len(events)}I", *map(len, events)), raw[data:],
                                        *events]), store_size=True)


def _open(block: bytes) -> tuple[int, tuple[int, ...], bytes]:
    """(first offset, event lengths, raw) of a sealed block; the events follow each other in ``raw`` from
    ``_HEAD.size + 4 * len(lengths)`` on (Python ints: a block's few events cost less than numpy calls)."""
    try:
        raw = lz4.block.decompress(block)
        start, n = _HEAD.unpack_from(raw)
        return start, struct.unpack_from(f"<{n}I", raw, _HEAD.size), raw
    except (lz4.block.LZ4BlockError, struct.error) as exc:
        raise ValueError(f"corrupt event block: {exc}") from None


def _unseal(block: bytes) -> tuple[int, bytes, list[int]]:
    """(first offset, raw, bounds) of a sealed block: event ``i`` is ``raw[bounds[i]:bounds[i + 1]]``."""
    start, lens, raw = _open(block)
    return start, raw, list(itertools.accumulate(lens, initial=_HEAD.size + 4 * len(lens)))


class _OpenStores:
    """The stores left open after their owner's call, least recently closed first: at most ``keep``; a store
    closed beyond that rests the oldest one (under ``lock``; a store in its owner's call is never among
    them, nor one its owner reads between calls: see ``EventBlocks._claim``)."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.lock = threading.Lock()
        self.idle: OrderedDict[int, weakref.ref[EventBlocks]] = OrderedDict()

    def close(self, store: EventBlocks) -> None:
        with self.lock:
            store._in_use = False
            if store._raw:
                self.idle[id(store)] = store._ref
                self.idle.move_to_end(id(store))
            self._shrink(self.keep)

    def _shrink(self, keep: int) -> None:
        while len(self.idle) > keep:
            victim = self.idle.popitem(last=False)[1]()
            if victim is not None:
                victim.rest()

    def claim(self, store: EventBlocks) -> None:
        with self.lock:
            self.idle.pop(id(store), None)

    def rest_idle(self) -> None:
        """Rest every open store not in a call (what all but the ``keep`` owners that called last hold)."""
        with self.lock:
            self._shrink(0)


_OPEN = _OpenStores(OPEN_STORES)


def rest_idle_stores() -> None:
    """Rest the newest events of every store whose owner is not in a call (measurements of what a stream
    holds at rest)."""
    _OPEN.rest_idle()


class EventBlocks:
    """Events by stream offset: ``bytes`` from ``raw_start`` to ``end``, sealed blocks below (see module).

    The owner calls :meth:`open` before and :meth:`close` after each of its calls, and reads between them
    inside :meth:`held` (a read outside both is allowed: it opens the store until the owner's next call
    ends)."""

    __slots__ = ("__weakref__", "_checked", "_in_use", "_open", "_raw", "_ref", "_resting", "_resting_end",
                 "_sealed", "raw_start")

    def __init__(self, raw_start: int = 0) -> None:
        self._raw: list[bytes] = []
        self.raw_start = raw_start
        self._resting: bytes | None = None  # while resting (:meth:`rest`): the ``bytes`` events sealed
        self._resting_end = 0  # while resting: one past the newest offset
        self._in_use = False  # between open and close
        self._ref = weakref.ref(self)
        self._sealed: dict[int, bytes] = {}  # offset // BLOCK -> sealed block
        self._open: dict[int, tuple[int, list[bytes]]] = {}  # decompressed during this call: key -> events
        self._checked = -1  # the block ``release`` last looked for pinned offsets below

    @property
    def end(self) -> int:
        """One past the newest offset."""
        return self._resting_end if self._resting is not None else self.raw_start + len(self._raw)

    @property
    def resting(self) -> bool:
        return self._resting is not None

    def open(self) -> None:
        """The owner's call starts: the store is its alone until :meth:`close`."""
        if not self._in_use:
            _OPEN.claim(self)
            self._in_use = True

    def close(self) -> None:
        """The owner's call is done: the blocks decompressed by reads are dropped (:meth:`forget`) and the
        newest events stay open, or rest (:meth:`rest`) once ``OPEN_STORES`` others were closed since."""
        self._open.clear()
        _OPEN.close(self)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """The owner's read or change between its calls (a snapshot, an operator's incident action), as a
        call of its own: :meth:`open` and :meth:`close` around it, unless in a call already."""
        if self._in_use:
            yield
            return
        self.open()
        try:
            yield
        finally:
            self.close()

    def rest(self) -> None:
        """Seal the ``bytes`` events into one block until the next read or append (not in a call: see
        ``_OpenStores``)."""
        self._open.clear()
        if self._resting is None and self._raw:
            self._resting_end = self.end
            self._resting = _seal(self.raw_start, self._raw)
            self._raw = []

    def _hold(self) -> None:
        """Out of ``_OPEN``'s reach (a read between calls: until the owner's next call ends)."""
        if not self._in_use:
            _OPEN.claim(self)

    def _claim(self) -> None:
        """Before a read or a change: out of ``_OPEN``'s reach, and open."""
        self._hold()
        block = self._resting
        if block is not None:
            start, raw, bounds = _unseal(block)
            if start != self.raw_start or start + len(bounds) - 1 != self._resting_end:
                raise ValueError("corrupt event blocks: the newest events are not where the store says")
            self._raw = [raw[a:b] for a, b in itertools.pairwise(bounds)]
            self._resting = None

    @property
    def sealed_blocks(self) -> int:
        return len(self._sealed)

    def extend(self, at: int, events: list[bytes]) -> None:
        """Append ``events`` at stream offset ``at`` (the current end, or anywhere if empty)."""
        self._claim()
        if not self._raw and at != self.raw_start:
            self.raw_start = at
        elif at != self.end:
            raise ValueError(f"events appended at {at}, the store ends at {self.end}")
        self._raw.extend(events)

    def seal_below(self, limit: int) -> None:
        """Seal the ``bytes`` events below ``limit``: every block that ends at or below it, and the first
        part of the block ``limit`` falls in when at least :data:`PARTIAL` events of it are below (sealed
        again with the rest of its events later)."""
        self._claim()
        raw, start, end = self._raw, self.raw_start, self.end
        limit = min(limit, end)
        cut = 0
        while start < limit:
            key = start // BLOCK
            upto = min(key * BLOCK + BLOCK, limit)
            if upto - start < PARTIAL and upto < key * BLOCK + BLOCK:
                break
            events = raw[cut:cut + upto - start]
            prior = self._sealed.get(key)
            if prior is None:
                self._sealed[key] = _seal(start, events)
            else:  # the block's older events, sealed apart (earlier, or resealed from another size)
                self._sealed[key] = _append(prior, start, events)
            cut += upto - start
            start = upto
        if cut:
            del raw[:cut]
            self.raw_start = start

    def add_sealed(self, offsets: Sequence[int], events: Sequence[bytes]) -> None:
        """Store ``events`` at ``offsets`` (ascending, below every offset stored so far) in sealed blocks:
        events that left what the store holds but are still referred to (a restored older snapshot's)."""
        at = 0
        for key, group in itertools.groupby(offsets, lambda o: o // BLOCK):
            n = len(list(group))
            if key in self._sealed or offsets[at + n - 1] >= self.raw_start:
                raise ValueError("sealed events must lie below the events stored")
            self._sealed[key] = _seal(offsets[at], events[at:at + n])
            at += n

    def release(self, keep_from: int, pinned: Callable[[], np.ndarray]) -> None:
        """Free the events below ``keep_from`` (whole blocks; ``bytes`` events from the front), but those
        of a block holding an offset ``pinned()`` (int64; asked only if there is something to free)."""
        self._claim()
        cut = min(keep_from, self.end) - self.raw_start
        if keep_from // BLOCK == self._checked and cut <= 0:
            # Nothing new below keep_from since the last look: a block then pinned may have been let go
            # since, and is freed at the next look (once keep_from reaches another block). An offset below
            # keep_from is never pinned anew (what the owner pins later is newer), so this only delays.
            return
        self._checked = keep_from // BLOCK
        free = []
        for key in self._sealed:  # in ascending order (sealed oldest first; a load sorts them)
            if key * BLOCK + BLOCK > keep_from:
                break
            free.append(key)
        if not free and cut <= 0:
            return
        at = pinned()
        if free:
            # the block of the oldest pinned offset stays; older blocks go; newer ones (an older event held
            # while newer ones entered the baseline, say) are looked for among the pinned offsets
            oldest = int(at.min()) // BLOCK if len(at) else free[-1] + 1
            keys = at // BLOCK
            for key in free:
                if key < oldest or (key > oldest and not bool((keys == key).any())):
                    del self._sealed[key]
        if cut > 0:
            inside = at[(at >= self.raw_start) & (at < self.raw_start + cut)]
            if inside.size:  # a pinned event among the bytes: keep them from its block on (sealed later)
                cut = int(inside.min()) // BLOCK * BLOCK - self.raw_start
            key, new_start = self.raw_start // BLOCK, self.raw_start + cut
            if new_start // BLOCK == key and new_start % BLOCK and key in self._sealed:
                cut = 0  # the block's first part is sealed (seal_below): its events stay contiguous
            if cut > 0:
                del self._raw[:cut]
                self.raw_start += cut

    def holds(self, offsets: np.ndarray) -> bool:
        """Whether every offset in ``offsets`` (int64) lies among the ``bytes`` events or in a sealed block
        (checked per block: a restore's check of the offsets it was given, without decompressing)."""
        outside = offsets[(offsets < self.raw_start) | (offsets >= self.end)]
        if outside.size == 0:
            return True
        keys = set(np.unique(outside // BLOCK).tolist())
        return int(outside.max()) < self.end and keys <= self._sealed.keys()

    def forget(self) -> None:
        """Drop the blocks decompressed by reads since the last call."""
        self._open.clear()

    # ------------------------------------------------------------------ reads

    def _block(self, key: int) -> tuple[int, list[bytes]]:
        opened = self._open.get(key)
        if opened is None:
            sealed = self._sealed.get(key)
            if sealed is None:
                raise KeyError(f"no events stored at offsets {key * BLOCK}..{key * BLOCK + BLOCK - 1}")
            start, raw, bounds = _unseal(sealed)
            opened = self._open[key] = (start, [raw[a:b] for a, b in itertools.pairwise(bounds)])
        return opened

    def get(self, offset: int) -> bytes:
        self._claim()
        i = offset - self.raw_start
        if 0 <= i < len(self._raw):
            return self._raw[i]
        start, events = self._block(offset // BLOCK)
        if not 0 <= offset - start < len(events):
            raise KeyError(f"no event stored at offset {offset}")
        return events[offset - start]

    def take(self, offsets: Iterable[int]) -> list[bytes]:
        """The events at ``offsets``, in that order."""
        return list(map(self.get, offsets))

    def range(self, lo: int, hi: int) -> list[bytes]:
        """The events at offsets ``lo..hi-1``."""
        self._claim()
        if lo >= self.raw_start:
            return self._raw[lo - self.raw_start:hi - self.raw_start]
        out: list[bytes] = []
        at = lo
        while at < min(hi, self.raw_start):
            start, events = self._block(at // BLOCK)
            upto = min(hi, start + len(events))
            if at < start or upto <= at:
                raise KeyError(f"no event stored at offset {at}")
            out += events[at - start:upto - start]
            at = upto
        if hi > self.raw_start:
            out += self._raw[:hi - self.raw_start]
        return out

    def layout(self, lo: int, hi: int | None = None) -> Events:
        """The flat layout (``detectors._kernels.layout``) of the events at offsets ``lo..hi-1`` (to the end
        by default); sealed ones are laid out from their decompressed block without a ``bytes`` object
        each."""
        self._claim()
        if lo >= self.raw_start:  # the usual case: only bytes events
            return layout(self._raw[lo - self.raw_start:None if hi is None else hi - self.raw_start])
        parts: list[bytes] = []
        lens: list[int] = []
        self._lay(lo, self.end if hi is None else hi, parts, lens)
        return _joined(parts, lens)

    def layout_at(self, offsets: list[int]) -> Events:
        """The flat layout of the events at ``offsets``, in that order (laid out a run of consecutive
        offsets at a time: the baseline's leaving events and the held ones are such runs)."""
        self._claim()
        parts: list[bytes] = []
        lens: list[int] = []
        n = len(offsets)
        if n and offsets == list(range(offsets[0], offsets[0] + n)):  # the usual case: one run
            self._lay(offsets[0], offsets[0] + n, parts, lens)
            return _joined(parts, lens)
        i = 0
        while i < n:
            j = i + 1
            while j < n and offsets[j] == offsets[j - 1] + 1:
                j += 1
            self._lay(offsets[i], offsets[j - 1] + 1, parts, lens)
            i = j
        return _joined(parts, lens)

    def _lay(self, lo: int, hi: int, parts: list[bytes], lens: list[int]) -> None:
        at, sealed_hi = lo, min(hi, self.raw_start)
        while at < sealed_hi:
            sealed = self._sealed.get(at // BLOCK)
            if sealed is None:
                raise KeyError(f"no event stored at offset {at}")
            start, block_lens, raw = _open(sealed)
            first, upto = at - start, min(len(block_lens), sealed_hi - start)
            if not 0 <= first < upto:
                raise KeyError(f"no event stored at offset {at}")
            a = _HEAD.size + 4 * len(block_lens) + sum(block_lens[:first])
            taken = block_lens[first:upto]
            parts.append(raw[a:a + sum(taken)])
            lens += taken
            at = start + upto
        if hi > self.raw_start:
            raw_events = self._raw[max(0, lo - self.raw_start):hi - self.raw_start]
            parts += raw_events
            lens += map(len, raw_events)

    # ------------------------------------------------------------------ snapshot

    def dump(self) -> tuple[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(raw_start, end, the ``bytes`` events as their resting block (:meth:`rest`; empty without
        them), the sealed blocks joined, their sizes, their keys): the blocks as they are, ordered by
        offset."""
        self._hold()
        resting = self._resting
        if resting is None:
            resting = _seal(self.raw_start, self._raw) if self._raw else b""
        keys = sorted(self._sealed)
        blocks = [self._sealed[k] for k in keys]
        return (self.raw_start, self.end, np.frombuffer(resting, np.uint8),
                np.frombuffer(b"".join(blocks), np.uint8),
                np.fromiter(map(len, blocks), np.int64, len(blocks)), np.array(keys, np.int64))

    @classmethod
    def load(cls, raw_start: int, end: int, resting: np.ndarray, blocks: np.ndarray, block_sizes: np.ndarray,
             block_keys: np.ndarray, block: int = BLOCK) -> EventBlocks:
        """The store :meth:`dump` described, resting (the arrays may be views of a snapshot: nothing refers
        to them afterwards), written with blocks of ``block`` offsets (resealed if that is not ``BLOCK``). A
        corrupt block raises ValueError when it is read."""
        if end < raw_start or (end > raw_start) != (resting.size > 0):
            raise ValueError("corrupt event blocks: the newest events do not match their offsets")
        store = cls(raw_start)
        if end > raw_start:
            store._resting, store._resting_end = resting.tobytes(), end
        store._take_blocks(blocks, block_sizes, block_keys, block)
        return store

    @classmethod
    def load_joined(cls, raw_start: int, raw: np.ndarray, raw_lens: np.ndarray, blocks: np.ndarray,
                    block_sizes: np.ndarray, block_keys: np.ndarray, block: int = BLOCK) -> EventBlocks:
        """As :meth:`load`, from the layout before the resting block (cbad snapshots of versions 6 to 8):
        the ``bytes`` events joined and their lengths."""
        store = cls(raw_start)
        store._raw = _split(raw, raw_lens)
        store._take_blocks(blocks, block_sizes, block_keys, block)
        return store

    def _take_blocks(self, blocks: np.ndarray, block_sizes: np.ndarray, block_keys: np.ndarray,
                     block: int) -> None:
        data = blocks.tobytes()
        bounds = np.cumsum(block_sizes).tolist()
        if (bounds[-1] if bounds else 0) != len(data) or len(block_keys) != len(bounds):
            raise ValueError("corrupt event blocks: sizes do not add up")
        sealed = dict(zip(block_keys.tolist(), (data[a:b] for a, b in itertools.pairwise([0, *bounds])),
                          strict=True))
        if block == BLOCK:
            self._sealed = sealed
            return
        offsets: list[int] = []
        events: list[bytes] = []
        for key in sorted(sealed):
            start, raw, event_bounds = _unseal(sealed[key])
            offsets += range(start, start + len(event_bounds) - 1)
            events += [raw[a:b] for a, b in itertools.pairwise(event_bounds)]
        self.add_sealed(offsets, events)


def _joined(parts: list[bytes], lens: list[int]) -> Events:
    sizes = np.fromiter(lens, np.int64, len(lens))
    ends = np.cumsum(sizes)
    return Events(np.frombuffer(b"".join(parts), np.uint8), ends - sizes, ends)


def _split(buf: np.ndarray, lens: np.ndarray) -> list[bytes]:
    raw = buf.tobytes()
    ends = np.cumsum(lens).tolist()
    return [raw[a:b] for a, b in itertools.pairwise([0, *ends])]
