"""The cbad window summary: byte histogram, byte entropy and the two window statistics.

A window is ``W`` consecutive events with their code lengths (``bits``). Its statistics are the bits per
byte of the whole window (statistic 0) and the mean bits per byte of its ``top_m`` costliest events
(statistic 1); ``n`` counts each event's bytes plus one separator.
"""

from __future__ import annotations

import math

import numpy as np

from detectors._kernels import kernel

# ``summary`` columns written by :func:`summarize`.
TOTAL = 0  # window bits
BYTES = 1  # window bytes, separators included
ENTROPY = 2  # order-0 byte entropy of the window (0..8 bits)
TOP_BPB = 3  # statistic 1: mean bits/byte of the top_m costliest events
N_EXCESS = 4  # events whose bits exceed ``expected`` bits/byte times their size
GREATER0 = 5  # recent calibration scores >= statistic 0 (the conformal count)
GREATER1 = 6  # recent calibration scores >= statistic 1
SUMMARY_SIZE = 7


@kernel
def histogram_entropy(hist):
    """Order-0 entropy (bits per byte) of a byte histogram."""
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
    return histogram_entropy(counts)


@kernel
def move_histogram(events, hist, remove0, remove1, add0, add1):
    """The bytes of events ``add0..add1`` enter ``hist``, those of events ``remove0..remove1`` leave it."""
    for i in range(add0, add1):
        for j in range(events.starts[i], events.ends[i]):
            hist[events.buf[j]] += 1
    for i in range(remove0, remove1):
        for j in range(events.starts[i], events.ends[i]):
            hist[events.buf[j]] -= 1


@kernel
def summarize(events, w0, s1, top_m, bits, hist, expected_bpb, excess, history, n_history, summary):
    """Summary of the window ``w0..s1`` into ``summary[:SUMMARY_SIZE]``.

    Parameters
    ----------
    events : layout.Events
        The stream's recent events; the window is events ``w0 <= i < s1``.
    w0, s1 : int
        The window's first event and the event after its last.
    top_m : int
        How many of the costliest events statistic 1 averages.
    bits : float64 array
        Code length of each event (indexed like ``events``).
    hist : int64[256]
        The window's byte histogram (entropy).
    expected_bpb : float
        The stream's usual bits per byte (0 when unknown).
    excess : float64 (s1 - w0,)
        Out: each window event's ``bits - expected_bpb * (size + 1)``.
    history : float64 (2, capacity)
        The calibration ring; its first ``n_history`` columns are compared with the statistics.
    n_history : int
        Valid columns of ``history``.
    summary : float64 (>= SUMMARY_SIZE,)
        Out: the columns ``TOTAL`` .. ``GREATER1``.
    """
    starts = events.starts
    ends = events.ends
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
    summary[TOTAL] = total
    summary[BYTES] = size
    summary[ENTROPY] = histogram_entropy(hist)
    summary[TOP_BPB] = top / m if m > 0 else 0.0
    summary[N_EXCESS] = positive
    stat0 = total / size if size > 0 else 0.0
    greater0 = 0
    greater1 = 0
    for k in range(n_history):
        if history[0, k] >= stat0:
            greater0 += 1
        if history[1, k] >= summary[TOP_BPB]:
            greater1 += 1
    summary[GREATER0] = greater0
    summary[GREATER1] = greater1
