"""CBAD: compression-based anomaly detection for byte events (canonical logs and spans).

Per stream, the last ``window`` events (W) are scored every ``hop`` events (H) against a baseline of the
``baseline`` (B) preceding *normal* events, kept as an incrementally updated count model, so a window costs
O(W bytes) whatever B. Its parts, one job each: scoring (:mod:`detectors.compressors`, the window summary in
:mod:`detectors._kernels.cbad_window`), calibration (:mod:`detectors.calibration`), the decision
(:mod:`detectors._kernels.cbad_decision`) and severity (:mod:`detectors.severity`). Every hop runs through
one kernel (:mod:`detectors._kernels.cbad_hops`); this class keeps the stream's state between calls, turns
the kernel's rows into results and explains anomalous windows. Figures and explanation:
``docs/detectors.md``.

>>> from detectors import EventBatch, registry
>>> from detectors.synthetic import synthetic_logs
>>> det = registry.create("cbad", profile="sensitive", seed=7, baseline=60, window=10, hop=5)
>>> events = synthetic_logs(800, seed=3, anomalies=range(770, 775))
>>> results = det.update(EventBatch(events))
>>> det.events_seen, det.warmed_up, len(results)
(800, True, 159)
>>> flagged = [r for r in results if r.is_anomaly]
>>> all(r.end_offset > 770 for r in flagged)
True
>>> flagged[0].explanation["top_events"][0]["offset"] in range(770, 775)
True
>>> det2 = registry.restore("cbad", det.snapshot())
>>> det2.update(EventBatch(events[:20])) == det.update(EventBatch(events[:20]))
True
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from detectors import registry, snapshot
from detectors._kernels import cbad_hops as H
from detectors._kernels.cbad_decision import ANOMALY, DRIFT, DecisionConfig
from detectors._kernels.cbad_window import byte_entropy
from detectors._kernels.cm import COUNT_DTYPE, CountModel
from detectors._kernels.layout import Events, layout
from detectors.base import EventBatch, UpdateResult, WindowResult, require_batch
from detectors.calibration import (
    CBAD_TAIL,
    MIN_CALIBRATION,
    MIN_SCALE,
    Calibrator,
    calibration_capacity,
)
from detectors.compressors import COMPRESSORS, DEFAULT_TABLE_BITS, CodeLengthModel, ContextModel, make_model
from detectors.event_blocks import BLOCK, EventBlocks
from detectors.explain import event_bits_table, sentence, top_events
from detectors.field_shift import CBAD_WEIGHT, FieldShift, combine, for_profile
from detectors.incidents import IncidentActions, IncidentTracker
from detectors.profiles import DEFAULT_PROFILE, incident_policy, resolve_profile
from detectors.severity import severity

KIND = "cbad"
_TAG = b"CBAD"
_VERSION = 9  # 9: the newest retained events as the event store holds them between calls (raw_block: one
# sealed block of them, detectors.event_blocks) instead of joined bytes and their lengths (raw, raw_lens);
# 8: the count table as its nonzero slots and their counts (table_slots, table_counts);
# 7: the per-event arrays (taint, bits, times) from ``arrays_base`` on (where the next hops
# read), the calibration ring's first ``calibration_count`` windows and its ``calibration_capacity``;
# 6: the retained events as the event store holds them (detectors.event_blocks: the newest as
# joined bytes, older ones as their sealed blocks), the baseline and held events as stream offsets into it;
# 5: the baseline and held events as references into the tail (each event's bytes stored once);
# 4: the field test's attribute field (config key field_attributes, its arrays); 3: the count table's raw
# slots; 2: the incident tracker's state, the frozen flag and event times. 1 to 8 still restore (1 and 2:
# their counts rebuilt from the baseline, in the current table size; 1 to 3: no attribute field)
_EVENT_BUFFERS = frozenset({"tail", "others", "baseline", "held", "raw", "raw_block", "blocks"})
"""Snapshot arrays only split into events on restore: read in place, not copied first."""
_OLD_DEFAULT_TABLE_BITS = 17  # the default of snapshot versions 1 and 2 (2**17 uint32 slots)
_NO_TIME = -1
_STATS = 2  # window bits/byte; mean bits/byte of the costliest tenth of the window's events
MAX_WARM_UP_CALIBRATION = 8192  # calibration windows kept from a bulk warm-up (2 x 8 bytes each)
_NO_EVENTS = layout([])
_NO_COUNTS = CountModel(np.zeros(1, COUNT_DTYPE), np.zeros(1), np.zeros(1), np.uint64(0), np.uint64(0))
"""What the hop kernel gets in place of counts when the model scores in Python (the oracles)."""


def _offset_dtype(lo: int, hi: int) -> type[np.signedinteger[Any]]:
    """The type of an array of stream offsets in ``[lo, hi)``: int32 while they fit (a stream's first 2**31
    events: half the bytes), int64 beyond (an int32 array joined to an int64 one becomes int64)."""
    return np.int32 if lo >= -(1 << 31) and hi <= 1 << 31 else np.int64


def _narrow(offsets: np.ndarray) -> np.ndarray:
    if not offsets.size:
        return offsets.astype(np.int32)
    return offsets.astype(_offset_dtype(int(offsets.min()), int(offsets.max()) + 1))


def _as_bytes_list(events: Sequence[object] | np.ndarray) -> list[bytes]:
    batch: list[Any] = list(events)
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


class CbadDetector(IncidentActions):
    """Streaming compression-based detector for one stream of canonical byte events.

    Parameters: ``profile`` (sensitive | balanced | strict), ``seed`` (salts the model's hashing),
    ``compressor`` ("cm" default, "zlib" or "zstd" oracles), per-stream overrides ``baseline``, ``window``,
    ``hop``, ``false_alarm_target``, and ``table_bits`` (count table of 2**bits uint16 slots; 14 = 32 KiB);
    incidents (:mod:`detectors.incidents`): ``incident_h``, ``resolve_after_windows``, ``accept_after_ns``
    (None: the profile's); ``field_test``: combine the window's p-value with the per-field distribution test
    (:mod:`detectors.field_shift`; off for windows under 10 events, and for snapshots written before it);
    ``field_attributes``: with its attribute field ``c`` (off for snapshots written before it).
    """

    kind = KIND

    def __init__(self, profile: str = DEFAULT_PROFILE, seed: int = 42, compressor: str = "cm",
                 baseline: int | None = None, window: int | None = None, hop: int | None = None,
                 false_alarm_target: float | None = None, table_bits: int = DEFAULT_TABLE_BITS,
                 incident_h: float | None = None, resolve_after_windows: int | None = None,
                 accept_after_ns: int | None = None, field_test: bool = True,
                 field_attributes: bool = True) -> None:
        if compressor not in COMPRESSORS:
            raise ValueError(f"unknown compressor {compressor!r}; choose one of {', '.join(COMPRESSORS)}")
        self.profile = resolve_profile(profile, baseline=baseline, window=window, hop=hop,
                                       false_alarm_target=false_alarm_target)
        self.seed = int(seed)
        self.compressor = compressor
        self.table_bits = int(table_bits)
        self._model: CodeLengthModel = make_model(compressor, self.seed, self.table_bits)
        self.event_bits_every_window = False
        """Every window's explanation gets its ``event_bits`` table, not only an anomalous window's (the
        offline evaluators read each event's excess bits). Off, the table is not built for the windows
        nobody reads it in (9 % of the gateway's GIL-held samples in a whole-gateway profile). Not part of
        the state or snapshot."""
        p = self.profile
        self._top_m = max(1, round(p.window / 10))
        # A change is adopted as the new normal once anomalous windows cover max(2W, B/2) events in a row.
        drift_windows = math.ceil(max(2 * p.window, p.baseline / 2) / p.hop)
        self._hop_config = H.HopConfig(
            hop=p.hop, window=p.window, top_m=self._top_m, internal=isinstance(self._model, ContextModel),
            decision=DecisionConfig(baseline=p.baseline, min_calibration=MIN_CALIBRATION,
                                    drift_windows=drift_windows, target=p.false_alarm_target,
                                    clip_alpha=p.false_alarm_target / _STATS, min_scale=MIN_SCALE,
                                    single=p.window == 1, tail=CBAD_TAIL))
        self._calibrator = Calibrator(_STATS, calibration_capacity(p.false_alarm_target))
        # The retained events by stream offset: the tail [tail_base, seen) and every baseline and held event
        # (those may have left the tail); the newest as bytes, older ones in compressed blocks.
        self._events = EventBlocks()
        # per event from stream offset ``_arrays_base`` on (where the next call's hops start reading):
        self._taint = np.zeros(0, np.uint8)  # 1 if the event was in an anomalous window
        self._bits = np.zeros(0)  # code length of each event when it entered the window
        self._arrays_base = 0
        # the baseline (oldest first) and the held events (of anomalous windows, waiting for the anomaly to
        # end) as stream offsets into ``_events``; an array (int32 while the offsets fit: ``_offset_dtype``),
        # not Python ints (~36 bytes each)
        self._baseline_at = np.zeros(0, np.int32)
        self._held_at: list[int] = []
        self._scored_upto = 0
        self._hist = np.zeros(256, dtype=np.int64)  # byte histogram of the events [hist_lo, hist_hi)
        self._hist_lo = 0
        self._hist_hi = 0
        self._recent_entropy: dict[int, float] = {}  # window end -> its byte entropy
        self._tail_base = 0
        self._seen = 0
        self._admitted_upto = 0  # events below this offset have left the window (admitted or held)
        self._anomaly_run = 0
        self._incident_overrides = {k: v for k, v in (("incident_h", incident_h),
                                                      ("resolve_after_windows", resolve_after_windows),
                                                      ("accept_after_ns", accept_after_ns)) if v is not None}
        self._tracker = IncidentTracker(incident_policy(self.profile, incident_h=incident_h,
                                                        resolve_after_windows=resolve_after_windows,
                                                        accept_after_ns=accept_after_ns))
        self._frozen = False  # an incident is open: the baseline and calibration are frozen
        self._times = np.zeros(0, np.int64)  # per event (as _bits): event time (ns), _NO_TIME if not given
        self._last_end = 0  # end offset of the last window scored
        # the per-field distribution test beside the compression score (None for very short windows)
        self.field_test = bool(field_test)
        self.field_attributes = self.field_test and bool(field_attributes)
        self._fields: FieldShift | None = (for_profile(p.window, self.field_attributes) if self.field_test
                                           else None)

    # ------------------------------------------------------------------ contract

    @property
    def config(self) -> dict[str, Any]:
        p = self.profile
        return {"kind": KIND, "profile": p.name, "baseline": p.baseline, "window": p.window, "hop": p.hop,
                "false_alarm_target": p.false_alarm_target, "seed": self.seed, "compressor": self.compressor,
                "table_bits": self.table_bits, **self._incident_overrides,
                **({"field_test": True} if self.field_test else {}),  # absent: off (as before it existed)
                **({"field_attributes": True} if self.field_attributes else {})}

    @property
    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.config, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def events_seen(self) -> int:
        return self._seen

    @property
    def warmed_up(self) -> bool:
        """True once the baseline holds B events and enough normal windows calibrate the p-values."""
        return len(self._baseline_at) >= self.profile.baseline and self._calibrator.count >= MIN_CALIBRATION

    @property
    def skipped_points(self) -> Mapping[str, int]:
        """Always empty: every byte event can be scored."""
        return {}

    @property
    def baseline_events(self) -> list[bytes]:
        """The events the current windows are judged against, oldest first."""
        with self._events.held():
            return self._events.take(self._baseline_at.tolist())

    def update(self, batch: EventBatch) -> UpdateResult:
        """Feed events in stream order; returns one result per hop completed by them, and the incident
        updates they caused (``.incidents``)."""
        self._events.open()
        try:
            return self._update(batch)
        finally:
            self._model.close()  # the counts compact again until the next call
            self._events.close()  # and the newest events rest sealed (unless called again soon)

    def _update(self, batch: EventBatch) -> UpdateResult:
        batch = require_batch(batch)
        events = _as_bytes_list(batch.events)
        if not events:
            return UpdateResult()
        p = self.profile
        first = self._seen
        self._events.extend(first, events)
        self._taint = np.concatenate((self._taint, np.zeros(len(events), np.uint8)))
        self._bits = np.concatenate((self._bits, np.zeros(len(events))))
        times = (np.full(len(events), _NO_TIME, np.int64) if batch.times is None
                 else np.rint(np.asarray(batch.times, np.float64) * 1e9).astype(np.int64))
        self._times = np.concatenate((self._times, times))
        self._seen += len(events)
        if self._fields is not None:
            self._fields.extend(events)
        first_end = max(p.hop * (first // p.hop + 1), p.hop * math.ceil(p.window / p.hop))
        hop_ends = range(first_end, self._seen + 1, p.hop)
        if not hop_ends:
            self._events.forget()
            return UpdateResult()
        # Lay out only what this call's hops read: from the first window's start (or its reference block, see
        # _reach; or the oldest event still in the window histogram) on, so small batches do not copy the
        # whole retained tail.
        lo = max(self._tail_base, min(self._hist_lo, self._admitted_upto, hop_ends[0] - self._reach))
        recent = self._events.layout(lo)
        results: list[WindowResult] = []
        k = 0
        while k < len(hop_ends):
            # stop the kernel at a window the field test flags, as it stops at its own anomalies
            stop = None if self._fields is None else self._fields.first_flag(
                hop_ends[k:], self._frozen, (1.0 - CBAD_WEIGHT) * p.false_alarm_target)
            upto = len(hop_ends) if stop is None else k + stop + 1
            k += self._run_hops(hop_ends[k:upto], lo, recent, results)
        self._trim(hop_ends[-1])
        self._seal(hop_ends[-1])
        if self._fields is not None:
            # a later restart names the events from a window's start - B on (a drift's or an accepted
            # incident's new baseline: the window ends at hop_ends[-1] at the earliest), a thaw the last
            # test window's
            last = hop_ends[-1]
            self._fields.trim(last + p.hop, min(last - p.window - p.baseline, last - self._fields.window))
        return UpdateResult(results, self._tracker.take_updates())

    # ------------------------------------------------------------------ the hop kernel

    def _run_hops(self, hop_ends: range, lo: int, recent: Events, results: list[WindowResult]) -> int:
        """Run ``hop_ends`` through the hop kernel until it stops after an anomalous window; append the
        results (explaining the anomaly, adopting a drift) and return how many hops were done."""
        p = self.profile
        w = p.window
        base = self._arrays_base
        model = self._model
        cal = self._calibrator
        cal.reserve(len(hop_ends))  # each hop adds at most one window to the ring
        # The baseline events this run may remove (the oldest, at most as many as the run can admit), then
        # the held events: the kernel reaches them through ``extra``.
        may_admit = max(0, hop_ends[-1] - w - self._admitted_upto)
        n_base, n_held = len(self._baseline_at), len(self._held_at)
        n_old = min(n_base, max(0, n_base + may_admit + n_held - p.baseline))
        extra_at = [*self._baseline_at[:n_old].tolist(), *self._held_at]
        fifo = np.empty(n_old + n_held + may_admit, np.int64)
        fifo[:n_old] = np.arange(-1, -1 - n_old, -1)
        held = np.empty(n_held + may_admit, np.int64)
        held[:n_held] = np.arange(-1 - n_old, -1 - n_old - n_held, -1)
        # in the order of cbad_hops' state constants: SCORED .. PHASE
        state = np.array([self._scored_upto - lo, self._admitted_upto - lo, self._hist_lo - lo,
                          self._hist_hi - lo, n_base, cal.count, cal.position, self._anomaly_run, 0, n_old, 0,
                          n_held, H.READY, int(self._frozen)], dtype=np.int64)
        queues = _Queues(self, lo, extra_at, fifo, held, n_old)
        n = len(hop_ends)
        out = np.empty((n, H.OUT_COLUMNS))
        excess_out = np.empty((n, w))
        bits = self._bits[lo - base:]
        taint = self._taint[lo - base:]
        extra = self._events.layout_at(extra_at) if extra_at else _NO_EVENTS
        done = 0
        while True:
            done += H.hops(model.counts or _NO_COUNTS, recent, extra, bits, taint, self._hist, cal.ring,
                           hop_ends[done] - lo, n - done, self._hop_config, state, fifo, held, out[done:],
                           excess_out[done:])
            if state[H.PHASE] != H.NEEDS_SCORES:
                break
            # A model that scores in Python: the hop is admitted; score its new events and resume.
            if queues.sync(state):
                model.rebuild(self.baseline_events)
            s0, end = int(state[H.SCORED]), hop_ends[done] - lo
            bits[s0:end] = model.score(self._events.range(lo + s0, lo + end))
            state[H.PHASE] = H.SCORES_GIVEN
        queues.sync(state)
        self._admitted_upto = int(state[H.ADMITTED]) + lo
        self._scored_upto = int(state[H.SCORED]) + lo
        self._hist_lo = int(state[H.HIST_LO]) + lo
        self._hist_hi = int(state[H.HIST_HI]) + lo
        cal.count, cal.position = int(state[H.CAL_COUNT]), int(state[H.CAL_POSITION])
        self._anomaly_run = int(state[H.ANOMALY_RUN])
        first_w0 = hop_ends[0] - w
        window_bits = self._bits[first_w0 - base:hop_ends[done - 1] - base].tolist()
        for k, (row, excess) in enumerate(zip(out[:done].tolist(), excess_out[:done].tolist(), strict=True)):
            results.append(self._result(hop_ends[k], lo, recent, row, window_bits[k * p.hop:k * p.hop + w],
                                        excess))
        return done

    def _result(self, end: int, lo: int, recent: Events, row: list[float], bits: list[float],
                excess: list[float]) -> WindowResult:
        """The WindowResult of the hop ending at ``end`` from its kernel row; explains an anomaly and adopts
        a drift (also records the window's entropy for later windows)."""
        p = self.profile
        w = p.window
        w0 = end - w
        (total, n_bytes, entropy_window, top_bpb, n_excess, _, _, expected_bpb, p_value, baseline_events,
         calibration_windows, effect, flags) = row
        is_anomaly, is_drift = bool(int(flags) & ANOMALY), bool(int(flags) & DRIFT)
        p_cbad = p_fields = p_value
        if self._fields is not None:  # one p-value per window: cbad's and the field test's, combined
            p_fields = self._fields.window_p(end, self._frozen)
            if baseline_events >= p.baseline and calibration_windows >= MIN_CALIBRATION:  # warmed up
                p_value = combine(p_cbad, p_fields)
                is_anomaly = is_anomaly or p_value <= p.false_alarm_target
        stats = (total / n_bytes, top_bpb)
        if math.isnan(expected_bpb):  # no calibration yet: the window's own rate is the reference
            expected_bpb = stats[0]
        # Entropy of the equal-sized block before the window: the window that ended at w0, if one did.
        entropy_reference = self._recent_entropy.get(w0)
        if entropy_reference is None:  # W not a multiple of H, or the stream's first windows
            r0 = max(w0 - w, self._tail_base)
            entropy_reference = entropy_window
            if w0 > r0 and r0 >= lo:
                entropy_reference = byte_entropy(recent.buf, recent.starts[r0 - lo], recent.ends[w0 - lo - 1])
            elif w0 > r0:  # sealed already (W a multiple of H: only a stream's first windows; rare)
                block = self._events.layout(r0, w0)
                entropy_reference = byte_entropy(block.buf, block.starts[0], block.ends[-1])
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
        if self._fields is not None:
            figures.update(cbad_p_value=p_cbad, field_p_value=p_fields)
        tops: list[dict[str, Any]] = []
        if is_anomaly:
            figures.update(self._compat_figures(max(w0 - w, self._tail_base), w0))
            events = self._events.range(w0, end)
            among = None
            if self._fields is not None and not int(flags) & ANOMALY:  # flagged by the field test alone:
                among = self._fields.carriers(events, end, (1.0 - CBAD_WEIGHT) * p.false_alarm_target)
                # The test reads 4 windows: a shift whose events all lie before this window was this
                # window's predecessors' to report; this one, holding none of them, is not anomalous.
                is_anomaly = bool(among)
            if is_anomaly:
                tops = top_events(self._model, events, w0, np.asarray(bits), np.asarray(excess), among)
        explanation: dict[str, Any] = {
            "sentence": sentence(is_anomaly, is_drift, p_value, (w0, end), int(n_excess), tops, expected_bpb),
            "top_events": tops,
        }
        if is_anomaly or self.event_bits_every_window:
            explanation["event_bits"] = event_bits_table(w0, bits, excess)
        # Positional (start_offset, end_offset, score, p_value, is_anomaly, severity, is_drift, figures,
        # explanation): keyword arguments cost a third more, once per window.
        t0, t1 = int(self._times[w0 - self._arrays_base]), int(self._times[end - 1 - self._arrays_base])
        start_ns, end_ns = None if t0 == _NO_TIME else t0, None if t1 == _NO_TIME else t1
        result = WindowResult(w0, end, -math.log10(max(p_value, 1e-300)), p_value, is_anomaly,
                              severity(p_value, p.false_alarm_target, effect, is_anomaly), is_drift, figures,
                              explanation, None, start_ns, end_ns)
        if is_drift:
            self._adopt_new_normal(w0)
        self._last_end = end
        if p_value < 1.0 or self._frozen:  # p = 1 (warming up) is no evidence and changes nothing
            result = self._tracker.observe(self, result, end_ns, start_ns)
        return result

    # ------------------------------------------------- incidents: the IncidentHost side (detectors.incidents)

    def _incident_freeze(self) -> None:
        self._frozen = True
        self._anomaly_run = 0
        if self._fields is not None:
            self._fields.freeze()

    def _incident_thaw(self, keep_events: bool) -> None:
        self._frozen = False
        if not keep_events:
            self._held_at = []
        if self._fields is not None:
            self._fields.thaw(keep_events, self._last_end)

    def _incident_adopt(self) -> None:
        self._frozen = False
        with self._events.held():  # an operator's action: between calls
            self._adopt_new_normal(max(0, self._last_end - self.profile.window))

    def _incident_reference(self) -> list[bytes]:
        return self.baseline_events

    def _incident_band(self) -> None:
        return None

    def _incident_event(self, offset: int) -> bytes | None:
        if not self._tail_base <= offset < self._seen:
            return None
        with self._events.held():
            return self._events.get(offset)

    # ------------------------------------------------------------------ bulk warm-up

    def warm_up(self, history: EventBatch) -> list[WindowResult]:
        """Feed a history known to be normal, then calibrate on it by leave-one-out.

        The history is fed as by :meth:`update` (so the stream state is the ordinary one), then the
        calibration history is replaced by the statistics of the baseline's own windows, each block of W
        consecutive baseline events scored against the baseline *without its own counts*: what a new normal
        window costs, estimated from the whole baseline rather than from the few windows that happened to
        follow it. Up to ``MAX_WARM_UP_CALIBRATION`` blocks, evenly spaced over the baseline; the ring
        keeps that size afterwards. Needs the ``cm`` model (the oracles cannot subtract an event).
        """
        model = self._model
        if not isinstance(model, ContextModel):
            raise ValueError("warm_up needs the cm compressor (leave-one-out subtracts counts)")
        results = self.update(history)
        w = self.profile.window
        events = self.baseline_events
        blocks = len(events) // w
        if blocks == 0:
            return results
        chosen = np.unique(np.linspace(0, blocks - 1, min(blocks, MAX_WARM_UP_CALIBRATION)).astype(np.int64))
        flat = layout(events)
        sizes = (flat.ends - flat.starts + 1).astype(np.float64)
        bits = np.zeros(w)
        capacity = max(calibration_capacity(self.profile.false_alarm_target), chosen.size)
        self._calibrator = Calibrator(_STATS, capacity)
        for b in chosen.tolist():
            i0, i1 = b * w, b * w + w
            model.leave_one_out(flat, i0, i1, bits)
            per_byte = np.sort(bits / sizes[i0:i1])
            self._calibrator.add((float(bits.sum() / sizes[i0:i1].sum()),
                                  float(per_byte[-self._top_m:].mean())))
        model.close()
        return results

    # ------------------------------------------------------------------ state kept between hops

    def _adopt_new_normal(self, w0: int) -> None:
        """Drift: the B events before the window become the baseline and calibration starts over."""
        p = self.profile
        lo = max(w0 - p.baseline, self._tail_base)
        self._baseline_at = np.arange(lo, w0, dtype=_offset_dtype(lo, w0))
        self._model.rebuild(self._events.range(lo, w0))
        self._calibrator.reset()
        self._anomaly_run = 0
        self._held_at = []
        self._taint[w0 - self._arrays_base:] = 0
        if self._fields is not None:
            self._fields.restart(w0 - p.baseline, w0 + p.window)  # the events the new baseline holds

    def _compat_figures(self, r0: int, w0: int) -> dict[str, float]:
        """NCD, ratios and delta bits on equal-sized blocks: the window W (from stream offset ``w0``) and the
        events before it from ``r0`` (R: W of them, fewer at the stream's start)."""
        w = self.profile.window
        raw_w = b"".join(e + b"\n" for e in self._events.range(w0, w0 + w))
        raw_r = b"".join(e + b"\n" for e in self._events.range(r0, w0))
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
        if keep_from > self._tail_base:
            self._events.release(keep_from, self._pinned)
            self._tail_base = keep_from
        self._trim_arrays(last_end)

    def _trim_arrays(self, last_end: int) -> None:
        """The per-event arrays from where the next call's hops start reading on (``update``'s ``lo`` for a
        first hop ending at ``last_end + hop`` or later) or an accepted incident's new normal resets the taint
        (from the last window's start)."""
        p = self.profile
        reads = min(self._hist_lo, self._admitted_upto, last_end + p.hop - self._reach, last_end - p.window)
        keep_from = max(self._tail_base, reads)
        cut = keep_from - self._arrays_base
        if cut > 0:
            self._taint = self._taint[cut:].copy()
            self._bits = self._bits[cut:].copy()
            self._times = self._times[cut:].copy()
            self._arrays_base = keep_from

    def _pinned(self) -> np.ndarray:
        """The offsets the event store must keep whatever their age: the baseline and held events."""
        return np.concatenate((self._baseline_at, np.array(self._held_at, np.int64)))

    @property
    def _reach(self) -> int:
        """How far before its end a call's first window reads events in place: its start (W) when the
        entropy of the block before it is the one recorded for the window that ended there (W a multiple of
        H), else that block too (2W)."""
        w = self.profile.window
        return w if w % self.profile.hop == 0 else 2 * w

    def _seal(self, last_end: int) -> None:
        """Compress the events no hop reads again in place: those below where the next call's layout starts
        (``update``'s ``lo`` for a first hop ending at ``last_end + hop`` or later)."""
        p = self.profile
        self._events.seal_below(min(self._hist_lo, self._admitted_upto, last_end + p.hop - self._reach))
        self._events.forget()

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> bytes:
        """State as bytes in the shared format (:mod:`detectors.snapshot`); see ``registry.restore``."""
        with self._events.held():  # not rested while read (nor woken)
            raw_start, _, raw_block, blocks, block_sizes, block_keys = self._events.dump()  # ends at seen
        arrays: dict[str, np.ndarray] = {
            "raw_block": raw_block,
            "blocks": blocks,
            "block_sizes": block_sizes,
            "block_keys": block_keys,
            "baseline_at": self._baseline_at.astype(np.int64),
            "held_at": np.array(self._held_at, np.int64),
            "taint": self._taint,
            "bits": self._bits,
            "hist": self._hist,
            "recent_entropy": np.array(sorted(self._recent_entropy.items()), dtype=np.float64).reshape(-1, 2),
            "calibration": self._calibrator.ring.values[:, :self._calibrator.count],
            "times": self._times,
        }
        if isinstance(self._model, ContextModel):  # restoring copies the counts instead of recounting B
            arrays["table_slots"], arrays["table_counts"] = self._model.nonzero()
        header = {"config": self.config, "seen": self._seen, "tail_base": self._tail_base,
                  "arrays_base": self._arrays_base, "calibration_capacity": self._calibrator.capacity,
                  "raw_start": raw_start, "event_block": BLOCK,
                  "admitted_upto": self._admitted_upto, "scored_upto": self._scored_upto,
                  "hist_lo": self._hist_lo, "hist_hi": self._hist_hi,
                  "anomaly_run": self._anomaly_run,
                  "calibration_count": self._calibrator.count,
                  "calibration_position": self._calibrator.position,
                  "calibration_sums": self._calibrator.ring.sums.tolist(),
                  "frozen": self._frozen, "last_end": self._last_end, "incidents": self._tracker.dump()}
        if self._fields is not None:
            header["fields"], field_arrays = self._fields.dump()
            arrays.update(field_arrays)
        return snapshot.encode(_TAG, _VERSION, header, arrays)

    @classmethod
    def restore(cls, data: bytes | memoryview) -> CbadDetector:
        snap = snapshot.decode(data, _TAG, views=_EVENT_BUFFERS)
        if snap.version not in (1, 2, 3, 4, 5, 6, 7, 8, _VERSION):
            raise ValueError(f"cbad snapshot version {snap.version} is not readable by this version")
        header, arrays = snap.header, snap.arrays
        config = dict(header["config"])
        config.pop("kind")
        if snap.version < 3 and config.get("table_bits") == _OLD_DEFAULT_TABLE_BITS:
            config["table_bits"] = DEFAULT_TABLE_BITS  # converted: recounted below in today's table
        config.setdefault("field_test", False)  # written before the field test: go on exactly as before
        config.setdefault("field_attributes", False)  # written before its attribute field: the same
        det = cls(**config)
        det._tail_base = header["tail_base"]
        det._arrays_base = header.get("arrays_base", det._tail_base)  # before 7: from the tail's first event
        if snap.version >= 6:
            if snap.version >= 9:
                det._events = EventBlocks.load(header["raw_start"], header["seen"], arrays["raw_block"],
                                               arrays["blocks"], arrays["block_sizes"], arrays["block_keys"],
                                               header["event_block"])
            else:
                det._events = EventBlocks.load_joined(header["raw_start"], arrays["raw"], arrays["raw_lens"],
                                                      arrays["blocks"], arrays["block_sizes"],
                                                      arrays["block_keys"], header["event_block"])
            det._baseline_at = _narrow(arrays["baseline_at"])
            det._held_at = arrays["held_at"].tolist()
            if not det._events.holds(np.concatenate((det._baseline_at, arrays["held_at"]))):
                raise ValueError("corrupt cbad snapshot: a baseline or held event offset outside its events")
        else:
            det._events, baseline_at, det._held_at = _events_before_6(snap.version, arrays, det._tail_base)
            det._baseline_at = _narrow(baseline_at)
        det._taint = arrays["taint"].astype(np.uint8)
        det._bits = arrays["bits"]
        det._scored_upto = header["scored_upto"]
        det._hist = arrays["hist"]
        det._hist_lo, det._hist_hi = header["hist_lo"], header["hist_hi"]
        det._recent_entropy = {int(k): float(v) for k, v in arrays["recent_entropy"].tolist()}
        det._seen = header["seen"]
        det._admitted_upto = header["admitted_upto"]
        det._anomaly_run = header["anomaly_run"]
        ring = arrays["calibration"]
        # before 7: the ring at its capacity
        capacity = int(header["calibration_capacity"]) if "calibration_capacity" in header else ring.shape[1]
        if capacity != det._calibrator.capacity:  # enlarged by a bulk warm-up
            det._calibrator = Calibrator(_STATS, capacity)
        det._calibrator.load(ring, header["calibration_count"], header["calibration_position"],
                             header["calibration_sums"])
        table = arrays.get("table")  # versions 3-7: the dense table; 8: its nonzero slots
        if "table_slots" in arrays and isinstance(det._model, ContextModel):
            det._model.load_nonzero(arrays["table_slots"], arrays["table_counts"])
        elif table is not None and isinstance(det._model, ContextModel):
            det._model.load_table(table)
        else:
            det._model.rebuild(det.baseline_events)
        # version 1 (before incidents): no tracker state, no times
        times = arrays.get("times")
        det._times = (np.full(det._seen - det._arrays_base, _NO_TIME, np.int64) if times is None
                      else times.astype(np.int64))
        det._frozen = bool(header.get("frozen", False))
        det._last_end = int(header.get("last_end", 0))
        det._tracker.load(header.get("incidents"))
        if det._fields is not None:
            det._fields.load(header["fields"], arrays)
        if snap.version < 6:  # sealed as a live detector would have sealed them
            det._seal(det._last_end)
        if snap.version < 7:  # the per-event arrays as a live detector keeps them
            det._trim_arrays(det._last_end)
        det._model.close()
        det._events.rest()
        return det

    # ------------------------------------------------------------------ conformance helpers

    @classmethod
    def example_events(cls, n: int, seed: int) -> EventBatch:
        """A stationary canonical log stream with a new error template injected near the end."""
        from detectors.synthetic import synthetic_logs

        at = max(0, n - max(8, n // 20))
        return EventBatch(synthetic_logs(n, seed, anomalies=range(at, min(n, at + 4))))

    @classmethod
    def example_config(cls) -> dict[str, Any]:
        return {"profile": "sensitive", "baseline": 60, "window": 10, "hop": 5}


class _Queues:
    """Brings the detector's baseline and held offsets to where the kernel's queues of refs are."""

    def __init__(self, det: CbadDetector, lo: int, extra_at: list[int], fifo: np.ndarray, held: np.ndarray,
                 n_old: int) -> None:
        self.det, self.lo, self.fifo, self.held = det, lo, fifo, held
        self.extra_at = extra_at  # the offsets of the events negative refs name
        self.entered = n_old  # fifo[:entered] already in the baseline
        self.removed = 0

    def _at(self, ref: int) -> int:
        return self.lo + ref if ref >= 0 else self.extra_at[-1 - ref]

    def sync(self, state: np.ndarray) -> bool:
        """Apply what the kernel did since the last call; True if the baseline changed."""
        det = self.det
        head, length = int(state[H.FIFO_HEAD]), int(state[H.FIFO_LEN])
        changed = length > self.entered or head > self.removed
        held_head, held_len = int(state[H.HELD_HEAD]), int(state[H.HELD_LEN])
        if length > self.entered:
            if held_len == 0:  # nothing was held: what entered is a run of recent events, in order
                first = self.lo + int(self.fifo[self.entered])
                last = first + length - self.entered
                entered_at = np.arange(first, last, dtype=_offset_dtype(first, last))
            else:
                at = list(map(self._at, self.fifo[self.entered:length].tolist()))
                entered_at = np.array(at, _offset_dtype(min(at), max(at) + 1))
            det._baseline_at = np.concatenate((det._baseline_at, entered_at))
        if head > self.removed:
            det._baseline_at = det._baseline_at[head - self.removed:]
        self.entered, self.removed = length, head
        if held_len > held_head or det._held_at:
            det._held_at = [self._at(r) for r in self.held[held_head:held_len].tolist()]
        return changed


def _split(buf: np.ndarray, lens: np.ndarray) -> list[bytes]:
    raw = buf.tobytes()
    ends = np.cumsum(lens).tolist()
    return [raw[a:b] for a, b in itertools.pairwise([0, *ends])]


def _events_before_6(version: int, arrays: Mapping[str, np.ndarray], tail_base: int
                     ) -> tuple[EventBlocks, np.ndarray, list[int]]:
    """The event store, baseline and held offsets of a snapshot of versions 1-5 (the tail as joined bytes;
    the baseline and held events as references into it, version 5, or as bytes of their own, versions 1-4).
    The baseline and held events that had left the tail are given offsets below 0 (in order: nothing reads
    their offsets but the store) and stored sealed."""
    tail = _split(arrays["tail"], arrays["tail_lens"])
    if version >= 5:
        others = _split(arrays["others"], arrays["others_lens"])
        baseline_refs = arrays["baseline_refs"].astype(np.int64)
        held_refs = arrays["held_refs"].astype(np.int64)
        every = np.concatenate((baseline_refs, held_refs))
        if len(every) and (int(every.max()) >= len(tail) or int(every.min()) < -len(others)):
            raise ValueError("corrupt cbad snapshot: an event reference outside its events")
    else:  # each event equal to a tail event is that event (bytes: nothing else tells them apart)
        where = {e: i for i, e in enumerate(tail)}
        others = []

        def refs(events: list[bytes]) -> np.ndarray:
            out = np.empty(len(events), np.int64)
            for i, e in enumerate(events):
                r = where.get(e)
                if r is None:
                    r = -1 - len(others)
                    others.append(e)
                out[i] = r
            return out

        baseline_refs = refs(_split(arrays["baseline"], arrays["baseline_lens"]))
        held_refs = refs(_split(arrays["held"], arrays["held_lens"]))
    store = EventBlocks(tail_base)
    store.extend(tail_base, tail)
    # others[j] at offset j - len(others): ascending, below 0 (a stream offset is never negative)
    store.add_sealed(range(-len(others), 0), others)

    def offsets(refs: np.ndarray) -> np.ndarray:
        return np.where(refs >= 0, refs + tail_base, -1 - refs - len(others)).astype(np.int64)

    return store, offsets(baseline_refs), offsets(held_refs).tolist()


def _create(**config: Any) -> CbadDetector:
    return CbadDetector(**config)


registry.register(KIND, restore=CbadDetector.restore)(_create)

__all__ = ["CbadDetector"]
