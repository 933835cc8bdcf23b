"""Kernels of the per-field distribution test (:mod:`detectors.field_shift`): reference admission and the
window's p-value.

Every event carries one code of field ``a`` (span status or log severity) and one of field ``b`` (span
duration bucket or log template), both in ``codes_ab`` (one row per event, in one code space: ``b`` codes
start at ``A_CODES``), and, when attributes are tested, one value per attribute group of field ``c`` in
``codes_c`` (one row per event, one column per group: 0 when the event has no kept attribute in that group,
else ``1 + value`` with ``value < C_VALUES``). The reference is a FIFO ring of at most ``capacity`` events'
codes with per-code counts of the events that carry each code.

Cells are grouped: group 0 is field ``a``, group 1 field ``b``, group ``2 + g`` the attribute group ``g``.
An event carries at most one code per group, so every cell's count is a count of events. A window's
p-value tests, for every cell (a code seen ``pool_min`` times or more in the reference, and per group one
pooled cell for all its rarer and never-seen codes), whether the window holds more of it than the
reference's share: the one-sided Fisher exact test, i.e. the hypergeometric upper tail of the window's
count given the cell's total over reference and window. The smallest cell p-value times the number of cells
tested (Bonferroni) is the window's p-value: valid whatever the dependence between cells, and the
conditional test pays for a small reference by itself (few reference events: a wide null, large p).
"""

from __future__ import annotations

import math

import numpy as np

from detectors._kernels import kernel

# ``state`` layout of the reference ring
HEAD = 0
LENGTH = 1
ADMITTED = 2  # stream offset: events below it have entered the reference (or were skipped)
STATE_SIZE = 3

# the one code space of the three fields (see detectors.field_shift for what the codes mean)
A_CODES = 13
TEMPLATE_CODES = 2048
BUCKETS = 128
B_CODES = 1 + BUCKETS + TEMPLATE_CODES
C_GROUPS = 16
C_VALUES = 255
C_START = A_CODES + B_CODES
CODES = C_START + C_GROUPS * C_VALUES
GROUPS = 2 + C_GROUPS


@kernel
def _log_choose(n, k):
    return math.lgamma(n + 1.0) - math.lgamma(k + 1.0) - math.lgamma(n - k + 1.0)


@kernel
def upper_tail(k, successes, population, draws):
    """``P(X >= k)`` for ``X`` hypergeometric: ``draws`` taken from ``population`` holding ``successes``.

    The first term from log-gamma, the rest by the pmf's ratio recurrence (the terms fall fast past the
    mode, so the sum stops once a term no longer changes it).
    """
    lowest = max(0, draws - (population - successes))
    highest = min(successes, draws)
    if k <= lowest:
        return 1.0
    if k > highest:
        return 0.0
    log_pmf = (_log_choose(successes, k) + _log_choose(population - successes, draws - k)
               - _log_choose(population, draws))
    pmf = math.exp(log_pmf)
    total = pmf
    x = k
    while x < highest:
        pmf *= (successes - x) * (draws - x) / ((x + 1.0) * (population - successes - draws + x + 1.0))
        total += pmf
        x += 1
        if pmf <= total * 1e-17:
            break
    return min(1.0, total)


@kernel
def risen(k, n_win, c, n_ref, factor, min_rise):
    """Whether a cell's window share ``k / n_win`` is at least ``factor`` times and ``min_rise`` above its
    reference share ``c / n_ref``: only such a rise is tested (an effect size a person would call a change;
    it only ever raises p-values, so the test stays valid)."""
    return k * n_ref >= factor * c * n_win and k * n_ref - c * n_win >= min_rise * n_win * n_ref


@kernel
def group_of(code):
    """The cell group of a code: 0 field ``a``, 1 field ``b``, ``2 + g`` attribute group ``g``."""
    if code < A_CODES:
        return 0
    if code < C_START:
        return 1
    return 2 + (code - C_START) // C_VALUES


@kernel
def _count(codes_ab, codes_c, start, stop, counts, step):
    """Add ``step`` to the count of every code the events ``[start, stop)`` carry."""
    for i in range(start, stop):
        counts[codes_ab[i, 0]] += step
        counts[codes_ab[i, 1]] += step
        for g in range(codes_c.shape[1]):
            v = codes_c[i, g]
            if v > 0:
                counts[C_START + g * C_VALUES + v - 1] += step


@kernel
def _cells_p(ref, win, n_ref, n_win, muted, pool_min, factor, min_rise, result):
    """Smallest cell p-value (``result[0]``) and the number of cells tested (``result[1]``) of a window with
    counts ``win`` of ``n_win`` events against ``ref`` of ``n_ref``. Per group, ``muted`` codes (an operator
    called their rise normal) are left out of the cells and their events out of both sides' totals."""
    muted_ref = np.zeros(GROUPS, np.int64)
    muted_win = np.zeros(GROUPS, np.int64)
    pooled_ref = np.zeros(GROUPS, np.int64)
    pooled_win = np.zeros(GROUPS, np.int64)
    for code in range(ref.size):
        g = group_of(code)
        if muted[code]:
            muted_ref[g] += ref[code]
            muted_win[g] += win[code]
        elif ref[code] < pool_min:
            pooled_ref[g] += ref[code]
            pooled_win[g] += win[code]
    best = 1.0
    cells = 0
    for code in range(ref.size):
        c = ref[code]
        if muted[code] or c < pool_min:
            continue
        g = group_of(code)
        nr, nw = n_ref - muted_ref[g], n_win - muted_win[g]
        if nr <= 0 or nw <= 0:
            continue
        cells += 1
        k = win[code]
        if k > 0 and risen(k, nw, c, nr, factor, min_rise):
            best = min(best, upper_tail(k, c + k, nr + nw, nw))
    for g in range(GROUPS):
        nr, nw = n_ref - muted_ref[g], n_win - muted_win[g]
        if nr <= 0 or nw <= 0 or pooled_ref[g] + pooled_win[g] == 0:
            continue
        cells += 1
        k = pooled_win[g]
        if k > 0 and risen(k, nw, pooled_ref[g], nr, factor, min_rise):
            best = min(best, upper_tail(k, pooled_ref[g] + k, nr + nw, nw))
    result[0] = best
    result[1] = cells


@kernel
def window_p(codes_ab, codes_c, start, stop, ref, n_ref, muted, pool_min, factor, min_rise, win):
    """The p-value of the window of events ``[start, stop)`` against the reference counts ``ref`` of
    ``n_ref`` events. ``win`` is a zeroed scratch array of the counts' size (left zeroed)."""
    if stop <= start:
        return 1.0
    _count(codes_ab, codes_c, start, stop, win, 1)
    result = np.empty(2)
    _cells_p(ref, win, n_ref, stop - start, muted, pool_min, factor, min_rise, result)
    _count(codes_ab, codes_c, start, stop, win, -1)
    return min(1.0, result[0] * max(result[1], 1.0))


@kernel
def admit(codes_ab, codes_c, base, upto, ring_ab, ring_c, ref, state):
    """Move the events ``[state[ADMITTED], upto)`` (codes at ``offset - base``) into the reference ring,
    the oldest leaving once it holds ``ring_ab.shape[0]`` events."""
    capacity = ring_ab.shape[0]
    head = state[HEAD]
    length = state[LENGTH]
    for offset in range(state[ADMITTED], upto):
        if length == capacity:
            _count(ring_ab, ring_c, head, head + 1, ref, -1)
            head = (head + 1) % capacity
            length -= 1
        j = offset - base
        slot = (head + length) % capacity
        ring_ab[slot] = codes_ab[j]
        ring_c[slot] = codes_c[j]
        _count(codes_ab, codes_c, j, j + 1, ref, 1)
        length += 1
    state[HEAD] = head
    state[LENGTH] = length
    if upto > state[ADMITTED]:
        state[ADMITTED] = upto


@kernel
def mute_risen(codes_ab, codes_c, start, stop, ref, n_ref, muted, alpha, win):
    """Mark in ``muted`` every code whose count in the window ``[start, stop)`` is above the reference's
    share (``n_ref`` events) with a one-sided Fisher p-value under ``alpha``. ``win`` is zeroed scratch (left
    zeroed)."""
    n_win = stop - start
    _count(codes_ab, codes_c, start, stop, win, 1)
    for code in range(win.size):
        k = win[code]
        if k > 0:
            c = ref[code]
            if k * n_ref > c * n_win and upper_tail(k, c + k, n_ref + n_win, n_win) < alpha:
                muted[code] = True
            win[code] = 0


@kernel
def scan(codes_ab, codes_c, base, ends, window, floor, frozen, ring_ab, ring_c, ref, state, muted, pool_min,
         factor, min_rise, min_reference, alpha, out, win):
    """The windows ending at ``ends`` in order: unless ``frozen``, the events that left the test window
    (it starts at ``max(end - window, floor)``) join the reference, then the window's p-value goes to
    ``out``. Stops after the first p-value at most ``alpha``; returns how many windows were done. A window
    reaching before the codes held (the stream's first events) or a reference under ``min_reference``
    events gives 1."""
    for i in range(ends.size):
        end = ends[i]
        start = max(end - window, floor)
        if not frozen and start > state[ADMITTED]:
            admit(codes_ab, codes_c, base, start, ring_ab, ring_c, ref, state)
        p = 1.0
        if end - window >= base and state[LENGTH] >= min_reference:
            p = window_p(codes_ab, codes_c, start - base, end - base, ref, state[LENGTH], muted, pool_min,
                         factor, min_rise, win)
        out[i] = p
        if p <= alpha:
            return i + 1
    return ends.size
