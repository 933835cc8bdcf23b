"""CBAD: compression-based anomaly detection for byte events (canonical logs and spans).

Per stream, the last ``window`` events (W) are scored every ``hop`` events (H) against a baseline of the
``baseline`` (B) preceding *normal* events, kept as an incrementally updated count model, so a window costs
O(W bytes) whatever B. The window's statistics are calibrated against the stream's own recent normal
windows (see :mod:`detectors.calibration`); figures and explanation are documented in ``docs/detectors.md``.

>>> from detectors import registry
>>> from detectors.testing import synthetic_logs
>>> det = registry.create("cbad", profile="sensitive", seed=7, baseline=60, window=10, hop=5)
>>> events = synthetic_logs(800, seed=3, anomalies=range(770, 775))
>>> results = det.update(events)
>>> det.events_seen, det.warmed_up, len(results)
(800, True, 159)
>>> flagged = [r for r in results if r.is_anomaly]
>>> all(r.end_offset > 770 for r in flagged)
True
>>> flagged[0].explanation["top_events"][0]["offset"] in range(770, 775)
True
>>> det2 = registry.restore("cbad", det.snapshot())
>>> det2.update(events[:20]) == det.update(events[:20])
True
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import struct
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np

from detectors import registry
from detectors._kernels import cbad_hops as hops_kernel
from detectors._kernels import cm
from detectors.base import WindowResult
from detectors.calibration import MIN_CALIBRATION, Calibrator, calibration_capacity, severity
from detectors.compressors import COMPRESSORS, DEFAULT_TABLE_BITS, CodeLengthModel, ContextModel, make_model
from detectors.explain import event_bits_table, sentence, token_bits, top_events
from detectors.profiles import DEFAULT_PROFILE, resolve_profile
from detectors.testing import KernelCheck

KIND = "cbad"
_MAGIC = b"CBAD\x01"
_STATS = 2  # window bits/byte; mean bits/byte of the costliest tenth of the window's events
MAX_WARM_UP_CALIBRATION = 8192  # calibration windows kept from a bulk warm-up (2 x 8 bytes each)


def _as_bytes_list(events: Sequence[bytes]) -> list[bytes]:
    batch = list(events)
    if set(map(type, batch)) <= {bytes}:  # the usual case, checked in C
        return batch
    for i, event in enumerate(batch):
        if type(event) is not bytes:
            if isinstance(event, bytearray | memoryview):
                batch[i] = bytes(event)
            else:
                raise TypeError(f"cbad events must be bytes (canonical events from detectors.canonical); "
                                f"event {i} is {type(event).__name__}")
    return batch


def _layout(events: list[bytes]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lens = np.fromiter(map(len, events), dtype=np.int64, count=len(events))
    ends = np.cumsum(lens)
    return np.frombuffer(b"".join(events), dtype=np.uint8), ends - lens, ends


class CbadDetector:
    """Streaming compression-based detector for one stream of canonical byte events.

    Parameters: ``profile`` (sensitive | balanced | strict), ``seed`` (salts the model's hashing),
    ``compressor`` ("cm" default, "zlib" or "zstd" oracles), per-stream overrides ``baseline``, ``window``,
    ``hop``, ``false_alarm_target``, and ``table_bits`` (count table of 2**bits uint32 slots; 17 = 512 KiB).
    """

    kind = KIND

    def __init__(self, profile: str = DEFAULT_PROFILE, seed: int = 42, compressor: str = "cm",
                 baseline: int | None = None, window: int | None = None, hop: int | None = None,
                 false_alarm_target: float | None = None, table_bits: int = DEFAULT_TABLE_BITS) -> None:
        if compressor not in COMPRESSORS:
            raise ValueError(f"unknown compressor {compressor!r}; choose one of {', '.join(COMPRESSORS)}")
        self.profile = resolve_profile(profile, baseline=baseline, window=window, hop=hop,
                                       false_alarm_target=false_alarm_target)
        self.seed = int(seed)
        self.compressor = compressor
        self.table_bits = int(table_bits)
        self._model: CodeLengthModel = make_model(compressor, self.seed, self.table_bits)
        p = self.profile
        self._top_m = max(1, round(p.window / 10))
        # A change is adopted as the new normal once anomalous windows cover max(2W, B/2) events in a row.
        self._drift_windows = math.ceil(max(2 * p.window, p.baseline / 2) / p.hop)
        self._calibrator = Calibrator(_STATS, calibration_capacity(p.false_alarm_target))
        self._baseline: deque[bytes] = deque()
        self._tail: list[bytes] = []  # recent events, stream offsets [tail_base, seen)
        self._taint: list[int] = []  # parallel to _tail: 1 if the event was in an anomalous window
        self._bits = np.zeros(0)  # parallel to _tail: code length of each event when it entered the window
        self._held: list[bytes] = []  # events of anomalous windows, waiting for the anomaly to end
        self._scored_upto = 0
        self._hist = np.zeros(256, dtype=np.int64)  # byte histogram of the events [hist_lo, hist_hi)
        self._hist_lo = 0
        self._hist_hi = 0
        self._recent_entropy: dict[int, float] = {}  # window end -> its byte entropy
        self._summary = np.zeros(7)
        self._excess = np.zeros(self.profile.window)
        self._tail_base = 0
        self._seen = 0
        self._admitted_upto = 0  # events below this offset have left the window (admitted or dropped)
        self._anomaly_run = 0

    # ------------------------------------------------------------------ contract

    @property
    def config(self) -> dict[str, Any]:
        p = self.profile
        return {"kind": KIND, "profile": p.name, "baseline": p.baseline, "window": p.window, "hop": p.hop,
                "false_alarm_target": p.false_alarm_target, "seed": self.seed, "compressor": self.compressor,
                "table_bits": self.table_bits}

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def events_seen(self) -> int:
        return self._seen

    @property
    def warmed_up(self) -> bool:
        """True once the baseline holds B events and enough normal windows calibrate the p-values."""
        return len(self._baseline) >= self.profile.baseline and self._calibrator.count >= MIN_CALIBRATION

    def update(self, events: Sequence[bytes]) -> list[WindowResult]:
        """Feed events in stream order; returns one result per hop completed by them."""
        batch = _as_bytes_list(events)
        if not batch:
            return []
        p = self.profile
        first = self._seen
        self._tail.extend(batch)
        self._taint.extend([0] * len(batch))
        self._bits = np.concatenate((self._bits, np.zeros(len(batch))))
        self._seen += len(batch)
        first_end = max(p.hop * (first // p.hop + 1), p.hop * math.ceil(p.window / p.hop))
        hop_ends = range(first_end, self._seen + 1, p.hop)
        if not hop_ends:
            return []
        # Lay out only what this call's hops read: from the first window's reference block (or the oldest
        # event still in the window histogram) on, so small batches do not copy the whole retained tail.
        lo = max(self._tail_base, min(self._hist_lo, hop_ends[0] - 2 * p.window))
        buf, starts, ends = _layout(self._tail[lo - self._tail_base:])
        sizes = ends - starts + 1  # each event is coded with its separator
        results: list[WindowResult] = []
        k = 0
        while k < len(hop_ends):
            if self._fast_path_ready(lo):
                k += self._run_hops(hop_ends[k:], lo, buf, starts, ends, sizes, results)
            else:
                results.append(self._score_hop(hop_ends[k], lo, buf, starts, ends, sizes))
                k += 1
        self._trim(hop_ends[-1])
        return results

    # ------------------------------------------------------------------ many hops per kernel call

    def _fast_path_ready(self, lo: int) -> bool:
        """The batched kernel applies: the count model, no anomaly lasting, nothing held out."""
        return (self._anomaly_run == 0 and not self._held and self._admitted_upto >= lo
                and isinstance(self._model, ContextModel))

    def _run_hops(self, hop_ends: range, lo: int, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                  sizes: np.ndarray, results: list[WindowResult]) -> int:
        """Score ``hop_ends`` in one kernel call until a hop needs a decision in Python (then make it);
        appends the results and returns how many hops were done."""
        p = self.profile
        w = p.window
        model = self._model
        assert isinstance(model, ContextModel)
        cal = self._calibrator
        base = self._tail_base
        # The baseline events this run may remove: the oldest, at most as many as the run can admit.
        may_add = max(0, hop_ends[-1] - w - self._admitted_upto)
        n_old = min(len(self._baseline), max(0, len(self._baseline) + may_add - p.baseline))
        old = list(itertools.islice(self._baseline, n_old))
        state = np.array([self._scored_upto - lo, self._admitted_upto - lo, self._hist_lo - lo,
                          self._hist_hi - lo, len(self._baseline), cal.count, cal.position, 0, 0, 0],
                         dtype=np.int64)
        sums = np.array(cal.sums, dtype=np.float64)
        n = len(hop_ends)
        out = np.empty((n, hops_kernel.OUT_COLUMNS))
        excess_out = np.empty((n, w))
        done = hops_kernel.hops(
            model.table, model._lt, model._ls, model._salt, model._mask,
            np.frombuffer(b"".join(old), dtype=np.uint8), np.fromiter(map(len, old), np.int64, len(old)),
            buf, starts, ends, self._bits[lo - base:], self._hist, hop_ends[0] - lo, n, p.hop, w, self._top_m,
            p.baseline, MIN_CALIBRATION, p.false_alarm_target, cal.ring, sums, state, out, excess_out)
        undecided = bool(state[hops_kernel.UNDECIDED])
        # Bring the Python-side state to where the kernel left it.
        admitted = int(state[hops_kernel.ADMITTED]) + lo
        self._baseline.extend(self._tail[self._admitted_upto - base:admitted - base])
        for _ in range(int(state[hops_kernel.REMOVED])):
            self._baseline.popleft()
        self._admitted_upto = admitted
        self._scored_upto = int(state[hops_kernel.SCORED]) + lo
        self._hist_lo = int(state[hops_kernel.HIST_LO]) + lo
        self._hist_hi = int(state[hops_kernel.HIST_HI]) + lo
        cal.count = int(state[hops_kernel.CAL_COUNT])
        cal.position = int(state[hops_kernel.CAL_POSITION])
        cal.sums = sums.tolist()
        decided = done - undecided
        first_w0 = hop_ends[0] - w
        bits = self._bits[first_w0 - base:hop_ends[decided - 1] - base].tolist() if decided else []
        rows = out[:decided].tolist()
        excess_rows = excess_out[:decided].tolist()
        for k in range(decided):
            end = hop_ends[k]
            total, n_bytes, entropy_window, top_bpb, n_excess, _, _, expected, p_value, n_base, n_cal = (
                rows[k])
            w0 = end - w
            stats = (total / n_bytes, top_bpb)
            if math.isnan(expected):
                expected = stats[0]
            a = w0 - first_w0
            results.append(self._result(end, lo, buf, starts, ends, total, n_bytes, stats, entropy_window,
                                        expected, n_excess, p_value, False, False, 0.0, n_base, n_cal,
                                        event_bits_table(w0, bits[a:a + w], excess_rows[k]), []))
        if undecided:
            k = done - 1
            end = hop_ends[k]
            results.append(self._decide(end, lo, buf, starts, ends, sizes, out[k, :7].tolist(),
                                        float(out[k, hops_kernel.EXPECTED]), excess_out[k]))
        return done

    # ------------------------------------------------------------------ one hop

    def _score_hop(self, end: int, lo: int, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                   sizes: np.ndarray) -> WindowResult:
        """Score the window ending at ``end`` alone; ``buf`` holds the events from stream offset ``lo`` on."""
        p = self.profile
        w0 = end - p.window
        added, removed = self._admit(w0)
        hist_ranges = (self._hist_lo - lo, min(w0, self._hist_hi) - lo, max(self._hist_hi, w0) - lo, end - lo)
        cal = self._calibrator
        expected_bpb = cal.mean(0, math.nan)
        self._model.hop(added, removed, buf, starts, ends, self._scored_upto - lo, end - lo, w0 - lo,
                        self._top_m, self._bits[lo - self._tail_base:], self._hist, hist_ranges,
                        0.0 if math.isnan(expected_bpb) else expected_bpb, self._excess, cal.ring, cal.count,
                        self._summary)
        self._scored_upto = end
        self._hist_lo, self._hist_hi = w0, end
        return self._decide(end, lo, buf, starts, ends, sizes, self._summary.tolist(), expected_bpb,
                            self._excess)

    def _decide(self, end: int, lo: int, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                sizes: np.ndarray, summary: list[float], expected_bpb: float,
                excess: np.ndarray) -> WindowResult:
        """Decide on the scored window ending at ``end`` (``summary``: ``cm.hop``'s first seven figures;
        ``expected_bpb`` NaN without calibration) and update the anomaly, calibration and drift state."""
        p = self.profile
        w = p.window
        base = self._tail_base
        w0 = end - w
        i0 = w0 - base  # index into the retained tail (self._tail, _taint, _bits)
        i1 = i0 + w
        j0 = w0 - lo  # index into this call's buffer
        r0 = max(i0 - w, 0)  # reference block: the W events before the window (equal size)
        cal = self._calibrator
        total, n_bytes, entropy_window, top_bpb, n_excess, greater0, greater1 = summary
        stats = (total / n_bytes, top_bpb)
        if math.isnan(expected_bpb):  # no calibration yet: the window's own rate is the reference
            expected_bpb = stats[0]
            np.subtract(self._bits[i0:i1], expected_bpb * sizes[j0:j0 + w], out=excess)
            n_excess = np.count_nonzero(excess > 0)
        bits = self._bits[i0:i1]

        baseline_full = len(self._baseline) >= p.baseline
        warmed = baseline_full and cal.count >= MIN_CALIBRATION
        p_value = self._pvalue(stats, (int(greater0), int(greater1))) if warmed else 1.0
        is_anomaly = warmed and p_value <= p.false_alarm_target
        effect = cal.effect(stats) if is_anomaly else 0.0
        is_drift = False
        if is_anomaly:
            # The window's events are held out of the baseline while the anomaly lasts; when it ends they
            # are admitted (dropping them would make a rare but normal pattern ever rarer in the baseline,
            # hence ever more "novel": a self-feeding cascade, measured at 5-8x the false-alarm target).
            self._taint[i0:i1] = [1] * w
            self._anomaly_run += 1
            cal.add_clipped(stats, p.false_alarm_target / _STATS)
            is_drift = self._anomaly_run >= self._drift_windows
        else:
            self._anomaly_run = 0
            if baseline_full:
                cal.add(stats)
        compat: dict[str, float] = {}
        tops: list[dict[str, Any]] = []
        if is_anomaly:
            compat = self._compat_figures(r0, i0)
            tops = top_events(self._model, self._tail[i0:i1], w0, bits, excess)
        result = self._result(end, lo, buf, starts, ends, total, n_bytes, stats, entropy_window, expected_bpb,
                              n_excess, p_value, is_anomaly, is_drift, effect, float(len(self._baseline)),
                              float(cal.count), event_bits_table(w0, bits.tolist(), excess.tolist()), tops,
                              compat)
        if is_drift:
            self._adopt_new_normal(w0)
        return result

    def _result(self, end: int, lo: int, buf: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                total: float, n_bytes: float, stats: tuple[float, float], entropy_window: float,
                expected_bpb: float, n_excess: float, p_value: float, is_anomaly: bool, is_drift: bool,
                effect: float, baseline_events: float, calibration_windows: float,
                event_bits: list[list[float]], tops: list[dict[str, Any]],
                compat: dict[str, float] | None = None) -> WindowResult:
        """The WindowResult of a decided window (also records the window's entropy for later windows)."""
        p = self.profile
        w = p.window
        w0 = end - w
        # Entropy of the equal-sized block before the window: the window that ended at w0, if one did.
        entropy_reference = self._recent_entropy.get(w0)
        if entropy_reference is None:  # W not a multiple of H, or the stream's first windows
            j0 = w0 - lo
            rj0 = max(j0 - w, 0)
            entropy_reference = entropy_window
            if j0 > rj0:
                entropy_reference = cm.byte_entropy(buf, starts[rj0], ends[j0 - 1])
        self._recent_entropy[end] = entropy_window
        self._recent_entropy.pop(end - (w // p.hop + 2) * p.hop, None)
        figures = {
            "novelty_bits": total,
            "novelty_bits_per_byte": stats[0],
            "novelty_bits_per_event": total / w,
            "top_event_bits_per_byte": stats[1],
            "expected_bits_per_byte": expected_bpb,
            "excess_bits": total - expected_bpb * n_bytes,
            "compression_ratio_conditional": 8.0 * n_bytes / max(total, 1e-9),
            "entropy_window": entropy_window,
            "entropy_reference": entropy_reference,
            "effect_size": effect,
            "baseline_events": baseline_events,
            "calibration_windows": calibration_windows,
        }
        if compat:
            figures.update(compat)
        explanation = {
            "sentence": sentence(is_anomaly, is_drift, p_value, (w0, end), int(n_excess), tops, expected_bpb),
            "top_events": tops,
            "event_bits": event_bits,
        }
        # Positional (start_offset, end_offset, score, p_value, is_anomaly, severity, is_drift, figures,
        # explanation): keyword arguments cost a third more, once per window.
        return WindowResult(w0, end, -math.log10(max(p_value, 1e-300)), p_value, is_anomaly,
                            severity(p_value, p.false_alarm_target, effect, is_anomaly), is_drift, figures,
                            explanation)

    def _pvalue(self, stats: tuple[float, float], greater: tuple[int, int]) -> float:
        """Bonferroni over the distinct statistics: with one event per window the costliest-tenth statistic
        is the window's bits/byte itself, and doubling its p-value would halve the false-alarm target."""
        if self.profile.window == 1:
            return self._calibrator.pvalues(stats[:1], greater[:1])[0]
        return self._calibrator.pvalue(stats, greater)

    # ------------------------------------------------------------------ bulk warm-up

    def warm_up(self, history: Sequence[bytes]) -> list[WindowResult]:
        """Feed a history known to be normal, then calibrate on it by leave-one-out.

        The history is fed as by :meth:`update` (so the stream state is the ordinary one), then the
        calibration history is replaced by the statistics of the baseline's own windows, each block of W
        consecutive baseline events scored against the baseline *without its own counts*: what a new normal
        window costs, estimated from the whole baseline rather than from the few windows that happened to
        follow it. Up to ``MAX_WARM_UP_CALIBRATION`` blocks, evenly spaced over the baseline; the ring
        keeps that size afterwards. Needs the ``cm`` model (the oracles cannot subtract an event).
        """
        if not isinstance(self._model, ContextModel):
            raise ValueError("warm_up needs the cm compressor (leave-one-out subtracts counts)")
        results = self.update(history)
        self._calibrate_leave_one_out()
        return results

    def _calibrate_leave_one_out(self) -> None:
        w = self.profile.window
        events = list(self._baseline)
        blocks = len(events) // w
        if blocks == 0:
            return
        chosen = np.unique(np.linspace(0, blocks - 1, min(blocks, MAX_WARM_UP_CALIBRATION)).astype(np.int64))
        model = self._model
        assert isinstance(model, ContextModel)
        buf, starts, ends = _layout(events)
        sizes = (ends - starts + 1).astype(np.float64)
        bits = np.zeros(w)
        capacity = max(calibration_capacity(self.profile.false_alarm_target), chosen.size)
        self._calibrator = Calibrator(_STATS, capacity)
        for b in chosen.tolist():
            i0, i1 = b * w, b * w + w
            own = (buf, starts[i0:i1], ends[i0:i1])
            cm.count_events(model.table, model._salt, model._mask, *own, False)
            cm.score_events(model.table, model._lt, model._ls, model._salt, model._mask, buf, starts, ends,
                            i0, i1, bits)
            cm.count_events(model.table, model._salt, model._mask, *own, True)
            per_byte = np.sort(bits / sizes[i0:i1])
            self._calibrator.add((float(bits.sum() / sizes[i0:i1].sum()),
                                  float(per_byte[-self._top_m:].mean())))

    def _admit(self, w0: int) -> tuple[list[bytes], list[bytes]]:
        """Events that left the window enter the baseline, unless held by an anomaly that still lasts."""
        base = self._tail_base
        if self._anomaly_run == 0:  # no anomaly lasts: everything that left the window, and anything held
            added = self._tail[self._admitted_upto - base:max(w0, self._admitted_upto) - base]
            if self._held:
                added, self._held = self._held + added, []
        else:
            added = []
            for off in range(self._admitted_upto, w0):
                if self._taint[off - base]:
                    self._held.append(self._tail[off - base])
                else:
                    added.append(self._tail[off - base])
        if len(self._held) > self.profile.baseline:
            del self._held[: len(self._held) - self.profile.baseline]
        self._admitted_upto = max(self._admitted_upto, w0)
        self._baseline.extend(added)
        overflow = len(self._baseline) - self.profile.baseline
        removed = [self._baseline.popleft() for _ in range(overflow)] if overflow > 0 else []
        return added, removed

    def _adopt_new_normal(self, w0: int) -> None:
        """Drift: the B events before the window become the baseline and calibration starts over."""
        p = self.profile
        lo = max(w0 - p.baseline, self._tail_base)
        self._baseline = deque(self._tail[lo - self._tail_base:w0 - self._tail_base])
        self._model.rebuild(list(self._baseline))
        self._calibrator.reset()
        self._anomaly_run = 0
        self._held = []
        i0 = w0 - self._tail_base
        self._taint[i0:] = [0] * (len(self._taint) - i0)

    def _compat_figures(self, r0: int, i0: int) -> dict[str, float]:
        """NCD, ratios and delta bits on equal-sized blocks: the window W and the W events before it (R)."""
        w = self.profile.window
        raw_w = b"".join(e + b"\n" for e in self._tail[i0:i0 + w])
        raw_r = b"".join(e + b"\n" for e in self._tail[r0:i0])
        c_w = self._model.block_bits(raw_w)
        c_r, c_rw = self._model.joint_bits(raw_r, raw_w) if raw_r else (0.0, c_w)
        big, small = max(c_r, c_w), min(c_r, c_w)
        return {
            "ncd": (c_rw - small) / big if big > 0 else 0.0,
            "compression_ratio_window": 8.0 * len(raw_w) / max(c_w, 1e-9),
            "compression_ratio_reference": 8.0 * len(raw_r) / max(c_r, 1e-9) if raw_r else 0.0,
            "delta_bits": c_rw - c_r - c_w,
        }

    def _trim(self, last_end: int) -> None:
        """Keep what later hops need: the next windows, and B events before them for a drift rebuild."""
        p = self.profile
        keep_from = max(0, min(self._admitted_upto, last_end + p.hop - p.window - p.baseline))
        cut = keep_from - self._tail_base
        if cut > 0:
            del self._tail[:cut]
            del self._taint[:cut]
            self._bits = self._bits[cut:].copy()
            self._tail_base = keep_from

    # ------------------------------------------------------------------ state

    def snapshot(self) -> bytes:
        """State as bytes: a JSON header, then raw numpy arrays (no pickle). See ``registry.restore``."""
        arrays = {
            "baseline": np.frombuffer(b"".join(self._baseline), dtype=np.uint8),
            "baseline_lens": np.fromiter(map(len, self._baseline), dtype=np.int64, count=len(self._baseline)),
            "tail": np.frombuffer(b"".join(self._tail), dtype=np.uint8),
            "tail_lens": np.fromiter(map(len, self._tail), dtype=np.int64, count=len(self._tail)),
            "taint": np.asarray(self._taint, dtype=np.uint8),
            "bits": self._bits,
            "held": np.frombuffer(b"".join(self._held), dtype=np.uint8),
            "held_lens": np.fromiter(map(len, self._held), dtype=np.int64, count=len(self._held)),
            "hist": self._hist,
            "recent_entropy": np.array(sorted(self._recent_entropy.items()), dtype=np.float64).reshape(-1, 2),
            "calibration": self._calibrator.ring,
        }
        header = {"config": self.config, "seen": self._seen, "tail_base": self._tail_base,
                  "admitted_upto": self._admitted_upto, "scored_upto": self._scored_upto,
                  "hist_lo": self._hist_lo, "hist_hi": self._hist_hi,
                  "anomaly_run": self._anomaly_run,
                  "calibration_count": self._calibrator.count,
                  "calibration_position": self._calibrator.position,
                  "calibration_sums": self._calibrator.sums,
                  "arrays": [[name, str(a.dtype), list(a.shape)] for name, a in arrays.items()]}
        head = json.dumps(header, sort_keys=True).encode()
        return b"".join([_MAGIC, struct.pack("<I", len(head)), head,
                         *(np.ascontiguousarray(a).tobytes() for a in arrays.values())])

    @classmethod
    def restore(cls, data: bytes) -> CbadDetector:
        if not data.startswith(_MAGIC):
            raise ValueError("not a cbad snapshot")
        (size,) = struct.unpack_from("<I", data, len(_MAGIC))
        pos = len(_MAGIC) + 4
        header = json.loads(data[pos:pos + size])
        pos += size
        arrays: dict[str, np.ndarray] = {}
        for name, dtype, shape in header["arrays"]:
            count = int(np.prod(shape)) if shape else 1
            a = np.frombuffer(data, dtype=np.dtype(dtype), count=count, offset=pos).reshape(shape)
            arrays[name] = a.copy()
            pos += a.nbytes
        config = dict(header["config"])
        config.pop("kind")
        det = cls(**config)
        det._baseline = deque(_split(arrays["baseline"], arrays["baseline_lens"]))
        det._tail = _split(arrays["tail"], arrays["tail_lens"])
        det._taint = [int(x) for x in arrays["taint"]]
        det._bits = arrays["bits"]
        det._held = _split(arrays["held"], arrays["held_lens"])
        det._scored_upto = header["scored_upto"]
        det._hist = arrays["hist"]
        det._hist_lo, det._hist_hi = header["hist_lo"], header["hist_hi"]
        det._recent_entropy = {int(k): float(v) for k, v in arrays["recent_entropy"].tolist()}
        det._seen = header["seen"]
        det._tail_base = header["tail_base"]
        det._admitted_upto = header["admitted_upto"]
        det._anomaly_run = header["anomaly_run"]
        if arrays["calibration"].shape != det._calibrator.ring.shape:  # enlarged by a bulk warm-up
            det._calibrator = Calibrator(_STATS, arrays["calibration"].shape[1])
        det._calibrator.ring[:] = arrays["calibration"]
        det._calibrator.count = header["calibration_count"]
        det._calibrator.position = header["calibration_position"]
        det._calibrator.sums = [float(x) for x in header["calibration_sums"]]
        det._model.rebuild(list(det._baseline))
        return det

    # ------------------------------------------------------------------ conformance helpers

    @classmethod
    def example_events(cls, n: int, seed: int) -> list[bytes]:
        """A stationary canonical log stream with a new error template injected near the end."""
        from detectors.testing import synthetic_logs

        at = max(0, n - max(8, n // 20))
        return synthetic_logs(n, seed, anomalies=range(at, min(n, at + 4)))

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return {"profile": "sensitive", "baseline": 60, "window": 10, "hop": 5}

    @classmethod
    def kernel_checks(cls) -> list[KernelCheck]:
        from detectors import testing

        def make_args(seed: int) -> tuple[Any, ...]:
            rng = np.random.default_rng(seed)
            alphabet = np.frombuffer(b"abc =<>N1\n\xff", dtype=np.uint8)
            count = int(rng.integers(1, 40))
            events = [rng.choice(alphabet, int(rng.integers(0, 30))).tobytes() for _ in range(count)]
            split = int(rng.integers(0, len(events) + 1))
            return events[:split], events[split:], int(rng.integers(0, 1 << 40)), int(rng.integers(10, 14))

        def kernel(baseline: list[bytes], window: list[bytes], salt: int, bits: int) -> np.ndarray:
            model = _KernelProbe(salt, bits)
            model.rebuild(baseline)
            return model.score(window)

        def reference(baseline: list[bytes], window: list[bytes], salt: int, bits: int) -> np.ndarray:
            table = testing.naive_counts(baseline, salt, bits)
            return np.array([testing.naive_event_bits(table, e, salt, bits) for e in window])

        return [KernelCheck("cm.score_events", make_args, kernel, reference)]


class _KernelProbe:
    """The context-model kernels with an explicit salt, for the kernel-versus-reference checks."""

    def __init__(self, salt: int, table_bits: int) -> None:
        self.table = np.zeros(1 << table_bits, dtype=np.uint32)
        self.mask = np.uint64((1 << table_bits) - 1)
        self.salt = np.uint64(salt)
        self.lt, self.ls = cm.log_tables()

    def rebuild(self, events: list[bytes]) -> None:
        if events:
            buf, starts, ends = _layout(events)
            cm.count_events(self.table, self.salt, self.mask, buf, starts, ends, True)

    def score(self, events: list[bytes]) -> np.ndarray:
        out = np.zeros(len(events))
        if events:
            buf, starts, ends = _layout(events)
            cm.score_events(self.table, self.lt, self.ls, self.salt, self.mask, buf, starts, ends, 0,
                            len(events), out)
        return out


def _split(buf: np.ndarray, lens: np.ndarray) -> list[bytes]:
    raw = buf.tobytes()
    ends = np.cumsum(lens).tolist()
    starts = [0, *ends[:-1]] if ends else []
    return [raw[a:b] for a, b in zip(starts, ends, strict=True)]


def _create(**config: Any) -> CbadDetector:
    return CbadDetector(**config)


registry.register(KIND, restore=CbadDetector.restore)(_create)

__all__ = ["CbadDetector", "token_bits"]
