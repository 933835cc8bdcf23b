"""Slow, obvious references the detectors' fast paths are checked against. Test code only.

* ``naive_*``: the count model's hashing and code lengths, and the numeric point predictors, written
  plainly (dicts and lists);
* :func:`fit_tail` / :func:`tail_pvalue`: the one tail fit with numpy (sorting, boolean masks, ``np.mean``);
* :class:`PythonCbad`: the cbad detector with every hop done in Python one at a time (admission with held
  events, counts, window summary, numpy calibration and decision): the path the hop kernel replaced.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors._kernels import cm
from detectors._kernels import numeric as K
from detectors._kernels.cbad_decision import ANOMALY, DRIFT
from detectors._kernels.layout import Events, layout
from detectors._kernels.tail import Tail, TailRule
from detectors.calibration import CBAD_TAIL, MIN_CALIBRATION, MIN_SCALE
from detectors.cbad import CbadDetector

# ---------------------------------------------------------------- the count model

_GOLDEN = 0x9E3779B97F4A7C15
_U64 = (1 << 64) - 1


def naive_slot(order: int, ctx: int, sym: int, salt: int, mask: int) -> int:
    key = (ctx << 11) | (order << 9) | sym
    return ((((key ^ salt) * _GOLDEN) & _U64) >> 29) & mask


def _contexts(event: bytes) -> list[tuple[int, int, int, int]]:
    """(c1, c2, c3, symbol) for each coded symbol of an event, including the trailing separator."""
    history = [10, 10, 10]
    out = []
    for sym in [*event, 10]:
        out.append((history[-1], history[-2], history[-3], sym))
        history.append(sym)
    return out


def naive_counts(events: Sequence[bytes], salt: int, table_bits: int) -> dict[int, int]:
    """The count table as a dict ``slot -> count`` (the same hashing as the kernel, none of its tricks)."""
    mask = (1 << table_bits) - 1
    table: dict[int, int] = {}
    for event in events:
        for c1, c2, c3, sym in _contexts(event):
            for order, ctx in ((1, c1), (2, (c2 << 8) | c1), (3, (c3 << 16) | (c2 << 8) | c1)):
                for s in (256, sym):
                    k = naive_slot(order, ctx, s, salt, mask)
                    table[k] = table.get(k, 0) + 1
    return table


def naive_event_bits(table: dict[int, int], event: bytes, salt: int, table_bits: int) -> float:
    """Code length of one event under ``table`` with the documented backoff rule, written plainly."""
    mask = (1 << table_bits) - 1
    total = 0.0
    for c1, c2, c3, sym in _contexts(event):
        for order, ctx, minimum in ((3, (c3 << 16) | (c2 << 8) | c1, 4), (2, (c2 << 8) | c1, 2), (1, c1, 1)):
            n = table.get(naive_slot(order, ctx, 256, salt, mask), 0)
            if n >= minimum:
                ns = min(table.get(naive_slot(order, ctx, sym, salt, mask), 0), n)
                total += math.log2(n + 16.0) - math.log2(ns + 1.0 / 16.0)
                break
        else:
            total += 8.0  # not even the order-1 context was seen: uniform over 256 bytes
    return total


def count_model(salt: int, table_bits: int) -> cm.CountModel:
    """An empty count model with an explicit salt."""
    return cm.CountModel(np.zeros(1 << table_bits, dtype=cm.COUNT_DTYPE), *cm.log_tables(), np.uint64(salt),
                         np.uint64((1 << table_bits) - 1))


# ---------------------------------------------------------------- the numeric predictors


def naive_point_bits(x: np.ndarray, lag_d: int, lag_w: int, size: int, range_n: int,
                     mean_n: int = 16) -> np.ndarray:
    """Slow reference of ``point_bits`` (plain lists, whole history kept): bits then predictions. The mean
    model's mean is the plain mean of the values so far, then (from ``mean_n`` values on) an exponential
    average with weight ``1 / mean_n``."""
    n_models = K.N_MODELS
    out = np.full((x.size, 2 * n_models), np.nan)
    hist: list[float] = []
    level: list[float] = []
    rate = [0.0] * n_models  # share of non-zero errors
    mag = [0.0] * n_models  # mean size of the non-zero errors
    count = [0] * n_models
    mean = 0.0
    ln2 = math.log(2.0)
    for j, v in enumerate(x):
        n = len(hist)
        if min(n, range_n) >= 8 and count[K.STEP] >= 16:
            recent = hist[-min(n, range_n):]
            lo, hi = min(recent), max(recent)
            s = max(mag[K.STEP], 1e-3 * (hi - lo), 1e-9 * (abs(hi) + abs(lo)) + 1e-12)
            if v > hi:
                out[j, K.RANGE], out[j, n_models + K.RANGE] = min((v - hi) / (s * ln2), K.MAX_BITS), hi
            elif v < lo:
                out[j, K.RANGE], out[j, n_models + K.RANGE] = min((lo - v) / (s * ln2), K.MAX_BITS), lo
            else:
                out[j, K.RANGE], out[j, n_models + K.RANGE] = 0.0, v
        for k in range(K.STEP, n_models):
            if k == K.STEP:
                if n < 1:
                    continue
                pred = hist[-1]
            elif k == K.MEAN:
                if n < 1:
                    continue
                pred = mean
            else:
                lag = lag_d if k == K.DAILY else lag_w
                if lag <= 0 or lag + 1 >= size or n < lag + 1:
                    continue
                pred = hist[n - lag] + (level[n - 1] - level[n - 1 - lag])
            err = abs(v - pred)
            floor = 1e-9 * abs(pred) + 1e-12
            hit = err > floor
            if count[k] >= 16:
                out[j, k] = min((err / max(rate[k] * mag[k], floor) - 1.0) / ln2, K.MAX_BITS)
                out[j, n_models + k] = pred
                if hit:
                    mag[k] = mag[k] + (min(err, 5.0 * mag[k]) - mag[k]) / 32 if mag[k] > 0 else err
            elif hit:
                mag[k] += (err - mag[k]) / (round(rate[k] * count[k]) + 1)
            rate[k] += (hit - rate[k]) / min(32, count[k] + 1)  # plain mean over the first 32 errors
            count[k] += 1
        level.append(v if n == 0 else level[-1] + (v - level[-1]) / 8)
        mean += (v - mean) / min(n + 1, mean_n)
        hist.append(float(v))
    return out


# ---------------------------------------------------------------- the tail fit


def fit_tail(history: np.ndarray, rule: TailRule) -> Tail:
    """The documented fit with numpy: threshold, exceedances strictly above it, probability-weighted
    moments, clamped shape, the scale prior for an untrusted fit."""
    h = np.sort(np.asarray(history, dtype=np.float64))
    n = h.size
    k = max(rule.min_tail, int(rule.fraction * n))
    u = float(h[n - 1 - k])
    y = h[h > u] - u
    kx = y.size
    shape, scale = 0.0, 0.0
    if kx:
        a0 = float(np.mean(y))
        a1 = float(np.mean((1.0 - (np.arange(1, kx + 1) - 0.35) / kx) * y))
        if a0 - 2.0 * a1 > 0.0:
            shape, scale = 2.0 - a0 / (a0 - 2.0 * a1), 2.0 * a0 * a1 / (a0 - 2.0 * a1)
        else:
            scale = a0
    shape = min(max(shape, rule.shape_min), rule.shape_max)
    if kx < rule.min_tail or n < rule.min_history or scale <= rule.resolution:
        scale = max(scale, rule.prior_scale)
    return Tail(u, (kx + 1.0) / (n + 1.0), scale, shape)


def tail_pvalue(tail: Tail, score: float) -> float:
    y = max(score - tail.threshold, 0.0)
    if abs(tail.shape) < 1e-9:
        survival = math.exp(-y / tail.scale)
    else:
        z = 1.0 + tail.shape * y / tail.scale
        survival = z ** (-1.0 / tail.shape) if z > 0.0 else 0.0
    return max(tail.share * survival, 1e-300)


def tail_quantile(tail: Tail, alpha: float) -> float:
    q = min(alpha / tail.share, 1.0)
    if abs(tail.shape) < 1e-9:
        return tail.threshold - tail.scale * math.log(q)
    return tail.threshold + tail.scale / tail.shape * (q ** -tail.shape - 1.0)


def numeric_pvalue(history: np.ndarray, score: float, rule: TailRule) -> float:
    """The numeric detector's p-value: the rank, the fitted tail above the threshold."""
    h = np.sort(np.asarray(history, dtype=np.float64))
    n = h.size
    p_rank = (1 + int((h >= score).sum())) / (n + 1)
    k = max(rule.min_tail, int(rule.fraction * n))
    if k >= n or score <= h[n - 1 - k]:
        return p_rank
    return tail_pvalue(fit_tail(h, rule), score)


def cbad_pvalue(history: np.ndarray, score: float, rule: TailRule = CBAD_TAIL) -> float:
    """cbad's p-value: the rank, and beyond the largest score the smaller of 1/(n+1) and the tail."""
    n = history.size
    greater = int(np.count_nonzero(history >= score))
    p = (1.0 + greater) / (n + 1.0)
    if greater > 0 or n < 2 * rule.min_tail:
        return p
    return min(p, tail_pvalue(fit_tail(history, rule), score))


def robust_z(history: np.ndarray, score: float, min_scale: float) -> float:
    if history.size == 0:
        return (score - 0.0) / min_scale
    center = float(np.median(history))
    return (score - center) / max(1.4826 * float(np.median(np.abs(history - center))), min_scale)


# ---------------------------------------------------------------- cbad, one hop at a time in Python


class PythonCbad(CbadDetector):
    """cbad with each hop done in Python (the decision path the hop kernel replaced, kept as its oracle).

    Shares the detector's state and its result assembly (explanations, drift adoption); everything the
    kernel decides is recomputed here: admission with held events, count updates, scoring, the window
    summary, p-values with the numpy tail fit, the decision and the calibration ring.
    """

    def _run_hops(self, hop_ends: range, lo: int, recent: Events, results: list[Any]) -> int:
        end = hop_ends[0]
        p = self.profile
        w = p.window
        base = self._arrays_base
        w0 = end - w
        model = self._model
        added, removed = self._admit(w0)
        if model.counts is not None:  # added first, then removed: the order of the old one-hop path
            for group, add in ((added, True), (removed, False)):
                if group:
                    buf, starts, ends = layout(group)
                    cm.count_events(model.counts, buf, starts, ends, add)
        elif added or removed:
            model.rebuild(self.baseline_events)
        s0 = self._scored_upto
        if end > s0:
            self._bits[s0 - base:end - base] = model.score(self._events.range(s0, end))
        self._scored_upto = end
        self._hist_lo, self._hist_hi = w0, end
        window = self._events.range(w0, end)
        bits = self._bits[w0 - base:end - base]
        sizes = [len(e) + 1 for e in window]
        total = 0.0
        for b in bits.tolist():
            total += b
        n_bytes = sum(sizes)
        per_byte = sorted(b / n for b, n in zip(bits.tolist(), sizes, strict=True))
        m = min(self._top_m, w)
        top = 0.0
        for x in per_byte[w - m:]:
            top += x
        top_bpb = top / m
        hist = np.bincount(np.frombuffer(b"".join(window), dtype=np.uint8), minlength=256)
        total_bytes = int(hist.sum())
        entropy = 0.0
        for c in hist.tolist():
            if c > 0:
                q = c / total_bytes
                entropy -= q * math.log2(q)
        self._hist = hist.astype(np.int64)
        cal = self._calibrator
        stats = (total / n_bytes, top_bpb)
        expected = cal.mean(0)
        rate = stats[0] if math.isnan(expected) else expected
        excess = [b - rate * n for b, n in zip(bits.tolist(), sizes, strict=True)]
        n_excess = sum(x > 0 for x in excess)
        history = [cal.history(i).copy() for i in range(2)]
        greater = [int(np.count_nonzero(history[i] >= stats[i])) for i in range(2)]
        full = len(self._baseline_at) >= p.baseline
        p_value, flags, effect = 1.0, 0, 0.0
        if full and cal.count >= MIN_CALIBRATION:
            ps = [cbad_pvalue(history[i], stats[i]) for i in range(1 if w == 1 else 2)]
            p_value = ps[0] if w == 1 else min(1.0, 2 * min(ps))
        if p_value <= p.false_alarm_target and full and cal.count >= MIN_CALIBRATION and self._frozen:
            # an open incident: flagged against the frozen reference, nothing learnt, no drift
            effect = max(0.0, *(robust_z(history[i], stats[i], MIN_SCALE) for i in range(2)))
            self._taint[w0 - base:end - base] = 1
            flags = ANOMALY
        elif p_value <= p.false_alarm_target and full and cal.count >= MIN_CALIBRATION:
            effect = max(0.0, *(robust_z(history[i], stats[i], MIN_SCALE) for i in range(2)))
            self._taint[w0 - base:end - base] = 1
            self._anomaly_run += 1
            alpha = p.false_alarm_target / 2
            clipped = tuple(min(s, tail_quantile(fit_tail(h, CBAD_TAIL), alpha) if h.size >= 10 else math.inf)
                            for s, h in zip(stats, history, strict=True))
            self._ring_add(clipped)
            flags = ANOMALY | (DRIFT if self._anomaly_run >= self._hop_config.decision.drift_windows else 0)
        else:
            self._anomaly_run = 0
            if full and not self._frozen:
                self._ring_add(stats)
        row = [total, float(n_bytes), entropy, top_bpb, float(n_excess), float(greater[0]), float(greater[1]),
               expected, p_value, float(len(self._baseline_at)), float(cal.count), effect, float(flags)]
        results.append(self._result(end, lo, recent, row, bits.tolist(), excess))
        return 1

    def _ring_add(self, stats: tuple[float, ...]) -> None:
        cal = self._calibrator
        cal.reserve(1)
        values, sums = cal.ring
        for i, s in enumerate(stats):
            old = values[i, cal.position] if cal.count == cal.capacity else 0.0
            sums[i] = sums[i] - old + s
            values[i, cal.position] = s
        cal.position = (cal.position + 1) % cal.capacity
        cal.count = min(cal.count + 1, cal.capacity)

    def _admit(self, w0: int) -> tuple[list[bytes], list[bytes]]:
        """Events that left the window enter the baseline, unless held by an anomaly that still lasts."""
        base = self._arrays_base
        # the baseline and held events as stream offsets (``_baseline_at``, ``_held_at``)
        leaving = range(self._admitted_upto, max(w0, self._admitted_upto))
        added_at: list[int] = []
        if self._frozen:  # an open incident: every leaving event is held, the baseline stays
            self._held_at.extend(leaving)
        elif self._anomaly_run == 0:
            added_at = [*self._held_at, *leaving]
            self._held_at = []
        else:
            for off in range(self._admitted_upto, w0):
                (self._held_at if self._taint[off - base] else added_at).append(off)
        if len(self._held_at) > self.profile.baseline:
            del self._held_at[: len(self._held_at) - self.profile.baseline]
        self._admitted_upto = max(self._admitted_upto, w0)
        joined = np.concatenate((self._baseline_at, np.array(added_at, np.int64)))
        overflow = max(0, len(joined) - self.profile.baseline)
        removed_at = joined[:overflow].tolist()
        self._baseline_at = joined[overflow:]
        return self._events.take(added_at), self._events.take(removed_at)
