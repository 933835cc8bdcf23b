"""The batched hop kernel (many hops per call) against the one-hop-at-a-time path: identical results."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.cbad import CbadDetector
from detectors.testing import synthetic_logs, synthetic_spans


class OneHopAtATime(CbadDetector):
    """The reference: every hop through ``_score_hop`` (admission in Python, ``cm.hop``, Python decision)."""

    def _fast_path_ready(self, lo: int) -> bool:
        return False


class CountingBatches(CbadDetector):
    batched_hops = 0

    def _run_hops(self, hop_ends, *args):
        done = super()._run_hops(hop_ends, *args)
        self.batched_hops += done
        return done


CASES = [
    ({"profile": "sensitive", "baseline": 100, "window": 20, "hop": 5}, "logs", [512]),
    ({"profile": "sensitive", "baseline": 60, "window": 10, "hop": 5}, "spans", [1, 3, 50]),
    ({"profile": "balanced"}, "logs", [700]),
    ({"profile": "sensitive", "baseline": 30, "window": 1, "hop": 1}, "logs", [37]),
    ({"profile": "sensitive", "baseline": 40, "window": 9, "hop": 4, "table_bits": 12}, "spans", [5, 200]),
]


@pytest.mark.parametrize(("config", "kind", "chunks"), CASES)
def test_batched_hops_equal_one_hop_at_a_time(config, kind, chunks):
    rng = np.random.default_rng(len(chunks) + len(config))
    n = 2400
    anomalies = sorted(int(x) for x in rng.choice(np.arange(300, n), 12, replace=False))
    generator = synthetic_logs if kind == "logs" else synthetic_spans
    # a burst, scattered novel events, then a different stream (drift) in the last part
    events = generator(n, seed=3, anomalies=[*anomalies, *range(1000, 1030)])
    events += (synthetic_spans if kind == "logs" else synthetic_logs)(900, seed=4)
    fast, slow = CountingBatches(seed=5, **config), OneHopAtATime(seed=5, **config)
    fast_results, slow_results = [], []
    i = k = 0
    while i < len(events):
        size = chunks[k % len(chunks)]
        fast_results += fast.update(events[i:i + size])
        slow_results += slow.update(events[i:i + size])
        i, k = i + size, k + 1
    assert fast.batched_hops > 0.5 * len(fast_results)
    assert sum(r.is_anomaly for r in slow_results) > 0
    assert fast_results == slow_results
    assert fast.snapshot() == slow.snapshot()


def test_incremental_counts_equal_a_rebuild_of_the_baseline():
    """Entering events equal to leaving ones are skipped as a pair: the table must still be exact."""
    det = CountingBatches(seed=3, profile="sensitive", baseline=80, window=10, hop=5, table_bits=12)
    events = synthetic_spans(3000, seed=6, anomalies=range(2000, 2004))
    assert len(set(events)) < len(events) // 10  # repeated events: the cancellation path runs
    for i in range(0, len(events), 250):
        det.update(events[i:i + 250])
        fresh = CbadDetector(seed=3, profile="sensitive", baseline=80, window=10, hop=5, table_bits=12)
        fresh._model.rebuild(list(det._baseline))
        assert np.array_equal(det._model.table, fresh._model.table)
    assert det.batched_hops > 0
