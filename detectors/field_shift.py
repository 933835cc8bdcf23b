"""A per-field distribution test beside cbad's compression score: the shifts that cost few bits.

Compression sees a change by the bits it adds. A latency shift rewrites one duration token of a few bytes
inside a long canonical span (``d=D15`` becomes ``d=D17``), and a share change among known log templates
costs only the log-ratio of their frequencies: both move a window's bits per byte by less than its normal
spread, so no window is flagged. Their fields, though, are small typed vocabularies the canonical form
already writes down, where such a change is plain to see. This module tests them:

* field ``a``: a span's status (``UNSET``/``OK``/``ERROR``), a log's severity band;
* field ``b``: a span's log2 duration bucket (``d=D<b>``), a log's template (its masked body, hashed into
  ``TEMPLATE_CODES`` codes).

Per stream a :class:`FieldShift` keeps the codes of the last ``reference`` normal events (a FIFO; frozen
while an incident is open, like cbad's baseline) and, per window (the last ``window`` events, ending where
cbad's window ends), the p-value of the kernels in :mod:`detectors._kernels.field_shift`: per cell, the
one-sided Fisher exact test that the window holds more of it than the reference's share (sparse reference
cells pooled), the smallest times the number of cells (Bonferroni). It is exact under exchangeable events
and conservative otherwise-equal: a small reference makes the hypergeometric null wide by itself.

The detector combines it with its own window p-value by weighted Bonferroni (:func:`combine`): valid
whatever the dependence between the two (they read the same events, so Fisher's method, which assumes
independence, would be anti-conservative). Window, reference and pooling sizes follow from the profile
(:func:`for_profile`); why these figures: docs/detectors.md, "Field shift test".

Determinism: the codes are a pure function of each event's bytes, the reference moves only with window
ends, freezes, thaws and restarts, and :meth:`FieldShift.first_flag` lets the caller stop its hop kernel
at a window this test flags, so the result does not depend on how events were split into calls.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors._kernels import field_shift as K

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
TEMPLATE_CODES = 2048
_SPAN_STATUS = {b"UNSET": 1, b"OK": 2, b"ERROR": 3}
_OTHER_STATUS = 4
_SEVERITY = {b"TRACE": 5, b"DEBUG": 6, b"INFO": 7, b"WARN": 8, b"ERROR": 9, b"FATAL": 10, b"UNSPECIFIED": 11}
_OTHER_SEVERITY = 12
A_CODES = 13
"""0 is an event that reads as neither span nor log."""
_BUCKETS = 128
B_CODES = 1 + _BUCKETS + TEMPLATE_CODES
_MAX_READ = 16_384  # bytes of an event read (as detectors.canonical.parse)
_SPAN = re.compile(rb"(?:UNSPECIFIED|INTERNAL|SERVER|CLIENT|PRODUCER|CONSUMER|KIND-?\d+) .*? "
                   rb"(UNSET|OK|ERROR|STATUS-?\d+) d=D(\d{1,3})(?= \| |$)", re.DOTALL)
_LOG = re.compile(rb"(UNSPECIFIED|(TRACE|DEBUG|INFO|WARN|ERROR|FATAL)[234]?|SEV-?\d+) ")
_ATTRS_START = re.compile(rb" \| (?=[^\s=|]+=)")
_SPAN_KINDS = frozenset((b"UNSPECIFIED", b"INTERNAL", b"SERVER", b"CLIENT", b"PRODUCER", b"CONSUMER"))
_CACHE: dict[bytes, tuple[int, int]] = {}  # canonical events repeat (ids are masked): read each once
_CACHE_SIZE = 8192
_CODE = np.int16
_COUNT = np.int32


def event_codes(event: bytes) -> tuple[int, int]:
    """The codes ``(a, b)`` of one canonical event (``(0, 0)`` if it reads as neither span nor log).

    >>> event_codes(b"SERVER GET /cart ERROR d=D15 | http.route=/cart")
    (3, 16)
    >>> a, b = event_codes(b"WARN2 disk <N2> % full | host.name=web-1")
    >>> a, b > 128
    (8, True)
    """
    found = _CACHE.get(event)
    if found is None:
        found = _read_codes(event)
        if len(_CACHE) >= _CACHE_SIZE:  # a pure function of the bytes: forgetting changes nothing
            _CACHE.clear()
        _CACHE[event] = found
    return found


def _read_codes(event: bytes) -> tuple[int, int]:
    text = event[:_MAX_READ]
    first = text[:text.find(b" ")]
    if first in _SPAN_KINDS or first.startswith(b"KIND"):
        span = _SPAN.match(text)
        if span is not None:
            return _SPAN_STATUS.get(span.group(1), _OTHER_STATUS), 1 + min(int(span.group(2)), _BUCKETS - 1)
    log = _LOG.match(text)
    if log is None:
        return 0, 0
    band = log.group(2)
    severity = _SEVERITY.get(band if band is not None else log.group(1), _OTHER_SEVERITY)
    attrs = _ATTRS_START.search(text, log.end())
    body = text[log.end():attrs.start() if attrs is not None else len(text)]
    return severity, 1 + _BUCKETS + zlib.crc32(body) % TEMPLATE_CODES


def combine(p_cbad: float, p_fields: float) -> float:
    """The window's one p-value: weighted Bonferroni of cbad's and the field test's (see ``CBAD_WEIGHT``)."""
    return min(1.0, p_cbad / CBAD_WEIGHT, p_fields / (1.0 - CBAD_WEIGHT))


class FieldShift:
    """Per-stream state of the field test: the reference's codes and counts, and the codes of the events
    not yet in it (stream offsets ``[base, base + len)``).

    The caller (the detector) feeds events with :meth:`extend`, asks for each window's p-value in stream
    order with :meth:`window_p`, and tells it when the reference freezes (an incident opened), thaws (with or
    without the incident's events) or restarts (a new normal was adopted).
    """

    def __init__(self, window: int, reference: int, pool_min: int = POOL_MIN,
                 share_factor: float = SHARE_FACTOR, min_rise: float = MIN_RISE) -> None:
        if window < 1 or reference < window:
            raise ValueError("field shift needs 1 <= window <= reference")
        self.window = int(window)
        self.reference = int(reference)
        self.pool_min = int(pool_min)
        self.share_factor, self.min_rise = float(share_factor), float(min_rise)
        self._ring_a = np.zeros(self.reference, _CODE)
        self._ring_b = np.zeros(self.reference, _CODE)
        self._ref_a = np.zeros(A_CODES, _COUNT)
        self._ref_b = np.zeros(B_CODES, _COUNT)
        self._state = np.zeros(K.STATE_SIZE, np.int64)
        self._codes_a = np.zeros(0, _CODE)
        self._codes_b = np.zeros(0, _CODE)
        self._base = 0
        self._muted_a = np.zeros(A_CODES, np.bool_)  # codes whose rise an operator called normal
        self._muted_b = np.zeros(B_CODES, np.bool_)
        self._floor = 0  # windows start here at the earliest (after a false positive or a restart)
        self._due: int | None = None  # the last window end whose admission is still to be done
        self._generation = 0  # bumped by every freeze, thaw and restart: invalidates what first_flag saw
        self._seen: dict[int, float] = {}  # window end -> p-value found by first_flag in this generation
        self._seen_generation = -1

    @property
    def reference_events(self) -> int:
        return int(self._state[K.LENGTH])

    def extend(self, events: Sequence[bytes]) -> None:
        """Codes of the next events of the stream (in order)."""
        codes = np.array([event_codes(e) for e in events], dtype=_CODE).reshape(-1, 2)
        self._codes_a = np.concatenate((self._codes_a, codes[:, 0]))
        self._codes_b = np.concatenate((self._codes_b, codes[:, 1]))

    # ------------------------------------------------------------------ windows

    def _scan(self, ends: np.ndarray, frozen: bool, alpha: float, ring_a: np.ndarray, ring_b: np.ndarray,
              ref_a: np.ndarray, ref_b: np.ndarray, state: np.ndarray) -> np.ndarray:
        out = np.empty(ends.size)
        done = K.scan(self._codes_a, self._codes_b, self._base, ends, self.window, self._floor, frozen,
                      ring_a, ring_b, ref_a, ref_b, state, self._muted_a, self._muted_b, self.pool_min,
                      self.share_factor, self.min_rise, self.window, alpha, out, np.zeros(A_CODES, _COUNT),
                      np.zeros(B_CODES, _COUNT))
        return out[:done]

    def _sync(self) -> None:
        """Admit what the windows handed out since the last call made due (admission is lazy: one kernel
        call per batch of windows rather than one per window; nothing else reads the reference between)."""
        if self._due is not None:
            upto = max(self._due - self.window, self._floor)
            if upto > self._state[K.ADMITTED]:
                K.admit(self._codes_a, self._codes_b, self._base, upto, self._ring_a, self._ring_b,
                        self._ref_a, self._ref_b, self._state)
            self._due = None

    def first_flag(self, ends: Sequence[int], frozen: bool, alpha: float) -> int | None:
        """Index of the first of the windows ending at ``ends`` (in order, none decided yet) whose p-value
        is at most ``alpha`` if no freeze, thaw or restart happens before it; nothing changes (a copy of the
        reference moves). The p-values found are kept for :meth:`window_p`."""
        self._sync()
        p = self._scan(np.asarray(ends, np.int64), frozen, alpha, self._ring_a.copy(), self._ring_b.copy(),
                       self._ref_a.copy(), self._ref_b.copy(), self._state.copy())
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
            p = float(self._scan(np.array([end], np.int64), frozen, 0.0, self._ring_a, self._ring_b,
                                 self._ref_a, self._ref_b, self._state)[0])
        if not frozen:
            self._due = end
        return p

    def risen(self, end: int, alpha: float) -> tuple[frozenset[int], frozenset[int]]:
        """The codes of each field whose rise alone flags the window ending at ``end`` (cell p-value times
        the number of cells at most ``alpha``): what an event must carry to be blamed for the shift. Of
        the pooled cell only never-seen codes count (a rare-but-known value is not singled out), each only
        when its own count would flag the window."""
        self._sync()
        start = max(end - self.window, self._floor) - self._base
        if start < 0:
            return frozenset(), frozenset()
        fields = []
        for codes, ref, muted in ((self._codes_a, self._ref_a, self._muted_a),
                                  (self._codes_b, self._ref_b, self._muted_b)):
            win = np.bincount(codes[start:end - self._base], minlength=ref.size)
            live = ~muted
            n_ref, n_win = int(ref[live].sum()), int(win[live].sum())
            tested = live & (ref >= self.pool_min)
            pooled = live & (ref < self.pool_min) & ((ref > 0) | (win > 0))
            fields.append((ref, win, n_ref, n_win, tested, pooled))
        cells = sum(int(t.sum()) + int(p.any()) for _, _, _, _, t, p in fields)
        out = []
        for ref, win, n_ref, n_win, tested, pooled in fields:
            found: set[int] = set()
            totals = (n_win, n_ref, cells, alpha)
            if n_ref and n_win:
                found.update(code for code in np.flatnonzero(tested & (win > 0)).tolist()
                             if self._stands_out(int(win[code]), int(ref[code]), *totals))
                k_pooled = int(win[pooled].sum())
                if k_pooled > 0 and self._stands_out(k_pooled, int(ref[pooled].sum()), *totals):
                    # a never-seen code is blamed only when its own count is significant: one odd line
                    # in the window is not what raised the pooled cell of a burst of new ones
                    found.update(code for code in np.flatnonzero(pooled & (ref == 0) & (win > 0)).tolist()
                                 if self._stands_out(int(win[code]), 0, *totals))
            out.append(frozenset(found))
        return out[0], out[1]

    def _stands_out(self, k: int, c: int, n_win: int, n_ref: int, cells: int, alpha: float) -> bool:
        """``k`` of the window's ``n_win`` events against ``c`` of the reference's ``n_ref``: a rise a person
        would call a change, significant after Bonferroni over ``cells``."""
        return (K.risen(k, n_win, c, n_ref, self.share_factor, self.min_rise)
                and K.upper_tail(k, c + k, n_ref + n_win, n_win) * cells <= alpha)

    def carriers(self, events: Sequence[bytes], end: int, alpha: float) -> list[int]:
        """Indices into ``events`` (the cbad window ending at ``end``) of the events that carry a value
        whose rise flags the test window (:meth:`risen`): the events a field shift can blame."""
        risen_a, risen_b = self.risen(end, alpha)
        return [k for k, event in enumerate(events)
                if (codes := event_codes(event))[0] in risen_a or codes[1] in risen_b]

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
                for codes, ref, muted in ((self._codes_a, self._ref_a, self._muted_a),
                                          (self._codes_b, self._ref_b, self._muted_b)):
                    K.mute_risen(codes, start, stop, ref, muted, MUTE_P, np.zeros(ref.size, _COUNT))
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
        self._muted_a[:] = False
        self._muted_b[:] = False
        self._ring_a[:] = 0
        self._ring_b[:] = 0
        self._ref_a[:] = 0
        self._ref_b[:] = 0
        self._state[K.HEAD] = self._state[K.LENGTH] = 0
        self._state[K.ADMITTED] = max(self._base, since)

    def trim(self, next_end: int) -> None:
        """Forget codes no later window needs (the next window ends at ``next_end``): all but the last
        ``reference`` events before the window (a restart refills from them; a frozen reference that thaws
        with its events keeps only that many of them anyway) and the window's own."""
        self._sync()
        start = next_end - self.window
        admitted = max(int(self._state[K.ADMITTED]), start - self.reference)
        self._state[K.ADMITTED] = admitted
        cut = min(admitted, start - self.reference) - self._base
        if cut > 0:
            self._codes_a = self._codes_a[cut:].copy()
            self._codes_b = self._codes_b[cut:].copy()
            self._base += cut

    # ------------------------------------------------------------------ snapshot

    def dump(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Header entries and arrays for a snapshot (the reference in FIFO order, the pending codes)."""
        self._sync()
        head, length = int(self._state[K.HEAD]), int(self._state[K.LENGTH])
        order = (head + np.arange(length)) % self.reference
        header = {"base": self._base, "admitted": int(self._state[K.ADMITTED]), "floor": self._floor,
                  "window": self.window, "reference": self.reference}
        arrays = {"field_ref_a": self._ring_a[order], "field_ref_b": self._ring_b[order],
                  "field_codes_a": self._codes_a, "field_codes_b": self._codes_b,
                  "field_muted_a": self._muted_a, "field_muted_b": self._muted_b}
        return header, arrays

    def load(self, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
        """The state :meth:`dump` wrote (same window and reference sizes)."""
        ref_a = np.asarray(arrays["field_ref_a"], _CODE)
        ref_b = np.asarray(arrays["field_ref_b"], _CODE)
        self.restart(0, 0)
        self._base = 0
        self._codes_a, self._codes_b = ref_a.copy(), ref_b.copy()
        self._state[K.ADMITTED] = 0
        K.admit(self._codes_a, self._codes_b, 0, ref_a.size, self._ring_a, self._ring_b, self._ref_a,
                self._ref_b, self._state)
        self._codes_a = np.asarray(arrays["field_codes_a"], _CODE).copy()
        self._codes_b = np.asarray(arrays["field_codes_b"], _CODE).copy()
        self._base = int(header["base"])
        self._state[K.ADMITTED] = int(header["admitted"])
        self._floor = int(header["floor"])
        self._muted_a = np.asarray(arrays["field_muted_a"], np.bool_).copy()
        self._muted_b = np.asarray(arrays["field_muted_b"], np.bool_).copy()


def for_profile(window: int) -> FieldShift | None:
    """The field test for a detector with cbad windows of ``window`` events, or None when they are too
    short for it (see ``MIN_WINDOW``)."""
    size = WINDOW_FACTOR * window
    if size < MIN_WINDOW:
        return None
    return FieldShift(size, REFERENCE_FACTOR * size)


__all__ = ["CBAD_WEIGHT", "FieldShift", "combine", "event_codes", "for_profile"]
