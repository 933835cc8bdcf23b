"""Kernels of the per-field distribution test (:mod:`detectors.field_shift`): reference admission and the
window's p-value.

Every event carries one code of field ``a`` (span status or log severity) and one of field ``b`` (span
duration bucket or log template), in one code space (``b`` codes start at ``A_CODES``), and, when attributes
are tested, one value per attribute group of field ``c`` (0 when the event has no kept attribute in that
group, else ``1 + value`` with ``value < C_VALUES``). Events repeat their codes (ids are masked before), so a
stream's distinct code rows are kept once, in ``rows_ab`` (the ``a`` and ``b`` codes) and ``rows_c`` (one
column per group), and an event is its row's index in ``ids``. The reference is a FIFO ring of at most
``capacity`` events' row indices with per-code counts of the events that carry each code.

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


GROUP_OF = np.array([0 if code < A_CODES else 1 if code < C_START else 2 + (code - C_START) // C_VALUES
                     for code in range(CODES)], np.int64)
"""``group_of`` of every code, compiled into the kernels as a constant."""


@kernel
def _count(rows_ab, rows_c, ids, start, stop, counts, step):
    """Add ``step`` to the count of every code the events ``ids[start:stop]`` carry."""
    for i in range(start, stop):
        r = ids[i]
        counts[rows_ab[r, 0]] += step
        counts[rows_ab[r, 1]] += step
        for g in range(rows_c.shape[1]):
            v = rows_c[r, g]
            if v > 0:
                counts[C_START + g * C_VALUES + v - 1] += step


@kernel
def _cells_p(ref, win, n_ref, n_win, muted, pool_min, factor, min_rise, result):
    """Smallest cell p-value (``result[0]``) and the number of cells tested (``result[1]``) of a window with
    counts ``win`` of ``n_win`` events against ``ref`` of ``n_ref``. Per group, ``muted`` codes (an operator
    called their rise normal) are left out of the cells and their events out of both sides' totals.

    One pass over the codes gathers the totals and the cells that may have risen (most codes are in
    neither the window nor the reference and are skipped at once); only those are tested after it."""
    muted_ref = np.zeros(GROUPS, np.int64)
    muted_win = np.zeros(GROUPS, np.int64)
    pooled_ref = np.zeros(GROUPS, np.int64)
    pooled_win = np.zeros(GROUPS, np.int64)
    big = np.zeros(GROUPS, np.int64)  # per group, the codes with a cell of their own
    candidates = np.empty(ref.size, np.int64)
    n_candidates = 0
    for code in range(ref.size):
        if ref[code] == 0 and win[code] == 0:
            continue
        g = GROUP_OF[code]
        if muted[code]:
            muted_ref[g] += ref[code]
            muted_win[g] += win[code]
        elif ref[code] < pool_min:
            pooled_ref[g] += ref[code]
            pooled_win[g] += win[code]
        else:
            big[g] += 1
            if win[code] > 0:
                candidates[n_candidates] = code
                n_candidates += 1
    best = 1.0
    cells = 0
    for g in range(GROUPS):
        if n_ref - muted_ref[g] > 0 and n_win - muted_win[g] > 0:
            cells += big[g]
    for i in range(n_candidates):
        code = candidates[i]
        c = ref[code]
        g = GROUP_OF[code]
        nr, nw = n_ref - muted_ref[g], n_win - muted_win[g]
        if nr <= 0 or nw <= 0:
            continue
        k = win[code]
        if risen(k, nw, c, nr, factor, min_rise):
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
def window_p(rows_ab, rows_c, ids, start, stop, ref, n_ref, muted, pool_min, factor, min_rise, win):
    """The p-value of the window of events ``ids[start:stop]`` against the reference counts ``ref`` of
    ``n_ref`` events. ``win`` is a zeroed scratch array of the counts' size (left zeroed)."""
    if stop <= start:
        return 1.0
    _count(rows_ab, rows_c, ids, start, stop, win, 1)
    result = np.empty(2)
    _cells_p(ref, win, n_ref, stop - start, muted, pool_min, factor, min_rise, result)
    _count(rows_ab, rows_c, ids, start, stop, win, -1)
    return min(1.0, result[0] * max(result[1], 1.0))


@kernel
def admit(rows_ab, rows_c, ids, base, upto, ring, ref, state):
    """Move the events ``[state[ADMITTED], upto)`` (row indices at ``ids[offset - base]``) into the
    reference ring, the oldest leaving once it holds ``ring.size`` events."""
    capacity = ring.shape[0]
    head = state[HEAD]
    length = state[LENGTH]
    for offset in range(state[ADMITTED], upto):
        if length == capacity:
            _count(rows_ab, rows_c, ring, head, head + 1, ref, -1)
            head = (head + 1) % capacity
            length -= 1
        j = offset - base
        ring[(head + length) % capacity] = ids[j]
        _count(rows_ab, rows_c, ids, j, j + 1, ref, 1)
        length += 1
    state[HEAD] = head
    state[LENGTH] = length
    if upto > state[ADMITTED]:
        state[ADMITTED] = upto


@kernel
def mute_risen(rows_ab, rows_c, ids, start, stop, ref, n_ref, muted, alpha, win):
    """Mark in ``muted`` every code whose count in the window ``ids[start:stop]`` is above the reference's
    share (``n_ref`` events) with a one-sided Fisher p-value under ``alpha``. ``win`` is zeroed scratch (left
    zeroed)."""
    n_win = stop - start
    _count(rows_ab, rows_c, ids, start, stop, win, 1)
    for code in range(win.size):
        k = win[code]
        if k > 0:
            c = ref[code]
            if k * n_ref > c * n_win and upper_tail(k, c + k, n_ref + n_win, n_win) < alpha:
                muted[code] = True
            win[code] = 0


@kernel
def scan(rows_ab, rows_c, ids, base, ends, window, floor, frozen, ring, ref, state, muted, pool_min,
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
            admit(rows_ab, rows_c, ids, base, start, ring, ref, state)
        p = 1.0
        if end - window >= base and state[LENGTH] >= min_reference:
            p = window_p(rows_ab, rows_c, ids, start - base, end - base, ref, state[LENGTH], muted, pool_min,
                         factor, min_rise, win)
        out[i] = p
        if p <= alpha:
            return i + 1
    return ends.size


@kernel
def _row_slot(rows_ab, rows_c, r, table):
    """The first slot of row ``r``'s probe sequence in ``table`` (a power of two long)."""
    h = (rows_ab[r, 0] * 1_000_003 + rows_ab[r, 1]) & 0x7FFFFFFF
    for g in range(rows_c.shape[1]):
        h = (h * 1_000_003 + rows_c[r, g]) & 0x7FFFFFFF
    return h & (table.size - 1)


@kernel
def intern(ab, c, start, rows_ab, rows_c, n_rows, table, ids):
    """Row indices ``ids[i]`` of the events ``i >= start`` whose codes are ``ab[i]``, ``c[i]``: an existing
    row's (found through ``table``, open addressing, -1 empty) or a new row's, appended at ``n_rows``.
    Stops before an event that needs a new row when the rows are full. Returns (events done, rows)."""
    capacity = rows_ab.shape[0]
    groups = rows_c.shape[1]
    mask = table.size - 1
    for i in range(start, ab.shape[0]):
        # the new row's codes go to rows[n_rows] first (hashed and compared from there)
        if n_rows == capacity:
            return i, n_rows
        rows_ab[n_rows, 0] = ab[i, 0]
        rows_ab[n_rows, 1] = ab[i, 1]
        for g in range(groups):
            rows_c[n_rows, g] = c[i, g]
        slot = _row_slot(rows_ab, rows_c, n_rows, table)
        while True:
            r = table[slot]
            if r < 0:
                table[slot] = n_rows
                r = n_rows
                n_rows += 1
                break
            same = rows_ab[r, 0] == ab[i, 0] and rows_ab[r, 1] == ab[i, 1]
            g = 0
            while same and g < groups:
                same = rows_c[r, g] == c[i, g]
                g += 1
            if same:
                break
            slot = (slot + 1) & mask
        ids[i] = r
    return ab.shape[0], n_rows


@kernel
def rehash(rows_ab, rows_c, n_rows, table):
    """Fill ``table`` (all -1) with the rows ``[0, n_rows)`` (distinct)."""
    mask = table.size - 1
    for r in range(n_rows):
        slot = _row_slot(rows_ab, rows_c, r, table)
        while table[slot] >= 0:
            slot = (slot + 1) & mask
        table[slot] = r
