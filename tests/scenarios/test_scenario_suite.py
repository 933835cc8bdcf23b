"""The scenario suite's smallest end-to-end run: one fault and one control, each through its own real
gateway child process (``bench/scenarios``), at shortened lengths so it fits a test. The full-length suite
and its table are ``python bench/scenarios/run.py``; this test keeps the harness and the bar honest.

Fault: ``new_error_type`` (30 % of ``POST /checkout`` spans turn 503 with a never-seen error.type) for 5
minutes of event time after a 7-minute warm-up, then 5 normal minutes. Control: ``client_restart`` (spans,
logs and metrics; the SDK restarted every quarter) for 10 minutes. Bar of issue 12: the fault is one
incident (two at most), open for >= 90 % of the fault, resolved after it ends; nothing else opens.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.scenarios.catalog import catalog, with_phases
from bench.scenarios.measure import ControlResult, FaultResult
from bench.scenarios.runner import run_scenario

SCENARIOS = {s.name: s for s in catalog()}


@pytest.mark.timeout(240)
def test_a_fault_is_one_incident_for_its_whole_length_and_a_control_stays_quiet(tmp_path: Path) -> None:
    fault = run_scenario(with_phases(SCENARIOS["new_error_type"], 420, 300, 300), workdir=tmp_path)
    control = run_scenario(with_phases(SCENARIOS["client_restart"], 0, 0, 600), workdir=tmp_path)

    f = fault.result
    assert isinstance(f, FaultResult)
    found = [(i["stream_id"], i["status"], i["opened_at"], i["resolved_at"]) for i in fault.incidents]
    assert 1 <= f.incidents <= 2, f"incidents on the faulty stream: {f.incidents}; all: {found}"
    assert f.open_share >= 0.9, f"open for {100 * f.open_share:.0f} % of the fault; incidents: {found}"
    assert f.resolve_s is not None and f.resolve_s >= 0, f"not resolved after the fault: {found}"
    assert f.false_incidents == 0, f"incidents outside the fault: {found}"

    c = control.result
    assert isinstance(c, ControlResult)
    assert c.normal_events > 5000, c
    assert c.false_incidents == 0, [(i["stream_id"], i["opened_at"], i["summary"]) for i in control.incidents]
