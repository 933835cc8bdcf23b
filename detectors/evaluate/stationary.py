"""Measured false-alarm rate per window on long stationary synthetic streams, per profile.

A stream without anomalies should see about ``false_alarm_target`` of its windows flagged. Each
signal gets one long stream per profile, fed in chunks; only windows scored after warm-up count.
The 95 % interval is the exact Poisson interval on the number of alarms (chi-square quantiles via a
normal approximation with continuity; enough for a pass/fail against +-50 %).

Streams: metrics = AR(1) noise (phi 0.6) around a level and counts = Poisson counts of mean 0.05
(a counter's per-interval deltas, e.g. errors: mostly 0, sometimes 1 or 2; the sparsest common case,
where a scale learnt from the errors collapses and ties dominate the window statistics), both fed to
the numeric detector; logs and spans = ``detectors.synthetic.synthetic_logs`` / ``synthetic_spans``
(stationary service traffic) fed to the cbad detector. Logs and spans are far slower per event than
metrics, so their streams are shorter: ``events`` sets the budget per signal and profile.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from detectors import EventBatch, registry
from detectors.evaluate._progress import Progress
from detectors.profiles import PROFILES

# signals fed to the numeric detector (cheap: run long enough for every profile) and to cbad
NUMERIC_SIGNALS = ("metrics", "counts")
SIGNALS = (*NUMERIC_SIGNALS, "logs", "spans")
COUNT_MEAN = 0.05
# windows needed so that the target is expected at least ~20 times (strict: 1e-4 -> 200k windows)
_EXPECTED_ALARMS = 20
_CHUNK = 4096
# logs/spans cost ~0.1 ms per event here: cap their streams so `all` stays within minutes (strict then has
# too few windows for a verdict; pass --byte-events to run it long)
BYTE_EVENTS_CAP = 250_000


def _poisson_interval(k: int) -> tuple[float, float]:
    """Approximate 95 % interval for a Poisson count (Wilson-Hilferty)."""
    def quantile(df: float, z: float) -> float:
        return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3

    lo = 0.0 if k == 0 else quantile(2 * k, -1.959964) / 2
    hi = quantile(2 * (k + 1), 1.959964) / 2
    return lo, hi


def metric_chunks(n: int, seed: int) -> Iterator[np.ndarray]:
    rng = np.random.default_rng(seed)
    level, x = 100.0, 0.0
    done = 0
    while done < n:
        m = min(_CHUNK, n - done)
        noise = rng.normal(0.0, 1.0, m)
        out = np.empty(m)
        for i in range(m):  # AR(1), phi = 0.6
            x = 0.6 * x + noise[i]
            out[i] = level + x
        done += m
        yield out


def count_chunks(n: int, seed: int) -> Iterator[np.ndarray]:
    """Per-interval deltas of a counter: Poisson counts of mean ``COUNT_MEAN``, as floats."""
    rng = np.random.default_rng(seed)
    done = 0
    while done < n:
        m = min(_CHUNK, n - done)
        done += m
        yield rng.poisson(COUNT_MEAN, m).astype(np.float64)


def _byte_chunks(maker: Callable[[int, int], list[bytes]], n: int, seed: int) -> Iterator[list[bytes]]:
    done, part = 0, 0
    while done < n:
        m = min(_CHUNK, n - done)
        yield maker(m, seed * 1_000_003 + part)
        done += m
        part += 1


def measure(signal: str, profile: str, events: int | None = None, seed: int = 7,
            progress: bool = True) -> dict[str, Any]:
    prof = PROFILES[profile]
    need = int(_EXPECTED_ALARMS / prof.false_alarm_target) * prof.hop + 50 * prof.baseline
    if signal not in SIGNALS:
        raise ValueError(f"unknown signal {signal!r}; choose one of {', '.join(SIGNALS)}")
    if signal in NUMERIC_SIGNALS:
        n = events if events is not None else need
    else:  # byte events cost ~0.01 ms each: ``events`` raises the cap, never pads a profile past its need
        n = min(need, events if events is not None else BYTE_EVENTS_CAP)
    if signal in NUMERIC_SIGNALS:
        det = registry.create("numeric", profile=profile, seed=seed)
        chunks: Iterator[Any] = (metric_chunks if signal == "metrics" else count_chunks)(n, seed)
    else:
        from detectors.synthetic import synthetic_logs, synthetic_spans

        det = registry.create("cbad", profile=profile, seed=seed)
        chunks = _byte_chunks(synthetic_logs if signal == "logs" else synthetic_spans, n, seed)
    bar = Progress(f"stationary {signal}/{profile}", n, progress)
    windows = alarms = drifts = 0
    warm = False
    t0 = time.process_time()
    for chunk in chunks:
        for r in det.update(EventBatch(chunk)):
            # windows before the detector is warm (p-value exactly 1, never flagged) are not counted
            warm = warm or r.p_value < 1.0 or r.is_anomaly
            if not warm:
                continue
            windows += 1
            alarms += int(r.is_anomaly)
            drifts += int(r.is_drift)
        bar.step(len(chunk))
    cpu = time.process_time() - t0
    rate = alarms / windows if windows else float("nan")
    lo, hi = _poisson_interval(alarms)
    target = prof.false_alarm_target
    expected = windows * target
    verdict = None if expected < 5 else bool(0.5 <= rate / target <= 1.5)
    return {"signal": signal, "profile": profile, "events": n, "windows": windows, "alarms": alarms,
            "drifts": drifts, "rate": rate, "target": target, "ratio": rate / target if windows else None,
            "ratio_ci95": [lo / windows / target, hi / windows / target] if windows else None,
            "expected_alarms": expected, "within_50pct": verdict, "cpu_s": cpu}


def evaluate(signals: tuple[str, ...] = SIGNALS,
             profiles: tuple[str, ...] = tuple(PROFILES),
             budget: dict[str, int] | None = None, progress: bool = True) -> list[dict[str, Any]]:
    budget = budget or {}
    rows = []
    for signal in signals:
        for profile in profiles:
            rows.append(measure(signal, profile, budget.get(signal), progress=progress))
    return rows
