"""The context-model kernels against naive Python, the incremental baseline against a rebuild, the window
summary against numpy, and the real-codec oracles."""

from __future__ import annotations

import zlib

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors._kernels import cm
from detectors._kernels.cbad_window import SUMMARY_SIZE, move_histogram, summarize
from detectors._kernels.layout import layout
from detectors.compressors import ContextModel, ZlibOracle, make_model
from detectors.synthetic import synthetic_logs
from tests.detectors import oracles

_EVENTS = st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\n", b" ")), max_size=25)
_ALPHABET_EVENTS = st.lists(st.text(alphabet="ab =<N1>x", max_size=30).map(str.encode), max_size=40)


def _kernel_bits(baseline, window, salt, bits):
    model = oracles.count_model(salt, bits)
    if baseline:
        cm.count_events(model, *layout(baseline), True)
    out = np.zeros(len(window))
    if window:
        buf, starts, ends = layout(window)
        cm.score_events(model, buf, starts, ends, 0, len(window), out)
    return model.table, out


@settings(max_examples=60, deadline=None)
@given(_ALPHABET_EVENTS, _EVENTS, st.integers(0, 2**48), st.sampled_from([10, 12, 16]))
def test_code_lengths_match_naive(baseline, window, salt, bits):
    table, out = _kernel_bits(baseline, window, salt, bits)
    naive = oracles.naive_counts(baseline, salt, bits)
    assert {int(k): int(v) for k, v in enumerate(table) if v} == {k: v for k, v in naive.items() if v}
    expected = [oracles.naive_event_bits(naive, e, salt, bits) for e in window]
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-9)


@settings(max_examples=40, deadline=None)
@given(_ALPHABET_EVENTS, _ALPHABET_EVENTS, st.integers(0, 2**32))
def test_incremental_add_remove_equals_rebuild(old, new, seed):
    """Adding the entering events and subtracting the leaving ones gives exactly the rebuilt table."""
    model = ContextModel(seed=seed, table_bits=12)
    model.rebuild(old)
    if new:
        cm.count_events(model.counts, *layout(new), True)
    if old:
        cm.count_events(model.counts, *layout(old), False)
    fresh = ContextModel(seed=seed, table_bits=12)
    fresh.rebuild(new)
    np.testing.assert_array_equal(model.table, fresh.table)


def test_a_saturated_count_sticks_and_the_others_stay_exact():
    """16-bit counts: a slot that reaches SATURATED is neither incremented nor decremented any more (so the
    table stays a function of the adds and removes, whatever their grouping); the others stay exact."""
    model = ContextModel(seed=5, table_bits=12)
    many = [b"a"] * (cm.SATURATED + 10)  # the context "\n" precedes every "a": its total saturates
    cm.count_events(model.counts, *layout(many), True)
    saturated = model.table == cm.SATURATED
    assert saturated.any() and model.table.dtype == np.uint16
    cm.count_events(model.counts, *layout([b"xyz"]), True)
    for event in many[:20]:  # removed one at a time, then the rest at once: the same table
        cm.count_events(model.counts, *layout([event]), False)
    cm.count_events(model.counts, *layout(many[20:]), False)
    np.testing.assert_array_equal(model.table == cm.SATURATED, saturated)
    fresh = ContextModel(seed=5, table_bits=12)
    fresh.rebuild([b"xyz"])
    np.testing.assert_array_equal(model.table[~saturated], fresh.table[~saturated])


@settings(max_examples=30, deadline=None)
@given(_ALPHABET_EVENTS, st.integers(0, 2**32))
def test_leave_one_out_scores_without_the_events_own_counts(events, seed):
    model = ContextModel(seed=seed, table_bits=12)
    model.rebuild(events)
    before = model.table.copy()
    i0, i1 = len(events) // 3, 2 * len(events) // 3
    out = np.zeros(i1 - i0)
    model.leave_one_out(layout(events), i0, i1, out)
    np.testing.assert_array_equal(model.table, before)
    without = ContextModel(seed=seed, table_bits=12)
    without.rebuild(events[:i0] + events[i1:])
    np.testing.assert_array_equal(out, without.score(events[i0:i1]))


@settings(max_examples=30, deadline=None)
@given(_ALPHABET_EVENTS, st.integers(0, 2**32))
def test_adaptive_block_bits_is_sequential_coding(events, seed):
    """block_bits = each event coded given all earlier ones (naive: rebuild and score one at a time)."""
    model = ContextModel(seed=seed)
    salt = int(model.counts.salt)
    expected = 0.0
    for i, event in enumerate(events):
        expected += oracles.naive_event_bits(oracles.naive_counts(events[:i], salt, 16), event, salt, 16)
    assert abs(model.block_bits(b"".join(e + b"\n" for e in events)) - expected) < 1e-6 * max(1.0, expected)


def test_window_summary_matches_numpy():
    events = synthetic_logs(120, seed=2)
    model = ContextModel(seed=3)
    model.rebuild(events[:60])
    flat = layout(events)
    buf, starts, ends = flat
    bits = np.zeros(len(events))
    bits[60:80] = model.score(events[60:80])
    hist, out, excess = np.zeros(256, np.int64), np.zeros(SUMMARY_SIZE), np.zeros(10)
    history = np.array([[0.1, 0.5, 9.0, 0.7], [0.2, 9.0, 9.0, 0.1]])
    move_histogram(flat, hist, 0, 0, 70, 80)
    summarize(flat, 70, 80, 2, bits, hist, 0.5, excess, history, 3, out)
    sizes = ends[70:80] - starts[70:80] + 1
    window = bits[70:80]
    np.testing.assert_allclose(excess, window - 0.5 * sizes)
    assert out[4] == np.count_nonzero(window - 0.5 * sizes > 0)
    assert out[5] == np.count_nonzero(history[0, :3] >= out[0] / out[1])
    assert out[6] == np.count_nonzero(history[1, :3] >= out[3])
    assert np.isclose(out[0], window.sum()) and out[1] == sizes.sum()
    assert np.isclose(out[3], np.sort(window / sizes)[-2:].mean())
    counts = np.bincount(buf[starts[70]:ends[79]], minlength=256)
    p = counts[counts > 0] / counts.sum()
    assert np.isclose(out[2], -(p * np.log2(p)).sum())


def test_novel_event_costs_far_more_than_a_familiar_one():
    events = synthetic_logs(400, seed=4)
    model = ContextModel()
    model.rebuild(events)
    familiar = model.piece_bits(events[-1]) / len(events[-1])
    novel = synthetic_logs(1, seed=4, anomalies=[0])[0]
    assert model.piece_bits(novel) / len(novel) > 4 * familiar


def test_zlib_oracle_priming_is_exact():
    baseline = synthetic_logs(200, seed=1)
    oracle = ZlibOracle()
    oracle.rebuild(baseline)
    raw = b"".join(e + b"\n" for e in baseline)
    piece = b"ERROR something new happened\n"
    from_scratch = len(zlib.compress(raw + piece, 6)) - len(zlib.compress(raw, 6))
    assert oracle.piece_bits(piece) == 8 * from_scratch
    assert oracle.score([piece[:-1]]).tolist() == [8.0 * from_scratch]


def test_oracles_agree_on_what_is_novel():
    baseline = synthetic_logs(300, seed=6)
    novel = synthetic_logs(1, seed=6, anomalies=[0])[0]
    for name in ("cm", "zlib", "zstd"):
        model = make_model(name, seed=1)
        model.rebuild(baseline)
        assert model.piece_bits(novel + b"\n") > 2 * model.piece_bits(baseline[-1] + b"\n"), name
        novel_bits, familiar_bits = model.score([novel, baseline[-1]])
        assert novel_bits > 2 * familiar_bits, name
