"""Hashed order-1..3 byte count model: code lengths in bits, no coder.

All orders share one ``uint32`` table of ``2**k`` slots. For context ``ctx`` of order ``o`` the slot of
symbol ``s`` holds n(ctx, s) and the slot of the pseudo-symbol 256 holds n(ctx); slots are a salted
multiplicative hash of ``(ctx, o, s)`` (see :func:`slot`). Each event is coded on its own: its context starts
as if preceded by separators, and a trailing separator (``\\n``) is coded so the model pays for the end.
Hence an event's code length depends only on the event and the counts, never on its neighbours.

Prediction (decoder-computable backoff): use the highest order whose context total reaches
``MIN_TOTAL[o]`` (a uniform 8 bits when even the order-1 context is unseen) and charge
``-log2((n_s + a) / (n + 256 a))`` with ``a = 1/16``
(``n_s`` clipped to ``n`` against hash collisions). Each order's estimate is a proper distribution, and the
order is chosen from counts the decoder also has, so the sum is a true code length.
"""

from __future__ import annotations

import math

import numpy as np

from detectors._kernels import kernel

SEPARATOR = 10
ALPHA = 1.0 / 16.0
TOTAL_SYMBOL = 256
MIN_TOTAL_O3 = 4
MIN_TOTAL_O2 = 2
MIN_TOTAL_O1 = 1
UNIFORM_BITS = 8.0
LOG_TABLE_SIZE = 1 << 16
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def log_tables() -> tuple[np.ndarray, np.ndarray]:
    """``log2(n + 256a)`` and ``log2(n_s + a)`` for counts below ``LOG_TABLE_SIZE`` (no log call per byte)."""
    n = np.arange(LOG_TABLE_SIZE, dtype=np.float64)
    return np.log2(n + 256.0 * ALPHA), np.log2(n + ALPHA)


@kernel
def slot(order, ctx, sym, salt, mask):
    key = (np.uint64(ctx) << np.uint64(11)) | (np.uint64(order) << np.uint64(9)) | np.uint64(sym)
    return np.int64(((key ^ salt) * _GOLDEN >> np.uint64(29)) & mask)


@kernel
def _cost(lt, ls, n, ns):
    if ns > n:
        ns = n
    a = lt[n] if n < lt.size else math.log2(n + 256.0 * ALPHA)
    b = ls[ns] if ns < ls.size else math.log2(ns + ALPHA)
    return a - b


@kernel
def _bump(tab, k, add):
    if add:
        tab[k] += np.uint32(1)
    else:
        tab[k] -= np.uint32(1)


@kernel
def _count_event(tab, salt, mask, buf, start, end, add):
    c1 = SEPARATOR
    c2 = SEPARATOR
    c3 = SEPARATOR
    for j in range(start, end + 1):
        sym = np.int64(buf[j]) if j < end else SEPARATOR
        ctx2 = (c2 << 8) | c1
        ctx3 = (c3 << 16) | ctx2
        _bump(tab, slot(1, c1, TOTAL_SYMBOL, salt, mask), add)
        _bump(tab, slot(1, c1, sym, salt, mask), add)
        _bump(tab, slot(2, ctx2, TOTAL_SYMBOL, salt, mask), add)
        _bump(tab, slot(2, ctx2, sym, salt, mask), add)
        _bump(tab, slot(3, ctx3, TOTAL_SYMBOL, salt, mask), add)
        _bump(tab, slot(3, ctx3, sym, salt, mask), add)
        c3 = c2
        c2 = c1
        c1 = sym


@kernel
def _event_bits(tab, lt, ls, salt, mask, buf, start, end, byte_bits):
    c1 = SEPARATOR
    c2 = SEPARATOR
    c3 = SEPARATOR
    total = 0.0
    for j in range(start, end + 1):
        sym = np.int64(buf[j]) if j < end else SEPARATOR
        # Backoff written inline: a helper call per byte costs more than the lookups (numba passes
        # each array as ~7 scalars and does not always inline).
        ctx = (c3 << 16) | (c2 << 8) | c1
        order = 3
        n = np.int64(tab[slot(3, ctx, TOTAL_SYMBOL, salt, mask)])
        if n < MIN_TOTAL_O3:
            order = 2
            ctx = (c2 << 8) | c1
            n = np.int64(tab[slot(2, ctx, TOTAL_SYMBOL, salt, mask)])
            if n < MIN_TOTAL_O2:
                order = 1
                ctx = c1
                n = np.int64(tab[slot(1, ctx, TOTAL_SYMBOL, salt, mask)])
        if n < MIN_TOTAL_O1:
            bits = UNIFORM_BITS
        else:
            bits = _cost(lt, ls, n, np.int64(tab[slot(order, ctx, sym, salt, mask)]))
        total += bits
        if j < end and byte_bits.size > 0:
            byte_bits[j - start] = bits
        c3 = c2
        c2 = c1
        c1 = sym
    return total


@kernel
def count_events(tab, salt, mask, buf, starts, ends, add):
    """Add (``add=True``) or remove the counts of every event ``buf[starts[i]:ends[i]]`` + separator."""
    for i in range(starts.size):
        _count_event(tab, salt, mask, buf, starts[i], ends[i], add)


@kernel
def score_events(tab, lt, ls, salt, mask, buf, starts, ends, i0, i1, out_bits):
    """Code length in bits of each event ``i0 <= i < i1`` (plus its separator) under the counts in ``tab``."""
    none = np.empty(0, np.float64)
    total = 0.0
    for i in range(i0, i1):
        bits = _event_bits(tab, lt, ls, salt, mask, buf, starts[i], ends[i], none)
        out_bits[i - i0] = bits
        total += bits
    return total


@kernel
def byte_bits(tab, lt, ls, salt, mask, buf, start, end, out):
    """Per-byte code lengths of one event into ``out[:end - start]``; returns the event total."""
    return _event_bits(tab, lt, ls, salt, mask, buf, start, end, out)


@kernel
def adaptive_bits(tab, lt, ls, salt, mask, buf, starts, ends, i0, i1):
    """Code length of events ``i0..i1`` coded one after another, each learnt after it is coded.

    This is what the model alone would compress the block to, starting from the counts in ``tab``
    (which it updates); with a zero table it is the block's own compressed size in bits.
    """
    none = np.empty(0, np.float64)
    total = 0.0
    for i in range(i0, i1):
        total += _event_bits(tab, lt, ls, salt, mask, buf, starts[i], ends[i], none)
        _count_event(tab, salt, mask, buf, starts[i], ends[i], True)
    return total


@kernel
def _histogram_entropy(hist):
    n = 0
    for c in hist:
        n += c
    if n <= 0:
        return 0.0
    h = 0.0
    for c in hist:
        if c > 0:
            p = c / n
            h -= p * math.log2(p)
    return h


@kernel
def byte_entropy(buf, start, end):
    """Order-0 empirical entropy (bits per byte, 0..8) of ``buf[start:end]``."""
    counts = np.zeros(256, np.int64)
    for j in range(start, end):
        counts[buf[j]] += 1
    return _histogram_entropy(counts)


@kernel
def hop(tab, lt, ls, salt, mask, chg_buf, chg_lens, n_added, buf, starts, ends, s0, s1, w0, top_m, bits, hist,
        hist_remove0, hist_remove1, hist_add0, hist_add1, expected_bpb, excess, history, n_history, out):
    """One hop, all in one call.

    1. The first ``n_added`` events of ``chg_buf`` (lengths ``chg_lens``, concatenated) enter the baseline
       counts; the others leave them.
    2. Events ``s0..s1`` of ``buf`` (new since the last hop) are scored into ``bits[s0:s1]``; the bytes of
       events ``hist_add0..hist_add1`` enter the window byte histogram ``hist``, those of
       ``hist_remove0..hist_remove1`` leave it.
    3. For the window ``w0..s1``: ``excess[k] = bits - expected_bpb * (size + 1)`` per event, and ``out`` =
       [window bits, window bytes (with separators), window byte entropy, mean bits/byte of the ``top_m``
       costliest events, number of events with positive excess, then for each of the two statistics
       (bits/byte = out[0]/out[1], and out[3]) how many of the ``n_history`` recent scores in
       ``history[stat]`` are >= it (the conformal count)].
    """
    pos = 0
    for i in range(chg_lens.size):
        _count_event(tab, salt, mask, chg_buf, pos, pos + chg_lens[i], i < n_added)
        pos += chg_lens[i]
    score_events(tab, lt, ls, salt, mask, buf, starts, ends, s0, s1, bits[s0:s1])
    _move_histogram(buf, starts, ends, hist, hist_remove0, hist_remove1, hist_add0, hist_add1)
    _summarize(buf, starts, ends, w0, s1, top_m, bits, hist, expected_bpb, excess, history, n_history, out)


@kernel
def _move_histogram(buf, starts, ends, hist, remove0, remove1, add0, add1):
    for i in range(add0, add1):
        for j in range(starts[i], ends[i]):
            hist[buf[j]] += 1
    for i in range(remove0, remove1):
        for j in range(starts[i], ends[i]):
            hist[buf[j]] -= 1


@kernel
def _summarize(buf, starts, ends, w0, s1, top_m, bits, hist, expected_bpb, excess, history, n_history, out):
    """The window ``w0..s1`` summary of :func:`hop` (its step 3) into ``excess`` and ``out[:7]``."""
    w = s1 - w0
    per_byte = np.empty(w, np.float64)
    total = 0.0
    size = 0
    positive = 0
    for k in range(w):
        i = w0 + k
        n = ends[i] - starts[i] + 1
        total += bits[i]
        size += n
        per_byte[k] = bits[i] / n
        excess[k] = bits[i] - expected_bpb * n
        if excess[k] > 0:
            positive += 1
    per_byte.sort()
    m = min(top_m, w)
    top = 0.0
    for k in range(w - m, w):
        top += per_byte[k]
    out[0] = total
    out[1] = size
    out[2] = _histogram_entropy(hist)
    out[3] = top / m if m > 0 else 0.0
    out[4] = positive
    stat0 = total / size if size > 0 else 0.0
    greater0 = 0
    greater1 = 0
    for k in range(n_history):
        if history[0, k] >= stat0:
            greater0 += 1
        if history[1, k] >= out[3]:
            greater1 += 1
    out[5] = greater0
    out[6] = greater1
