"""Code-length models for the CBAD detector: the default numba context model and two real-codec oracles.

Every model keeps a *baseline* of events and answers, per hop, the code length in bits of each window
event given that baseline (``hop``), plus the sizes the compatibility figures need (``block_bits``:
C(X) alone; ``joint_bits``: C(R) and C(R‖W)). Events are always coded with a trailing ``\\n``.

- ``"cm"`` (:class:`ContextModel`, default): hashed order-0..3 counts of the baseline, updated
  incrementally (events entering are added, events leaving are subtracted), so scoring a window costs
  O(window bytes) whatever the baseline size. Code lengths come from the counts; no bytes are emitted.
- ``"zlib"`` (:class:`ZlibOracle`): the baseline is primed once per hop into a ``compressobj`` and each
  window or event is charged ``C(B‖x) − C(B)`` through ``copy()``. Deflate sees only the last 32 KiB of B.
- ``"zstd"`` (:class:`ZstdOracle`): the baseline is a raw-content dictionary; ``C(x|B)`` is the
  dictionary-compressed size minus the frame overhead. Needs the optional ``zstandard`` package.
The oracles rebuild their priming whenever the baseline changes, so they cost O(B) per hop: they are
for validation and comparison, not for production throughput.
"""

from __future__ import annotations

import zlib
from collections import deque
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from detectors._kernels import cm

COMPRESSORS = ("cm", "zlib", "zstd")
DEFAULT_TABLE_BITS = 17
_SELF_TABLE_BITS = 16
_SEP = b"\n"


class CodeLengthModel(Protocol):
    name: str

    def hop(self, added: list[bytes], removed: list[bytes], buf: np.ndarray, starts: np.ndarray,
            ends: np.ndarray, s0: int, s1: int, w0: int, top_m: int, bits: np.ndarray, hist: np.ndarray,
            hist_ranges: tuple[int, int, int, int], expected_bpb: float, excess: np.ndarray,
            history: np.ndarray, n_history: int, out: np.ndarray) -> None:
        """``added`` events enter the baseline and the ``removed`` (oldest) ones leave it; the code length
        of each new event ``s0..s1`` of ``buf`` given the baseline goes to ``bits``; the window byte
        histogram ``hist`` drops events ``hist_ranges[0]..[1]`` and gains ``[2]..[3]``; ``excess`` and
        ``out`` receive the window ``w0..s1`` summary (see ``detectors._kernels.cm.hop``)."""
        ...

    def rebuild(self, baseline: Sequence[bytes]) -> None: ...

    def event_byte_bits(self, event: bytes) -> np.ndarray | None: ...

    def piece_bits(self, piece: bytes) -> float: ...

    def block_bits(self, block: bytes) -> float: ...

    def joint_bits(self, first: bytes, second: bytes) -> tuple[float, float]: ...


def _offsets(events: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lens = np.fromiter(map(len, events), dtype=np.int64, count=len(events))
    ends = np.cumsum(lens)
    return np.frombuffer(b"".join(events), dtype=np.uint8), ends - lens, ends


_NO_BYTES = np.frombuffer(b"", dtype=np.uint8)
_NO_LENS = np.zeros(0, dtype=np.int64)


def _split_lines(block: bytes) -> list[bytes]:
    if not block:
        return []
    return block.split(_SEP)[:-1] if block.endswith(_SEP) else block.split(_SEP)


class ContextModel:
    """The default model: incremental hashed order-0..3 counts (see ``detectors._kernels.cm``).

    >>> model = ContextModel(seed=1)
    >>> model.rebuild([b"GET /a 200"] * 50)
    >>> bits = np.zeros(2)
    >>> buf, starts, ends = _offsets([b"GET /a 200", b"PANIC kernel oops"])
    >>> hist, excess, history, out = np.zeros(256, np.int64), np.zeros(2), np.zeros((2, 1)), np.zeros(7)
    >>> ranges = (0, 0, 0, 2)
    >>> model.hop([], [], buf, starts, ends, 0, 2, 0, 1, bits, hist, ranges, 1.0, excess, history, 0, out)
    >>> bool(bits[1] > 10 * bits[0])
    True
    """

    name = "cm"
    _LOG_TABLES = cm.log_tables()

    def __init__(self, seed: int = 42, table_bits: int = DEFAULT_TABLE_BITS) -> None:
        if not 10 <= table_bits <= 26:
            raise ValueError("table_bits must be in [10, 26]")
        self.table = np.zeros(1 << table_bits, dtype=np.uint32)
        self._mask = np.uint64((1 << table_bits) - 1)
        self._salt = np.uint64((seed * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFF)
        self._lt, self._ls = self._LOG_TABLES

    def hop(self, added: list[bytes], removed: list[bytes], buf: np.ndarray, starts: np.ndarray,
            ends: np.ndarray, s0: int, s1: int, w0: int, top_m: int, bits: np.ndarray, hist: np.ndarray,
            hist_ranges: tuple[int, int, int, int], expected_bpb: float, excess: np.ndarray,
            history: np.ndarray, n_history: int, out: np.ndarray) -> None:
        changed = added + removed
        chg_buf = np.frombuffer(b"".join(changed), dtype=np.uint8)
        chg_lens = np.fromiter(map(len, changed), dtype=np.int64, count=len(changed))
        cm.hop(self.table, self._lt, self._ls, self._salt, self._mask, chg_buf, chg_lens, len(added), buf,
               starts, ends, s0, s1, w0, top_m, bits, hist, *hist_ranges, expected_bpb, excess, history,
               n_history, out)

    def rebuild(self, baseline: Sequence[bytes]) -> None:
        self.table[:] = 0
        if baseline:
            buf, starts, ends = _offsets(baseline)
            cm.count_events(self.table, self._salt, self._mask, buf, starts, ends, True)

    def event_byte_bits(self, event: bytes) -> np.ndarray:
        out = np.zeros(len(event), dtype=np.float64)
        cm.byte_bits(self.table, self._lt, self._ls, self._salt, self._mask,
                     np.frombuffer(event, dtype=np.uint8), 0, len(event), out)
        return out

    def piece_bits(self, piece: bytes) -> float:
        return float(self.event_byte_bits(piece).sum())

    def _adaptive(self, table: np.ndarray, block: bytes) -> float:
        buf, starts, ends = _offsets(_split_lines(block))
        return float(cm.adaptive_bits(table, self._lt, self._ls, self._salt, np.uint64(table.size - 1),
                                      buf, starts, ends, 0, starts.size))

    def block_bits(self, block: bytes) -> float:
        return self._adaptive(np.zeros(1 << _SELF_TABLE_BITS, dtype=np.uint32), block)

    def joint_bits(self, first: bytes, second: bytes) -> tuple[float, float]:
        table = np.zeros(1 << _SELF_TABLE_BITS, dtype=np.uint32)
        c_first = self._adaptive(table, first)
        return c_first, c_first + self._adaptive(table, second)


class _OracleBase:
    """Shared baseline bookkeeping for the real-codec oracles (rebuilt lazily when the baseline moved)."""

    name = "oracle"

    def __init__(self) -> None:
        self._no_table = np.zeros(1, dtype=np.uint32)
        self._baseline: deque[bytes] = deque()
        self._dirty = True

    def _prime(self, baseline: bytes) -> None:
        raise NotImplementedError

    def piece_bits(self, piece: bytes) -> float:
        raise NotImplementedError

    def hop(self, added: list[bytes], removed: list[bytes], buf: np.ndarray, starts: np.ndarray,
            ends: np.ndarray, s0: int, s1: int, w0: int, top_m: int, bits: np.ndarray, hist: np.ndarray,
            hist_ranges: tuple[int, int, int, int], expected_bpb: float, excess: np.ndarray,
            history: np.ndarray, n_history: int, out: np.ndarray) -> None:
        self._baseline.extend(added)
        for _ in removed:
            self._baseline.popleft()
        if added or removed or self._dirty:
            self._prime(b"".join(e + _SEP for e in self._baseline))
            self._dirty = False
        raw = buf.tobytes()
        for i in range(s0, s1):
            bits[i] = self.piece_bits(raw[starts[i]:ends[i]] + _SEP)
        # The window summary is the same arithmetic as the default model's: reuse its kernel, with no
        # baseline change and no event to score.
        cm.hop(self._no_table, *ContextModel._LOG_TABLES, np.uint64(0), np.uint64(0), _NO_BYTES, _NO_LENS, 0,
               buf, starts, ends, s1, s1, w0, top_m, bits, hist, *hist_ranges, expected_bpb, excess, history,
               n_history, out)

    def rebuild(self, baseline: Sequence[bytes]) -> None:
        self._baseline = deque(baseline)
        self._dirty = True
        self._prime(b"".join(e + _SEP for e in self._baseline))
        self._dirty = False

    def event_byte_bits(self, event: bytes) -> None:
        return None


class ZlibOracle(_OracleBase):
    """zlib with the baseline primed once per hop; ``C(x|B) = C(B‖x) − C(B)`` via ``compressobj().copy()``."""

    name = "zlib"

    def __init__(self, level: int = 6) -> None:
        super().__init__()
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
        super().__init__()
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
