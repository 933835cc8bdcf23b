"""Snapshots already in users' stores keep restoring: the shared format and the ones before it.

``tests/detectors/legacy/`` holds snapshots written by the code before the shared snapshot codec (main at
380c25a; ``generate.py`` made them), each with digests of the results that code produced when it continued
on the rest of its stream. A restore must go on exactly as that code did.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from detectors import EventBatch, registry, snapshot
from detectors.compressors import DEFAULT_TABLE_BITS
from tests.detectors.legacy.generate import cbad_events, numeric_series

LEGACY = Path(__file__).parent / "legacy"
CASES = json.loads((LEGACY / "cases.json").read_text())


def _digest(result) -> str:
    fields = dataclasses.asdict(result)
    for name in ("incident_seq", "start_time_ns", "end_time_ns"):  # fields younger than these records
        if fields[name] is None:
            del fields[name]
    text = json.dumps(fields, sort_keys=True, allow_nan=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _continue(name: str) -> list:
    case = CASES[name]
    data = (LEGACY / case["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == case["sha256"]
    det = registry.restore(case["kind"], data)
    assert det.events_seen == case["cut"]
    if case["kind"] == "cbad":
        return det.update(EventBatch(cbad_events()[case["cut"]:]))
    x, t = numeric_series()
    return det.update(EventBatch(x[case["cut"]:], t[case["cut"]:]))


def _first_tail_window(case: dict) -> int:
    """Index of the first continued window whose p-value the previous code took from the fitted tail (a
    statistic above every recent one: p <= 2/(n+1)); the tail fit was unified since, so from there on
    p-values may differ."""
    pairs = zip(case["p_values"], case["calibration_windows"], strict=True)
    return next((i for i, (p, n) in enumerate(pairs) if p <= 2.0 / max(n, 1.0)), len(case["p_values"]))


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c["kind"] == "cbad"])
def test_cbad_snapshots_of_the_previous_code_restore_and_continue(name):
    case = CASES[name]
    results = _continue(name)
    assert len(results) == len(case["continuation"])
    # the burst injected at 1300 is flagged as the previous code flagged it
    assert any(r.is_anomaly and r.start_offset <= 1300 < r.end_offset for r in results)
    flagged = {r.end_offset for r in results if r.is_anomaly}
    assert {end for end in case["flagged_after"] if end > 1300} <= flagged


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c["kind"] == "cbad"])
def test_cbad_snapshots_of_the_previous_code_continue_as_in_their_own_table_size(name):
    """Restored at the old default table size (2**17 slots, recounted from the baseline, as before), a
    legacy snapshot goes on exactly as the previous code did: the 16-bit counts change nothing below
    saturation. (An ordinary restore converts it to today's table size, so its code lengths change.)"""
    case = CASES[name]
    data = (LEGACY / case["file"]).read_bytes()
    det = registry.restore("cbad", data)
    assert snapshot.decode(data, b"CBAD").header["config"]["table_bits"] == 17
    assert det.table_bits == DEFAULT_TABLE_BITS
    wide_snapshot = snapshot.decode(det.snapshot(), b"CBAD")
    wide_snapshot.header["config"]["table_bits"] = 17
    del wide_snapshot.arrays["table_slots"], wide_snapshot.arrays["table_counts"]  # no table: recounted
    # from the baseline in the size of the config
    wide = registry.restore("cbad", snapshot.encode(b"CBAD", wide_snapshot.version, wide_snapshot.header,
                                                    wide_snapshot.arrays))
    assert wide.table_bits == 17
    wide.event_bits_every_window = True  # recorded when every window had its event_bits table
    results = wide.update(EventBatch(cbad_events()[case["cut"]:]))
    same_until = _first_tail_window(case)
    assert [_digest(r) for r in results[:same_until]] == case["continuation"][:same_until]


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c["kind"] == "cbad"])
def test_cbad_writes_the_format_it_reads(name):
    """A version-1 snapshot (before incidents) is rewritten as version 9 with every part of it unchanged
    (same header entries, same arrays, the same baseline and held events) but the table size, converted to
    today's default, and with the incident state, the event times and the count table added, the retained
    events as the event store holds them (the older ones in sealed blocks), the baseline and held events
    as stream offsets into it, and the per-event arrays and the calibration ring as far as they are read
    (from ``arrays_base``; the ring's ``calibration_count`` windows of its ``calibration_capacity``);
    the count table as its nonzero slots and their counts, the newest events as one sealed block; version 9
    rewrites byte for byte."""
    data = (LEGACY / CASES[name]["file"]).read_bytes()
    restored = registry.restore("cbad", data)
    rewritten = restored.snapshot()
    old, new = snapshot.decode(data, b"CBAD"), snapshot.decode(rewritten, b"CBAD")
    assert (old.version, new.version) == (1, 9)
    assert old.header["config"]["table_bits"] == 17
    assert new.header["config"] == {**old.header["config"], "table_bits": DEFAULT_TABLE_BITS}
    assert {k: v for k, v in new.header.items() if k in old.header and k != "config"} == {
        k: v for k, v in old.header.items() if k != "config"}
    assert set(new.header) - set(old.header) == {"frozen", "last_end", "incidents", "raw_start",
                                                 "event_block", "arrays_base", "calibration_capacity"}
    cut = new.header["arrays_base"] - old.header["tail_base"]  # 0: version 1 has no last window end
    assert cut >= 0 and new.header["calibration_capacity"] == old.arrays["calibration"].shape[1]
    assert not new.header["frozen"] and new.header["incidents"]["open"] is None
    events = {"baseline", "baseline_lens", "held", "held_lens", "tail", "tail_lens"}
    for name_, array in old.arrays.items():
        if name_ in ("taint", "bits"):
            array = array[cut:]
        elif name_ == "calibration":
            array = array[:, :old.header["calibration_count"]]
        if name_ not in events:
            np.testing.assert_array_equal(new.arrays[name_], array)
    assert set(new.arrays) - set(old.arrays) == {"table_slots", "table_counts", "times", "baseline_at",
                                                 "held_at", "raw_block", "blocks", "block_sizes",
                                                 "block_keys"}
    assert set(old.arrays) - set(new.arrays) == events
    slots, counts = new.arrays["table_slots"], new.arrays["table_counts"]
    assert slots.dtype == np.uint16 and slots.size == counts.size > 0 and counts.all()
    assert (np.diff(slots.astype(np.int64)) > 0).all() and int(slots.max()) < 1 << DEFAULT_TABLE_BITS
    assert len(new.arrays["block_keys"]) > 0  # the older events sealed, as a live detector seals them
    tail = cbad_events()[old.header["tail_base"]:old.header["seen"]]
    assert b"".join(tail) == old.arrays["tail"].tobytes()
    assert restored._events.range(old.header["tail_base"], old.header["seen"]) == tail
    old_baseline = _split(old.arrays["baseline"], old.arrays["baseline_lens"])
    assert restored.baseline_events == old_baseline
    assert restored._events.take(restored._held_at) == _split(old.arrays["held"], old.arrays["held_lens"])
    again = registry.restore("cbad", rewritten)
    assert again.baseline_events == old_baseline and again._held_at == restored._held_at
    assert again.snapshot() == rewritten


def _split(buf: np.ndarray, lens: np.ndarray) -> list[bytes]:
    raw, ends = buf.tobytes(), np.cumsum(lens).tolist()
    return [raw[a:b] for a, b in zip([0, *ends], ends, strict=False)]


def test_cbad_held_events_survive_the_legacy_snapshot():
    det = registry.restore("cbad", (LEGACY / CASES["cbad_during_anomaly"]["file"]).read_bytes())
    assert len(det._held_at) == 5 and det._anomaly_run == 2
    events = cbad_events()
    assert set(det._events.take(det._held_at)) <= set(events[685:712])


def test_numeric_snapshot_of_the_previous_format_restores_and_continues():
    results = _continue("numeric")
    # a restored detector goes on exactly as one fed the same points from the start (the previous code's own
    # continuation differs where the unified tail fit moved p-values, and in severity and figures)
    x, t = numeric_series()
    # with its four models and no calibration delays: a snapshot written before the mean model keeps the
    # models it was configured with
    det = registry.create("numeric", profile="sensitive", models=("range", "step", "daily", "weekly"),
                          disjoint_calibration=False)
    det.update(EventBatch(x[:CASES["numeric"]["cut"]], t[:CASES["numeric"]["cut"]]))
    fresh = det.update(EventBatch(x[CASES["numeric"]["cut"]:], t[CASES["numeric"]["cut"]:]))
    # except the first event time of windows reaching back before the cut: the previous format kept no times
    cut = CASES["numeric"]["cut"]
    assert [dataclasses.replace(r, start_time_ns=None) for r in results] == \
        [dataclasses.replace(r, start_time_ns=None) for r in fresh]
    assert [r.start_time_ns for r in results if r.start_offset >= cut] == \
        [r.start_time_ns for r in fresh if r.start_offset >= cut]
    # the dip of 3500-3510 is flagged in every window the previous code flagged it
    dip = {end for end in CASES["numeric"]["flagged_after"] if 3500 < end <= 3540}
    assert dip and dip <= {r.end_offset for r in results if r.is_anomaly}


def test_numeric_restored_from_the_previous_format_writes_the_shared_one():
    data = (LEGACY / CASES["numeric"]["file"]).read_bytes()
    assert data.startswith(b"DLNUM1\n")
    det = registry.restore("numeric", data)
    again = snapshot.decode(det.snapshot(), b"NUMR")
    assert again.version == 3 and again.header["kind"] == "numeric"
    assert again.header["config"]["models"] == ["range", "step", "daily", "weekly"]
    assert not again.header["config"]["disjoint_calibration"]
    assert again.header["skipped"] == {"nan": 0, "inf": 0}
    seen = int(again.arrays["istate"][0])
    carried = again.header["config"]["window"] - 1
    np.testing.assert_array_equal(again.arrays["tail_offsets"], np.arange(seen - carried, seen))
    assert registry.restore("numeric", det.snapshot()).snapshot() == det.snapshot()


def test_the_codec_refuses_what_it_did_not_write():
    data = snapshot.encode(b"TEST", 10, {"a": 1}, {"x": np.arange(4, dtype=np.int64)})
    with pytest.raises(ValueError, match="not a CBAD snapshot"):
        registry.restore("cbad", data)
    with pytest.raises(ValueError, match="stray bytes"):
        snapshot.decode(data + b"\0", b"TEST")
    with pytest.raises(ValueError, match="corrupt"):
        snapshot.decode(data[:12] + b"{" + data[13:], b"TEST")
    with pytest.raises(ValueError, match="version 10"):
        registry.restore("cbad", b"CBAD" + data[4:])


V2_CASES = json.loads((LEGACY / "numeric_v2.json").read_text())


@pytest.mark.parametrize("name", sorted(V2_CASES))
def test_numeric_version_2_snapshots_restore_and_continue_as_that_code_did(name):
    """Version 2 (four models, before the mean model; made by ``generate_numeric_v2.py`` with the code of
    that time), one cut in normal data and one with an incident open: restored, the detector keeps its four
    models and goes on exactly as that code did (windows, verdicts, incidents)."""
    case = V2_CASES[name]
    data = (LEGACY / case["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == case["sha256"]
    assert snapshot.decode(data, b"NUMR").version == 2
    det = registry.restore("numeric", data)
    assert det.events_seen == case["cut"] and det.open_incident_seq == case["open_incident"]
    assert det.config["models"] == ["range", "step", "daily", "weekly"]
    x, t = numeric_series()
    out = det.update(EventBatch(x[case["cut"]:], t[case["cut"]:]))
    windows = [[r.end_offset, r.p_value, r.is_anomaly, r.incident_seq, r.severity] for r in out]
    assert windows == case["windows"]
    assert [[u.seq, u.status, u.opened_offset, u.last_anomalous_offset, u.anomalous_windows]
            for u in out.incidents] == case["incidents"]
    again = det.snapshot()
    assert snapshot.decode(again, b"NUMR").version == 3
    assert registry.restore("numeric", again).snapshot() == again


V3_CASES = json.loads((LEGACY / "cases_v3.json").read_text())


def _restored(case: dict, version: int):  # type: ignore[no-untyped-def]
    """The detector a legacy fixture holds, checked to be the file and the version the case names."""
    data = (LEGACY / case["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == case["sha256"]
    assert snapshot.decode(data, b"CBAD").version == version
    det = registry.restore("cbad", data)
    assert det.events_seen == case["cut"]
    return det


def _continues_as_written(det, case: dict) -> None:  # type: ignore[no-untyped-def]
    """Every window and every incident update of the rest of the stream, as the code that wrote the
    fixture gave them (the incidents' state: the explanation's wording is today's)."""
    from tests.detectors.legacy.generate_v3 import continue_in_batches

    windows, incidents = continue_in_batches(det, cbad_events()[case["cut"]:])
    assert windows == case["windows"]
    assert incidents == case["incident_states"]


@pytest.mark.parametrize("name", sorted(V3_CASES))
def test_cbad_version_3_snapshots_continue_exactly_as_the_code_that_wrote_them(name):
    """Version 3 (the events as separate byte strings, before the field test's attribute field) restores into
    today's state and goes on bit for bit as the code that wrote it did: every window and every incident
    update of the rest of the stream (its state; the explanation's wording is today's); the field test stays
    on, its attribute field off."""
    case = V3_CASES[name]
    det = _restored(case, 3)
    assert det.field_test and not det.field_attributes and "field_attributes" not in det.config
    # the baseline's and the held events equal to tail events are the tail's (as in a live detector)
    tail_at = range(det._tail_base, det.events_seen)
    assert sum(o in tail_at for o in det._baseline_at.tolist()) > len(det._baseline_at) // 2
    _continues_as_written(det, case)


LATER_CASES = {version: json.loads((LEGACY / f"cases_v{version}.json").read_text())
               for version in (5, 6, 7, 8)}
"""Fixtures made by ``generate_v<version>.py`` with the code of that time: version 5 keeps the retained events
as one joined tail, the baseline and held events as references into it; 6 the per-event arrays from the
tail's first event on, the calibration ring at its full capacity; 7 the count table as its dense slots; 8
the count table as its nonzero slots, the newest retained events as joined bytes."""


@pytest.mark.parametrize(("version", "name"), [(version, name) for version, cases in LATER_CASES.items()
                                               for name in sorted(cases)])
def test_cbad_snapshots_of_versions_5_to_8_continue_exactly_as_the_code_that_wrote_them(version, name):
    """Each restores and goes on bit for bit as the code that wrote it did: every window and every incident
    update of the rest of the stream (its state; the explanation's wording is today's)."""
    case = LATER_CASES[version][name]
    det = _restored(case, version)
    assert det.field_test and det.field_attributes
    if version == 6:  # its restored state is what a live detector keeps: the arrays from where the next
        # hops read, the calibration ring as long as its history
        assert det._calibrator.ring.values.shape[1] < det._calibrator.capacity
        assert det._arrays_base > det._tail_base
    _continues_as_written(det, case)
