"""A per-field distribution test beside cbad's compression score: the shifts that cost few bits.

Compression sees a change by the bits it adds. A latency shift rewrites one duration token of a few bytes
inside a long canonical span (``d=D15`` becomes ``d=D17``), and a share change among known log templates
costs only the log-ratio of their frequencies: both move a window's bits per byte by less than its normal
spread, so no window is flagged. Their fields, though, are small typed vocabularies the canonical form
already writes down, where such a change is plain to see. This module tests them:

* field ``a``: a span's status (``UNSET``/``OK``/``ERROR``), a log's severity band;
* field ``b``: a span's log2 duration bucket (``d=D<b>``), a log's template (its masked body, hashed into
  ``TEMPLATE_CODES`` codes);
* field ``c``: the attribute values the canonical form kept verbatim (no placeholder: ids, addresses and
  paths are masked, so they never enter it), keys hashed into ``ATTRIBUTE_GROUPS`` groups, each group's
  ``key=value`` pairs into one of ``ATTRIBUTE_VALUES`` codes: a value replaced after a deploy costs one
  token to compression but is a never-seen code here.

Per stream a :class:`FieldShift` keeps the codes of the last ``reference`` normal events (a FIFO; frozen
while an incident is open, like cbad's baseline) and, per window (the last ``window`` events, ending where
cbad's window ends), the p-value of the kernels in :mod:`detectors._kernels.field_shift`: per cell, the
one-sided Fisher exact test that the window holds more of it than the reference's share (sparse reference
cells pooled per field and per attribute group), the smallest times the number of cells (Bonferroni). It
is exact under exchangeable events and conservative otherwise-equal: a small reference makes the
hypergeometric null wide by itself.

The detector combines it with its own window p-value by weighted Bonferroni (:func:`combine`): valid
whatever the dependence between the two (they read the same events, so Fisher's method, which assumes
independence, would be anti-conservative). Window, reference and pooling sizes follow from the profile
(:func:`for_profile`); why these figures: docs/detectors.md, "Field shift test".

Determinism: the codes are a pure function of each event's bytes, the reference moves only with window
ends, freezes, thaws and restarts, and :meth:`FieldShift.first_flag` lets the caller stop its hop kernel
at a window this test flags, so the result does not depend on how events were split into calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors._kernels import field_shift as K
from detectors.field_codes import Codes, attribute_codes, codes_of, event_codes

WINDOW_FACTOR = 4
"""The test's window is this many of cbad's windows: a share change of a few points needs a few hundred
events to stand out (the error share 1 % -> 10 %: 2 -> 20 lines in 200 events, vs 0.5 -> 5 in 50)."""
REFERENCE_FACTOR = 10
"""Reference events per test window: enough that its shares are known to a few per cent."""
MIN_WINDOW = 40
"""Below this many events per test window (cbad windows of under 10 events, e.g. one HDFS session per
window) the test is off: a share needs a sample."""
POOL_MIN = 5
"""A code seen fewer times in the reference joins the pooled cell of rare and never-seen codes."""
CBAD_WEIGHT = 0.8
"""Weighted Bonferroni: the combined p-value is ``min(p_cbad / 0.8, p_fields / 0.2)``. Compression stays the
primary test (it pays ln 1.25 = 0.22 nats per window); a field shift the test sees at all is far below its
0.2 share of the error rate (p of 1e-8 and smaller on the scenario faults)."""
SHARE_FACTOR = 4.0
MIN_RISE = 0.05
"""Only a cell whose window share is at least 4 times and 5 points above its reference share is tested:
a slow drift (a daily cycle moving latency by +-30 % while the reference lags the window by a few minutes)
shifts bucket shares by up to ~3x, the faults this test is for by 10x and more (latency x 5, ERROR lines
1 % -> 10 %, a new value 0 -> a few %)."""
MUTE_P = 0.01
"""A false positive mutes the codes whose rise in its last window has a cell p-value under this."""
TEMPLATE_CODES = K.TEMPLATE_CODES
A_CODES = K.A_CODES
"""0 is an event that reads as neither span nor log."""
_BUCKETS = K.BUCKETS
B_CODES = K.B_CODES
ATTRIBUTE_GROUPS = K.C_GROUPS
"""Field ``c``: attribute keys hash into this many groups; an event carries one code per group it has
attributes in (keys of one group are coded together, as one combined value)."""
ATTRIBUTE_VALUES = K.C_VALUES
"""Codes per attribute group: a new value collides with a known one of its group with chance (known values
of the group) / 255, and is then counted in that value's cell."""
_CODE = np.int16
_VALUE = np.uint8
_COUNT = np.int32  # the window's scratch counts
_REF_COUNT = np.uint16
"""The reference's counts: at most ``reference`` events carry a code (a wider type for a larger one)."""
_ROW = np.uint16
"""An event's row index (its distinct codes); a wider type once a stream holds more distinct rows."""
_MIN_ROWS = 32
_NOTHING_MUTED = np.zeros(K.CODES, np.bool_)
"""Shared by every test that mutes nothing (the usual case): never written; muting copies it first."""


def combine(p_cbad: float, p_fields: float) -> float:
    """The window's one p-value: weighted Bonferroni of cbad's and the field test's (see ``CBAD_WEIGHT``)."""
    return min(1.0, p_cbad / CBAD_WEIGHT, p_fields / (1.0 - CBAD_WEIGHT))


class FieldShift:
    """Per-stream state of the field test: the reference's codes and counts, and the codes of the events
    not yet in it (stream offsets ``[base, base + len)``). Codes are kept per distinct row (an event's
    ``a``, ``b`` and ``c`` codes; a stream repeats a few dozen to a few hundred of them), an event as its
    row's index.

    The caller (the detector) feeds events with :meth:`extend`, asks for each window's p-value in stream
    order with :meth:`window_p`, and tells it when the reference freezes (an incident opened), thaws (with or
    without the incident's events) or restarts (a new normal was adopted). ``attributes`` adds field ``c``
    (the attribute values; off: the test of fields ``a`` and ``b`` alone, as before it existed).
    """

    def __init__(self, window: int, reference: int, pool_min: int = POOL_MIN,
                 share_factor: float = SHARE_FACTOR, min_rise: float = MIN_RISE,
                 attributes: bool = True) -> None:
        if window < 1 or reference < window:
            raise ValueError("field shift needs 1 <= window <= reference")
        self.window = int(window)
        self.reference = int(reference)
        self.pool_min = int(pool_min)
        self.share_factor, self.min_rise = float(share_factor), float(min_rise)
        self.attributes = bool(attributes)
        self._groups = ATTRIBUTE_GROUPS if self.attributes else 0
        # the distinct code rows met (``_n_rows`` of them, found through ``_table``) and still referenced
        self._rows_ab = np.zeros((_MIN_ROWS, 2), _CODE)
        self._rows_c = np.zeros((_MIN_ROWS, self._groups), _VALUE)
        self._n_rows = 0
        self._rows_kept = 0  # rows after the last compaction
        self._table = np.full(2 * _MIN_ROWS, -1, np.int32)
        self._ring: np.ndarray = np.zeros(self.reference, _ROW)  # the reference (row indices), a FIFO
        # the reference's count per code: dense while an update uses it, between updates only the codes the
        # reference holds (a few dozen of the 6,270) and their counts
        self._dense: np.ndarray | None = None
        self._ref_codes = np.zeros(0, np.uint16)
        self._ref_counts = np.zeros(0, _REF_COUNT if self.reference <= np.iinfo(_REF_COUNT).max else _COUNT)
        self._state = np.zeros(K.STATE_SIZE, np.int64)
        self._ids: np.ndarray = np.zeros(0, _ROW)  # the held events' rows
        self._base = 0
        self._muted = _NOTHING_MUTED  # codes whose rise an operator called normal
        self._floor = 0  # windows start here at the earliest (after a false positive or a restart)
        self._due: int | None = None  # the last window end whose admission is still to be done
        self._generation = 0  # bumped by every freeze, thaw and restart: invalidates what first_flag saw
        self._seen: dict[int, float] = {}  # window end -> p-value found by first_flag in this generation
        self._seen_generation = -1

    @property
    def _ref(self) -> np.ndarray:
        """The reference's count per code (dense; made from the codes it holds when it is not)."""
        if self._dense is None:
            self._dense = np.zeros(K.CODES, self._ref_counts.dtype)
            self._dense[self._ref_codes] = self._ref_counts
        return self._dense

    def _rest(self) -> None:
        """Between updates: keep only the codes the reference holds and their counts."""
        if self._dense is not None:
            codes = np.flatnonzero(self._dense != 0)  # 4x faster than on the uint16 counts
            self._ref_codes, self._ref_counts = codes.astype(np.uint16), self._dense[codes]
            self._dense = None

    @property
    def reference_events(self) -> int:
        return int(self._state[K.LENGTH])

    def extend(self, events: Sequence[bytes]) -> None:
        """Codes of the next events of the stream (in order)."""
        if not events:
            return
        codes = codes_of(events)
        ab = np.array([(a, A_CODES + b) for a, b, _ in codes], dtype=_CODE).reshape(-1, 2)
        if self.attributes:
            c = np.frombuffer(bytearray().join(values for _, _, values in codes), _VALUE).reshape(
                -1, self._groups)  # writable, as load's: one compiled kernel
        else:
            c = np.zeros((len(codes), 0), _VALUE)
        self._ids = np.concatenate((self._ids, self._intern(ab, c)))

    def _intern(self, ab: np.ndarray, c: np.ndarray) -> np.ndarray:
        """The row indices of events with codes ``ab``, ``c`` (new rows added)."""
        ids = np.empty(ab.shape[0], self._ring.dtype)
        done = 0
        while True:
            done, self._n_rows = K.intern(ab, c, done, self._rows_ab, self._rows_c, self._n_rows, self._table,
                                          ids)
            if done == ab.shape[0]:
                return ids
            self._resize_rows(2 * self._rows_ab.shape[0])
            if ids.dtype != self._ring.dtype:  # widened
                ids = ids.astype(self._ring.dtype)

    def _resize_rows(self, capacity: int) -> None:
        """Room for ``capacity`` rows (the first ``_n_rows`` kept); row indices widen when they need to."""
        rows_ab = np.zeros((capacity, 2), _CODE)
        rows_c = np.zeros((capacity, self._groups), _VALUE)
        rows_ab[:self._n_rows] = self._rows_ab[:self._n_rows]
        rows_c[:self._n_rows] = self._rows_c[:self._n_rows]
        self._rows_ab, self._rows_c = rows_ab, rows_c
        self._table = np.full(2 * capacity, -1, np.int32)
        K.rehash(self._rows_ab, self._rows_c, self._n_rows, self._table)
        kind = _ROW if capacity - 1 <= np.iinfo(_ROW).max else np.uint32
        if self._ring.dtype != kind or self._ids.dtype != kind:
            self._ring, self._ids = self._ring.astype(kind), self._ids.astype(kind)

    def _compact(self) -> None:
        """Forget the rows no held or reference event has, once the rows doubled since the last time."""
        if self._n_rows < 2 * max(_MIN_ROWS, self._rows_kept):
            return
        head, length = int(self._state[K.HEAD]), int(self._state[K.LENGTH])
        ring = np.roll(self._ring, -head)[:length]
        used = np.unique(np.concatenate((ring, self._ids)))
        remap = np.zeros(self._n_rows, np.int64)
        remap[used] = np.arange(used.size)
        # slots past the ring's length hold any valid row; the indices narrow again if they can
        self._ring, self._ids = remap[self._ring], remap[self._ids]
        self._rows_ab, self._rows_c = self._rows_ab[used], self._rows_c[used]
        self._n_rows = self._rows_kept = used.size
        capacity = _MIN_ROWS
        while capacity < used.size:
            capacity *= 2
        self._resize_rows(capacity)

    # ------------------------------------------------------------------ windows

    def _scan(self, ends: np.ndarray, frozen: bool, alpha: float, ring: np.ndarray, ref: np.ndarray,
              state: np.ndarray) -> np.ndarray:
        out = np.empty(ends.size)
        done = K.scan(self._rows_ab, self._rows_c, self._ids, self._base, ends, self.window, self._floor,
                      frozen, ring, ref, state, self._muted, self.pool_min, self.share_factor,
                      self.min_rise, self.window, alpha, out, np.zeros(K.CODES, _COUNT))
        return out[:done]

    def _sync(self) -> None:
        """Admit what the windows handed out since the last call made due (admission is lazy: one kernel
        call per batch of windows rather than one per window; nothing else reads the reference between)."""
        if self._due is not None:
            upto = max(self._due - self.window, self._floor)
            if upto > self._state[K.ADMITTED]:
                K.admit(self._rows_ab, self._rows_c, self._ids, self._base, upto, self._ring, self._ref,
                        self._state)
            self._due = None

    def first_flag(self, ends: Sequence[int], frozen: bool, alpha: float) -> int | None:
        """Index of the first of the windows ending at ``ends`` (in order, none decided yet) whose p-value
        is at most ``alpha`` if no freeze, thaw or restart happens before it; nothing changes (a copy of the
        reference moves). The p-values found are kept for :meth:`window_p`."""
        self._sync()
        p = self._scan(np.asarray(ends, np.int64), frozen, alpha, self._ring.copy(), self._ref.copy(),
                       self._state.copy())
        self._seen = dict(zip(ends[:p.size], p.tolist(), strict=True))
        self._seen_generation = self._generation
        return p.size - 1 if p.size and p[-1] <= alpha else None

    def window_p(self, end: int, frozen: bool) -> float:
        """The p-value of the window ending at ``end`` (the next one, in stream order); unless ``frozen``,
        the events that left the test window first join the reference."""
        if self._seen_generation == self._generation and end in self._seen:
            p = self._seen.pop(end)
        else:
            self._sync()
            p = float(self._scan(np.array([end], np.int64), frozen, 0.0, self._ring, self._ref,
                                 self._state)[0])
        if not frozen:
            self._due = end
        return p

    def _window_counts(self, start: int, stop: int) -> np.ndarray:
        """Per code, how many of the held events ``[start, stop)`` (indices into the held codes) carry it."""
        ids = self._ids[start:stop]
        counts = np.bincount(self._rows_ab[ids].ravel(), minlength=K.CODES)
        values = self._rows_c[ids].astype(np.int64)
        if values.size:
            codes = K.C_START + np.arange(self._groups) * ATTRIBUTE_VALUES + values - 1
            counts += np.bincount(codes[values > 0], minlength=K.CODES)
        return counts

    def risen(self, end: int, alpha: float) -> frozenset[int]:
        """The codes (in the test's one code space: field ``a`` below ``A_CODES``, then ``b``, then ``c``)
        whose rise alone flags the window ending at ``end`` (cell p-value times the number of cells at most
        ``alpha``): what an event must carry to be blamed for the shift. Of a pooled cell only never-seen
        codes count (a rare-but-known value is not singled out), each only when its own count would flag
        the window."""
        self._sync()
        start = max(end - self.window, self._floor) - self._base
        if start < 0:
            return frozenset()
        win = self._window_counts(start, end - self._base)
        ref = self._ref.astype(np.int64)
        n_ref, n_win = int(self._state[K.LENGTH]), end - self._base - start
        group = _GROUP_OF
        live = ~self._muted
        muted_ref = np.bincount(group[~live], weights=ref[~live], minlength=K.GROUPS).astype(np.int64)
        muted_win = np.bincount(group[~live], weights=win[~live], minlength=K.GROUPS).astype(np.int64)
        nr, nw = n_ref - muted_ref, n_win - muted_win  # per group
        open_group = (nr > 0) & (nw > 0)
        tested = live & (ref >= self.pool_min) & open_group[group]
        pooled = live & (ref < self.pool_min) & open_group[group]
        pooled_ref = np.bincount(group[pooled], weights=ref[pooled], minlength=K.GROUPS).astype(np.int64)
        pooled_win = np.bincount(group[pooled], weights=win[pooled], minlength=K.GROUPS).astype(np.int64)
        cells = int(tested.sum()) + int(((pooled_ref + pooled_win) > 0).sum())
        found: set[int] = set()
        for code in np.flatnonzero(tested & (win > 0)).tolist():
            g = group[code]
            if self._stands_out(int(win[code]), int(ref[code]), int(nw[g]), int(nr[g]), cells, alpha):
                found.add(code)
        for g in np.flatnonzero(pooled_win > 0).tolist():
            totals = (int(nw[g]), int(nr[g]), cells, alpha)
            if self._stands_out(int(pooled_win[g]), int(pooled_ref[g]), *totals):
                # a never-seen code is blamed only when its own count is significant: one odd line
                # in the window is not what raised the pooled cell of a burst of new ones
                new = pooled & (ref == 0) & (win > 0) & (group == g)
                found.update(code for code in np.flatnonzero(new).tolist()
                             if self._stands_out(int(win[code]), 0, *totals))
        return frozenset(found)

    def _stands_out(self, k: int, c: int, n_win: int, n_ref: int, cells: int, alpha: float) -> bool:
        """``k`` of the window's ``n_win`` events against ``c`` of the reference's ``n_ref``: a rise a person
        would call a change, significant after Bonferroni over ``cells``."""
        return (K.risen(k, n_win, c, n_ref, self.share_factor, self.min_rise)
                and K.upper_tail(k, c + k, n_ref + n_win, n_win) * cells <= alpha)

    def carriers(self, events: Sequence[bytes], end: int, alpha: float) -> list[int]:
        """Indices into ``events`` (the cbad window ending at ``end``) of the events that carry a value
        whose rise flags the test window (:meth:`risen`): the events a field shift can blame."""
        risen = self.risen(end, alpha)
        return [k for k, codes in enumerate(codes_of(events))
                if not risen.isdisjoint(self._test_codes(codes))]

    def _test_codes(self, codes: Codes) -> list[int]:
        """An event's codes in the test's one code space."""
        a, b, values = codes
        out = [a, A_CODES + b]
        if self.attributes:
            out += [K.C_START + g * ATTRIBUTE_VALUES + v - 1 for g, v in enumerate(values) if v]
        return out

    # ------------------------------------------------------------------ incidents

    def freeze(self) -> None:
        """An incident opened: the reference stays as it is (the caller passes ``frozen`` from now on)."""
        self._sync()
        self._generation += 1

    def thaw(self, keep_events: bool, last_end: int) -> None:
        """The incident closed at the window ending at ``last_end``. Without ``keep_events`` (resolved) its
        events are skipped: everything that left the test window by then. With them (a false positive)
        the codes that rose in that window (cell p < ``MUTE_P``) are no longer tested, every event up to
        ``last_end`` joins the reference, and test windows start after them: what an operator called normal
        is not judged again."""
        self._sync()
        self._generation += 1
        if keep_events:
            start, stop = max(last_end - self.window, self._floor) - self._base, last_end - self._base
            if start >= 0:
                muted = self._muted.copy()
                K.mute_risen(self._rows_ab, self._rows_c, self._ids, start, stop, self._ref,
                             int(self._state[K.LENGTH]), muted, MUTE_P, np.zeros(K.CODES, _COUNT))
                if muted.any():
                    self._muted = muted
            self._floor = max(self._floor, last_end)
        else:
            self._state[K.ADMITTED] = max(int(self._state[K.ADMITTED]), last_end - self.window)

    def restart(self, since: int, end: int) -> None:
        """A new normal at the window ending at ``end``: the reference empties and refills with the events
        from offset ``since`` on (the caller's new baseline, those still held) up to ``end``, and test
        windows start after them."""
        self._due = None
        self._generation += 1
        self._floor = max(self._floor, end)
        self._muted = _NOTHING_MUTED
        self._ring[:] = 0
        self._dense = None
        self._ref_codes, self._ref_counts = self._ref_codes[:0], self._ref_counts[:0]
        self._state[K.HEAD] = self._state[K.LENGTH] = 0
        self._state[K.ADMITTED] = max(self._base, since)

    def trim(self, next_end: int, keep_from: int | None = None) -> None:
        """Forget codes no later window needs (the next window ends at ``next_end``): those not yet admitted
        and the window's own, and those a later restart or thaw may read: from ``keep_from`` on (the
        earliest offset the caller may name as a restart's ``since`` or as a thaw's ``last_end - window``),
        or by default the last ``reference`` events before the window (a frozen reference that thaws with
        its events keeps only that many of them anyway)."""
        self._sync()
        start = next_end - self.window
        admitted = max(int(self._state[K.ADMITTED]), start - self.reference)
        self._state[K.ADMITTED] = admitted
        cut = min(admitted, start - self.reference if keep_from is None else keep_from) - self._base
        if cut > 0:
            self._ids = self._ids[cut:].copy()
            self._base += cut
        self._compact()
        self._rest()

    # ------------------------------------------------------------------ snapshot

    def dump(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Header entries and arrays for a snapshot (the reference in FIFO order, the pending codes; field
        ``c``'s only with ``attributes``, so a snapshot without them is the layout from before it)."""
        self._sync()
        self._rest()
        head, length = int(self._state[K.HEAD]), int(self._state[K.LENGTH])
        order = (head + np.arange(length)) % self.reference
        header = {"base": self._base, "admitted": int(self._state[K.ADMITTED]), "floor": self._floor,
                  "window": self.window, "reference": self.reference}
        ring = self._ring[order]
        ring_ab, codes_ab = self._rows_ab[ring], self._rows_ab[self._ids]
        arrays = {"field_ref_a": ring_ab[:, 0].copy(), "field_ref_b": (ring_ab[:, 1] - A_CODES).astype(_CODE),
                  "field_codes_a": codes_ab[:, 0].copy(),
                  "field_codes_b": (codes_ab[:, 1] - A_CODES).astype(_CODE),
                  "field_muted_a": self._muted[:A_CODES].copy(),
                  "field_muted_b": self._muted[A_CODES:K.C_START].copy()}
        if self.attributes:
            arrays.update(field_ref_c=self._rows_c[ring], field_codes_c=self._rows_c[self._ids],
                          field_muted_c=self._muted[K.C_START:].copy())
        return header, arrays

    def load(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """The state :meth:`dump` wrote (same window and reference sizes, and ``attributes`` setting)."""
        def ab(a: str, b: str) -> np.ndarray:
            return np.stack((np.asarray(arrays[a], _CODE), np.asarray(arrays[b], _CODE) + A_CODES), axis=1)

        def c(name: str, rows: int) -> np.ndarray:
            if not self.attributes:
                return np.zeros((rows, 0), _VALUE)
            return np.asarray(arrays[name], _VALUE).reshape(rows, self._groups).copy()

        ref_ab = ab("field_ref_a", "field_ref_b")
        self.restart(0, 0)
        self._base = 0
        self._ids = self._intern(ref_ab, c("field_ref_c", ref_ab.shape[0]))
        self._state[K.ADMITTED] = 0
        K.admit(self._rows_ab, self._rows_c, self._ids, 0, ref_ab.shape[0], self._ring, self._ref,
                self._state)
        codes_ab = ab("field_codes_a", "field_codes_b")
        self._ids = self._intern(codes_ab, c("field_codes_c", codes_ab.shape[0]))
        self._base = int(header["base"])
        self._state[K.ADMITTED] = int(header["admitted"])
        self._floor = int(header["floor"])
        muted = np.zeros(K.CODES, np.bool_)
        muted[:A_CODES] = np.asarray(arrays["field_muted_a"], np.bool_)
        muted[A_CODES:K.C_START] = np.asarray(arrays["field_muted_b"], np.bool_)
        if self.attributes:
            muted[K.C_START:] = np.asarray(arrays["field_muted_c"], np.bool_)
        self._muted = muted if muted.any() else _NOTHING_MUTED
        self._compact()
        self._rest()


_GROUP_OF = np.concatenate((np.zeros(A_CODES, np.int64), np.ones(B_CODES, np.int64),
                            2 + np.arange(ATTRIBUTE_GROUPS * ATTRIBUTE_VALUES) // ATTRIBUTE_VALUES))
"""Per code, its cell group (as ``K.group_of``)."""


def for_profile(window: int, attributes: bool = True) -> FieldShift | None:
    """The field test for a detector with cbad windows of ``window`` events, or None when they are too
    short for it (see ``MIN_WINDOW``); ``attributes``: with field ``c``."""
    size = WINDOW_FACTOR * window
    if size < MIN_WINDOW:
        return None
    return FieldShift(size, REFERENCE_FACTOR * size, attributes=attributes)


__all__ = ["CBAD_WEIGHT", "FieldShift", "attribute_codes", "combine", "event_codes",
           "for_profile"]
