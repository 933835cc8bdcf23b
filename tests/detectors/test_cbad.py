"""The CBAD detector end to end: injected anomalies, explanations, drift, warm-up, validation, state."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

import detectors.calibration
import detectors.canonical
import detectors.canonical._mask
import detectors.canonical._values
import detectors.cbad
import detectors.compressors
import detectors.event_blocks
import detectors.explain
import detectors.field_codes
import detectors.severity
import detectors.snapshot
from detectors import EventBatch, registry, snapshot
from detectors.event_blocks import BLOCK, rest_idle_stores
from detectors.synthetic import synthetic_logs, synthetic_spans

SMALL = {"profile": "sensitive", "baseline": 100, "window": 20, "hop": 5}


DOCUMENTED = [detectors.canonical, detectors.canonical._mask, detectors.canonical._values,
              detectors.calibration, detectors.compressors, detectors.explain, detectors.cbad,
              detectors.severity, detectors.snapshot, detectors.event_blocks, detectors.field_codes]


@pytest.mark.parametrize("module", DOCUMENTED, ids=lambda m: m.__name__)
def test_doctests(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize(("generator", "compressor"), [
    (synthetic_logs, "cm"), (synthetic_spans, "cm"), (synthetic_logs, "zlib"), (synthetic_spans, "zstd")])
def test_injected_anomaly_is_flagged_and_explained(generator, compressor):
    anomalies = range(1300, 1303)
    events = generator(1400, seed=9, anomalies=anomalies)
    det = registry.create("cbad", seed=1, compressor=compressor, **SMALL)
    results = det.update(EventBatch(events))
    before = [r for r in results if r.end_offset <= 1300]
    assert sum(r.is_anomaly for r in before) <= 0.03 * len(before)
    hits = [r for r in results if r.is_anomaly and r.start_offset <= 1300 < r.end_offset]
    assert hits, "the injected events were not flagged"
    first = hits[0]
    assert first.severity != "none" and first.p_value <= det.profile.false_alarm_target
    top = first.explanation["top_events"][0]
    assert top["offset"] in anomalies
    assert top["excess_bits"] > 0 and top["bits"] > top["excess_bits"] * 0.5
    assert top["tokens"] and all(isinstance(t, str) and bits >= 0 for t, bits in top["tokens"])
    assert str(top["offset"]) in first.explanation["sentence"]
    table = first.explanation["event_bits"]
    assert [row[0] for row in table] == list(range(first.start_offset, first.end_offset))
    worst = max(table, key=lambda row: row[2])
    assert worst[0] in anomalies
    for key in ("ncd", "compression_ratio_window", "compression_ratio_reference", "delta_bits"):
        assert np.isfinite(first.figures[key])
    json.dumps(first.explanation)


def test_spans_explanation_names_the_new_status():
    events = synthetic_spans(1400, seed=9, anomalies=[1300, 1301])
    det = registry.create("cbad", seed=1, **SMALL)
    results = det.update(EventBatch(events))
    hit = next(r for r in results if r.is_anomaly and r.start_offset <= 1300 < r.end_offset)
    tokens = [t for t, _ in hit.explanation["top_events"][0]["tokens"]]
    assert {"ERROR", "UpstreamUnavailable", "error.type", "503"} & set(tokens), tokens


def test_persistent_change_is_one_incident_accepted_once_as_drift_then_normal():
    normal = synthetic_logs(1200, seed=3)
    changed = synthetic_spans(1500, seed=4)  # a completely different stream from event 1200 on
    # one event per second; an incident open for 5 minutes of event time is accepted as the new normal
    det = registry.create("cbad", seed=1, accept_after_ns=300 * 10**9, **SMALL)
    results = det.update(EventBatch(normal + changed, [1.7e9 + i for i in range(2700)]))
    assert [(u.seq, u.status) for u in results.incidents if u.status != "open"] == [(0, "accepted")]
    drifts = [r for r in results if r.is_drift]
    assert len(drifts) == 1
    assert drifts[0].start_offset >= 1200 and drifts[0].incident_seq == 0
    opened = results.incidents[0]
    assert 1200 - SMALL["window"] <= opened.opened_offset <= 1300
    # open from the change until it was accepted (300 s of event time later), every window in between
    inside = [r for r in results
              if opened.opened_offset <= r.start_offset and r.end_offset <= drifts[0].end_offset]
    assert inside and all(r.incident_seq == 0 for r in inside)
    late = [r for r in results if r.start_offset > drifts[0].end_offset + 600]
    assert late and sum(r.is_anomaly for r in late) <= 0.05 * len(late)


def test_warm_up_declares_nothing_until_baseline_and_calibration_are_ready():
    events = synthetic_logs(400, seed=5, anomalies=range(150, 160))
    det = registry.create("cbad", seed=1, **SMALL)
    results = det.update(EventBatch(events))
    assert not det.warmed_up or det.events_seen >= 100 + 20 + 40 * 5
    early = [r for r in results if r.end_offset < 100 + 20 + 40 * 5]
    assert early and not any(r.is_anomaly for r in early)
    assert all(r.p_value == 1.0 for r in early)
    det.update(EventBatch(synthetic_logs(400, seed=6)))
    assert det.warmed_up


def test_windows_follow_the_profile():
    det = registry.create("cbad", profile="balanced", seed=1)
    results = det.update(EventBatch(synthetic_logs(700, seed=1)))
    assert [(r.start_offset, r.end_offset) for r in results[:2]] == [(0, 50), (10, 60)]
    assert results[-1].end_offset == 700
    assert det.events_seen == 700
    assert registry.create("cbad", profile="strict").config_hash != det.config_hash


def test_bad_configuration_and_input_are_rejected_clearly():
    with pytest.raises(ValueError, match="compressor"):
        registry.create("cbad", compressor="lz4")
    with pytest.raises(ValueError, match="profile"):
        registry.create("cbad", profile="paranoid")
    with pytest.raises(ValueError, match="hop <= window"):
        registry.create("cbad", window=10, hop=20)
    det = registry.create("cbad")
    with pytest.raises(TypeError, match="event 1 is str"):
        det.update(EventBatch([b"ok", "not bytes"]))
    with pytest.raises(TypeError, match="EventBatch"):
        det.update([b"ok"])
    assert det.events_seen == 0
    assert det.update(EventBatch([bytearray(b"fine"), memoryview(b"also fine")])) == []
    with pytest.raises(ValueError, match="snapshot"):
        registry.restore("cbad", b"garbage")


def test_snapshot_is_json_plus_raw_arrays_and_restores_exactly():
    events = synthetic_logs(900, seed=2, anomalies=[850])
    det = registry.create("cbad", seed=4, **SMALL)
    det.update(EventBatch(events[:613]))
    data = det.snapshot()
    assert b"pickle" not in data and data.startswith(b"CBAD\x09")
    restored = registry.restore("cbad", data)
    assert restored.update(EventBatch(events[613:])) == det.update(EventBatch(events[613:]))
    np.testing.assert_array_equal(restored._model.table, det._model.table)


def test_retained_events_older_than_the_hops_read_are_sealed_and_a_snapshot_carries_the_blocks_as_they_are():
    """The baseline and held events are stream offsets into the detector's event store; the events no hop
    reads in place any more are in compressed blocks, which a snapshot stores (and a restore takes) as they
    are, so the round trip does no per-event work but for the newest events."""
    events = synthetic_logs(900, seed=2, anomalies=[850])
    det = registry.create("cbad", seed=4, **SMALL)
    det.update(EventBatch(events[:613]))
    store = det._events
    # the newest events rest sealed in one block between calls (but for the stores of the detectors that
    # called last), and a snapshot stores that block
    assert not store.resting
    rest_idle_stores()
    assert store.resting
    resting = store._resting
    snap = snapshot.decode(det.snapshot(), b"CBAD")
    assert snap.arrays["raw_block"].tobytes() == resting
    assert store.sealed_blocks > 0 and store.raw_start > det._tail_base
    assert store.end - store.raw_start < 2 * det.profile.window + 2 * BLOCK  # only the newest as bytes
    assert det.baseline_events == [events[o] for o in det._baseline_at.tolist()]
    assert store.range(det._tail_base, 613) == events[det._tail_base:613]
    assert not store.resting  # read: open until the next call ends
    assert snap.arrays["blocks"].tobytes() == b"".join(store._sealed[k] for k in sorted(store._sealed))
    assert store.range(store.raw_start, 613) == events[store.raw_start:613]
    restored = registry.restore("cbad", det.snapshot())
    assert restored._events._sealed == store._sealed and restored.baseline_events == det.baseline_events
    assert restored.snapshot() == det.snapshot()
    assert restored.update(EventBatch(events[613:])) == det.update(EventBatch(events[613:]))


def test_scoring_cost_does_not_depend_on_the_baseline_size():
    """Structural check (timing lives in bench/): per hop the model touches only the hop's events and the
    window, so the same window scores identically whatever happened before the baseline."""
    events = synthetic_logs(600, seed=7)
    a = registry.create("cbad", seed=1, **SMALL)
    b = registry.create("cbad", seed=1, **SMALL)
    a.update(EventBatch(events))
    b.update(EventBatch(synthetic_logs(3000, seed=8) + events))
    assert a._model.table.sum() == b._model.table.sum() or len(a._baseline) == len(b._baseline)


def test_window_not_a_multiple_of_hop_is_chunking_invariant_and_restorable():
    config = {"profile": "sensitive", "baseline": 60, "window": 13, "hop": 5, "seed": 2}
    events = synthetic_logs(500, seed=12, anomalies=range(470, 474))
    whole = registry.create("cbad", **config).update(EventBatch(events))
    det = registry.create("cbad", **config)
    parts = det.update(EventBatch(events[:111])) + det.update(EventBatch(events[111:256]))
    restored = registry.restore("cbad", det.snapshot())
    parts += restored.update(EventBatch(events[256:]))
    assert parts == whole
    assert [(r.start_offset, r.end_offset) for r in whole[:2]] == [(2, 15), (7, 20)]
    assert any(r.is_anomaly for r in whole)


@pytest.mark.parametrize("batch", [1, 7, 37])
def test_the_baseline_and_held_offsets_always_name_their_events_in_the_store(batch):
    """Through anomalies, an incident holding events, a drift adopted and restores, every baseline and held
    offset reads the stream's event at that offset (the store never frees a block they need), and only the
    newest events stay uncompressed."""
    novel = [*range(700, 708), *range(1300, 1303), *range(2000, 2030)]
    events = synthetic_logs(2400, seed=3, anomalies=novel)
    events += synthetic_spans(900, seed=4)  # another kind of stream: adopted as the new normal
    config = {"profile": "sensitive", "baseline": 60, "window": 10, "hop": 5, "seed": 5, "field_test": False}
    det = registry.create("cbad", **config)
    held = drift = 0
    for i in range(0, len(events), batch):
        drift += sum(r.is_drift for r in det.update(EventBatch(events[i:i + batch])))
        if i % 500 < batch:
            det = registry.restore("cbad", det.snapshot())
        for at in (det._baseline_at.tolist(), det._held_at):
            assert det._events.take(at) == [events[o] for o in at]
        store = det._events
        assert store.end == det.events_seen and store.end - store.raw_start < 2 * 10 + 5 + BLOCK + batch
        held = max(held, len(det._held_at))
    assert held >= 5 and drift  # the paths this is about ran


def test_a_snapshot_with_an_event_reference_outside_its_events_is_refused():
    from tests.detectors.test_snapshot_compat import LEGACY

    data = (LEGACY / "cbad_v5_incident_open.snap").read_bytes()  # version 5: references into the tail
    snap = snapshot.decode(data, b"CBAD")
    for bad in (len(snap.arrays["tail_lens"]), -1 - len(snap.arrays["others_lens"])):
        refs = snap.arrays["baseline_refs"].copy()
        refs[len(refs) // 2] = bad
        data = snapshot.encode(b"CBAD", snap.version, snap.header, {**snap.arrays, "baseline_refs": refs})
        with pytest.raises(ValueError, match="event reference"):
            registry.restore("cbad", data)
    det = registry.create("cbad", seed=4, **SMALL)  # version 6: stream offsets into the event store
    det.update(EventBatch(synthetic_logs(400, seed=2)))
    snap = snapshot.decode(det.snapshot(), b"CBAD")
    for name, bad in (("held_at", 400), ("baseline_at", det._tail_base - 10 * BLOCK)):
        at = np.append(snap.arrays[name], bad)
        data = snapshot.encode(b"CBAD", snap.version, snap.header, {**snap.arrays, name: at})
        with pytest.raises(ValueError, match="event offset"):
            registry.restore("cbad", data)


def test_a_snapshot_sealed_in_blocks_of_another_size_restores_and_continues_exactly(monkeypatch):
    """The block size is in the snapshot: one written with another size is resealed on restore and goes on
    exactly as the detector that wrote it."""
    import detectors.event_blocks

    events = synthetic_logs(1200, seed=5, anomalies=range(1000, 1004))
    config = {"seed": 2, **SMALL}
    whole = registry.create("cbad", **config)
    expected = whole.update(EventBatch(events[:611])) + whole.update(EventBatch(events[611:]))
    for size in (24, 100):
        with monkeypatch.context() as patch:
            patch.setattr(detectors.event_blocks, "BLOCK", size)
            patch.setattr(detectors.cbad, "BLOCK", size)
            det = registry.create("cbad", **config)
            first = det.update(EventBatch(events[:611]))
            data, baseline = det.snapshot(), det.baseline_events
        assert snapshot.decode(data, b"CBAD").header["event_block"] == size
        restored = registry.restore("cbad", data)
        assert restored.baseline_events == baseline
        assert first + restored.update(EventBatch(events[611:])) == expected


def test_the_block_before_a_window_is_read_from_the_store_once_sealed(monkeypatch):
    """With W a multiple of H only the window itself is kept as bytes: the entropy of the block before a
    window is the one recorded for the window that ended there; when none was (forgotten here before every
    call), the block is laid out from the store, sealed or not, and gives what keeping it in place gave."""
    events = synthetic_logs(1500, seed=5, anomalies=[1200, 1201])

    def run() -> tuple[list, int]:
        det = registry.create("cbad", seed=4, **SMALL)
        out = []
        for lo in range(0, len(events), 37):
            det._recent_entropy.clear()
            out += det.update(EventBatch(events[lo:lo + 37]))
        return out, det.events_seen - det._events.raw_start

    sealed, as_bytes = run()
    assert as_bytes <= SMALL["window"] + SMALL["hop"] + BLOCK  # W + H events, and the block they start in
    monkeypatch.setattr(detectors.cbad.CbadDetector, "_reach", property(lambda self: 2 * self.profile.window))
    kept_as_bytes, more = run()
    assert sealed == kept_as_bytes and any(r.is_anomaly for r in sealed) and more > as_bytes


@pytest.mark.parametrize("table_bits", [10, 14, 17])
def test_the_count_table_kept_compact_between_calls_changes_nothing(table_bits, monkeypatch):
    """Between calls the counts of a model not used lately are held as their nonzero slots (when fewer than
    half the slots are in use; at 2**10 slots these streams fill more, so the table stays dense): compacted
    after every call here, every result, incident update and count is the same as with the dense table kept
    throughout."""
    from detectors.compressors import ContextModel, release_idle_tables

    rng = np.random.default_rng(table_bits)
    events = synthetic_spans(1500, seed=5, anomalies=[1300, 1301]) + synthetic_logs(600, seed=6)
    sizes = rng.integers(1, 60, 200).tolist()
    compact = registry.create("cbad", seed=3, table_bits=table_bits, **SMALL)
    dense = registry.create("cbad", seed=3, table_bits=table_bits, **SMALL)
    monkeypatch.setattr(dense._model, "close", lambda: None)  # in use throughout: never compacted
    at, states = 0, set()
    for n in sizes:
        batch = EventBatch(events[at:at + n])
        got, want = compact.update(batch), dense.update(batch)
        assert got == want and got.incidents == want.incidents
        release_idle_tables()
        states.add(compact._model.compact)
        np.testing.assert_array_equal(compact._model.table, dense._model.table)
        at += n
        if at >= len(events):
            break
    assert states == ({False} if table_bits == 10 else {True})  # 17: uint32 slot numbers
    slots, counts = compact._model.nonzero()
    table = dense._model.table
    np.testing.assert_array_equal(slots, np.flatnonzero(table))
    np.testing.assert_array_equal(counts, table[table != 0])
    restored = registry.restore("cbad", compact.snapshot())
    release_idle_tables()
    assert restored._model.compact == (table_bits != 10)
    np.testing.assert_array_equal(restored._model.table, table)
    bad = ContextModel(table_bits=table_bits)
    with pytest.raises(ValueError, match="slot outside"):
        bad.load_nonzero(np.array([1 << table_bits], np.uint32), np.array([1], np.uint16))


def test_streams_beyond_the_dense_tables_kept_take_the_table_of_the_least_recently_used(monkeypatch):
    """With two dense tables kept, five interleaved streams each compact and lay out their counts again at
    almost every call: the same results as each stream fed alone."""
    import detectors.compressors as compressors

    monkeypatch.setattr(compressors._TABLES, "keep", 2)
    compressors.release_idle_tables()
    streams = [synthetic_spans(700, seed=s, anomalies=[650]) for s in range(5)]
    alone = [registry.create("cbad", seed=s, **SMALL).update(EventBatch(e)) for s, e in enumerate(streams)]
    dets = [registry.create("cbad", seed=s, **SMALL) for s in range(5)]
    got: list[list] = [[] for _ in dets]
    for at in range(0, 700, 23):
        for s, det in enumerate(dets):
            got[s] += det.update(EventBatch(streams[s][at:at + 23]))
        assert sum(not d._model.compact for d in dets) <= 2
    assert got == [list(r) for r in alone]


@pytest.mark.parametrize("seed", range(4))
def test_the_event_store_seals_blocks_in_parts_and_reads_back_every_event_it_keeps(seed):
    """Sealing the first part of a block (``PARTIAL`` events or more below the limit) and the rest later,
    releasing events (some pinned) and dumping/loading midway: every offset still held reads back as
    appended, through ``get``, ``range`` and ``layout``."""
    from detectors.event_blocks import PARTIAL, EventBlocks

    rng = np.random.default_rng(seed)
    events = [bytes(rng.integers(97, 123, int(rng.integers(0, 40))).astype(np.uint8)) for _ in range(3000)]
    store, end, keep_from, partial = EventBlocks(), 0, 0, 0
    pinned = np.zeros(0, np.int64)
    while end < len(events):
        n = int(rng.integers(1, 90))
        store.extend(end, events[end:end + n])
        end = min(end + n, len(events))
        limit = end - int(rng.integers(0, 70))
        before = store.raw_start
        store.seal_below(limit)
        partial += store.raw_start % BLOCK != 0 and store.raw_start > before
        assert store.raw_start <= max(limit, before)
        assert max(limit, before) - store.raw_start < max(PARTIAL, BLOCK)
        keep_from = max(keep_from, end - int(rng.integers(0, 400)))  # at times into the bytes events
        # pins stay until let go (an offset below keep_from is never pinned anew)
        pinned = np.array(sorted(set(pinned[pinned >= keep_from - 300].tolist())
                                 | set(rng.integers(keep_from, end, 3 * (end > keep_from)).tolist())),
                          np.int64)
        store.release(keep_from, lambda pins=pinned: pins)
        if rng.random() < 0.4:  # the caller's call is done: the newest events rest sealed
            store.rest()
            assert store.resting == (store.end > store.raw_start) and store.end == end
        if rng.random() < 0.2:
            store = EventBlocks.load(*store.dump())
        store.forget()
        assert store.range(keep_from, end) == events[keep_from:end]
        assert store.layout(keep_from).buf.tobytes() == b"".join(events[keep_from:end])
        assert store.holds(pinned) and store.take(pinned.tolist()) == [events[o] for o in pinned.tolist()]
        assert store.layout_at(pinned.tolist()).buf.tobytes() == b"".join(events[o] for o in pinned.tolist())
    assert partial > 0


def test_the_event_stores_of_the_detectors_that_called_last_stay_open_and_the_others_rest():
    from detectors.event_blocks import OPEN_STORES

    events = synthetic_logs(300, seed=2)
    rest_idle_stores()
    dets = [registry.create("cbad", seed=4, **SMALL) for _ in range(OPEN_STORES + 5)]
    for det in dets:
        det.update(EventBatch(events))
    assert [d._events.resting for d in dets] == [True] * 5 + [False] * OPEN_STORES
    # the detector's reads between calls (a snapshot, the baseline for an incident) are calls of their own:
    # the store is among the open ones after them, and rests as they do
    last = dets[-1]
    data = last.snapshot()
    assert not last._events.resting
    first = dets[0]
    assert first.baseline_events == [events[o] for o in first._baseline_at.tolist()]
    assert not first._events.resting
    rest_idle_stores()
    assert all(d._events.resting for d in dets)
    assert registry.restore("cbad", data).snapshot() == data == last.snapshot()  # resting or open: the same
    # a read of the store itself outside both opens it, and it is not rested behind the reader's back
    assert first._events.range(290, 300) == events[290:300]
    rest_idle_stores()
    assert not first._events.resting
    first.update(EventBatch(events[:10]))  # its next call ends: among the open ones again
    rest_idle_stores()
    assert first._events.resting
    twin = registry.create("cbad", seed=4, **SMALL)  # fed the same, its store open: the same results
    twin.update(EventBatch(events))
    twin.update(EventBatch(events[:10]))
    assert first.update(EventBatch(events[10:80])) == twin.update(EventBatch(events[10:80]))


def test_the_event_store_refuses_a_resting_block_that_is_not_where_it_says():
    from detectors.event_blocks import EventBlocks

    store = EventBlocks()
    store.extend(0, [b"GET /a OK", b"GET /b OK"] * 40)
    store.seal_below(64)
    store.rest()
    raw_start, end, resting, blocks, sizes, keys = store.dump()
    assert EventBlocks.load(raw_start, end, resting, blocks, sizes, keys).range(60, 80) == store.range(60, 80)
    with pytest.raises(ValueError, match="corrupt"):
        EventBlocks.load(raw_start, end + 1, resting, blocks, sizes, keys).get(70)
    with pytest.raises(ValueError, match="corrupt"):
        EventBlocks.load(raw_start, raw_start, resting, blocks, sizes, keys)
    with pytest.raises(ValueError, match="corrupt"):
        EventBlocks.load(raw_start, end, resting[:-3], blocks, sizes, keys).get(70)


def test_baseline_offsets_are_int32_while_they_fit_and_int64_beyond():
    from detectors.cbad import _narrow, _offset_dtype

    assert _offset_dtype(0, 1 << 31) is np.int32 and _offset_dtype(-(1 << 31), 5) is np.int32
    assert _offset_dtype(0, (1 << 31) + 1) is np.int64 and _offset_dtype(-(1 << 31) - 1, 5) is np.int64
    assert _narrow(np.array([5, (1 << 31) - 1], np.int64)).dtype == np.int32
    wide = _narrow(np.array([5, 1 << 31], np.int64))
    assert wide.dtype == np.int64 and wide.tolist() == [5, 1 << 31]
    # an int32 baseline joined to offsets past 2**31 widens (numpy's promotion), never wraps
    joined = np.concatenate((np.arange(3, dtype=np.int32), np.array([1 << 33], np.int64)))
    assert joined.dtype == np.int64 and joined.tolist()[-1] == 1 << 33
    det = registry.create("cbad", seed=4, **SMALL)
    det.update(EventBatch(synthetic_logs(400, seed=2)))
    assert det._baseline_at.dtype == np.int32
    assert snapshot.decode(det.snapshot(), b"CBAD").arrays["baseline_at"].dtype == np.int64
