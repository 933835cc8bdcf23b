"""The hop kernel (every hop of an update in one numba call) against the Python one-hop-at-a-time oracle.

``tests/detectors/oracles.py:PythonCbad`` recomputes in Python everything the kernel decides: admission
with held events, count updates, the window summary, numpy p-values and tail fit, the decision and the
calibration ring. Results and snapshots must be identical, bit for bit.
"""

from __future__ import annotations

import numpy as np
import pytest

from detectors import EventBatch
from detectors.cbad import CbadDetector
from detectors.synthetic import synthetic_logs, synthetic_spans
from tests.detectors.oracles import PythonCbad


class CountingCalls(CbadDetector):
    kernel_calls = 0

    def _run_hops(self, hop_ends, *args):
        self.kernel_calls += 1
        return super()._run_hops(hop_ends, *args)


CASES = [
    ({"profile": "sensitive", "baseline": 100, "window": 20, "hop": 5}, "logs", [512]),
    ({"profile": "sensitive", "baseline": 60, "window": 10, "hop": 5}, "spans", [1, 3, 50]),
    ({"profile": "balanced"}, "logs", [700]),
    ({"profile": "sensitive", "baseline": 30, "window": 1, "hop": 1}, "logs", [37]),
    ({"profile": "sensitive", "baseline": 40, "window": 9, "hop": 4, "table_bits": 12}, "spans", [5, 200]),
    ({"profile": "sensitive", "baseline": 24, "window": 20, "hop": 4}, "logs", [64]),  # held queue > B
    ({"profile": "sensitive", "baseline": 60, "window": 10, "hop": 5, "compressor": "zlib"}, "logs", [90]),
]


@pytest.mark.parametrize(("config", "kind", "chunks"), CASES)
def test_hop_kernel_equals_the_python_oracle(config, kind, chunks):
    rng = np.random.default_rng(len(chunks) + len(config))
    n = 1600 if config.get("compressor") == "zlib" else 2400
    anomalies = sorted(int(x) for x in rng.choice(np.arange(300, n), 12, replace=False))
    generator = synthetic_logs if kind == "logs" else synthetic_spans
    # scattered novel events, a burst (once a few hundred windows of history calibrate the tail), then a
    # different stream (drift) in the last part
    events = generator(n, seed=3, anomalies=[*anomalies, *range(n - 400, n - 370)])
    events += (synthetic_spans if kind == "logs" else synthetic_logs)(900, seed=4)
    # the oracle is of the compression engine: the field test (its own tests) is off
    fast = CountingCalls(seed=5, field_test=False, **config)
    slow = PythonCbad(seed=5, field_test=False, **config)
    fast_results, slow_results = [], []
    i = k = 0
    while i < len(events):
        size = chunks[k % len(chunks)]
        fast_results += fast.update(EventBatch(events[i:i + size]))
        slow_results += slow.update(EventBatch(events[i:i + size]))
        i, k = i + size, k + 1
    assert sum(r.is_anomaly for r in slow_results) > 0
    if config == CASES[0][0]:
        assert any(r.is_drift for r in slow_results)  # the changed stream is adopted as the new normal
    assert fast.kernel_calls < 0.5 * len(fast_results) or config.get("compressor") == "zlib"
    first_diff = next((j for j, (a, b) in enumerate(zip(fast_results, slow_results, strict=True)) if a != b),
                      None)
    assert first_diff is None, (f"window {first_diff}: {fast_results[first_diff]} != "
                                f"{slow_results[first_diff]}")
    assert fast.snapshot() == slow.snapshot()


def test_held_events_cross_kernel_calls_and_snapshots():
    """An anomaly lasting across update calls (and a snapshot taken meanwhile) keeps its held events."""
    config = {"profile": "sensitive", "baseline": 100, "window": 20, "hop": 5, "seed": 1}
    events = synthetic_logs(1000, seed=9, anomalies=range(700, 708))
    whole = CbadDetector(**config).update(EventBatch(events))
    det = CbadDetector(**config)
    parts = det.update(EventBatch(events[:712]))
    assert det._held_at and det._frozen  # the cut falls inside the incident the anomaly opened
    restored = CbadDetector.restore(det.snapshot())
    parts += restored.update(EventBatch(events[712:]))
    assert parts == whole


def test_incremental_counts_equal_a_rebuild_of_the_baseline():
    """Entering events equal to leaving ones are skipped as a pair: the table must still be exact."""
    det = CbadDetector(seed=3, profile="sensitive", baseline=80, window=10, hop=5, table_bits=12)
    events = synthetic_spans(3000, seed=6, anomalies=range(2000, 2004))
    assert len(set(events)) < len(events) // 10  # repeated events: the cancellation path runs
    for i in range(0, len(events), 250):
        det.update(EventBatch(events[i:i + 250]))
        fresh = CbadDetector(seed=3, profile="sensitive", baseline=80, window=10, hop=5, table_bits=12)
        fresh._model.rebuild(det.baseline_events)
        assert np.array_equal(det._model.table, fresh._model.table)
