"""Each detector kind's kernels against the slow references of ``tests/detectors/oracles.py``.

``CHECKS[kind]`` lists :class:`KernelCheck`s; ``test_conformance.py`` runs every one under hypothesis and
requires an entry for every registered kind.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from detectors._kernels import cm
from detectors._kernels import numeric as K
from detectors._kernels.layout import layout
from detectors._kernels.numeric_calibration import pvalue as numeric_kernel_pvalue
from detectors._kernels.tail import TailRule
from tests.detectors import oracles


@dataclass(frozen=True)
class KernelCheck:
    """``kernel(*make_args(seed))`` must match ``reference(*make_args(seed))`` within ``rtol``/``atol``."""

    name: str
    make_args: Callable[[int], tuple[Any, ...]]
    kernel: Callable[..., Any]
    reference: Callable[..., Any]
    rtol: float = 1e-9
    atol: float = 1e-9


# ---------------------------------------------------------------- cbad


def _cm_args(seed: int) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    alphabet = np.frombuffer(b"abc =<>N1\n\xff", dtype=np.uint8)
    count = int(rng.integers(1, 40))
    events = [rng.choice(alphabet, int(rng.integers(0, 30))).tobytes() for _ in range(count)]
    split = int(rng.integers(0, len(events) + 1))
    return events[:split], events[split:], int(rng.integers(0, 1 << 40)), int(rng.integers(10, 14))


def _cm_kernel(baseline: list[bytes], window: list[bytes], salt: int, bits: int) -> np.ndarray:
    model = oracles.count_model(salt, bits)
    if baseline:
        cm.count_events(model, *layout(baseline), True)
    out = np.zeros(len(window))
    if window:
        buf, starts, ends = layout(window)
        cm.score_events(model, buf, starts, ends, 0, len(window), out)
    return out


def _cm_reference(baseline: list[bytes], window: list[bytes], salt: int, bits: int) -> np.ndarray:
    table = oracles.naive_counts(baseline, salt, bits)
    return np.array([oracles.naive_event_bits(table, e, salt, bits) for e in window])


# ---------------------------------------------------------------- numeric


def _point_args(seed: int) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(40, 160))
    x = np.cumsum(rng.normal(0, 1, n)) + rng.normal(0, 0.5, n) * (rng.random(n) < 0.1) * 20
    return x, int(rng.integers(0, 12)), int(rng.integers(0, 30)), 64, int(rng.integers(8, 40))


def _point_kernel(x: np.ndarray, lag_d: int, lag_w: int, size: int, range_n: int) -> np.ndarray:
    state = K.PointState(np.zeros(size), np.zeros(size), np.zeros(K.F_SIZE),
                         np.zeros(K.I_SIZE, dtype=np.int64))
    bits, pred = np.empty((x.size, K.N_MODELS)), np.empty((x.size, K.N_MODELS))
    K.point_bits(x, lag_d, lag_w, K.PointConfig(range_n, 1 / 32, 5.0, 16, 1 / 8, 1 / 16), state, bits, pred)
    return np.concatenate([bits, pred], axis=1)


def _tail_args(seed: int) -> tuple[Any, ...]:
    rng = np.random.default_rng(seed)
    hist = np.sort(rng.exponential(1.0, int(rng.integers(20, 300))) * (rng.random() * 3)
                   * (rng.random(1) < 0.5 or rng.random() < 0.5))
    rule = TailRule(0.05, 10, float(rng.choice([-0.25, 0.0])), 0.5, float(rng.choice([0.1, 1 / math.log(2)])),
                    1 / math.log(2), 200)
    return hist, float(rng.exponential(3.0)), rule


def _tail_kernel(hist: np.ndarray, score: float, rule: TailRule) -> float:
    return numeric_kernel_pvalue(hist, hist.size, score, rule, np.empty(hist.size))


CHECKS: dict[str, list[KernelCheck]] = {
    "cbad": [KernelCheck("cm.score_events", _cm_args, _cm_kernel, _cm_reference)],
    "numeric": [KernelCheck("point_bits", _point_args, _point_kernel, oracles.naive_point_bits),
                KernelCheck("tail p-value", _tail_args, _tail_kernel, oracles.numeric_pvalue)],
}
