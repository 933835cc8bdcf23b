"""Every hop of a cbad ``update`` in one kernel call: admission, scoring, window summary, decision.

Per hop ending at ``end`` (window ``w0 = end - W .. end``):

1. admission: the events that left the window (``ADMITTED .. w0``) enter the baseline (a FIFO of B
   events) and the oldest leave it; while an anomaly lasts, events of anomalous windows (``taint``) are
   held out instead and enter with the first hop after it (the held queue keeps at most B of them); while
   an incident is open (``state[FROZEN]``) every leaving event is held and the baseline stays as it was;
2. scoring: each event new since the last hop gets its code length given the baseline;
3. the window summary (:mod:`detectors._kernels.cbad_window`) and
4. the decision (:mod:`detectors._kernels.cbad_decision`), which marks an anomalous window's events.

The loop stops after an anomalous window (the caller explains it with the model as it is at that hop,
adopts a drift, and its incident tracker may open an incident), after every window while frozen (the
tracker may close the incident), and, for a model that scores outside numba (the zlib and zstd oracles),
after each admission, with ``state[PHASE] = NEEDS_SCORES``: the caller scores the new events into ``bits``
and calls again with ``PHASE = SCORES_GIVEN`` and the same first hop.

Events are addressed by *refs*: ``i >= 0`` is event ``i`` of ``events`` (the stream's recent events),
``-1 - j`` event ``j`` of ``extra`` (the oldest baseline events that may leave during the call, then the
events held before it). ``fifo[FIFO_HEAD:FIFO_LEN]`` are the refs of the baseline events that may leave,
oldest first (the rest of the baseline is older than the call and stays); ``held[HELD_HEAD:HELD_LEN]`` the
held ones.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from detectors._kernels import kernel
from detectors._kernels.cbad_decision import (
    ANOMALY,
    ANOMALY_RUN,
    BASELINE_LEN,
    CAL_COUNT,
    CAL_POSITION,
    FROZEN,
    DecisionConfig,
    decide,
)
from detectors._kernels.cbad_window import (
    BYTES,
    GREATER0,
    GREATER1,
    N_EXCESS,
    SUMMARY_SIZE,
    TOP_BPB,
    TOTAL,
    move_histogram,
    summarize,
)
from detectors._kernels.cm import _count_event, _event_bits

# ``state`` (int64; read and updated). Offsets are indices into ``events``.
SCORED = 0  # events before this have their code length in ``bits``
ADMITTED = 1  # events before this have left the window
HIST_LO = 2  # ``hist`` counts the bytes of events [HIST_LO, HIST_HI)
HIST_HI = 3
# BASELINE_LEN, CAL_COUNT, CAL_POSITION, ANOMALY_RUN = 4, 5, 6, 7 (the decision's)
FIFO_HEAD = 8
FIFO_LEN = 9
HELD_HEAD = 10
HELD_LEN = 11
PHASE = 12
# FROZEN = 13 (the decision's)
STATE_SIZE = 14
# the caller builds ``state`` positionally in this order
_ORDER = (SCORED, ADMITTED, HIST_LO, HIST_HI, BASELINE_LEN, CAL_COUNT, CAL_POSITION, ANOMALY_RUN, FIFO_HEAD,
          FIFO_LEN, HELD_HEAD, HELD_LEN, PHASE, FROZEN)
assert tuple(range(STATE_SIZE)) == _ORDER

# PHASE values
READY = 0
NEEDS_SCORES = 1  # the current hop is admitted; the caller scores its new events
SCORES_GIVEN = 2  # the caller scored them: resume at the summary

# ``out`` columns, one row per hop (the first SUMMARY_SIZE as ``cbad_window.summarize``).
EXPECTED = SUMMARY_SIZE  # the calibration mean used for ``excess`` (NaN: none yet, the window's own rate)
P_VALUE = SUMMARY_SIZE + 1
BASELINE_EVENTS = SUMMARY_SIZE + 2
CAL_WINDOWS = SUMMARY_SIZE + 3  # ring size after this hop's decision
EFFECT = SUMMARY_SIZE + 4
FLAGS = SUMMARY_SIZE + 5  # cbad_decision.ANOMALY | DRIFT
OUT_COLUMNS = SUMMARY_SIZE + 6

MAX_PAIRS = 4096  # compare entering and leaving events pairwise only for hops of ordinary size
SCORE_LOOKBACK = 32  # how many earlier new events of the hop an event is compared with


class HopConfig(NamedTuple):
    hop: int
    """H: a window ends every H events."""
    window: int
    """W: events per window."""
    top_m: int
    """Costliest events averaged by statistic 1."""
    internal: bool
    """The count model scores in the kernel; False: the caller scores (``NEEDS_SCORES``)."""
    decision: DecisionConfig


@kernel
def _same_bytes(x, x0, y, y0, n):
    j = 0
    while j < n and x[x0 + j] == y[y0 + j]:
        j += 1
    return j == n


@kernel
def _locate(refs, r0, r1, events, extra, in_extra, starts, ends):
    """Where refs ``refs[r0:r1]`` point: ``in_extra[q]``, ``starts[q]``, ``ends[q]`` for ``q = r - r0``."""
    for q in range(r1 - r0):
        ref = refs[r0 + q]
        if ref >= 0:
            in_extra[q] = False
            starts[q], ends[q] = events.starts[ref], events.ends[ref]
        else:
            in_extra[q] = True
            starts[q], ends[q] = extra.starts[-1 - ref], extra.ends[-1 - ref]


@kernel
def _apply_counts(model, events, extra, fifo, enter0, enter1, remove0, remove1):
    """Refs ``fifo[enter0:enter1]`` enter the counts of ``model``, ``fifo[remove0:remove1]`` leave them
    (``events``/``extra``: where the refs point).

    Canonical events repeat a lot, so an entering event often equals a leaving one (30-40 % of them on the
    benchmark streams): their count changes cancel exactly (integer counts), so neither is applied.
    """
    n_enter = enter1 - enter0
    n_remove = remove1 - remove0
    e_extra = np.empty(n_enter, np.bool_)
    e_start = np.empty(n_enter, np.int64)
    e_end = np.empty(n_enter, np.int64)
    r_extra = np.empty(n_remove, np.bool_)
    r_start = np.empty(n_remove, np.int64)
    r_end = np.empty(n_remove, np.int64)
    _locate(fifo, enter0, enter1, events, extra, e_extra, e_start, e_end)
    _locate(fifo, remove0, remove1, events, extra, r_extra, r_start, r_end)
    cancelled = np.zeros(n_remove, np.bool_)
    match = n_enter * n_remove <= MAX_PAIRS
    tab, salt, mask = model.table, model.salt, model.mask
    for e in range(n_enter):
        n = e_end[e] - e_start[e]
        ebuf = extra.buf if e_extra[e] else events.buf  # one reference per entering event
        keep = True
        if match:
            for q in range(n_remove):
                if cancelled[q] or r_end[q] - r_start[q] != n:
                    continue
                if r_extra[q]:
                    same = _same_bytes(ebuf, e_start[e], extra.buf, r_start[q], n)
                else:
                    same = _same_bytes(ebuf, e_start[e], events.buf, r_start[q], n)
                if same:
                    cancelled[q] = True
                    keep = False
                    break
        if keep:
            _count_event(tab, salt, mask, ebuf, e_start[e], e_end[e], True)
    for q in range(n_remove):
        if not cancelled[q]:
            if r_extra[q]:
                _count_event(tab, salt, mask, extra.buf, r_start[q], r_end[q], False)
            else:
                _count_event(tab, salt, mask, events.buf, r_start[q], r_end[q], False)


@kernel
def _admit(model, internal, events, extra, taint, w0, baseline_size, state, fifo, held):
    """Step 1 of a hop (see the module docstring).

    Parameters
    ----------
    model : cm.CountModel
        The baseline's counts; updated only when ``internal``.
    internal : bool
        The counts are the model (False: the caller's model learns the baseline from the queues).
    events, extra : layout.Events
        Where refs point (see the module docstring).
    taint : uint8 array
        Per event of ``events``: inside an anomalous window.
    w0 : int
        The hop's window start: events before it leave the window.
    baseline_size : int
        B; also the most events held at once.
    state : int64[STATE_SIZE]
        ``ADMITTED``, ``ANOMALY_RUN``, ``BASELINE_LEN`` and the queue bounds, read and updated.
    fifo, held : int64 arrays
        The baseline FIFO and the held queue of refs.
    """
    a = state[ADMITTED]
    b = max(w0, a)
    state[ADMITTED] = b
    enter0 = state[FIFO_LEN]
    n = enter0
    if state[FROZEN]:  # an open incident: nothing enters the frozen reference, every event is held
        for i in range(a, b):
            held[state[HELD_LEN]] = i
            state[HELD_LEN] += 1
        state[HELD_HEAD] = max(state[HELD_HEAD], state[HELD_LEN] - baseline_size)
    elif state[ANOMALY_RUN] == 0:  # no anomaly lasts: what was held enters first, then what left the window
        for h in range(state[HELD_HEAD], state[HELD_LEN]):
            fifo[n] = held[h]
            n += 1
        state[HELD_HEAD] = state[HELD_LEN]
        for i in range(a, b):
            fifo[n] = i
            n += 1
    else:
        for i in range(a, b):
            if taint[i]:
                held[state[HELD_LEN]] = i
                state[HELD_LEN] += 1
            else:
                fifo[n] = i
                n += 1
        state[HELD_HEAD] = max(state[HELD_HEAD], state[HELD_LEN] - baseline_size)
    state[FIFO_LEN] = n
    size = state[BASELINE_LEN] + (n - enter0)
    n_remove = max(0, size - baseline_size)
    head = state[FIFO_HEAD]
    if internal:
        _apply_counts(model, events, extra, fifo, enter0, n, head, head + n_remove)
    state[FIFO_HEAD] = head + n_remove
    state[BASELINE_LEN] = size - n_remove


@kernel
def _score_new(model, events, s0, s1, bits):
    """Code lengths of events ``s0..s1`` into ``bits``, reusing the code length of an identical event
    scored earlier in the same hop (same table, so the same value, bit for bit)."""
    buf, starts, ends = events.buf, events.starts, events.ends
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
            bits[i] = _event_bits(model.table, model.log_total, model.log_symbol, model.salt, model.mask, buf,
                                  starts[i], ends[i], none)


@kernel
def hops(model, events, extra, bits, taint, hist, ring, first_end, n_hops, config, state, fifo, held, out,
         excess_out):
    """Run up to ``n_hops`` hops ending at ``first_end``, ``first_end + hop``, ...; returns how many were
    decided (their rows of ``out`` and ``excess_out`` are filled).

    Parameters
    ----------
    model : cm.CountModel
        The baseline's counts (updated in place); unused when ``config.internal`` is False.
    events : layout.Events
        The stream's recent events, from the oldest one this call reads (offsets below are its indices).
    extra : layout.Events
        The baseline's oldest events that may leave during the call, then the held events.
    bits : float64 array
        Code length of each of ``events`` once scored (written for the new events).
    taint : uint8 array
        1 for each of ``events`` inside an anomalous window (read when admitting; written on anomalies).
    hist : int64[256]
        Byte histogram of the events ``[HIST_LO, HIST_HI)`` (moved to each window).
    ring : cbad_calibration.Ring
        The calibration ring (updated by the decisions).
    first_end, n_hops : int
        The hops to run.
    config : HopConfig
        Window sizes, scoring mode and the decision's configuration.
    state : int64[STATE_SIZE]
        Marks, counters and queue bounds (the constants above), read and updated.
    fifo, held : int64 arrays
        The baseline FIFO and the held queue of refs (see the module docstring); room for every event the
        call can admit or hold.
    out : float64 (n_hops, OUT_COLUMNS)
        One row per decided hop.
    excess_out : float64 (n_hops, W)
        Per hop, each window event's bits minus the expected bits for its size.
    """
    window = config.window
    stats = np.empty(2, np.float64)
    greater = np.empty(2, np.int64)
    for k in range(n_hops):
        end = first_end + k * config.hop
        w0 = end - window
        if state[PHASE] == SCORES_GIVEN:
            state[PHASE] = READY
        else:
            _admit(model, config.internal, events, extra, taint, w0, config.decision.baseline, state, fifo,
                   held)
            if not config.internal:
                state[PHASE] = NEEDS_SCORES
                return k
            _score_new(model, events, state[SCORED], end, bits)
        state[SCORED] = end
        lo, hi = state[HIST_LO], state[HIST_HI]
        move_histogram(events, hist, lo, min(w0, hi), max(hi, w0), end)
        state[HIST_LO] = w0
        state[HIST_HI] = end
        count = state[CAL_COUNT]
        row = out[k]
        excess = excess_out[k]
        expected = ring.sums[0] / count if count > 0 else 0.0
        summarize(events, w0, end, config.top_m, bits, hist, expected, excess, ring.values, count, row)
        stats[0] = row[TOTAL] / row[BYTES]
        stats[1] = row[TOP_BPB]
        if count > 0:
            row[EXPECTED] = expected
        else:  # no calibration yet: the window's own rate is the reference
            row[EXPECTED] = np.nan
            positive = 0
            for j in range(window):
                i = w0 + j
                excess[j] = bits[i] - stats[0] * (events.ends[i] - events.starts[i] + 1)
                if excess[j] > 0:
                    positive += 1
            row[N_EXCESS] = positive
        row[BASELINE_EVENTS] = state[BASELINE_LEN]
        greater[0] = np.int64(row[GREATER0])
        greater[1] = np.int64(row[GREATER1])
        verdict = decide(ring, stats, greater, config.decision, state)
        row[P_VALUE] = verdict.p_value
        row[EFFECT] = verdict.effect
        row[FLAGS] = verdict.flags
        row[CAL_WINDOWS] = state[CAL_COUNT]
        if verdict.flags & ANOMALY:
            for i in range(w0, end):
                taint[i] = 1
            return k + 1
        if state[FROZEN]:
            return k + 1
    return n_hops
