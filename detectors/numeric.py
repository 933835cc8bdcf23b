"""Numeric (metric) stream detector: predict each value, code the error, calibrate windows of bits.

The compression view of anomaly detection applied to numbers the way time-series compressors work: each
value is *predicted* from the stream's recent shape, and the prediction error is charged its code length
in bits under an adaptive Laplace code. Five predictors run side by side (scoring,
:mod:`detectors._kernels.numeric`): the recent range, the previous value, the value one day earlier and one
week earlier (level-adjusted; the seasonal models need times, from which the sampling period is taken), and
a slow mean of the values (a sustained level shift keeps costing bits until the mean has followed it). An
anomaly is a run of values that cost many more bits than usual under a model that normally predicts the
stream well. A model's error scale is the rate of its non-zero errors times their (clipped) mean size, so
sparse streams (a counter's deltas: mostly 0, sometimes 1) keep a finite scale; the range model measures
how far a value lies beyond the recent range in units of that size (a typical move).

Windows, calibration, decision (:mod:`detectors._kernels.numeric_windows`)
    Windows are counted in values: ``window`` values, a new window every ``hop`` values (from the
    profile). A window's statistic per model is the sum of ``max(0, bits - hinge)`` over its last
    ``spans[k]`` values (the range model is not hinged). Its p-value is the conformal rank among that
    model's statistics of recent normal windows (a history of ``calibration`` windows); above the top
    ``tail_frac`` of the history it comes from the package's one tail fit with the rule
    :meth:`NumericDetector.tail_rule`: ties at the threshold (a history that is mostly zeros) are not
    exceedances, and a tail that cannot be trusted (a short history, fewer than ``tail_min`` values above
    the threshold, a scale no wider than ``tail_scale_min`` bits) keeps at least the code-length prior's
    scale, each bit beyond the threshold at least halving the probability. Models are combined with a
    weighted Bonferroni; a window is anomalous when ``p <= false_alarm_target``. The mean model's weight is
    0.01 by default: a window it flags alone must reach 1/201 of the target, so on autocorrelated noise its
    runs of moderate evidence stay below the incident threshold while a level shift still opens one. Its
    statistic enters its history only once no later window shares its values (``disjoint_calibration``,
    default on; a delay of ``ceil(span / hop) - 1`` windows), so the windows overlapping a lasting shift's
    first, borderline window are judged without it; statistics still waiting when an incident opens never
    enter.

Protecting the baseline, drift
    Windows flagged with ``p <= exclude_factor * target`` never enter the calibration history, and the
    predictors' scales learn from errors clipped at ``clip`` scales, so a spike cannot teach the model
    that spikes are normal. Borderline alarms do enter it: dropping every alarm cuts the null
    distribution at the threshold and drags the threshold down. If anomalous windows persist for
    ``drift_windows`` consecutive windows, the last one is reported once with ``is_drift=True`` and the
    new regime is then learned as normal until a window falls back under the threshold. While an incident
    is open the mean model predicts the mean of the frozen reference; when it is resolved its mean, which
    followed the values meanwhile, starts again from that reference (a false positive or an accepted
    change keeps what it followed). Anomalous
    windows closer than ``holdoff`` values (default: one window) form one incident;
    ``figures["incident_start"]`` is 1.0 on the first window of each incident.

Values that cannot be scored
    A NaN or infinite value is skipped and counted (:attr:`NumericDetector.skipped_points`): it takes an
    offset (offsets count every value fed) but no place in a window, so a window then spans more offsets
    than it holds values.

Figures and explanation
    ``figures``: ``p_value_<model>`` and ``excess_bits_<model>`` (window statistic) per model,
    ``novelty_bits_per_event`` (flagging model's statistic / window), ``effect_size`` (robust z-score of
    that statistic, anomalous windows only), ``incident_start``, ``warm``. ``explanation`` (anomalous
    windows): ``sentence``, ``model`` (the one that flagged), ``top_events`` (the costliest values:
    ``offset``, ``observed``, ``expected`` = that model's prediction, ``excess_bits``) and ``point_bits``
    (``[offset, bits]`` for every value of the window). Severity: :mod:`detectors.severity`.

State: small numpy arrays (value ring of ``history`` values, calibration histories) in the shared snapshot
format. Deterministic; ``seed`` is accepted for the common contract but the detector draws no random
numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import struct
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detectors import registry, snapshot
from detectors._kernels import numeric as K
from detectors._kernels import numeric_windows as NW
from detectors._kernels.numeric_calibration import Histories
from detectors._kernels.tail import SHAPE_MAX, SHAPE_MIN, TailRule
from detectors.base import EventBatch, UpdateResult, WindowResult, require_batch
from detectors.incidents import IncidentActions, IncidentTracker, to_ns
from detectors.profiles import DEFAULT_PROFILE, incident_policy, resolve_profile
from detectors.severity import severity

_TAG = b"NUMR"
_VERSION = 3  # 3: the mean model and the pending statistics; 2: the incident tracker's state (and the frozen
# range in the state arrays); 1 and 2 still restore
_LEGACY_MAGIC = b"DLNUM1\n"  # snapshots written before the shared format (a JSON header and an npz)
_DAY = 86400.0
_TOP_POINTS = 3
_PERIOD_STAMPS = 65  # the sampling period is the median gap of the first 64 gaps
_OLD_F_SIZE = 5  # float state of snapshots written before the error scale was kept as rate x size
_V1_F_SIZE, _V1_I_SIZE = 13, 16  # state of snapshots written before incidents (no frozen range, no flag)
_V2_MODELS, _V2_F_SIZE, _V2_I_SIZE = 4, 15, 17  # state of snapshots written before the mean model
_V2_RATE, _V2_MAG = 5, 9  # where that state kept the error rates and sizes
_LEGACY_SHAPE_MIN = 0.0  # the default shape floor of the method-of-moments fit those snapshots were made with
_STATE_ARRAYS = ("ring", "level", "fstate", "istate", "cal_ring", "cal_sorted", "tail_bits", "tail_pred",
                 "tail_vals")
TAIL_FIT_MIN = 200
"""History size below which an unresolved tail keeps the code-length prior."""
EFFECT_SCALE = 1.0
"""Bits: floor of the robust scale of the effect size (statistics are often 0 with no spread)."""
SKIP_REASONS = ("nan", "inf")


class NumericDetector(IncidentActions):
    """Streaming detector for one numeric stream (gauge values, deltas, latencies, quantiles).

    ``profile`` / ``baseline`` / ``window`` / ``hop`` / ``false_alarm_target`` as for every detector
    (``baseline`` is the range model's look-back unless ``range_window`` is given). Model knobs:
    ``models`` (subset of range, step, daily, weekly), ``weights`` (weighted Bonferroni, one per model),
    ``spans`` (values of the window each model sums), ``hinge`` (bits a predictor's error may cost for
    free), ``clip`` and ``scale_window`` (robust error scales), ``level_window`` (level adjustment of
    the seasonal predictions), ``mean_window`` (values the mean model's mean follows over), ``history``
    (values kept: the weekly lag needs 7 days of samples).
    Calibration knobs: ``calibration``, ``min_calibration``, ``tail_frac``, ``tail_min``,
    ``tail_scale_min``, ``tail_shape_min``, ``exclude_factor``; anomaly runs: ``holdoff``,
    ``drift_windows``; incidents (:mod:`detectors.incidents`): ``incident_h``, ``resolve_after_windows``,
    ``accept_after_ns`` (None: the profile's). ``seed`` is accepted for the common contract; nothing here
    is random.

    >>> import numpy as np
    >>> x = 50 + np.random.default_rng(1).normal(0, 1, 3000)
    >>> x[2700] = 80.0
    >>> flagged = [r for r in NumericDetector(profile="balanced").update(EventBatch(x)) if r.is_anomaly]
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
                 weights: Sequence[float] = (1.0, 1.0, 1.0, 1.0, 0.01), spans: Sequence[int] | None = None,
                 tail_scale_min: float = 0.1, tail_shape_min: float = SHAPE_MIN,
                 exclude_factor: float = 0.01, incident_h: float | None = None,
                 resolve_after_windows: int | None = None, accept_after_ns: int | None = None,
                 mean_window: int = 64, disjoint_calibration: bool = True) -> None:
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
            "level_window": int(level_window), "mean_window": int(mean_window),
            "disjoint_calibration": bool(disjoint_calibration),
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
        if self._config["mean_window"] < 1:
            raise ValueError("mean_window must be at least 1")
        overrides = {k: v for k, v in (("incident_h", incident_h),
                                       ("resolve_after_windows", resolve_after_windows),
                                       ("accept_after_ns", accept_after_ns)) if v is not None}
        self._config.update(overrides)  # only when given: the default configuration hashes as before
        self._tracker = IncidentTracker(incident_policy(prof, incident_h=incident_h,
                                                        resolve_after_windows=resolve_after_windows,
                                                        accept_after_ns=accept_after_ns))
        self._last_time_ns: int | None = None
        c = self._config
        self._points = K.PointConfig(range_n=c["range_window"], scale_alpha=1.0 / c["scale_window"],
                                     clip=c["clip"], warm=16, level_alpha=1.0 / c["level_window"],
                                     mean_alpha=1.0 / c["mean_window"])
        self._windows = NW.WindowConfig(
            window=c["window"], hop=c["hop"], hinge=c["hinge"], weights=np.asarray(c["weights"], np.float64),
            spans=np.asarray(c["spans"], np.int64), min_calibration=c["min_calibration"],
            target=c["false_alarm_target"], exclude_factor=c["exclude_factor"],
            drift_windows=c["drift_windows"], holdoff=c["holdoff"], effect_scale=EFFECT_SCALE,
            tail=self.tail_rule(c), delays=self._delays(c))
        self._ring = np.zeros(c["history"])
        self._level = np.zeros(c["history"])
        self._fstate = np.zeros(K.F_SIZE)
        self._istate = np.zeros(K.I_SIZE, dtype=np.int64)
        self._istate[K.I_LAST_ALARM] = -1
        self._cal_ring = np.zeros((K.N_MODELS, c["calibration"]))
        self._cal_sorted = np.zeros((K.N_MODELS, c["calibration"]))
        self._cal_pending = np.full((K.N_MODELS, int(self._windows.delays.max()) + 1), np.nan)
        # last window-1 points (bits, predictions, values, offsets) carried into the next update
        self._tail_bits = np.zeros((0, K.N_MODELS))
        self._tail_pred = np.zeros((0, K.N_MODELS))
        self._tail_vals = np.zeros(0)
        self._tail_offsets = np.zeros(0, np.int64)
        self._tail_stamps = np.zeros(0)  # their times (unix seconds; NaN: not given)
        self._window_times: list[tuple[int | None, int | None]] = []  # of the windows _score returned
        self._period = 0.0  # sampling period in seconds (0 = unknown, no seasonal models)
        self._first_stamps: list[float] = []
        self._skipped = dict.fromkeys(SKIP_REASONS, 0)

    @staticmethod
    def tail_rule(config: Mapping[str, Any]) -> TailRule:
        """The tail fit's rule for a configuration (see the module docstring)."""
        return TailRule(fraction=float(config["tail_frac"]), min_tail=int(config["tail_min"]),
                        shape_min=float(config["tail_shape_min"]), shape_max=SHAPE_MAX,
                        resolution=float(config["tail_scale_min"]), prior_scale=1.0 / K.LN2,
                        min_history=TAIL_FIT_MIN)

    @staticmethod
    def _delays(config: Mapping[str, Any]) -> np.ndarray:
        """Windows each model's statistic waits before it enters the history: the mean model's, until the
        first window that shares none of its values (``disjoint_calibration``); the others', none (delayed
        too, their overlapping windows' alarms come in longer runs: on the stationary metric streams the
        false-alarm ratio rose from 0.8 to 1.5 and the false incidents from 7 to 16 in 4 million values)."""
        delays = np.zeros(K.N_MODELS, np.int64)
        if config["disjoint_calibration"]:
            hop = int(config["hop"])
            delays[K.MEAN] = (int(config["spans"][K.MEAN]) + hop - 1) // hop - 1
        return delays

    # ----------------------------------------------------------------- contract
    @property
    def config(self) -> dict[str, Any]:
        return dict(self._config)

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self._config, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def events_seen(self) -> int:
        return int(self._istate[K.I_SEEN]) + sum(self._skipped.values())

    @property
    def warmed_up(self) -> bool:
        return bool((self._istate[K.I_CAL_N:K.I_CAL_N + K.N_MODELS]
                     >= self._config["min_calibration"]).any())

    @property
    def skipped_points(self) -> Mapping[str, int]:
        """Values fed but not scored: ``{"nan": n, "inf": m}`` since the detector was created."""
        return dict(self._skipped)

    def update(self, batch: EventBatch) -> UpdateResult:
        """Feed values (with optional unix-second times); return the windows they complete and the incident
        updates they caused (``.incidents``)."""
        batch = require_batch(batch)
        vals = np.array(batch.events, dtype=np.float64, copy=True).reshape(-1)
        stamps = None if batch.times is None else np.asarray(batch.times, dtype=np.float64).reshape(-1)
        offsets = self.events_seen + np.arange(vals.size, dtype=np.int64)
        finite = np.isfinite(vals)
        if not finite.all():
            nan = int(np.isnan(vals).sum())
            self._skipped["nan"] += nan
            self._skipped["inf"] += int(vals.size - finite.sum()) - nan
            vals, offsets = vals[finite], offsets[finite]
            stamps = None if stamps is None else stamps[finite]
        out = UpdateResult()
        i = 0
        while i < vals.size:
            i = self._score_until_transition(vals, stamps, offsets, i, out)
        out.incidents.extend(self._tracker.take_updates())
        return out

    def _score_until_transition(self, vals: np.ndarray, stamps: np.ndarray | None, offsets: np.ndarray,
                                i: int, out: list[WindowResult]) -> int:
        """Score values ``i..`` up to the window where the incident tracker freezes or thaws the detector
        (that window included), or to the end; returns where the next call starts.

        The predictors must freeze at the exact window an incident opens, so values are scored
        speculatively to the end and, when a window would open an incident, scored again up to it from a
        copy of the state (results do not depend on how values are split into calls). While an incident
        is open, every window can close it: values are scored one window at a time.
        """
        def part(j: int) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
            return vals[i:j], None if stamps is None else stamps[i:j], offsets[i:j]

        if self._tracker.open is not None:
            j = min(vals.size, i + self._values_to_next_window())
            windows = self._score(*part(j))
            times = self._window_times
        else:
            saved = self._state_copy()
            windows = self._score(*part(vals.size))
            times = self._window_times
            cut = self._tracker.opens_at(windows)
            j = vals.size
            if cut is not None:
                self._state_load(saved)
                j = i + int(np.searchsorted(offsets[i:], windows[cut].end_offset - 1)) + 1
                windows = self._score(*part(j))
                times = self._window_times
        for w, (start_ns, end_ns) in zip(windows, times, strict=True):
            out.append(self._tracker.observe(self, w, end_ns, start_ns))
        return j

    def _values_to_next_window(self) -> int:
        seen, window, hop = int(self._istate[K.I_SEEN]), self._config["window"], self._config["hop"]
        if seen < window:
            return window - seen
        return hop - (seen - window) % hop

    def _state_copy(self) -> tuple[Any, ...]:
        return (self._ring.copy(), self._level.copy(), self._fstate.copy(), self._istate.copy(),
                self._cal_ring.copy(), self._cal_sorted.copy(), self._cal_pending.copy(), self._tail_bits,
                self._tail_pred, self._tail_vals, self._tail_offsets, self._tail_stamps, self._period,
                list(self._first_stamps))

    def _state_load(self, saved: tuple[Any, ...]) -> None:
        (ring, level, fstate, istate, cal_ring, cal_sorted, cal_pending, self._tail_bits, self._tail_pred,
         self._tail_vals, self._tail_offsets, self._tail_stamps, self._period, self._first_stamps) = saved
        for mine, kept in ((self._ring, ring), (self._level, level), (self._fstate, fstate),
                           (self._istate, istate), (self._cal_ring, cal_ring),
                           (self._cal_sorted, cal_sorted), (self._cal_pending, cal_pending)):
            mine[...] = kept

    # ------------------------------------------------- incidents: the IncidentHost side (detectors.incidents)
    def _incident_freeze(self) -> None:
        K.freeze_range(self._ring, self._istate, self._config["range_window"], self._config["window"],
                       self._points.mean_alpha, self._fstate)
        self._istate[K.I_FROZEN] = 1
        self._cal_pending[...] = np.nan  # the windows that led to the incident never enter the histories
        self._istate[K.I_RUN] = 0
        self._istate[K.I_ACCEPTED] = 0

    def _incident_thaw(self, keep_events: bool) -> None:
        # The value ring always holds the values (the step and seasonal predictors need them): the range
        # learns the incident's values again from here, which is what a false positive needs; a resolved
        # burst leaves the range after ``range_window`` values. The mean model's mean followed the values
        # too; unless they are kept (a false positive), it forgets them and starts again from the reference's
        # (else the return to normal after a long fault would cost bits against a mean that learnt the fault).
        self._istate[K.I_FROZEN] = 0
        if not keep_events:
            self._fstate[K.F_MEAN] = self._fstate[K.F_FROZEN_MEAN]

    def _incident_adopt(self) -> None:
        """Accepted: learn from here, and let the change count as the new normal (as a drift does)."""
        self._istate[K.I_FROZEN] = 0
        self._istate[K.I_ACCEPTED] = 1

    def _incident_reference(self) -> None:
        return None

    def _incident_event(self, offset: int) -> None:
        return None

    def _incident_band(self) -> tuple[float, float] | None:
        lo, hi = float(self._fstate[K.F_FROZEN_LO]), float(self._fstate[K.F_FROZEN_HI])
        frozen = bool(self._istate[K.I_FROZEN])
        return (lo, hi) if frozen and math.isfinite(lo) and math.isfinite(hi) else None

    # ----------------------------------------------------------------- internals
    def _score(self, vals: np.ndarray, stamps: np.ndarray | None, offsets: np.ndarray) -> list[WindowResult]:
        learning = self._period <= 0 and stamps is not None
        if stamps is not None and learning and len(self._first_stamps) + stamps.size >= _PERIOD_STAMPS:
            # the seasonal lags switch on at a fixed point of the stream, whatever the chunking
            cut = _PERIOD_STAMPS - len(self._first_stamps)
            if 0 < cut < vals.size:
                head = self._score(vals[:cut], stamps[:cut], offsets[:cut])
                head_times = self._window_times
                tail = self._score(vals[cut:], stamps[cut:], offsets[cut:])
                self._window_times = head_times + self._window_times
                return head + tail
        lag_d, lag_w = self._lags()  # lags known before this chunk: they apply from the next chunk on
        if stamps is not None:
            self._learn_period(stamps)
        if vals.size == 0:
            self._window_times = []
            return []
        c = self._config
        n_new = vals.size
        bits = np.empty((n_new, K.N_MODELS))
        pred = np.empty((n_new, K.N_MODELS))
        first_new = int(self._istate[K.I_SEEN])
        K.point_bits(vals, lag_d, lag_w, self._points,
                     K.PointState(self._ring, self._level, self._fstate, self._istate), bits, pred)
        for k, name in enumerate(K.MODEL_NAMES):
            if name not in c["models"]:
                bits[:, k] = np.nan
        all_bits = np.concatenate([self._tail_bits, bits])
        all_pred = np.concatenate([self._tail_pred, pred])
        all_vals = np.concatenate([self._tail_vals, vals])
        all_offsets = np.concatenate([self._tail_offsets, offsets])
        all_stamps = np.concatenate([self._tail_stamps,
                                     stamps if stamps is not None else np.full(n_new, np.nan)])
        first = first_new - self._tail_bits.shape[0]
        max_out = n_new // c["hop"] + 2
        out_i = np.zeros((max_out, NW.OI_SIZE), dtype=np.int64)
        out_f = np.zeros((max_out, NW.OF_SIZE))
        histories = Histories(self._cal_ring, self._cal_sorted, self._cal_pending)
        n_out = NW.window_scores(all_bits, first, self._windows, histories, self._istate, out_i, out_f)
        keep = min(c["window"] - 1, all_bits.shape[0])
        start = all_bits.shape[0] - keep
        self._tail_bits, self._tail_pred = all_bits[start:].copy(), all_pred[start:].copy()
        self._tail_vals, self._tail_offsets = all_vals[start:].copy(), all_offsets[start:].copy()
        self._tail_stamps = all_stamps[start:].copy()
        self._window_times = [
            tuple(None if math.isnan(s) else to_ns(s)  # type: ignore[misc]
                  for s in (float(all_stamps[e - first - c["window"]]), float(all_stamps[e - first - 1])))
            for e in out_i[:n_out, NW.O_END].tolist()]
        return [self._result(out_i[j], out_f[j], all_bits, all_pred, all_vals, all_offsets, first,
                             self._window_times[j])
                for j in range(n_out)]

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
                vals: np.ndarray, offsets: np.ndarray, first: int,
                times: tuple[int | None, int | None]) -> WindowResult:
        c = self._config
        rows = np.arange(int(oi[NW.O_END]) - first - c["window"], int(oi[NW.O_END]) - first)
        flags = int(oi[NW.O_FLAGS])
        best = int(oi[NW.O_BEST])
        p = float(of[NW.OF_P])
        effect = float(of[NW.OF_EFFECT])
        is_anomaly = bool(flags & NW.FLAG_ANOMALY)
        figures: dict[str, float] = {
            "p_value_" + K.MODEL_NAMES[k]: float(of[NW.OF_PK + k]) if np.isfinite(of[NW.OF_PK + k]) else 1.0
            for k in range(K.N_MODELS)
        }
        for k in range(K.N_MODELS):
            s = of[NW.OF_SK + k]
            figures["excess_bits_" + K.MODEL_NAMES[k]] = float(s) if np.isfinite(s) else 0.0
        excess = figures["excess_bits_" + K.MODEL_NAMES[best]] if best >= 0 else 0.0
        figures["novelty_bits_per_event"] = excess / c["window"]
        figures["effect_size"] = effect
        figures["incident_start"] = 1.0 if flags & NW.FLAG_INCIDENT else 0.0
        figures["warm"] = 1.0 if flags & NW.FLAG_WARM else 0.0
        explanation: dict[str, Any] = {}
        if is_anomaly and best >= 0:
            explanation = self._explain(best, rows, bits, pred, vals, offsets, p)
        return WindowResult(start_offset=int(offsets[rows[0]]), end_offset=int(offsets[rows[-1]]) + 1,
                            score=min(-math.log10(max(p, 1e-300)), 300.0), p_value=p, is_anomaly=is_anomaly,
                            severity=severity(p, c["false_alarm_target"], effect, is_anomaly),
                            is_drift=bool(flags & NW.FLAG_DRIFT), figures=figures, explanation=explanation,
                            start_time_ns=times[0], end_time_ns=times[1])

    def _explain(self, best: int, rows: np.ndarray, bits: np.ndarray, pred: np.ndarray,
                 vals: np.ndarray, offsets: np.ndarray, p: float) -> dict[str, Any]:
        cost = bits[rows, best]
        order = rows[np.argsort(-cost, kind="stable")[:_TOP_POINTS]]
        top = [{"offset": int(offsets[r]), "observed": float(vals[r]), "expected": float(pred[r, best]),
                "excess_bits": float(bits[r, best]), "bits": float(bits[r, best]),
                "tokens": [K.MODEL_NAMES[best]]} for r in order]
        lead = top[0]
        model = {"range": "the recent range", "step": "the previous value", "daily": "the daily cycle",
                 "weekly": "the weekly cycle", "mean": "the recent mean"}[K.MODEL_NAMES[best]]
        sentence = (f"value {lead['observed']:.6g} at offset {lead['offset']} where {model} expected "
                    f"{lead['expected']:.6g} (+{lead['excess_bits']:.1f} bits; window p={p:.2g})")
        return {"sentence": sentence, "model": K.MODEL_NAMES[best], "top_events": top,
                "point_bits": [[int(offsets[r]), float(bits[r, best])] for r in rows]}

    # ----------------------------------------------------------------- snapshot
    def snapshot(self) -> bytes:
        """State in the shared format (:mod:`detectors.snapshot`); see ``registry.restore``."""
        header = {"kind": self.kind, "config": self._config, "period": self._period,
                  "first_stamps": self._first_stamps, "skipped": self._skipped,
                  "incidents": self._tracker.dump()}
        arrays = {name: getattr(self, "_" + name)
                  for name in (*_STATE_ARRAYS, "tail_offsets", "tail_stamps", "cal_pending")}
        return snapshot.encode(_TAG, _VERSION, header, arrays)

    @classmethod
    def restore(cls, data: bytes | memoryview) -> NumericDetector:
        data = bytes(data)  # a numeric snapshot is small: the legacy reader wants bytes
        if data.startswith(_LEGACY_MAGIC):
            header, arrays = _read_legacy(data)
            if header["config"].get("tail_shape_min") == _LEGACY_SHAPE_MIN:  # that code's default: today's
                header["config"]["tail_shape_min"] = SHAPE_MIN
        else:
            snap = snapshot.decode(data, _TAG)
            if snap.version not in (1, 2, _VERSION):
                raise ValueError(f"numeric snapshot version {snap.version} is not readable by this version")
            header, arrays = snap.header, snap.arrays
        if header.get("kind") != cls.kind:
            raise ValueError("snapshot is not of a numeric detector")
        four_models = "cal_pending" not in arrays  # written before the mean model
        det = cls(**(_config_before_mean(header["config"]) if four_models else header["config"]))
        det._period = float(header["period"])
        det._first_stamps = [float(x) for x in header["first_stamps"]]
        det._skipped.update({k: int(v) for k, v in header.get("skipped", {}).items()})
        for name in _STATE_ARRAYS:
            setattr(det, "_" + name, arrays[name])
        if "tail_offsets" in arrays:
            det._tail_offsets = arrays["tail_offsets"]
        else:  # written before values could be skipped: offsets are the scored values' indices
            seen = int(det._istate[K.I_SEEN])
            det._tail_offsets = np.arange(seen - det._tail_vals.size, seen, dtype=np.int64)
        det._tail_stamps = arrays.get("tail_stamps", np.full(det._tail_vals.size, np.nan))
        if four_models:
            det._widen_four_model_state()
        else:
            det._cal_pending = arrays["cal_pending"]
        if det._fstate.size != K.F_SIZE or det._istate.size != K.I_SIZE:
            raise ValueError("numeric detector snapshot has an unknown state layout")
        det._tracker.load(header.get("incidents"))
        return det

    def _widen_four_model_state(self) -> None:
        """Bring the state of a snapshot written before the mean model (versions 1, 2 and the format
        before them) to today's layout; the mean model's slots stay empty (its configuration keeps it off)."""
        f, i = self._fstate, self._istate
        if f.size == _OLD_F_SIZE:  # before the scale was split into rate x size: rate 1
            f = np.concatenate((f, np.ones(_V2_MODELS), f[:_V2_MODELS], np.zeros(_V2_F_SIZE - _V2_MAG
                                                                               - _V2_MODELS)))
        if f.size == _V1_F_SIZE:  # before incidents: no frozen range
            f = np.concatenate((f, np.zeros(_V2_F_SIZE - _V1_F_SIZE)))
        if i.size == _V1_I_SIZE:  # before incidents: not frozen
            i = np.concatenate((i, np.zeros(_V2_I_SIZE - _V1_I_SIZE, np.int64)))
        if f.size != _V2_F_SIZE or i.size != _V2_I_SIZE:
            raise ValueError("numeric detector snapshot has an unknown state layout")
        m = _V2_MODELS
        self._fstate = np.zeros(K.F_SIZE)
        for start, old in ((K.F_SCALE, 0), (K.F_RATE, _V2_RATE), (K.F_MAG, _V2_MAG)):
            self._fstate[start:start + m] = f[old:old + m]
        self._fstate[[K.F_LEVEL, K.F_FROZEN_LO, K.F_FROZEN_HI]] = f[[m, _V2_MAG + m, _V2_MAG + m + 1]]
        self._istate = np.zeros(K.I_SIZE, np.int64)
        for start, old in ((K.I_COUNT, 1), (K.I_CAL_N, 1 + m), (K.I_CAL_POS, 1 + 2 * m)):
            self._istate[start:start + m] = i[old:old + m]
        tail = [K.I_RUN, K.I_ACCEPTED, K.I_LAST_ALARM, K.I_FROZEN]  # after seen, counts, sizes, positions
        self._istate[[K.I_SEEN, *tail]] = i[[0, *range(1 + 3 * m, 1 + 3 * m + len(tail))]]
        empty_row = np.zeros((K.N_MODELS - m, self._cal_ring.shape[1]))
        self._cal_ring = np.concatenate((self._cal_ring, empty_row))
        self._cal_sorted = np.concatenate((self._cal_sorted, empty_row))
        not_scored = np.full((self._tail_bits.shape[0], K.N_MODELS - m), np.nan)
        self._tail_bits = np.concatenate((self._tail_bits, not_scored), axis=1)
        self._tail_pred = np.concatenate((self._tail_pred, not_scored), axis=1)

    # ----------------------------------------------------------------- conformance helpers
    @classmethod
    def example_events(cls, n: int, seed: int) -> EventBatch:
        """A stationary noisy series with a level shift over the last 5 % (at least 12 values)."""
        rng = np.random.default_rng(seed)
        x = 10.0 + rng.normal(0.0, 1.0, n)
        k = max(12, n // 20)
        x[max(0, n - k):] += 12.0
        return EventBatch(x)

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return {"profile": "sensitive", "baseline": 60, "window": 10, "hop": 5, "history": 256,
                "calibration": 100}


def _config_before_mean(config: Mapping[str, Any]) -> dict[str, Any]:
    """The configuration of a snapshot written before the mean model, as today's constructor takes it: its
    four models (the mean model stays off) and its calibration without delays, so it goes on as it did."""
    out = dict(config)
    out.setdefault("models", list(K.MODEL_NAMES[:_V2_MODELS]))
    out["weights"] = [*config["weights"], 1.0]
    out["spans"] = [*config["spans"], int(config["window"])]
    out["disjoint_calibration"] = False
    return out


def _read_legacy(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Header and arrays of a snapshot in the format before the shared one: magic, a JSON header, an npz."""
    off = len(_LEGACY_MAGIC)
    (size,) = struct.unpack_from("<I", data, off)
    header = json.loads(data[off + 4:off + 4 + size])
    with np.load(io.BytesIO(data[off + 4 + size:]), allow_pickle=False) as npz:
        arrays = {name: np.array(npz[name]) for name in _STATE_ARRAYS}
    return header, arrays


def _create(**config: Any) -> NumericDetector:
    return NumericDetector(**config)


registry.register("numeric", restore=NumericDetector.restore)(_create)

__all__: Sequence[str] = ("NumericDetector",)
