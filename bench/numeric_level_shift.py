"""Sustained level shifts on metric streams: which parts of the numeric detector make an incident open.

    python bench/numeric_level_shift.py

A detectors-only reproduction of the metric scenarios of ``bench/scenarios`` (balanced profile, one value
per second, 40 minutes normal, a 10-minute fault, 20 minutes normal): ``gauge_level_shift`` (40 -> 55, noise
sd 3, rounded to 0.1 as the client sends it), ``cumulative_counter_rate_change`` (the gateway's per-interval
deltas: Poisson 10 -> 30) and ``counter_rate_change`` (Poisson 20 -> 60); 5 seeds x 3 fault starts against
the windows' hop (0, 3, 7 values late). A case meets the bar as the scenarios judge it: 1 or 2 incidents,
open over >= 90 % of the fault, the last resolved after the fault ends. Controls, 3 hours each, 5 seeds:
a gauge 40 +- 15 over a 1-hour cycle (``daily_seasonality``) and a steady gauge (40, sd 3): false incidents
and anomalous windows. Variants: the detector as shipped, without the mean model, without the calibration
delay (``disjoint_calibration=False``), and other ``mean_window`` values.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from detectors import EventBatch
from detectors.numeric import NumericDetector

WARMUP, FAULT, AFTER = 2400, 600, 1200
T0 = 1.7e9
SEEDS = (1, 2, 3, 4, 5)
PHASES = (0, 3, 7)


def _gauge(rng: np.random.Generator, level: np.ndarray) -> np.ndarray:
    return np.maximum(0.0, np.round(level + rng.normal(0.0, 3.0, level.size), 1))


def _counts(rng: np.random.Generator, rate: np.ndarray) -> np.ndarray:
    return rng.poisson(rate).astype(np.float64)


FAULTS: dict[str, tuple[Callable[[np.random.Generator, np.ndarray], np.ndarray], float, float]] = {
    "gauge_level_shift": (_gauge, 40.0, 55.0),
    "cumulative_counter_rate_change": (_counts, 10.0, 30.0),
    "counter_rate_change": (_counts, 20.0, 60.0),
}
VARIANTS: dict[str, dict[str, Any]] = {
    "as shipped": {},
    "without the mean model": {"models": ("range", "step", "daily", "weekly")},
    "without the calibration delay": {"disjoint_calibration": False},
    "mean_window 32": {"mean_window": 32},
    "mean_window 128": {"mean_window": 128},
}


def incidents(x: np.ndarray, config: dict[str, Any]) -> tuple[list[Any], int]:
    """The last update of each incident, and the number of anomalous windows."""
    det = NumericDetector(profile="balanced", **config)
    out = det.update(EventBatch(x, T0 + np.arange(x.size, dtype=np.float64)))
    last = {u.seq: u for u in out.incidents}
    return list(last.values()), sum(r.is_anomaly for r in out)


def meets_bar(found: list[Any], start: int, end: int) -> bool:
    if not 1 <= len(found) <= 2:
        return False
    covered = np.zeros(end - start, dtype=bool)
    for u in found:
        closed = WARMUP + FAULT + AFTER if u.closed_time_ns is None else int(u.closed_time_ns / 1e9 - T0)
        covered[max(u.opened_offset, start) - start:max(min(closed, end) - start, 0)] = True
    last_closed = found[-1].closed_time_ns
    return covered.mean() >= 0.9 and last_closed is not None and last_closed / 1e9 - T0 >= end


def fault_cases(config: dict[str, Any]) -> dict[str, int]:
    met = {}
    for name, (make, before, during) in FAULTS.items():
        met[name] = 0
        for seed in SEEDS:
            for phase in PHASES:
                start, end = WARMUP + phase, WARMUP + phase + FAULT
                t = np.arange(WARMUP + FAULT + AFTER)
                x = make(np.random.default_rng(seed), np.where((t >= start) & (t < end), during, before))
                met[name] += meets_bar(incidents(x, config)[0], start, end)
    return met


def control_cases(config: dict[str, Any]) -> dict[str, tuple[int, int]]:
    t = np.arange(3 * 3600)
    levels = {"seasonal gauge": 40.0 + 15.0 * np.sin(2 * np.pi * t / 3600),
              "steady gauge": np.full(t.size, 40.0)}
    out = {}
    for name, level in levels.items():
        false_incidents = windows = 0
        for seed in SEEDS:
            found, flagged = incidents(_gauge(np.random.default_rng(seed), level), config)
            false_incidents += len(found)
            windows += flagged
        out[name] = (false_incidents, windows)
    return out


def main() -> None:
    cases = len(SEEDS) * len(PHASES)
    print(f"faults: cases meeting the bar of {cases}; controls: false incidents / anomalous windows "
          f"over {len(SEEDS)} x 3 h")
    print("| variant | " + " | ".join(FAULTS) + " | seasonal gauge | steady gauge |")
    print("|---|" + "---|" * (len(FAULTS) + 2))
    for variant, config in VARIANTS.items():
        met = fault_cases(config)
        controls = control_cases(config)
        print(f"| {variant} | " + " | ".join(f"{met[f]}/{cases}" for f in FAULTS) + " | "
              + " | ".join(f"{n} / {w}" for n, w in controls.values()) + " |")


if __name__ == "__main__":
    main()
