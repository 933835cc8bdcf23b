"""Hashed order-1..3 byte count model: code lengths in bits, no coder.

All orders share one ``uint16`` table of ``2**k`` slots. For context ``ctx`` of order ``o`` the slot of
symbol ``s`` holds n(ctx, s) and the slot of the pseudo-symbol 256 holds n(ctx); slots are a salted
multiplicative hash of ``(ctx, o, s)`` (see :func:`slot`). Each event is coded on its own: its context starts
as if preceded by separators, and a trailing separator (``\\n``) is coded so the model pays for the end.
Hence an event's code length depends only on the event and the counts, never on its neighbours.

Counts are 16-bit and *stick* at ``SATURATED``: a slot that reaches it is never incremented nor decremented
again (until the table is rebuilt). Halving on saturation, as adaptive coders do, would break the exact
add/remove bookkeeping of a sliding baseline; a sticky maximum keeps the table a deterministic function of
the sequence of additions and removals, and exact whenever no slot reaches 65,535 (a slot needs that many
occurrences of one context, or colliding contexts, inside the baseline).

Prediction (decoder-computable backoff): use the highest order whose context total reaches
``MIN_TOTAL[o]`` (a uniform 8 bits when even the order-1 context is unseen) and charge
``-log2((n_s + a) / (n + 256 a))`` with ``a = 1/16``
(``n_s`` clipped to ``n`` against hash collisions). Each order's estimate is a proper distribution, and the
order is chosen from counts the decoder also has, so the sum is a true code length.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np

from detectors._kernels import kernel

SEPARATOR = 10
ALPHA = 1.0 / 16.0
TOTAL_SYMBOL = 256
MIN_TOTAL_O3 = 4
MIN_TOTAL_O2 = 2
MIN_TOTAL_O1 = 1
UNIFORM_BITS = 8.0
SATURATED = 65535
COUNT_DTYPE = np.uint16
LOG_TABLE_SIZE = 1 << 16
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


class CountModel(NamedTuple):
    """The count model's arrays, as every kernel of this module takes them."""

    table: np.ndarray
    """uint16[2**bits]: n(ctx, s) and n(ctx) of the baseline at salted hashed slots (see :func:`slot`), sticky
    at ``SATURATED``."""
    log_total: np.ndarray
    """float64: ``log2(n + 256a)`` for small ``n`` (:func:`log_tables`)."""
    log_symbol: np.ndarray
    """float64: ``log2(n_s + a)`` for small ``n_s``."""
    salt: np.uint64
    """Salts the slot hash (from the detector's seed)."""
    mask: np.uint64
    """``2**bits - 1``."""


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
    c = tab[k]
    if c == SATURATED:
        return
    if add:
        tab[k] = c + 1
    else:
        tab[k] = c - 1


@kernel
def _count_event(tab, salt, mask, buf, start, end, add):
    c1: Any = SEPARATOR  # then the previous symbols (int64 in numba)
    c2: Any = SEPARATOR
    c3: Any = SEPARATOR
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
    c1: Any = SEPARATOR  # then the previous symbols (int64 in numba)
    c2: Any = SEPARATOR
    c3: Any = SEPARATOR
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
def count_events(model, buf, starts, ends, add):
    """Add (``add=True``) or remove the counts of every event ``buf[starts[i]:ends[i]]`` + separator."""
    for i in range(starts.size):
        _count_event(model.table, model.salt, model.mask, buf, starts[i], ends[i], add)


@kernel
def score_events(model, buf, starts, ends, i0, i1, out_bits):
    """Code length in bits of each event ``i0 <= i < i1`` (plus its separator) under the counts, into
    ``out_bits[i - i0]``; returns their sum."""
    none = np.empty(0, np.float64)
    total = 0.0
    for i in range(i0, i1):
        bits = _event_bits(model.table, model.log_total, model.log_symbol, model.salt, model.mask, buf,
                           starts[i], ends[i], none)
        out_bits[i - i0] = bits
        total += bits
    return total


@kernel
def byte_bits(model, buf, start, end, out):
    """Per-byte code lengths of one event into ``out[:end - start]``; returns the event total."""
    return _event_bits(model.table, model.log_total, model.log_symbol, model.salt, model.mask, buf, start,
                       end, out)


@kernel
def adaptive_bits(model, buf, starts, ends, i0, i1):
    """Code length of events ``i0..i1`` coded one after another, each learnt after it is coded.

    This is what the model alone would compress the block to, starting from the counts in ``model.table``
    (which it updates); with a zero table it is the block's own compressed size in bits.
    """
    none = np.empty(0, np.float64)
    total = 0.0
    for i in range(i0, i1):
        total += _event_bits(model.table, model.log_total, model.log_symbol, model.salt, model.mask, buf,
                             starts[i], ends[i], none)
        _count_event(model.table, model.salt, model.mask, buf, starts[i], ends[i], True)
    return total


@kernel
def leave_one_out_bits(model, buf, starts, ends, i0, i1, out_bits):
    """Code lengths of events ``i0..i1`` scored against the counts *without their own* (removed, scored,
    added back: the table is unchanged afterwards)."""
    for i in range(i0, i1):
        _count_event(model.table, model.salt, model.mask, buf, starts[i], ends[i], False)
    score_events(model, buf, starts, ends, i0, i1, out_bits)
    for i in range(i0, i1):
        _count_event(model.table, model.salt, model.mask, buf, starts[i], ends[i], True)


@kernel
def take_nonzero(table, out_slots, out_counts):
    """Move the nonzero slots of ``table`` (ascending) and their counts into ``out_slots``/``out_counts``
    and zero them in ``table``; returns how many. If there are ``out_slots.size`` or more, returns -1 with
    ``table`` unchanged. (Each slot is written, kept by moving on when not zero: no branch to mispredict.)"""
    j = 0
    last = out_slots.size - 1
    for k in range(table.size):
        c = table[k]
        out_slots[j] = k
        out_counts[j] = c
        j += c != 0
        if j == last:
            return -1
    for i in range(j):
        table[out_slots[i]] = 0
    return j


@kernel
def put_slots(table, slots, counts):
    """``table[slots] = counts`` (the inverse of :func:`take_nonzero` on a zeroed table)."""
    for j in range(slots.size):
        table[slots[j]] = counts[j]
