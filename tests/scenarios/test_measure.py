"""The scenario suite's arithmetic (incidents against the fault, false-incident rates) and its section of
docs/quality.md, on hand-made API answers."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bench.scenarios.catalog import catalog
from bench.scenarios.measure import control_result, fault_result, poisson_upper, ts
from bench.scenarios.report import BEGIN, END, section, write_section
from bench.scenarios.runner import Run
from detectors.evaluate.report import _kept_sections

T = ts("2026-01-01T00:40:00Z")
FAULT = (T, T + 600)
END_OF_TRAFFIC = T + 1800
TARGET = "traces/shop/POST /checkout"


def iso(seconds: float) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat().replace("+00:00", "Z")


def incident(stream: str, opened: float, resolved: float | None) -> dict:
    return {"stream_id": stream, "opened_at": iso(opened),
            "resolved_at": None if resolved is None else iso(resolved),
            "status": "open" if resolved is None else "resolved"}


def window(stream: str, start: float, end: float) -> dict:
    return {"stream_id": stream, "window_start": iso(start), "window_end": iso(end)}


def test_one_incident_covering_the_fault_meets_the_bar() -> None:
    r = fault_result([incident(TARGET, T + 4, T + 650)], [window(TARGET, T - 10, T + 4)], TARGET, *FAULT,
                     END_OF_TRAFFIC)
    assert (r.incidents, r.detect_s, r.resolve_s, r.false_incidents) == (1, 4.0, 50.0, 0)
    assert r.open_share == pytest.approx(596 / 600)
    assert r.passed and r.window_detect_s == 4.0 and r.windows_in_fault == 1


def test_split_short_open_late_or_still_open_incidents_miss_it() -> None:
    split = [incident(TARGET, T + 5, T + 200), incident(TARGET, T + 300, T + 400),
             incident(TARGET, T + 500, T + 700)]
    r = fault_result(split, [], TARGET, *FAULT, END_OF_TRAFFIC)
    assert r.incidents == 3 and not r.passed
    short = fault_result([incident(TARGET, T + 5, T + 400)], [], TARGET, *FAULT, END_OF_TRAFFIC)
    assert short.open_share == pytest.approx(395 / 600) and short.resolve_s == -200 and not short.passed
    still_open = fault_result([incident(TARGET, T + 5, None)], [], TARGET, *FAULT, END_OF_TRAFFIC)
    assert still_open.open_share == pytest.approx(595 / 600) and still_open.resolve_s is None
    assert not still_open.passed


def test_incidents_elsewhere_or_before_the_fault_are_false() -> None:
    found = [incident("traces/shop/GET /cart", T + 10, T + 30), incident(TARGET, T - 900, T - 800),
             incident(TARGET, T + 600 + 301, T + 1000), incident(TARGET, T + 2, T + 620)]
    r = fault_result(found, [], TARGET, *FAULT, END_OF_TRAFFIC)
    assert (r.incidents, r.false_incidents) == (1, 3) and r.passed


def test_a_window_stamped_with_the_wall_clock_counts_from_its_end() -> None:
    wall = window(TARGET, ts("2026-12-04T13:41:48Z"), T + 30)
    r = fault_result([], [wall], TARGET, *FAULT, END_OF_TRAFFIC)
    assert r.window_detect_s == 30.0 and r.window_share == 0.0


def test_false_incident_rate_with_its_bound() -> None:
    assert poisson_upper(0) == pytest.approx(3.689, abs=1e-3)
    assert poisson_upper(5) == pytest.approx(11.668, abs=1e-2)
    streams = [{"events_seen": 300_800, "warmup": {"needed": 800}},
               {"events_seen": 500, "warmup": {"needed": 800}}]
    quiet = control_result([], [], streams, declared=1.0)
    assert quiet.normal_events == 300_000 and quiet.per_million == 0 and quiet.passed
    assert quiet.upper_per_million == pytest.approx(12.3, abs=0.1)
    noisy = control_result([incident("x", T, T + 1)], [], streams, declared=1.0)
    assert noisy.per_million == pytest.approx(3.33, abs=0.01) and noisy.passed is False


def test_the_section_is_replaced_between_its_markers_and_survives_the_detector_report(tmp_path: Path) -> None:
    doc = tmp_path / "quality.md"
    doc.write_text("# Quality\n\ntables\n")
    write_section(doc, f"{BEGIN}\n## Scenarios\nfirst\n{END}\n")
    write_section(doc, f"{BEGIN}\n## Scenarios\nsecond\n{END}\n")
    text = doc.read_text()
    assert text.count(BEGIN) == 1 and "second" in text and "first" not in text
    assert text.startswith("# Quality")
    assert _kept_sections(doc).strip() == f"{BEGIN}\n## Scenarios\nsecond\n{END}"
    assert _kept_sections(tmp_path / "missing.md") == ""


def test_the_section_says_where_the_bar_is_missed() -> None:
    scenarios = {s.name: s for s in catalog()}
    missed = fault_result([], [window(TARGET, T, T + 3)], TARGET, *FAULT, END_OF_TRAFFIC)
    met = fault_result([incident(TARGET, T + 4, T + 650)], [], TARGET, *FAULT, END_OF_TRAFFIC)
    runs = [Run(scenarios["new_error_type"], missed, 1000, [], 1.0, {}, "balanced"),
            Run(scenarios["latency_x5"], met, 1000, [], 1.0, {}, "balanced")]
    text = section(runs, command="python bench/scenarios/run.py", when="now", profile="balanced")
    assert text.startswith(BEGIN) and text.rstrip().endswith(END)
    assert "- `new_error_type`: no incident: anomalous windows covered 0 % of the fault (the first 3" in text
    assert "`latency_x5`:" not in text.split("Where the bar is missed:")[1]
    assert "| latency_x5 |" in text and "| 1 (resolved) | 4 | 99 % | 50 | 0 | yes |" in text


def test_the_section_quotes_what_each_incident_told_a_person() -> None:
    scenarios = {s.name: s for s in catalog()}
    said = {**incident(TARGET, T + 4, T + 650), "summary": "POST /checkout: 30 % of spans now ERROR | 503"}
    met = fault_result([said], [], TARGET, *FAULT, END_OF_TRAFFIC)
    silent = fault_result([], [], TARGET, *FAULT, END_OF_TRAFFIC)
    assert met.summaries == ["POST /checkout: 30 % of spans now ERROR | 503"]
    runs = [Run(scenarios["new_error_type"], met, 1000, [], 1.0, {}, "balanced"),
            Run(scenarios["latency_x5"], silent, 1000, [], 1.0, {}, "balanced")]
    text = section(runs, command="python bench/scenarios/run.py", when="now", profile="balanced")
    assert "| new_error_type | `POST /checkout: 30 % of spans now ERROR \\| 503` |" in text
    assert "| latency_x5 | - |" in text
