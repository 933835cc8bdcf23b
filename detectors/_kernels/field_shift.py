"""Kernels of the per-field distribution test (:mod:`detectors.field_shift`): reference admission and the
window's p-value.

Every event carries two small integer codes, one per field (``a``: span status or log severity; ``b``: span
duration bucket or log template). The reference is a FIFO ring of at most ``capacity`` events' codes with
per-code counts. A window's p-value tests, for every cell (a code seen ``pool_min`` times or more in the
reference, and one pooled cell for all rarer and never-seen codes), whether the window holds more of it
than the reference's share: the one-sided Fisher exact test, i.e. the hypergeometric upper tail of the
window's count given the cell's total over reference and window. The smallest cell p-value times the number
of cells tested (Bonferroni) is the window's p-value: valid whatever the dependence between cells, and the
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
def _field_p(ref, win, muted, pool_min, factor, min_rise, result):
    """Smallest cell p-value of one field (``result[0]``) and the number of cells tested (``result[1]``);
    ``muted`` codes (an operator called their rise normal) are left out of both sides."""
    n_ref = 0
    n_win = 0
    for code in range(ref.size):
        if not muted[code]:
            n_ref += ref[code]
            n_win += win[code]
    best = 1.0
    cells = 0
    pooled_ref = 0
    pooled_win = 0
    if n_ref == 0 or n_win == 0:
        result[0] = 1.0
        result[1] = 0
        return
    for code in range(ref.size):
        if muted[code]:
            continue
        c = ref[code]
        k = win[code]
        if c >= pool_min:
            cells += 1
            if k > 0 and risen(k, n_win, c, n_ref, factor, min_rise):
                best = min(best, upper_tail(k, c + k, n_ref + n_win, n_win))
        else:
            pooled_ref += c
            pooled_win += k
    if pooled_ref + pooled_win > 0:
        cells += 1
        if pooled_win > 0 and risen(pooled_win, n_win, pooled_ref, n_ref, factor, min_rise):
            best = min(best, upper_tail(pooled_win, pooled_ref + pooled_win, n_ref + n_win, n_win))
    result[0] = best
    result[1] = cells


@kernel
def window_p(codes_a, codes_b, start, stop, ref_a, ref_b, muted_a, muted_b, pool_min, factor, min_rise, win_a,
             win_b):
    """The p-value of the window of codes ``[start, stop)`` against the reference counts ``ref_a``/``ref_b``.
    ``win_a``/``win_b`` are zeroed scratch arrays of the counts' sizes (left zeroed)."""
    if stop <= start:
        return 1.0
    for i in range(start, stop):
        win_a[codes_a[i]] += 1
        win_b[codes_b[i]] += 1
    result = np.empty(2)
    _field_p(ref_a, win_a, muted_a, pool_min, factor, min_rise, result)
    best, cells = result[0], result[1]
    _field_p(ref_b, win_b, muted_b, pool_min, factor, min_rise, result)
    best = min(best, result[0])
    cells += result[1]
    for i in range(start, stop):
        win_a[codes_a[i]] = 0
        win_b[codes_b[i]] = 0
    return min(1.0, best * max(cells, 1.0))


@kernel
def admit(codes_a, codes_b, base, upto, ring_a, ring_b, ref_a, ref_b, state):
    """Move the events ``[state[ADMITTED], upto)`` (codes at ``offset - base``) into the reference ring,
    the oldest leaving once it holds ``ring_a.size`` events."""
    capacity = ring_a.size
    head = state[HEAD]
    length = state[LENGTH]
    for offset in range(state[ADMITTED], upto):
        if length == capacity:
            ref_a[ring_a[head]] -= 1
            ref_b[ring_b[head]] -= 1
            head = (head + 1) % capacity
            length -= 1
        j = offset - base
        slot = (head + length) % capacity
        ring_a[slot] = codes_a[j]
        ring_b[slot] = codes_b[j]
        ref_a[codes_a[j]] += 1
        ref_b[codes_b[j]] += 1
        length += 1
    state[HEAD] = head
    state[LENGTH] = length
    if upto > state[ADMITTED]:
        state[ADMITTED] = upto


@kernel
def mute_risen(codes, start, stop, ref, muted, alpha, win):
    """Mark in ``muted`` every code whose count in the window ``[start, stop)`` is above the reference's
    share with a one-sided Fisher p-value under ``alpha``. ``win`` is zeroed scratch (left zeroed)."""
    n_win = stop - start
    n_ref = 0
    for code in range(ref.size):
        n_ref += ref[code]
    for i in range(start, stop):
        win[codes[i]] += 1
    for i in range(start, stop):
        code = codes[i]
        k = win[code]
        if k > 0:
            c = ref[code]
            if k * n_ref > c * n_win and upper_tail(k, c + k, n_ref + n_win, n_win) < alpha:
                muted[code] = True
            win[code] = 0


@kernel
def scan(codes_a, codes_b, base, ends, window, floor, frozen, ring_a, ring_b, ref_a, ref_b, state, muted_a,
         muted_b, pool_min, factor, min_rise, min_reference, alpha, out, win_a, win_b):
    """The windows ending at ``ends`` in order: unless ``frozen``, the events that left the test window
    (it starts at ``max(end - window, floor)``) join the reference, then the window's p-value goes to
    ``out``. Stops after the first p-value at most ``alpha``; returns how many windows were done. A window
    reaching before the codes held (the stream's first events) or a reference under ``min_reference``
    events gives 1."""
    for i in range(ends.size):
        end = ends[i]
        start = max(end - window, floor)
        if not frozen and start > state[ADMITTED]:
            admit(codes_a, codes_b, base, start, ring_a, ring_b, ref_a, ref_b, state)
        p = 1.0
        if end - window >= base and state[LENGTH] >= min_reference:
            p = window_p(codes_a, codes_b, start - base, end - base, ref_a, ref_b, muted_a, muted_b, pool_min,
                         factor, min_rise, win_a, win_b)
        out[i] = p
        if p <= alpha:
            return i + 1
    return ends.size
