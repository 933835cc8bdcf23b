"""Throughput, JIT start-up and separation of the CBAD detector, measured in one run (not a test).

(1) events/s per core (thread CPU time) of the default detector (context model) at each profile, on
    synthetic canonical log and span streams, fed in 512-event batches (and smaller batches: 128 is what a
    stream gets from a 512-span request spread over four streams); then where a hop's CPU goes: the batched
    numba kernel (all hops of one ``update`` call) versus the Python around it; and the cost of the field
    test's attribute field (off and on, alternating);
(2) the same log stream through a faithful re-implementation of the earlier system's algorithm (zstd-3,
    B=400, W=50, a detection per event: NCD + 300 line permutations, each a fresh one-shot compression),
    on a few hundred events, and the ratio (1)/(2);
(3) JIT cold start (fresh process, empty NUMBA_CACHE_DIR) and cached start (same dir again);
(4) separation: AUC of window scores, normal versus anomalous windows, for each compressor.

    python bench/bench_detectors.py [--events 60000] [--legacy-events 120] [--skip-jit] [--skip-auc]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zstandard

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from detectors import EventBatch, cbad, registry  # noqa: E402
from detectors.compressors import make_model  # noqa: E402
from detectors.profiles import PROFILES  # noqa: E402
from detectors.synthetic import synthetic_logs, synthetic_spans  # noqa: E402

BATCH = 512


def hop_split(events: list[bytes], batch: int = 128) -> tuple[float, float, int]:
    """Balanced profile: CPU µs per hop inside the batched hop kernel and outside it (Python), and hops."""
    det = registry.create("cbad", profile="balanced", seed=42)
    warm = 3000
    det.update(EventBatch(events[:warm]))
    kernel_fn = cbad.H.hops
    in_kernel = [0.0]

    def timed(*args: object) -> int:
        t0 = time.thread_time()
        done = kernel_fn(*args)
        in_kernel[0] += time.thread_time() - t0
        return done

    cbad.H.hops = timed
    try:
        start = time.thread_time()
        hops = sum(len(det.update(EventBatch(events[i:i + batch]))) for i in range(warm, len(events), batch))
        total = time.thread_time() - start
    finally:
        cbad.H.hops = kernel_fn
    return 1e6 * in_kernel[0] / hops, 1e6 * (total - in_kernel[0]) / hops, hops


def detector_rate(events: list[bytes], profile: str, compressor: str = "cm",
                  batch: int = BATCH, **config: object) -> tuple[float, int, int]:
    """Events/s per core; windows scored; anomalies flagged (warm-up excluded from timing)."""
    det = registry.create("cbad", profile=profile, seed=42, compressor=compressor, **config)
    warm = 3000
    det.update(EventBatch(events[:warm]))
    windows = flagged = 0
    start = time.thread_time()
    for i in range(warm, len(events), batch):
        for r in det.update(EventBatch(events[i:i + batch])):
            windows += 1
            flagged += r.is_anomaly
    return (len(events) - warm) / (time.thread_time() - start), windows, flagged


def field_attribute_cost(streams: dict[str, list[bytes]], rounds: int = 3) -> None:
    """The field test's attribute field (``field_attributes``): µs per event with it off and on, alternating
    in this process (medians of ``rounds``), and the snapshot size after the stream, at balanced."""
    for name, events in streams.items():
        us: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(rounds):
            for on in (False, True):
                rate, _, _ = detector_rate(events, "balanced", field_attributes=on)
                us[on].append(1e6 / rate)
        sizes = {}
        for on in (False, True):
            det = registry.create("cbad", profile="balanced", seed=42, field_attributes=on)
            det.update(EventBatch(events))
            sizes[on] = len(det.snapshot()) / 1000
        off, on_ = float(np.median(us[False])), float(np.median(us[True]))
        print(f"  balanced  {name:5s} field c off/on: {off:5.2f} / {on_:5.2f} µs per event "
              f"(+{on_ - off:.2f}); snapshot {sizes[False]:.0f} / {sizes[True]:.0f} kB")


class LegacyDetector:
    """The earlier system's algorithm, faithfully: per event, once B+W events exist, one-shot zstd-3 sizes of
    B, W and B‖W (events joined by newlines), NCD, and a permutation test pooling and shuffling the lines."""

    def __init__(self, baseline: int = 400, window: int = 50, permutations: int = 300,
                 seed: int = 42) -> None:
        self.b, self.w, self.perms = baseline, window, permutations
        self.rng = np.random.default_rng(seed)
        self.events: list[bytes] = []
        self.cctx = zstandard.ZstdCompressor(level=3)

    def _size(self, data: bytes) -> int:
        return len(self.cctx.compress(data))

    def _ncd(self, base: list[bytes], win: list[bytes]) -> float:
        b, w = b"".join(e + b"\n" for e in base), b"".join(e + b"\n" for e in win)
        cb, cw, cbw = self._size(b), self._size(w), self._size(b + w)
        return (cbw - min(cb, cw)) / max(cb, cw)

    def update(self, event: bytes) -> float | None:
        self.events.append(event)
        if len(self.events) < self.b + self.w:
            return None
        pool = self.events[-(self.b + self.w):]
        observed = self._ncd(pool[: self.b], pool[self.b:])
        hits = 0
        for _ in range(self.perms):
            order = self.rng.permutation(len(pool))
            shuffled = [pool[i] for i in order]
            hits += self._ncd(shuffled[: self.b], shuffled[self.b:]) >= observed
        return hits / self.perms


def legacy_rate(events: list[bytes], n: int) -> float:
    det = LegacyDetector()
    for e in events[:449]:
        det.update(e)
    start = time.thread_time()
    for e in events[449:449 + n]:
        det.update(e)
    return n / (time.thread_time() - start)


_STARTUP = """
import time
t0 = time.perf_counter()
from detectors import EventBatch, registry
from detectors.synthetic import synthetic_logs
events = EventBatch(synthetic_logs(1000, seed=1))
t1 = time.perf_counter()
det = registry.create("cbad", profile="balanced")
results = det.update(events)
results[-1].is_anomaly and det.snapshot()
det.update(events[:50])
print(f"{time.perf_counter() - t0:.2f} {time.perf_counter() - t1:.2f}")
"""


def startup_times() -> tuple[str, str]:
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        runs = [subprocess.run([sys.executable, "-c", _STARTUP], env=env, capture_output=True, text=True,
                               check=True).stdout.split() for _ in range(2)]
    return runs[0], runs[1]


def auc(normal: list[float], anomalous: list[float]) -> float:
    a, n = np.asarray(anomalous)[:, None], np.asarray(normal)[None, :]
    return float((a > n).mean() + 0.5 * (a == n).mean())


def separation(compressor: str, rate: float, trials: int = 40) -> tuple[float, float]:
    """AUC of two window scores (novelty bits/byte; mean bits/byte of the costliest tenth of events) with
    B = 400 normal log events, W = 50; an anomalous window turns each event into a new error template
    with probability ``rate``."""
    scores: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for trial in range(trials):
        rng = np.random.default_rng(1000 + trial)
        events = synthetic_logs(450, seed=trial)
        model = make_model(compressor, seed=42)
        model.rebuild(events[:400])
        for anomalous in (False, True):
            window = events[400:]
            if anomalous:
                novel = synthetic_logs(50, seed=trial + 7, anomalies=range(50))
                window = [novel[k] if rng.random() < rate else e for k, e in enumerate(window)]
            bits = np.array([model.piece_bits(e + b"\n") for e in window])
            sizes = np.array([len(e) + 1 for e in window])
            scores[anomalous].append((bits.sum() / sizes.sum(), np.sort(bits / sizes)[-5:].mean()))
    return tuple(auc([s[k] for s in scores[False]], [s[k] for s in scores[True]]) for k in (0, 1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=60000)
    parser.add_argument("--legacy-events", type=int, default=120)
    parser.add_argument("--skip-jit", action="store_true")
    parser.add_argument("--skip-auc", action="store_true")
    args = parser.parse_args()

    streams = {"logs": synthetic_logs(args.events, seed=1), "spans": synthetic_spans(args.events, seed=2)}
    for name, events in streams.items():
        print(f"{name}: {len(events)} events, mean {np.mean([len(e) for e in events]):.0f} B canonical")
    registry.create("cbad").update(EventBatch(streams["logs"][:600]))  # JIT outside the timings

    print("\n(1) default detector (compressor=cm), events/s per core (thread CPU time), 512-event batches")
    ours = {}
    for profile in PROFILES:
        for name, events in streams.items():
            rate, windows, flagged = detector_rate(events, profile)
            ours[(profile, name)] = rate
            print(f"  {profile:9s} {name:5s} {rate:10,.0f} ev/s   windows {windows:6d}  flagged {flagged}")
    for name, events in streams.items():
        kernel_us, python_us, hops = hop_split(events)
        print(f"  balanced  {name:5s} per hop (128-event batches, {hops} hops): kernel {kernel_us:5.1f} µs, "
              f"Python {python_us:5.1f} µs")
    for batch in (128, 16, 1):
        rate, _, _ = detector_rate(streams["logs"][:20000], "balanced", batch=batch)
        print(f"  balanced  logs  {rate:10,.0f} ev/s   ({batch}-event batches)")
    for compressor in ("zlib", "zstd"):
        rate, _, _ = detector_rate(streams["logs"][:8000], "balanced", compressor)
        print(f"  balanced  logs  {rate:10,.0f} ev/s   (oracle compressor={compressor}, rebuilt per hop)")
    field_attribute_cost(streams)

    print(f"\n(2) earlier system's algorithm (zstd-3, B=400, W=50, per event, NCD + 300 permutations), "
          f"{args.legacy_events} events")
    legacy = legacy_rate(streams["logs"], args.legacy_events)
    print(f"  legacy    logs  {legacy:10,.2f} ev/s")
    print(f"  ratio balanced/legacy on logs: {ours[('balanced', 'logs')] / legacy:,.0f}x")

    if not args.skip_jit:
        cold, cached = startup_times()
        print("\n(3) start-up, fresh process (import + 1000 events + snapshot), total s / detector part s")
        print(f"  cold (empty NUMBA_CACHE_DIR): {cold[0]} s / {cold[1]} s")
        print(f"  cached (same dir again):      {cached[0]} s / {cached[1]} s")

    if not args.skip_auc:
        print("\n(4) separation, AUC normal vs anomalous window (40 trials; B=400, W=50, logs)")
        print("  compressor  AUC@20%:novelty  top-tenth   AUC@6%:novelty  top-tenth")
        for compressor in ("cm", "zlib", "zstd"):
            a20 = separation(compressor, 0.20)
            a6 = separation(compressor, 0.06)
            print(f"  {compressor:10s}  {a20[0]:15.3f}  {a20[1]:9.3f}   {a6[0]:14.3f}  {a6[1]:9.3f}")


if __name__ == "__main__":
    main()
