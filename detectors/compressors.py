"""Code-length models for the CBAD detector: the default numba context model and two real-codec oracles.

Every model keeps a *baseline* of events and answers the code length in bits of an event given that
baseline, plus the sizes the compatibility figures need (``block_bits``: C(X) alone; ``joint_bits``: C(R)
and C(R‖W)). Events are always coded with a trailing ``\\n``.

- ``"cm"`` (:class:`ContextModel`, default): hashed order-1..3 counts of the baseline, updated
  incrementally by the hop kernel (events entering are added, events leaving are subtracted), so scoring
  a window costs O(window bytes) whatever the baseline size. No bytes are emitted.
- ``"zlib"`` (:class:`ZlibOracle`): the baseline is primed into a ``compressobj`` whenever it changes and
  each event is charged ``C(B‖x) − C(B)`` through ``copy()``. Deflate sees only the last 32 KiB of B.
- ``"zstd"`` (:class:`ZstdOracle`): the baseline is a raw-content dictionary; ``C(x|B)`` is the
  dictionary-compressed size minus the frame overhead. Needs the optional ``zstandard`` package.
The oracles rebuild their priming whenever the baseline changes, so they cost O(B) per hop: they are
for validation and comparison, not for production throughput.
"""

from __future__ import annotations

import threading
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from detectors._kernels import cm
from detectors._kernels.layout import Events, layout

COMPRESSORS = ("cm", "zlib", "zstd")
DEFAULT_TABLE_BITS = 14  # 2**14 uint16 slots = 32 KiB per stream (HDFS F1 0.980 here, 0.895 at 13)
_SELF_TABLE_BITS = 16
_SEP = b"\n"


class CodeLengthModel(Protocol):
    """What the cbad detector asks of a model: code lengths given a baseline, and block sizes."""

    name: str

    @property
    def counts(self) -> cm.CountModel | None:
        """The count arrays when the model scores inside the hop kernel; None when it scores in Python."""
        ...

    def rebuild(self, baseline: Sequence[bytes]) -> None:
        """Make ``baseline`` the model's baseline."""
        ...

    def close(self) -> None:
        """Done with the model until the next call: it may hold its state more compactly meanwhile."""
        ...

    def score(self, events: Sequence[bytes]) -> np.ndarray:
        """Code length in bits of each event (with its separator) given the baseline."""
        ...

    def event_byte_bits(self, event: bytes) -> np.ndarray | None:
        """Per-byte code lengths of one event, when the model has them (else None: use ``piece_bits``)."""
        ...

    def piece_bits(self, piece: bytes) -> float: ...

    def block_bits(self, block: bytes) -> float:
        """C(X): the block coded alone, from an empty model."""
        ...

    def joint_bits(self, first: bytes, second: bytes) -> tuple[float, float]:
        """(C(first), C(first‖second)), from an empty model."""
        ...


def _split_lines(block: bytes) -> list[bytes]:
    if not block:
        return []
    return block.split(_SEP)[:-1] if block.endswith(_SEP) else block.split(_SEP)


class _DenseTables:
    """The dense count tables of the models used last: lent to a model while it is in use and left with it
    after :meth:`ContextModel.close`, for at most ``keep`` models (whatever their thread); a model needing a
    table beyond that compacts the least recently used one not in use and takes its table. A stream fed
    often keeps its dense table (no compaction per call), the others are held compact."""

    def __init__(self, keep: int) -> None:
        self.keep = keep
        self.lock = threading.Lock()
        self.dense: OrderedDict[int, weakref.ref[ContextModel]] = OrderedDict()  # least recently used first
        self._staging: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def staging(self, size: int, slot_dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
        """Room for the nonzero slots and counts of a table compacted (under ``lock``): compact only when they
        take fewer bytes than the dense table (fewer than half its slots with uint16 slot numbers, a third
        with uint32)."""
        key = (size, slot_dtype.itemsize)
        room = self._staging.get(key)
        if room is None:
            most = 2 * size // (slot_dtype.itemsize + 2)
            room = self._staging[key] = (np.empty(most, slot_dtype), np.empty(most, cm.COUNT_DTYPE))
        return room

    def touch(self, model: ContextModel) -> None:
        """``model`` holds a dense table and was just used (under ``lock``)."""
        key = id(model)
        if self.dense.get(key) is not model._ref:
            self.dense[key] = model._ref
        self.dense.move_to_end(key)

    def lend(self, size: int) -> np.ndarray:
        """A zeroed table of ``size`` slots (under ``lock``)."""
        while len(self.dense) >= self.keep:
            victim = None
            for key, ref in self.dense.items():
                model = ref()
                if model is None or not model._in_use:
                    victim = key, model
                    break
            if victim is None:
                break  # every one in use
            del self.dense[victim[0]]
            table = victim[1]._compact() if victim[1] is not None else None
            if table is not None and table.size == size:
                return table
        return np.zeros(size, dtype=cm.COUNT_DTYPE)

    def release_idle(self) -> None:
        """Compact every model not in use (what a stream fed less often than ``keep`` others holds)."""
        with self.lock:
            keep, self.keep = self.keep, 0
            try:
                self.lend(0)
            finally:
                self.keep = keep


DENSE_TABLES_KEPT = 64
"""Models that keep their dense count table between calls (the most recently used; 2 MiB at 2**14 slots)."""
_TABLES = _DenseTables(DENSE_TABLES_KEPT)
_NO_SLOTS: dict[int, np.ndarray] = {2: np.zeros(0, np.uint16), 4: np.zeros(0, np.uint32)}


def release_idle_tables() -> None:
    """Compact the count tables of every ContextModel not in use now (memory measurements, tests)."""
    _TABLES.release_idle()


class ContextModel:
    """The default model: incremental hashed order-1..3 counts (see ``detectors._kernels.cm``); the hop
    kernel updates and reads its counts directly (:attr:`counts`).

    Between uses (:meth:`close`) the counts of all but the ``DENSE_TABLES_KEPT`` models used last are kept
    compact, as their nonzero slots and counts (a span stream's 2**14-slot table has ~1,200-2,000 nonzero
    slots: ~5-8 instead of 32 KiB), when that is smaller than the table; :attr:`counts` lays them out again
    in a dense table. The counts are the same either way: only where they are held changes.

    >>> model = ContextModel(seed=1)
    >>> model.rebuild([b"GET /a 200"] * 50)
    >>> normal, novel = model.score([b"GET /a 200", b"PANIC kernel oops"])
    >>> bool(novel > 10 * normal)
    True
    >>> model.close(); release_idle_tables(); model.compact
    True
    """

    name = "cm"
    _LOG_TABLES = cm.log_tables()

    def __init__(self, seed: int = 42, table_bits: int = DEFAULT_TABLE_BITS) -> None:
        if not 10 <= table_bits <= 26:
            raise ValueError("table_bits must be in [10, 26]")
        self._size = 1 << table_bits
        self._salt = np.uint64((seed * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFF)
        self._slot_dtype = np.dtype(np.uint16 if self._size <= 1 << 16 else np.uint32)
        # compact (``_counts`` None): the nonzero slots, ascending, and their counts
        self._slots = _NO_SLOTS[self._slot_dtype.itemsize]
        self._slot_counts = _NO_SLOTS[2]
        self._counts: cm.CountModel | None = None  # the dense table, while lent (see _DenseTables)
        self._in_use = False  # between counts and close: never compacted meanwhile
        self._ref = weakref.ref(self)

    @property
    def counts(self) -> cm.CountModel:
        """The counts in a dense table (laid out from the compact form if needed; :meth:`close` after use)."""
        counts = self._counts
        if counts is not None and self._in_use:
            return counts
        with _TABLES.lock:
            self._in_use = True
            if self._counts is None:
                table = _TABLES.lend(self._size)
                cm.put_slots(table, self._slots, self._slot_counts)
                self._slots, self._slot_counts = _NO_SLOTS[self._slot_dtype.itemsize], _NO_SLOTS[2]
                self._counts = cm.CountModel(table, *self._LOG_TABLES, self._salt, np.uint64(self._size - 1))
            _TABLES.touch(self)
            return self._counts

    @property
    def compact(self) -> bool:
        """True while the counts are held as their nonzero slots."""
        return self._counts is None

    def close(self) -> None:
        """Done with the counts for now: the dense table stays with the model until a model used later needs
        it (:class:`_DenseTables`), then the counts are held compact."""
        if self._in_use:
            with _TABLES.lock:
                self._in_use = False

    def _compact(self) -> np.ndarray | None:
        """Hold the counts as their nonzero slots when that is smaller than the dense table; returns the
        table, zeroed (None if the counts stay dense). Under the tables' lock, the model not in use."""
        if self._counts is None:
            return None
        table = self._counts.table
        slots, counts = _TABLES.staging(self._size, self._slot_dtype)
        n = int(cm.take_nonzero(table, slots, counts))
        if n < 0:
            return None  # no smaller than the dense table: stays dense
        self._slots, self._slot_counts = slots[:n].copy(), counts[:n].copy()
        self._counts = None
        return table

    @property
    def table(self) -> np.ndarray:
        """The counts as a dense table of ``2**table_bits`` slots (a copy)."""
        with _TABLES.lock:
            if self._counts is not None:
                return self._counts.table.copy()
            table = np.zeros(self._size, dtype=cm.COUNT_DTYPE)
            cm.put_slots(table, self._slots, self._slot_counts)
            return table

    def nonzero(self) -> tuple[np.ndarray, np.ndarray]:
        """The nonzero slots (ascending; uint16 up to 2**16 slots, else uint32) and their counts."""
        with _TABLES.lock:
            if self._counts is None:
                return self._slots, self._slot_counts
            table: np.ndarray = self._counts.table
            slots = np.flatnonzero(table)
            return slots.astype(self._slot_dtype), table[slots]

    def rebuild(self, baseline: Sequence[bytes]) -> None:
        counts = self.counts
        counts.table[:] = 0
        if baseline:
            buf, starts, ends = layout(list(baseline))
            cm.count_events(counts, buf, starts, ends, True)

    def load_table(self, table: np.ndarray) -> None:
        """Take ``table`` (a dense copy of :attr:`table`) as the counts: no recount of the baseline."""
        if table.shape != (self._size,):
            raise ValueError(f"a count table of {table.size} slots does not fit a model of {self._size}")
        self.counts.table[:] = table

    def load_nonzero(self, slots: np.ndarray, counts: np.ndarray) -> None:
        """Take the nonzero slots and counts of :meth:`nonzero` as the counts."""
        if slots.shape != counts.shape or slots.ndim != 1:
            raise ValueError("the count table's slots and counts differ in shape")
        if slots.size and (int(slots.min()) < 0 or int(slots.max()) >= self._size):
            raise ValueError(f"a count table slot outside a model of {self._size} slots")
        table = self.counts.table
        table[:] = 0
        table[slots.astype(np.int64)] = counts

    def score(self, events: Sequence[bytes]) -> np.ndarray:
        out = np.zeros(len(events))
        if events:
            buf, starts, ends = layout(list(events))
            cm.score_events(self.counts, buf, starts, ends, 0, len(events), out)
        return out

    def leave_one_out(self, events: Events, i0: int, i1: int, out: np.ndarray) -> None:
        """Code lengths of ``events`` ``i0..i1`` (part of the baseline) given the baseline without them."""
        cm.leave_one_out_bits(self.counts, events.buf, events.starts, events.ends, i0, i1, out)

    def event_byte_bits(self, event: bytes) -> np.ndarray:
        out = np.zeros(len(event), dtype=np.float64)
        cm.byte_bits(self.counts, np.frombuffer(event, dtype=np.uint8), 0, len(event), out)
        return out

    def piece_bits(self, piece: bytes) -> float:
        return float(self.event_byte_bits(piece).sum())

    def _adaptive(self, table: np.ndarray, block: bytes) -> float:
        buf, starts, ends = layout(_split_lines(block))
        fresh = cm.CountModel(table, *self._LOG_TABLES, self._salt, np.uint64(table.size - 1))
        return float(cm.adaptive_bits(fresh, buf, starts, ends, 0, starts.size))

    def block_bits(self, block: bytes) -> float:
        return self._adaptive(np.zeros(1 << _SELF_TABLE_BITS, dtype=cm.COUNT_DTYPE), block)

    def joint_bits(self, first: bytes, second: bytes) -> tuple[float, float]:
        table = np.zeros(1 << _SELF_TABLE_BITS, dtype=cm.COUNT_DTYPE)
        c_first = self._adaptive(table, first)
        return c_first, c_first + self._adaptive(table, second)


class _OracleBase:
    """A real codec primed with the baseline (re-primed whenever the baseline changes): O(B) per hop."""

    name = "oracle"

    @property
    def counts(self) -> None:
        return None

    def _prime(self, baseline: bytes) -> None:
        raise NotImplementedError

    def piece_bits(self, piece: bytes) -> float:
        raise NotImplementedError

    def rebuild(self, baseline: Sequence[bytes]) -> None:
        self._prime(b"".join(e + _SEP for e in baseline))

    def score(self, events: Sequence[bytes]) -> np.ndarray:
        return np.array([self.piece_bits(e + _SEP) for e in events], dtype=np.float64)

    def event_byte_bits(self, event: bytes) -> None:
        return None

    def close(self) -> None:
        pass


class ZlibOracle(_OracleBase):
    """zlib primed with the baseline; ``C(x|B) = C(B‖x) − C(B)`` via ``compressobj().copy()``."""

    name = "zlib"

    def __init__(self, level: int = 6) -> None:
        self._level = level
        self._prime(b"")

    def _prime(self, baseline: bytes) -> None:
        self._co = zlib.compressobj(self._level)
        self._pre = len(self._co.compress(baseline))
        self._base_bytes = self._pre + len(self._co.copy().flush())

    def piece_bits(self, piece: bytes) -> float:
        c = self._co.copy()
        return 8.0 * (self._pre + len(c.compress(piece)) + len(c.flush()) - self._base_bytes)

    def block_bits(self, block: bytes) -> float:
        return 8.0 * len(zlib.compress(block, self._level))

    def joint_bits(self, first: bytes, second: bytes) -> tuple[float, float]:
        return self.block_bits(first), self.block_bits(first + second)


class ZstdOracle(_OracleBase):
    """zstd with the baseline as a raw-content dictionary; ``C(x|B)`` minus the empty-frame overhead."""

    name = "zstd"

    def __init__(self, level: int = 3) -> None:
        import zstandard  # optional dependency, imported only when this oracle is chosen

        self._zstd = zstandard
        self._level = level
        self._plain = zstandard.ZstdCompressor(level=level, write_checksum=False, write_content_size=False)
        self._prime(b"")

    def _prime(self, baseline: bytes) -> None:
        z = self._zstd
        kwargs = {"level": self._level, "write_checksum": False, "write_content_size": False,
                  "write_dict_id": False}
        if baseline:
            dictionary = z.ZstdCompressionDict(baseline, dict_type=z.DICT_TYPE_RAWCONTENT)
            self._cctx = z.ZstdCompressor(dict_data=dictionary, **kwargs)
        else:
            self._cctx = z.ZstdCompressor(**kwargs)
        self._overhead = len(self._cctx.compress(b""))

    def piece_bits(self, piece: bytes) -> float:
        return 8.0 * (len(self._cctx.compress(piece)) - self._overhead)

    def block_bits(self, block: bytes) -> float:
        return 8.0 * len(self._plain.compress(block))

    def joint_bits(self, first: bytes, second: bytes) -> tuple[float, float]:
        return self.block_bits(first), self.block_bits(first + second)


def make_model(name: str, seed: int, table_bits: int = DEFAULT_TABLE_BITS) -> CodeLengthModel:
    """The code-length model called ``name`` (one of ``COMPRESSORS``)."""
    if name == "cm":
        return ContextModel(seed=seed, table_bits=table_bits)
    if name == "zlib":
        return ZlibOracle()
    if name == "zstd":
        return ZstdOracle()
    raise ValueError(f"unknown compressor {name!r}; choose one of {', '.join(COMPRESSORS)}")
