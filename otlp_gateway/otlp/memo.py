"""The fragment memo of the canonical-event assembly: bounded between requests, never too small for one.

Rendering a fragment (masking a value with the canonical rules) is the expensive, Python part of
extraction, and fragments repeat across requests, so they are memoized in numba tables
(``_kernels.fragments.Memo``). When the tables fill up, entries left from earlier requests are dropped
first; if the current request alone needs more, the tables grow (rehashed, nothing lost) so that every
request finishes in a bounded number of rounds whatever its cardinality, and shrink back to the default
size when the next request begins.
"""

from __future__ import annotations

import numpy as np

from otlp_gateway.otlp._kernels import fragments as frag

FRAGMENT_SLOTS = 1 << 18
"""Fragment table slots; it is full at half (131072 fragments)."""
KEY_SLOTS = 1 << 16
ARENA_BYTES = 1 << 23


def _tables(slots: int, key_slots: int, arena_bytes: int) -> frag.Memo:
    """A fragment slot's hash, offset and length are one row of one array (the three columns are views):
    a lookup of a memo much larger than the caches costs one miss, not three."""
    rows = np.zeros((slots, 3), dtype=np.int64)
    return frag.Memo(rows[:, 0].view(np.uint64), rows[:, 1], rows[:, 2],
                     np.zeros(arena_bytes, dtype=np.uint8), np.zeros(key_slots, dtype=np.uint64),
                     np.zeros(key_slots, dtype=np.int8), np.zeros(frag.META, dtype=np.int64))


class FragmentMemo:
    """Memoized heads, attribute fragments and identifier-key flags, by 64-bit hash. Not thread-safe."""

    def __init__(self, slots: int = FRAGMENT_SLOTS, key_slots: int = KEY_SLOTS,
                 arena_bytes: int = ARENA_BYTES):
        for size in (slots, key_slots):
            if size < 8 or size & (size - 1):
                raise ValueError("memo slots must be a power of two >= 8")
        self._default = (slots, key_slots, arena_bytes)
        self.tables = _tables(slots, key_slots, arena_bytes)
        self._stale = False
        self.clears = 0
        self.grows = 0

    @property
    def fragments(self) -> int:
        return int(self.tables.meta[frag.M_FRAGMENTS])

    def begin_request(self) -> None:
        """Back to the default size after a request that needed more; what is stored now is 'older'."""
        t = self.tables
        if (t.fragment_hashes.size, t.key_hashes.size, t.arena.size) != self._default:
            self.tables = _tables(*self._default)
        meta = self.tables.meta
        self._stale = bool(meta[frag.M_FRAGMENTS] or meta[frag.M_KEYS])

    def add_fragments(self, hashes: list[int], fragments: list[bytes]) -> None:
        blob = b"".join(fragments)
        lens = np.fromiter(map(len, fragments), dtype=np.int64, count=len(fragments))
        offs = np.cumsum(lens) - lens
        h = np.array(hashes, dtype=np.int64).view(np.uint64)
        data = np.frombuffer(blob, dtype=np.uint8) if blob else np.zeros(1, dtype=np.uint8)
        while not frag.insert_fragments(self.tables, h, data, offs, lens):
            self._make_room(len(fragments), len(blob), 0)

    def add_keys(self, hashes: list[int], identifier: list[bool]) -> None:
        h = np.array(hashes, dtype=np.int64).view(np.uint64)
        flags = np.array([1 if i else 2 for i in identifier], dtype=np.int8)
        while not frag.insert_keys(self.tables, h, flags):
            self._make_room(0, 0, len(hashes))

    def make_room(self, fragments: int, nbytes: int, keys: int, arena_full: bool = False) -> None:
        """Room for ``fragments`` more fragments of ``nbytes`` bytes in all and ``keys`` more keys: what
        earlier requests left is dropped first, else the tables grow (the arena at least doubles when
        ``arena_full``: the assembly kernel knows only the size of the fragment that did not fit)."""
        if arena_full and not self._stale:
            nbytes = max(nbytes, self.tables.arena.size)
        self._make_room(fragments, nbytes, keys)

    def _make_room(self, fragments: int, nbytes: int, keys: int) -> None:
        t = self.tables
        if self._stale:  # drop what earlier requests left first
            t.fragment_hashes[:] = 0
            t.key_hashes[:] = 0
            t.meta[:] = 0
            self._stale = False
            self.clears += 1
            return
        used = t.meta
        slots, key_slots, arena = t.fragment_hashes.size, t.key_hashes.size, t.arena.size
        while 2 * (used[frag.M_FRAGMENTS] + fragments) > slots:
            slots *= 2
        while 2 * (used[frag.M_KEYS] + keys) > key_slots:
            key_slots *= 2
        while used[frag.M_ARENA_USED] + nbytes > arena:
            arena *= 2
        grown = _tables(slots, key_slots, arena)
        frag.rehash(t, grown)
        self.tables = grown
        self.grows += 1
