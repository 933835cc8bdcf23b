"""All the hops of one ``CbadDetector.update`` call in one kernel call, while every window is plainly normal.

Per hop this is what the detector does in Python one hop at a time (``cm.hop`` plus the decision): the
events that left the window enter the baseline counts and the oldest baseline events leave them, the new
events are scored, the window summarised, the conformal p-value computed and the calibration ring fed,
with the same floating-point operations in the same order, so the results are bit-identical. The loop stops
*after summarising* the first hop whose decision needs Python: a statistic above every recent score (the
tail fit) or a p-value at or below the target (an anomaly, with explanation and perhaps drift). Python then
decides that hop and carries on.

Preconditions (the caller checks them): no anomaly lasts and no event is held, so each hop admits exactly
the events between the admitted mark and the window start, which are contiguous in ``buf``; the baseline
is a FIFO whose oldest ``old_lens.size`` events (those it may lose, in order) are in ``old_buf``, followed by
the events admitted during this call.
"""

from __future__ import annotations

import numpy as np

from detectors._kernels import kernel
from detectors._kernels.cm import _count_event, _event_bits, _move_histogram, _summarize

# ``state`` (int64, read and updated): indices are into ``buf``'s events.
SCORED = 0  # events before this have their code length in ``bits``
ADMITTED = 1  # events before this have left the window
HIST_LO = 2  # the window byte histogram covers events [HIST_LO, HIST_HI)
HIST_HI = 3
BASELINE_LEN = 4
CAL_COUNT = 5
CAL_POSITION = 6
REMOVED = 7  # baseline events removed so far (the first come from ``old_buf``)
OLD_POS = 8  # byte position in ``old_buf`` of the next old event to remove
UNDECIDED = 9  # 1 when the last hop done awaits its decision in Python
STATE_SIZE = 10

# ``out`` columns, one row per hop (0..6 as ``cm.hop``'s summary).
TOTAL, BYTES, ENTROPY, TOP_BPB, N_EXCESS, GREATER0, GREATER1 = range(7)
EXPECTED = 7  # the calibration mean used for ``excess`` (NaN: no calibration yet, the window's own rate)
P_VALUE = 8
BASELINE_EVENTS = 9
CAL_WINDOWS = 10  # calibration windows after this hop's
OUT_COLUMNS = 11


MAX_PAIRS = 4096  # compare entering and leaving events pairwise only for hops of ordinary size


@kernel
def _same_bytes(x, x0, y, y0, n):
    j = 0
    while j < n and x[x0 + j] == y[y0 + j]:
        j += 1
    return j == n


@kernel
def _admit(tab, salt, mask, old_buf, old_lens, buf, starts, ends, a, b, admitted0, n_remove, state):
    """Events ``a..b`` of ``buf`` enter the counts, the ``n_remove`` oldest baseline events leave them.

    Canonical events repeat a lot, so an entering event often equals a leaving one (30-40 % of them on the
    benchmark streams): their count changes cancel exactly (integer counts), so neither is applied.
    """
    rem_old = np.empty(n_remove, np.bool_)
    rem_start = np.empty(n_remove, np.int64)
    rem_end = np.empty(n_remove, np.int64)
    pos = state[OLD_POS]
    r0 = state[REMOVED]
    for q in range(n_remove):
        r = r0 + q
        if r < old_lens.size:
            rem_old[q] = True
            rem_start[q] = pos
            pos += old_lens[r]
            rem_end[q] = pos
        else:
            i = admitted0 + r - old_lens.size
            rem_old[q] = False
            rem_start[q] = starts[i]
            rem_end[q] = ends[i]
    state[OLD_POS] = pos
    state[REMOVED] = r0 + n_remove
    cancelled = np.zeros(n_remove, np.bool_)
    match = (b - a) * n_remove <= MAX_PAIRS
    for i in range(a, b):
        n = ends[i] - starts[i]
        keep = True
        if match:
            for q in range(n_remove):
                if cancelled[q] or rem_end[q] - rem_start[q] != n:
                    continue
                if rem_old[q]:
                    same = _same_bytes(old_buf, rem_start[q], buf, starts[i], n)
                else:
                    same = _same_bytes(buf, rem_start[q], buf, starts[i], n)
                if same:
                    cancelled[q] = True
                    keep = False
                    break
        if keep:
            _count_event(tab, salt, mask, buf, starts[i], ends[i], True)
    for q in range(n_remove):
        if not cancelled[q]:
            if rem_old[q]:
                _count_event(tab, salt, mask, old_buf, rem_start[q], rem_end[q], False)
            else:
                _count_event(tab, salt, mask, buf, rem_start[q], rem_end[q], False)


SCORE_LOOKBACK = 32  # how many earlier new events of the hop an event is compared with


@kernel
def _score_new(tab, lt, ls, salt, mask, buf, starts, ends, s0, s1, bits):
    """``cm.score_events`` into ``bits[s0:s1]``, reusing the code length of an identical event scored
    earlier in the same hop (same table, so the same value, bit for bit)."""
    none = np.empty(0, np.float64)
    for i in range(s0, s1):
        n = ends[i] - starts[i]
        found = -1
        for j in range(i - 1, max(s0, i - SCORE_LOOKBACK) - 1, -1):
            if ends[j] - starts[j] == n and _same_bytes(buf, starts[j], buf, starts[i], n):
                found = j
                break
        if found >= 0:
            bits[i] = bits[found]
        else:
            bits[i] = _event_bits(tab, lt, ls, salt, mask, buf, starts[i], ends[i], none)


@kernel
def hops(tab, lt, ls, salt, mask, old_buf, old_lens, buf, starts, ends, bits, hist, first_end, n_hops, hop,
         window, top_m, baseline_size, min_calibration, target, ring, sums, state, out, excess_out):
    """Run up to ``n_hops`` hops ending at ``first_end``, ``first_end + hop``, ...; returns how many ran.

    ``ring``/``sums`` are the calibrator's ring and running sums (updated in place, with ``state``);
    ``out[k]`` and ``excess_out[k]`` receive hop ``k``'s figures and per-event excess bits.
    """
    capacity = ring.shape[1]
    single = window == 1
    admitted0 = state[ADMITTED]
    for k in range(n_hops):
        end = first_end + k * hop
        w0 = end - window
        # 1. admission: the events that left the window enter the baseline; the oldest leave it
        a = state[ADMITTED]
        b = max(w0, a)
        state[ADMITTED] = b
        size = state[BASELINE_LEN] + (b - a)
        n_remove = max(0, size - baseline_size)
        _admit(tab, salt, mask, old_buf, old_lens, buf, starts, ends, a, b, admitted0, n_remove, state)
        size -= n_remove
        state[BASELINE_LEN] = size
        # 2. score the new events, move the window histogram, summarise the window
        s0 = state[SCORED]
        _score_new(tab, lt, ls, salt, mask, buf, starts, ends, s0, end, bits)
        state[SCORED] = end
        lo, hi = state[HIST_LO], state[HIST_HI]
        _move_histogram(buf, starts, ends, hist, lo, min(w0, hi), max(hi, w0), end)
        state[HIST_LO] = w0
        state[HIST_HI] = end
        count = state[CAL_COUNT]
        row = out[k]
        excess = excess_out[k]
        expected = sums[0] / count if count > 0 else 0.0
        _summarize(buf, starts, ends, w0, end, top_m, bits, hist, expected, excess, ring, count, row)
        stat0 = row[TOTAL] / row[BYTES]
        stat1 = row[TOP_BPB]
        if count > 0:
            row[EXPECTED] = expected
        else:  # no calibration yet: the window's own rate is the reference
            row[EXPECTED] = np.nan
            positive = 0
            for j in range(window):
                i = w0 + j
                excess[j] = bits[i] - stat0 * (ends[i] - starts[i] + 1)
                if excess[j] > 0:
                    positive += 1
            row[N_EXCESS] = positive
        row[BASELINE_EVENTS] = size
        # 3. decision, when it needs no tail fit and flags nothing
        full = size >= baseline_size
        p = 1.0
        if full and count >= min_calibration:
            g0 = np.int64(row[GREATER0])
            g1 = np.int64(row[GREATER1])
            if g0 == 0 or (not single and g1 == 0):
                state[UNDECIDED] = 1
                return k + 1
            p = (1.0 + g0) / (count + 1.0)
            if not single:
                p = min(1.0, 2 * min(p, (1.0 + g1) / (count + 1.0)))
            if p <= target:
                state[UNDECIDED] = 1
                return k + 1
        row[P_VALUE] = p
        if full:  # Calibrator.add
            position = state[CAL_POSITION]
            old0 = ring[0, position] if count == capacity else 0.0
            old1 = ring[1, position] if count == capacity else 0.0
            sums[0] = sums[0] - old0 + stat0
            sums[1] = sums[1] - old1 + stat1
            ring[0, position] = stat0
            ring[1, position] = stat1
            state[CAL_POSITION] = (position + 1) % capacity
            count = min(count + 1, capacity)
            state[CAL_COUNT] = count
        row[CAL_WINDOWS] = count
    state[UNDECIDED] = 0
    return n_hops
