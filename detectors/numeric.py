"""Numeric (metric) stream detector: predict each value, code the error, calibrate windows of bits.

The detector follows the compression view of anomaly detection used across this package, applied to
numbers the way time-series compressors work: each value is *predicted* from the stream's recent
shape, and the prediction error is charged its code length in bits under an adaptive Laplace code.
Four predictors run side by side (see ``detectors._kernels.numeric``): the recent range, the
previous value, the value one day earlier and one week earlier (level-adjusted; the seasonal models
need ``timestamps``, from which the sampling period is taken). An anomaly is a run of values that
cost many more bits than usual under a model that normally predicts the stream well. A model's error
scale is the rate of its non-zero errors times their (clipped) mean size, so sparse streams (a
counter's deltas: mostly 0, sometimes 1) keep a finite scale; the range model measures how far a
value lies beyond the recent range in units of that size (a typical move).

Windows and calibration
    Windows are counted in values: ``window`` values, a new window every ``hop`` values (from the
    profile). A window's statistic per model is the sum of ``max(0, bits - hinge)`` over its last
    ``spans[k]`` values (default: the whole window; the range model is not hinged). Its p-value is the
    conformal rank among that model's statistics of recent normal windows, ``(1 + #{h >= s}) / (n + 1)``
    over a history of ``calibration`` windows. Above the top ``tail_frac`` (5 %) of the history the
    p-value comes from a generalized Pareto tail fitted to the excesses over that threshold (peaks over
    threshold, method of moments, shape in [``tail_shape_min``, 0.5]), times the share of the history
    strictly above it: values tied at the threshold (a history that is mostly zeros, e.g. the range
    model judging one value at a time) are not exceedances, so a value beyond a rarely-left range is
    as rare as its history says. While the history is short (< 200 windows), fewer than ``tail_min``
    values lie above the threshold, or the fitted scale is no wider than ``tail_scale_min`` bits (near
    ties: a count stream's statistics sit on a lattice smeared by a drifting scale, nothing to
    extrapolate from), the scale is at least 1/ln 2, i.e. each bit beyond the threshold at least halves
    the probability. This tail is what
    lets targets below ``1 / (n + 1)`` (strict: 1e-4 with n = 1000) be reached. Models are combined
    with a weighted Bonferroni (``p = min_k p_k * sum(w) / w_k`` over the active models); a window is
    anomalous when ``p <= false_alarm_target``. Measured on stationary AR(1) streams the false-alarm
    rate is 0.6-1.0 x the target for the three profiles (docs/quality.md); on sparse counts (Poisson
    0.05) about 0.6 x at sensitive and balanced, lower at strict, where the range statistic is a
    lattice (0, 1, 2 steps past the range) whose attainable p-values straddle its share of the target.

Protecting the baseline, drift
    Windows flagged with ``p <= exclude_factor * target`` never enter the calibration history, and the
    predictors' scales learn from errors clipped at ``clip`` scales, so a spike cannot teach the model
    that spikes are normal. Borderline alarms (``exclude_factor * target < p <= target``) do enter it:
    dropping every alarm cuts the null distribution at the threshold and drags the threshold down (on
    stationary data that feedback gave 5x the target). If anomalous windows persist for
    ``drift_windows`` consecutive windows, the last one is reported once with ``is_drift=True`` and the
    new regime is then learned as normal until a window falls back under the threshold. Anomalous
    windows closer than ``holdoff`` values (default: one window) form one incident;
    ``figures["incident_start"]`` is 1.0 on the first window of each incident.

Figures and explanation
    ``figures``: ``p_value_<model>`` and ``excess_bits_<model>`` (window statistic) per model,
    ``novelty_bits_per_event`` (flagging model's statistic / window), ``incident_start``, ``warm``.
    ``explanation`` (anomalous windows): ``sentence``, ``model`` (the one that flagged), ``top_events``
    (the costliest values: ``offset``, ``observed``, ``expected`` = that model's prediction,
    ``excess_bits``) and ``point_bits`` (``[offset, bits]`` for every value of the window).

Histograms and summaries
    The detector takes one float per point. The gateway feeds a histogram or summary data point as
    separate streams: ``count`` (per-interval delta), ``sum / count`` (mean) and, for histograms,
    quantiles p50/p90/p99 interpolated inside the explicit bucket bounds (summaries carry their own
    quantile values). Monotonic sums are fed as per-interval deltas.

State: small numpy arrays (value ring of ``history`` values, calibration histories); ``snapshot``
writes them with a JSON header (no pickle). Deterministic; ``seed`` is accepted for the common
contract but the detector draws no random numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors import registry
from detectors._kernels import numeric as K
from detectors.base import Severity, WindowResult
from detectors.profiles import DEFAULT_PROFILE, resolve_profile
from detectors.testing import KernelCheck

_MAGIC = b"DLNUM1\n"
_DAY = 86400.0
_TOP_POINTS = 3
_PERIOD_STAMPS = 65  # the sampling period is the median gap of the first 64 gaps
_OLD_F_SIZE = 5  # float state of snapshots written before the error scale was kept as rate x size


def _severity(p: float, target: float) -> Severity:
    if p > target:
        return "none"
    if p > target / 10:
        return "low"
    if p > target / 100:
        return "medium"
    if p > target / 1000:
        return "high"
    return "critical"


class NumericDetector:
    """Streaming detector for one numeric stream (gauge values, deltas, latencies, quantiles).

    ``profile`` / ``baseline`` / ``window`` / ``hop`` / ``false_alarm_target`` as for every detector
    (``baseline`` is the range model's look-back unless ``range_window`` is given). Model knobs:
    ``models`` (subset of range, step, daily, weekly), ``weights`` (weighted Bonferroni, one per model),
    ``spans`` (values of the window each model sums), ``hinge`` (bits a predictor's error may cost for
    free), ``clip`` and ``scale_window`` (robust error scales), ``level_window`` (level adjustment of
    the seasonal predictions), ``history`` (values kept: the weekly lag needs 7 days of samples).
    Calibration knobs: ``calibration``, ``min_calibration``, ``tail_frac``, ``tail_min``,
    ``tail_scale_min``, ``tail_shape_min``, ``exclude_factor``; incidents: ``holdoff``,
    ``drift_windows``. ``seed`` is accepted for the common contract; nothing here is random.

    >>> import numpy as np
    >>> x = 50 + np.random.default_rng(1).normal(0, 1, 3000)
    >>> x[2700] = 80.0
    >>> flagged = [r for r in NumericDetector(profile="balanced").update(x) if r.is_anomaly]
    >>> {r.explanation["top_events"][0]["offset"] for r in flagged}
    {2700}
    """

    kind = "numeric"

    def __init__(self, profile: str = DEFAULT_PROFILE, seed: int = 42, baseline: int | None = None,
                 window: int | None = None, hop: int | None = None,
                 false_alarm_target: float | None = None, history: int = 4096, calibration: int = 1000,
                 min_calibration: int | None = None, hinge: float = 2.0, clip: float = 5.0,
                 scale_window: int = 256, level_window: int = 16, holdoff: int | None = None,
                 drift_windows: int | None = None, tail_frac: float = 0.05, tail_min: int = 10,
                 models: Sequence[str] = K.MODEL_NAMES, range_window: int | None = None,
                 weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0), spans: Sequence[int] | None = None,
                 tail_scale_min: float = 0.1, tail_shape_min: float = 0.0,
                 exclude_factor: float = 0.01) -> None:
        prof = resolve_profile(profile, baseline=baseline, window=window, hop=hop,
                               false_alarm_target=false_alarm_target)
        if history < prof.baseline + 2:
            raise ValueError("history must exceed the baseline")
        if calibration < 20:
            raise ValueError("calibration must hold at least 20 windows")
        self._config: dict[str, Any] = {
            "profile": prof.name, "seed": int(seed), "baseline": prof.baseline, "window": prof.window,
            "hop": prof.hop, "false_alarm_target": prof.false_alarm_target, "history": int(history),
            "calibration": int(calibration),
            "min_calibration": int(min_calibration if min_calibration is not None
                                   else min(calibration, max(20, prof.baseline // prof.hop))),
            "hinge": float(hinge), "clip": float(clip), "scale_window": int(scale_window),
            "level_window": int(level_window),
            "holdoff": int(holdoff if holdoff is not None else prof.window),
            "drift_windows": int(drift_windows if drift_windows is not None
                                 else max(2, prof.baseline // prof.hop)),
            "tail_frac": float(tail_frac), "tail_min": int(tail_min),
            "tail_scale_min": float(tail_scale_min), "tail_shape_min": float(tail_shape_min),
            "exclude_factor": float(exclude_factor),
            "models": [m for m in K.MODEL_NAMES if m in set(models)],
            "range_window": int(range_window if range_window is not None else prof.baseline),
            "weights": [float(w) for w in weights],
            "spans": [int(x) for x in (spans if spans is not None else [prof.window] * K.N_MODELS)],
        }
        if len(self._config["spans"]) != K.N_MODELS or not all(
                1 <= x <= prof.window for x in self._config["spans"]):
            raise ValueError(f"spans must be {K.N_MODELS} integers in [1, window]")
        if len(self._config["weights"]) != K.N_MODELS or min(self._config["weights"]) <= 0:
            raise ValueError(f"weights must be {K.N_MODELS} positive numbers ({', '.join(K.MODEL_NAMES)})")
        unknown = set(models) - set(K.MODEL_NAMES)
        if unknown or not self._config["models"]:
            raise ValueError(f"models must be a non-empty subset of {', '.join(K.MODEL_NAMES)}")
        if not 8 <= self._config["range_window"] < history:
            raise ValueError("range_window must be in [8, history)")
        c = self._config
        self._ring = np.zeros(c["history"])
        self._level = np.zeros(c["history"])
        self._fstate = np.zeros(K.F_SIZE)
        self._istate = np.zeros(K.I_SIZE, dtype=np.int64)
        self._istate[K.I_LAST_ALARM] = -1
        self._cal_ring = np.zeros((K.N_MODELS, c["calibration"]))
        self._cal_sorted = np.zeros((K.N_MODELS, c["calibration"]))
        # last window-1 points (bits, predictions, values) carried into the next update
        self._tail_bits = np.zeros((0, K.N_MODELS))
        self._tail_pred = np.zeros((0, K.N_MODELS))
        self._tail_vals = np.zeros(0)
        self._period = 0.0  # sampling period in seconds (0 = unknown, no seasonal models)
        self._first_stamps: list[float] = []

    # ----------------------------------------------------------------- contract
    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self._config, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def events_seen(self) -> int:
        return int(self._istate[K.I_SEEN])

    @property
    def warmed_up(self) -> bool:
        return bool((self._istate[K.I_CAL_N:K.I_CAL_N + K.N_MODELS]
                     >= self._config["min_calibration"]).any())

    def update(self, values: Any, timestamps: Any = None) -> list[WindowResult]:
        """Feed values (1-D floats, optionally with unix-second timestamps); return completed windows."""
        vals = np.array(values, dtype=np.float64, copy=True).reshape(-1)
        if not np.isfinite(vals).all():
            raise ValueError("values must be finite numbers")
        if timestamps is not None:
            stamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
            if stamps.shape != vals.shape:
                raise ValueError("timestamps must have one entry per value")
            if self._period <= 0 and len(self._first_stamps) + stamps.size >= _PERIOD_STAMPS:
                # the seasonal lags switch on at a fixed point of the stream, whatever the chunking
                cut = _PERIOD_STAMPS - len(self._first_stamps)
                if 0 < cut < vals.size:
                    return self.update(vals[:cut], stamps[:cut]) + self.update(vals[cut:], stamps[cut:])
        lag_d, lag_w = self._lags()  # lags known before this chunk: they apply from the next chunk on
        if timestamps is not None:
            self._learn_period(stamps)
        if vals.size == 0:
            return []
        c = self._config
        n_new = vals.size
        bits = np.empty((n_new, K.N_MODELS))
        pred = np.empty((n_new, K.N_MODELS))
        first_new = self.events_seen
        K.point_bits(vals, lag_d, lag_w, self._ring, self._level, self._fstate, self._istate,
                     c["range_window"], 1.0 / c["scale_window"], c["clip"], 16, 1.0 / c["level_window"],
                     bits, pred)
        for k, name in enumerate(K.MODEL_NAMES):
            if name not in c["models"]:
                bits[:, k] = np.nan
        all_bits = np.concatenate([self._tail_bits, bits])
        all_pred = np.concatenate([self._tail_pred, pred])
        all_vals = np.concatenate([self._tail_vals, vals])
        first = first_new - self._tail_bits.shape[0]
        max_out = n_new // c["hop"] + 2
        out_i = np.zeros((max_out, K.OI_SIZE), dtype=np.int64)
        out_f = np.zeros((max_out, K.OF_SIZE))
        n_out = K.window_scores(all_bits, first, c["window"], c["hop"], c["hinge"],
                                np.asarray(c["weights"], dtype=np.float64),
                                np.asarray(c["spans"], dtype=np.int64), self._cal_ring,
                                self._cal_sorted, self._istate, c["min_calibration"],
                                c["false_alarm_target"], c["exclude_factor"], c["drift_windows"],
                                c["holdoff"], c["tail_frac"], c["tail_min"], c["tail_scale_min"],
                                c["tail_shape_min"], out_i, out_f)
        keep = min(c["window"] - 1, all_bits.shape[0])
        start = all_bits.shape[0] - keep
        self._tail_bits, self._tail_pred = all_bits[start:].copy(), all_pred[start:].copy()
        self._tail_vals = all_vals[start:].copy()
        return [self._result(out_i[j], out_f[j], all_bits, all_pred, all_vals, first) for j in range(n_out)]

    # ----------------------------------------------------------------- internals
    def _learn_period(self, stamps: np.ndarray) -> None:
        """Sampling period = median gap of the first 64 timestamps (fixed afterwards: causal, stable)."""
        if self._period > 0 or stamps.size == 0:
            return
        self._first_stamps.extend(float(s) for s in stamps[: _PERIOD_STAMPS - len(self._first_stamps)])
        if len(self._first_stamps) >= _PERIOD_STAMPS:
            gaps = np.diff(np.asarray(self._first_stamps))
            gaps = gaps[gaps > 0]
            self._period = float(np.median(gaps)) if gaps.size else 0.0

    def _lags(self) -> tuple[int, int]:
        if self._period <= 0:
            return 0, 0
        day = round(_DAY / self._period)
        week = 7 * day
        hist = self._config["history"]
        return (day if 2 <= day < hist - 1 else 0), (week if 2 <= week < hist - 1 else 0)

    def _result(self, oi: np.ndarray, of: np.ndarray, bits: np.ndarray, pred: np.ndarray,
                vals: np.ndarray, first: int) -> WindowResult:
        c = self._config
        end = int(oi[K.O_END])
        start = end - c["window"]
        flags = int(oi[K.O_FLAGS])
        best = int(oi[K.O_BEST])
        p = float(of[K.OF_P])
        is_anomaly = bool(flags & K.FLAG_ANOMALY)
        figures: dict[str, float] = {
            "p_value_" + K.MODEL_NAMES[k]: float(of[K.OF_PK + k]) if np.isfinite(of[K.OF_PK + k]) else 1.0
            for k in range(K.N_MODELS)
        }
        for k in range(K.N_MODELS):
            s = of[K.OF_SK + k]
            figures["excess_bits_" + K.MODEL_NAMES[k]] = float(s) if np.isfinite(s) else 0.0
        excess = figures["excess_bits_" + K.MODEL_NAMES[best]] if best >= 0 else 0.0
        figures["novelty_bits_per_event"] = excess / c["window"]
        figures["incident_start"] = 1.0 if flags & K.FLAG_INCIDENT else 0.0
        figures["warm"] = 1.0 if flags & K.FLAG_WARM else 0.0
        explanation: dict[str, Any] = {}
        if is_anomaly and best >= 0:
            explanation = self._explain(best, start, end, bits, pred, vals, first, p)
        return WindowResult(start_offset=start, end_offset=end, score=min(-math.log10(max(p, 1e-300)), 300.0),
                            p_value=p, is_anomaly=is_anomaly,
                            severity=_severity(p, c["false_alarm_target"]) if is_anomaly else "none",
                            is_drift=bool(flags & K.FLAG_DRIFT), figures=figures, explanation=explanation)

    def _explain(self, best: int, start: int, end: int, bits: np.ndarray, pred: np.ndarray,
                 vals: np.ndarray, first: int, p: float) -> dict[str, Any]:
        rows = np.arange(start - first, end - first)
        cost = bits[rows, best]
        order = rows[np.argsort(-cost, kind="stable")[:_TOP_POINTS]]
        top = [{"offset": int(first + r), "observed": float(vals[r]), "expected": float(pred[r, best]),
                "excess_bits": float(bits[r, best]), "bits": float(bits[r, best]),
                "tokens": [K.MODEL_NAMES[best]]} for r in order]
        lead = top[0]
        model = {"range": "the recent range", "step": "the previous value",
                 "daily": "the daily cycle", "weekly": "the weekly cycle"}[K.MODEL_NAMES[best]]
        sentence = (f"value {lead['observed']:.6g} at offset {lead['offset']} where {model} expected "
                    f"{lead['expected']:.6g} (+{lead['excess_bits']:.1f} bits; window p={p:.2g})")
        return {"sentence": sentence, "model": K.MODEL_NAMES[best], "top_events": top,
                "point_bits": [[int(first + r), float(bits[r, best])] for r in rows]}

    # ----------------------------------------------------------------- persistence
    def snapshot(self) -> bytes:
        header = {"kind": self.kind, "config": self._config, "period": self._period,
                  "first_stamps": self._first_stamps}
        buf = io.BytesIO()
        np.savez(buf, ring=self._ring, level=self._level, fstate=self._fstate, istate=self._istate,
                 cal_ring=self._cal_ring, cal_sorted=self._cal_sorted, tail_bits=self._tail_bits,
                 tail_pred=self._tail_pred, tail_vals=self._tail_vals)
        head = json.dumps(header, sort_keys=True).encode()
        return _MAGIC + struct.pack("<I", len(head)) + head + buf.getvalue()

    @classmethod
    def restore(cls, data: bytes) -> NumericDetector:
        if not data.startswith(_MAGIC):
            raise ValueError("not a numeric detector snapshot")
        off = len(_MAGIC)
        (hlen,) = struct.unpack_from("<I", data, off)
        header = json.loads(data[off + 4: off + 4 + hlen])
        if header.get("kind") != cls.kind:
            raise ValueError("snapshot is not of a numeric detector")
        det = cls(**header["config"])
        det._period = float(header["period"])
        det._first_stamps = [float(x) for x in header["first_stamps"]]
        with np.load(io.BytesIO(data[off + 4 + hlen:]), allow_pickle=False) as arrays:
            for name in ("ring", "level", "fstate", "istate", "cal_ring", "cal_sorted", "tail_bits",
                         "tail_pred", "tail_vals"):
                setattr(det, "_" + name, np.array(arrays[name]))
        if det._fstate.size == _OLD_F_SIZE:  # before the scale was split into rate x size: rate 1
            old, det._fstate = det._fstate, np.zeros(K.F_SIZE)
            det._fstate[:_OLD_F_SIZE] = old
            det._fstate[K.F_RATE:K.F_RATE + K.N_MODELS] = 1.0
            det._fstate[K.F_MAG:K.F_MAG + K.N_MODELS] = old[K.F_SCALE:K.F_SCALE + K.N_MODELS]
        if det._fstate.size != K.F_SIZE:
            raise ValueError("numeric detector snapshot has an unknown state layout")
        return det

    # ----------------------------------------------------------------- conformance helpers
    @classmethod
    def example_events(cls, n: int, seed: int) -> np.ndarray:
        """A stationary noisy series with a level shift over the last 5 % (at least 12 values)."""
        rng = np.random.default_rng(seed)
        x = 10.0 + rng.normal(0.0, 1.0, n)
        k = max(12, n // 20)
        x[max(0, n - k):] += 12.0
        return x

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return {"profile": "sensitive", "baseline": 60, "window": 10, "hop": 5, "history": 256,
                "calibration": 100}


    @classmethod
    def kernel_checks(cls) -> list[KernelCheck]:
        """The point kernel and the tail p-value against slow, obvious references."""

        def point_args(seed: int) -> tuple[Any, ...]:
            rng = np.random.default_rng(seed)
            n = int(rng.integers(40, 160))
            x = np.cumsum(rng.normal(0, 1, n)) + rng.normal(0, 0.5, n) * (rng.random(n) < 0.1) * 20
            return x, int(rng.integers(0, 12)), int(rng.integers(0, 30)), 64, int(rng.integers(8, 40))

        def point_kernel(x: np.ndarray, lag_d: int, lag_w: int, size: int, range_n: int) -> np.ndarray:
            ring, level = np.zeros(size), np.zeros(size)
            fstate, istate = np.zeros(K.F_SIZE), np.zeros(K.I_SIZE, dtype=np.int64)
            bits, pred = np.empty((x.size, K.N_MODELS)), np.empty((x.size, K.N_MODELS))
            K.point_bits(x, lag_d, lag_w, ring, level, fstate, istate, range_n, 1 / 32, 5.0, 16, 1 / 8,
                         bits, pred)
            return np.concatenate([bits, pred], axis=1)

        def tail_args(seed: int) -> tuple[Any, ...]:
            rng = np.random.default_rng(seed)
            hist = np.sort(rng.exponential(1.0, int(rng.integers(20, 300))) * (rng.random() * 3)
                           * (rng.random(1) < 0.5 or rng.random() < 0.5))
            return hist, float(rng.exponential(3.0)), 0.05, 10, float(rng.choice([0.1, 1 / math.log(2)])), \
                float(rng.choice([-0.25, 0.0]))

        def tail_kernel(hist: np.ndarray, s: float, frac: float, kmin: int, smin: float,
                        xmin: float) -> float:
            return K._tail_p(hist, hist.size, s, frac, kmin, smin, xmin)

        return [KernelCheck("point_bits", point_args, point_kernel, _naive_point_bits),
                KernelCheck("tail_p", tail_args, tail_kernel, _naive_tail_p)]


def _naive_point_bits(x: np.ndarray, lag_d: int, lag_w: int, size: int, range_n: int) -> np.ndarray:
    """Slow reference of ``point_bits`` (plain lists, whole history kept)."""
    n_models = K.N_MODELS
    out = np.full((x.size, 2 * n_models), np.nan)
    hist: list[float] = []
    level: list[float] = []
    rate = [0.0] * n_models  # share of non-zero errors
    mag = [0.0] * n_models  # mean size of the non-zero errors
    count = [0] * n_models
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
        hist.append(float(v))
    return out


def _naive_tail_p(hist: np.ndarray, s: float, frac: float, kmin: int, smin: float, xmin: float) -> float:
    n = hist.size
    p_rank = (1 + int((hist >= s).sum())) / (n + 1)
    kt = max(kmin, int(frac * n))
    if kt >= n:
        return p_rank
    u = np.sort(hist)[n - 1 - kt]
    if s <= u:
        return p_rank
    y = hist[hist > u] - u  # the tail: values strictly above u (ties at u are not exceedances)
    kx = y.size
    mean = float(y.mean()) if kx else 0.0
    var = float(y.var(ddof=1)) if kx > 1 else 0.0
    xi = 0.5 * (1 - mean * mean / var) if var > 0 and mean > 0 else 0.0
    xi = min(max(xi, xmin), 0.5)
    sigma = mean * (1 - xi)
    if kx < kmin or n < K.TAIL_FIT_MIN or sigma <= smin:
        sigma = max(sigma, 1 / math.log(2))
    z = 1 + xi * (s - u) / sigma
    sf = math.exp(-(s - u) / sigma) if abs(xi) < 1e-6 else (z ** (-1 / xi) if z > 0 else 0.0)
    return max((kx + 1) / (n + 1) * sf, 1e-300)


def _create(**config: Any) -> NumericDetector:
    return NumericDetector(**config)


registry.register("numeric", restore=NumericDetector.restore)(_create)

__all__: Sequence[str] = ("NumericDetector",)
