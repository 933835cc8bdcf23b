"""The contract every registered detector kind must honour (see detectors/base.py).

Each detector class supplies ``example_events(n, seed) -> EventBatch`` and ``example_config()``; each kind
has its kernel checks in ``tests/detectors/kernel_checks.py``.
"""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import EventBatch, registry
from tests.detectors.kernel_checks import CHECKS

KINDS = registry.available()
N_EVENTS = 400
SEED = 11


def _cls(kind: str) -> type:
    return type(registry.create(kind))


def _make(kind: str, seed: int = SEED):
    return registry.create(kind, seed=seed, **_cls(kind).example_config())


def _events(kind: str, n: int = N_EVENTS, seed: int = SEED):
    return _cls(kind).example_events(n, seed)


def _feed(det, events, cuts: list[int]) -> list:
    results = []
    bounds = [0, *cuts, len(events)]
    for a, b in itertools.pairwise(bounds):
        results.extend(det.update(events[a:b]))
    return results


@pytest.fixture(scope="module", params=KINDS)
def reference_run(request):
    kind = request.param
    events = _events(kind)
    det = _make(kind)
    return kind, events, det.update(events)


def test_registry_lists_cbad():
    assert "cbad" in KINDS


def test_determinism(reference_run):
    kind, events, results = reference_run
    assert results, f"{kind}: the example stream completed no window"
    assert _make(kind).update(events) == results


@pytest.mark.parametrize("chunking", ["single", "random", "uneven"])
def test_chunking_invariance(reference_run, chunking):
    kind, events, results = reference_run
    n = len(events)
    if chunking == "single":
        cuts = list(range(1, n))
    elif chunking == "random":
        rng = np.random.default_rng(5)
        cuts = sorted(set(rng.integers(1, n, size=40).tolist()))
    else:
        cuts = [1, 2, 3, 7, 64, 65, 200, n - 1]
    assert _feed(_make(kind), events, cuts) == results


@pytest.mark.parametrize("fraction", [0.13, 0.5, 0.77, 0.95])
def test_snapshot_restore_mid_stream(reference_run, fraction):
    kind, events, results = reference_run
    cut = int(len(events) * fraction)
    det = _make(kind)
    first = det.update(events[:cut])
    data = det.snapshot()
    assert isinstance(data, bytes)
    restored = registry.restore(kind, data)
    assert restored.events_seen == det.events_seen == cut
    assert restored.config_hash == det.config_hash
    assert restored.warmed_up == det.warmed_up
    assert first + restored.update(events[cut:]) == results
    assert registry.restore(kind, restored.snapshot()).snapshot() == restored.snapshot()


def test_outputs_finite_and_well_formed(reference_run):
    _, _, results = reference_run
    previous_end = -1
    for r in results:
        assert 0 <= r.start_offset < r.end_offset
        assert r.end_offset > previous_end
        previous_end = r.end_offset
        assert 0 < r.p_value <= 1 and math.isfinite(r.score)
        assert all(isinstance(v, float | int) and math.isfinite(v) for v in r.figures.values()), r.figures
        assert r.severity in ("none", "low", "medium", "high", "critical")
        assert (r.severity == "none") == (not r.is_anomaly)


def test_injected_anomaly_is_flagged_near_the_end(reference_run):
    kind, events, results = reference_run
    flagged = [r for r in results if r.is_anomaly]
    assert flagged, f"{kind}: the injected anomaly was not flagged"
    assert max(r.end_offset for r in flagged) > 0.8 * len(events)


def test_inputs_not_mutated(reference_run):
    kind, events, _ = reference_run
    before = copy.deepcopy(events.events)
    _make(kind).update(events)
    if isinstance(before, np.ndarray):
        np.testing.assert_array_equal(events.events, before)
    else:
        assert events.events == before


def test_warmup_declares_nothing(reference_run):
    kind, events, _ = reference_run
    det = _make(kind)
    assert not det.warmed_up and det.events_seen == 0
    early = det.update(events[:5])
    assert not any(r.is_anomaly for r in early)
    assert det.events_seen == 5


_CHECKS = [(kind, check) for kind in KINDS for check in CHECKS.get(kind, [])]


@pytest.mark.parametrize(("kind", "check"), _CHECKS, ids=[f"{k}:{c.name}" for k, c in _CHECKS])
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1))
def test_kernel_matches_reference(kind, check, seed):
    args = check.make_args(seed)
    np.testing.assert_allclose(np.asarray(check.kernel(*args), dtype=np.float64),
                               np.asarray(check.reference(*args), dtype=np.float64),
                               rtol=check.rtol, atol=check.atol)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_has_kernel_checks(kind):
    assert CHECKS.get(kind), (f"{kind}: add its kernels' checks against slow references to "
                              "tests/detectors/kernel_checks.py")


def test_every_kind_takes_an_event_batch_only(reference_run):
    kind, events, _ = reference_run
    det = _make(kind)
    with pytest.raises(TypeError, match="EventBatch"):
        det.update(list(events.events))
    assert det.events_seen == 0
    assert det.update(EventBatch(events.events[:0])) == []
    assert dict(det.skipped_points) == {k: 0 for k in det.skipped_points}
