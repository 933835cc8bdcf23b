"""The incident tracker (detectors/incidents.py): the sequential test that opens incidents, the frozen
reference that keeps a sustained fault open, resolution, recurrence, acceptance, operator actions,
snapshots and independence from request boundaries — on the tracker alone and through both detectors."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from detectors import EventBatch, field_shift, registry
from detectors.base import WindowResult
from detectors.incidents import IncidentTracker
from detectors.profiles import PROFILES, incident_policy
from detectors.synthetic import synthetic_logs, synthetic_spans

T0 = 1_700_000_000.0
BALANCED = incident_policy(PROFILES["balanced"])


class Host:
    """Records what the tracker asks of its detector."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _incident_freeze(self) -> None:
        self.calls.append("freeze")

    def _incident_thaw(self, keep_events: bool) -> None:
        self.calls.append(f"thaw keep={keep_events}")

    def _incident_adopt(self) -> None:
        self.calls.append("adopt")

    def _incident_reference(self) -> list[bytes]:
        return [b"INFO ok | a=1"] * 10

    def _incident_event(self, offset: int) -> bytes:
        return b"ERROR boom | a=2"

    def _incident_band(self) -> None:
        return None


def window(i: int, p: float) -> WindowResult:
    return WindowResult(i * 10, i * 10 + 50, -math.log10(p), p, p <= 1e-3, "low" if p <= 1e-3 else "none",
                        explanation={"top_events": [{"offset": i * 10 + 49, "bits": 100.0}]})


def feed(tracker: IncidentTracker, host: Host, ps: list[float], start: int = 0) -> list[WindowResult]:
    return [tracker.observe(host, window(start + i, p), (start + i) * 10**9) for i, p in enumerate(ps)]


def test_accumulated_evidence_opens_where_no_single_window_would():
    tracker, host = IncidentTracker(BALANCED), Host()
    # each window alone is far from opening (1e-4: 2.3 nats beyond k = ln 1000); seven in a row pass h = 15
    per_window = -math.log(1e-4) - BALANCED.drift_k
    needed = math.ceil(BALANCED.threshold_h / per_window)
    assert needed > 1
    out = feed(tracker, host, [0.5] * 20 + [1e-4] * needed)
    assert [w.incident_seq for w in out[:-1]] == [None] * (20 + needed - 1)
    assert out[-1].incident_seq == 0 and host.calls == ["freeze"]
    [update] = tracker.take_updates()
    assert (update.seq, update.status, update.opened_offset) == (0, "open", (20 + needed - 1) * 10)
    # explained on the sample of the window's events (every one "ERROR boom | a=2" here)
    assert {f.field for f in update.fields} == {"log.template", "a", "severity"}
    assert 'new log message "boom" (100 % of logs)' in update.summary
    # evidence decays between unrelated borderline windows: the same windows spread out open nothing
    tracker2 = IncidentTracker(BALANCED)
    spread = [p for _ in range(needed) for p in (1e-4, 0.5, 0.5, 0.5, 0.5)]
    assert all(w.incident_seq is None for w in feed(tracker2, Host(), spread))


def test_one_extremely_significant_window_opens_alone():
    tracker, host = IncidentTracker(BALANCED), Host()
    extreme = math.exp(-(BALANCED.drift_k + BALANCED.threshold_h)) / 2
    out = feed(tracker, host, [0.3, extreme])
    assert out[1].incident_seq == 0 and tracker.take_updates()[0].min_p_value == extreme
    # a window just below the bar does not
    tracker2 = IncidentTracker(BALANCED)
    assert feed(tracker2, Host(), [extreme * 4])[0].incident_seq is None


def test_resolves_after_the_profiles_normal_windows_and_a_recurrence_is_a_new_incident():
    tracker, host = IncidentTracker(BALANCED), Host()
    n = BALANCED.resolve_after_windows
    out = feed(tracker, host, [1e-20, 1e-5, 0.5] + [0.5] * (n - 2) + [1e-5] + [0.5] * n)
    # a normal window inside the incident does not resolve it; n in a row do
    updates = tracker.take_updates()
    assert [u.status for u in updates][-1] == "resolved" and {u.seq for u in updates} == {0}
    closed = next(i for i, w in enumerate(out) if w.incident_seq is not None and i > 0
                  and all(x.incident_seq is None for x in out[i + 1:]))
    assert closed == len(out) - 1 and updates[-1].closed_time_ns == closed * 10**9
    assert host.calls == ["freeze", "thaw keep=False"]
    assert updates[-1].anomalous_windows == 3 and updates[-1].last_anomalous_offset == (2 + n - 1) * 10 + 49
    # the windows still holding the events of the resolving window are not evidence again; later ones are
    again = feed(tracker, host, [1e-20] * 6, start=len(out))
    assert [w.incident_seq for w in again] == [None] * 4 + [1, 1] and tracker.take_updates()[0].seq == 1


def test_accept_after_event_time_and_operator_actions():
    tracker, host = IncidentTracker(incident_policy(PROFILES["balanced"], accept_after_ns=5 * 10**9)), Host()
    out = feed(tracker, host, [1e-20] + [1e-5] * 5 + [0.5] * 5)
    assert out[5].is_drift and out[5].incident_seq == 0 and not any(w.is_drift for w in out[:5])
    assert out[6].incident_seq is None  # accepted: the stream is the new normal (nothing open)
    assert [u.status for u in tracker.take_updates()][-1] == "accepted" and "adopt" in host.calls
    feed(tracker, host, [0.5] * 5 + [1e-20], start=11)  # opens incident 1
    with pytest.raises(ValueError, match="incident 0 is closed"):
        tracker.act(host, 0, "resolved")
    with pytest.raises(ValueError, match="incident 7 is unknown"):
        tracker.act(host, 7, "accepted")
    fp = tracker.act(host, 1, "false_positive")
    assert (fp.seq, fp.status, fp.closed_time_ns) == (1, "false_positive", 16 * 10**9)
    assert host.calls[-1] == "thaw keep=True"
    with pytest.raises(ValueError):
        tracker.act(host, 1, "resolved")


# ---------------------------------------------------------------------- through the detectors

def _fault_logs(normal: int, fault: int, after: int, seed: int = 3, every: int = 3) -> list[bytes]:
    """A service log where one event in ``every`` is a new error during the fault."""
    return synthetic_logs(normal + fault + after, seed=seed,
                          anomalies=range(normal, normal + fault, every))


def test_a_ten_minute_fault_is_one_incident_open_for_nearly_all_of_it():
    rate = 10  # events per second: 10 minutes of fault = 6,000 events
    normal, fault, after = 2000, 6000, 1500
    events = _fault_logs(normal, fault, after)
    times = [T0 + i / rate for i in range(len(events))]
    result = registry.create("cbad", profile="balanced", seed=1).update(EventBatch(events, times))
    statuses = [(u.seq, u.status) for u in result.incidents if u.status != "open"]
    assert statuses == [(0, "resolved")]
    opened, closed = result.incidents[0], result.incidents[-1]
    fault_start, fault_end = T0 + normal / rate, T0 + (normal + fault) / rate
    assert closed.closed_time_ns is not None
    open_s = (min(closed.closed_time_ns / 1e9, fault_end) - max(opened.opened_time_ns / 1e9, fault_start))
    assert open_s >= 0.9 * fault / rate
    # resolved after the fault: once the last faulty window (of the field test, the longer one) has
    # passed, within the profile's normal windows
    prof = PROFILES["balanced"]
    longest_window = field_shift.WINDOW_FACTOR * prof.window
    assert fault_end <= closed.closed_time_ns / 1e9 <= fault_end + (longest_window + (
        prof.resolve_after_windows + 1) * prof.hop) / rate
    assert 1 <= len(closed.evidence_offsets) <= 20
    assert all(normal <= o < normal + fault for o in closed.evidence_offsets)
    assert "D1" not in closed.summary and "bits" not in closed.summary


def test_a_sustained_level_shift_stays_open_on_the_numeric_detector():
    x = 50 + np.random.default_rng(1).normal(0, 1, 9000)
    x[3000:6000] += 12  # 3,000 points (50 min at one point a second)
    t = T0 + np.arange(9000.0)
    result = registry.create("numeric", profile="balanced").update(EventBatch(x, t))
    assert [(u.seq, u.status) for u in result.incidents if u.status != "open"] == [(0, "resolved")]
    inside = [w for w in result if w.start_offset >= 3000 and w.end_offset <= 6000]
    assert sum(w.incident_seq == 0 for w in inside) >= 0.9 * len(inside)
    last = result.incidents[-1]
    assert last.fields[0].field == "value" and "expected" in last.summary
    # the value against the range frozen when it opened (noise sd 1 about 50: roughly 46 to 54), in words
    band = re.search(r"above its range before the incident, ([\d.]+) to ([\d.]+) \(", last.summary)
    assert band, last.summary
    assert 44 < float(band[1]) < 48 < 52 < float(band[2]) < 56
    observed = float(re.search(r"value ([\d.]+) ", last.summary)[1])
    assert observed > float(band[2])


def test_the_same_burst_recurring_after_resolution_opens_a_new_incident():
    burst = list(range(1500, 1560, 2))
    events = synthetic_logs(4000, seed=5, anomalies=[*burst, *(b + 1500 for b in burst)])
    result = registry.create("cbad", profile="balanced", seed=2).update(EventBatch(events))
    closed = [(u.seq, u.status) for u in result.incidents if u.status != "open"]
    assert closed == [(0, "resolved"), (1, "resolved")]
    assert 1400 < result.incidents[0].opened_offset < 1560
    second = next(u for u in result.incidents if u.seq == 1)
    assert 2900 < second.opened_offset < 3060


def test_a_false_positives_pattern_does_not_raise_again():
    burst = list(range(1500, 1540))
    # the same burst again 100 events after the incident is marked a false positive (once the burst has
    # left the window: events still in it when an incident closes are judged as usual)
    events = synthetic_logs(2200, seed=5, anomalies=[*burst, *range(1700, 1740)])
    det = registry.create("cbad", profile="balanced", seed=2)
    first = det.update(EventBatch(events[:1600]))
    [opened] = {u.seq for u in first.incidents}
    fp = det.mark_false_positive(opened)
    assert fp.status == "false_positive"
    rest = det.update(EventBatch(events[1600:]))
    assert rest.incidents == [] and not any(w.incident_seq is not None for w in rest)
    # whereas resolving it instead drops its events: the recurrence raises a new incident
    det2 = registry.create("cbad", profile="balanced", seed=2)
    det2.update(EventBatch(events[:1600]))
    det2.resolve(opened)
    again = det2.update(EventBatch(events[1600:]))
    assert {u.seq for u in again.incidents} == {opened + 1}


@pytest.mark.parametrize("kind", ["cbad", "numeric"])
def test_same_events_split_differently_give_the_same_incident_updates(kind):
    if kind == "cbad":
        events: list = synthetic_spans(5000, seed=8, anomalies=[*range(2000, 2300, 2), *range(3500, 3510)])
        times = [T0 + i / 5 for i in range(5000)]
    else:
        x = 10 + np.random.default_rng(4).normal(0, 1, 5000)
        x[2000:2300] += 12
        x[3500:3700] -= 12
        events, times = list(x), [T0 + i for i in range(5000)]
    whole = registry.create(kind, profile="balanced").update(EventBatch(events, times))
    assert len({u.seq for u in whole.incidents}) >= 2
    for seed in (1, 2):
        det = registry.create(kind, profile="balanced")
        cuts = sorted(np.random.default_rng(seed).choice(np.arange(1, 5000), 60, replace=False).tolist())
        windows, updates = [], []
        for a, b in zip([0, *cuts], [*cuts, 5000], strict=True):
            out = det.update(EventBatch(events[a:b], times[a:b]))
            windows += out
            updates += out.incidents
        assert windows == list(whole) and updates == whole.incidents


@pytest.mark.parametrize("kind", ["cbad", "numeric"])
def test_a_snapshot_taken_inside_an_incident_continues_exactly(kind):
    if kind == "cbad":
        events: list = _fault_logs(1500, 800, 700)
        times = [T0 + i for i in range(3000)]
    else:
        x = 10 + np.random.default_rng(4).normal(0, 1, 3000)
        x[1500:2300] += 12
        events, times = list(x), [T0 + i for i in range(3000)]
    whole = registry.create(kind, profile="balanced").update(EventBatch(events, times))
    det = registry.create(kind, profile="balanced")
    first = det.update(EventBatch(events[:1900], times[:1900]))
    assert det._tracker.open is not None  # the cut falls inside the incident
    restored = registry.restore(kind, det.snapshot())
    rest = restored.update(EventBatch(events[1900:], times[1900:]))
    assert list(first) + list(rest) == list(whole)
    assert first.incidents + rest.incidents == whole.incidents
    assert restored._tracker.dump() == registry.restore(kind, restored.snapshot())._tracker.dump()
