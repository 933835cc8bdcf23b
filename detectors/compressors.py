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

import zlib
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


class ContextModel:
    """The default model: incremental hashed order-1..3 counts (see ``detectors._kernels.cm``); the hop
    kernel updates and reads its counts directly (:attr:`counts`).

    >>> model = ContextModel(seed=1)
    >>> model.rebuild([b"GET /a 200"] * 50)
    >>> normal, novel = model.score([b"GET /a 200", b"PANIC kernel oops"])
    >>> bool(novel > 10 * normal)
    True
    """

    name = "cm"
    _LOG_TABLES = cm.log_tables()

    def __init__(self, seed: int = 42, table_bits: int = DEFAULT_TABLE_BITS) -> None:
        if not 10 <= table_bits <= 26:
            raise ValueError("table_bits must be in [10, 26]")
        self.table = np.zeros(1 << table_bits, dtype=cm.COUNT_DTYPE)
        self._counts = cm.CountModel(self.table, *self._LOG_TABLES,
                                     np.uint64((seed * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFF),
                                     np.uint64((1 << table_bits) - 1))

    @property
    def counts(self) -> cm.CountModel:
        return self._counts

    def rebuild(self, baseline: Sequence[bytes]) -> None:
        self.table[:] = 0
        if baseline:
            buf, starts, ends = layout(list(baseline))
            cm.count_events(self._counts, buf, starts, ends, True)

    def load_table(self, table: np.ndarray) -> None:
        """Take ``table`` (a snapshot's copy of :attr:`table`) as the counts: no recount of the baseline."""
        if table.shape != self.table.shape:
            raise ValueError(f"a count table of {table.size} slots does not fit a model of {self.table.size}")
        self.table[:] = table

    def score(self, events: Sequence[bytes]) -> np.ndarray:
        out = np.zeros(len(events))
        if events:
            buf, starts, ends = layout(list(events))
            cm.score_events(self._counts, buf, starts, ends, 0, len(events), out)
        return out

    def leave_one_out(self, events: Events, i0: int, i1: int, out: np.ndarray) -> None:
        """Code lengths of ``events`` ``i0..i1`` (part of the baseline) given the baseline without them."""
        cm.leave_one_out_bits(self._counts, events.buf, events.starts, events.ends, i0, i1, out)

    def event_byte_bits(self, event: bytes) -> np.ndarray:
        out = np.zeros(len(event), dtype=np.float64)
        cm.byte_bits(self._counts, np.frombuffer(event, dtype=np.uint8), 0, len(event), out)
        return out

    def piece_bits(self, piece: bytes) -> float:
        return float(self.event_byte_bits(piece).sum())

    def _adaptive(self, table: np.ndarray, block: bytes) -> float:
        buf, starts, ends = layout(_split_lines(block))
        fresh = self._counts._replace(table=table, mask=np.uint64(table.size - 1))
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
