"""Nezha OnlineBoutique: anomalies on the faulty service's spans in the fault minutes vs the minute before.

For each injected fault whose three one-minute trace files are present (minute before, minute with
the injection, minute after), the spans of the injected pod are sorted by start time and fed as one
stream to two detectors (profile ``sensitive``: the slowest services emit ~500 spans a minute, too few
to warm the larger profiles inside the minute before):

* ``cbad`` on canonical spans (operation name, duration bucket, service);
* ``numeric`` on log(duration) in the same order (the span-latency metric stream).

The detectors warm up on the first part of the minute before (windows scored before a detector is
warm, p-value exactly 1, are not counted). A window belongs to the *before* phase
if its last span started before ``inject_timestamp``, to the *fault* phase otherwise. Reported per
fault: scored windows and anomaly rate in each phase, and seconds from injection to the first alarm.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
from typing import Any

import numpy as np

from detectors import EventBatch, registry
from detectors.evaluate import _paths
from detectors.evaluate._progress import Progress

PROFILE = "sensitive"


def _root() -> Any:
    return _paths.datasets() / "traces" / "nezha_onlineboutique"


def faults() -> list[dict[str, Any]]:
    with open(_root() / "2022-08-22-fault_list.json") as fh:
        listing = json.load(fh)
    out = []
    for hour_faults in listing.values():
        for f in hour_faults:
            hh, mm = f["inject_time"].split(" ")[1].split(":")[:2]
            names = [f"{hh}_{int(mm) + d:02d}_trace.csv.gz" for d in range(3)]
            if all((_root() / "trace" / n).exists() for n in names):
                out.append({**f, "files": names})
    return sorted(out, key=lambda f: int(f["inject_timestamp"]))


def pod_spans(files: list[str], pod: str) -> list[tuple[int, str, int]]:
    """(start ns, operation, duration us) of the pod's spans, sorted by start time."""
    spans = []
    for name in files:
        with gzip.open(_root() / "trace" / name, "rt", newline="") as fh:
            for row in csv.DictReader(fh):
                if row["PodName"] == pod:
                    spans.append((int(row["StartTimeUnixNano"]), row["OperationName"], int(row["Duration"])))
    spans.sort()
    return spans


def _rate(rs: list) -> float:
    return sum(r.is_anomaly for r in rs) / len(rs) if rs else float("nan")


def warm_results(results: list) -> list:
    """Drop the leading windows scored before the detector was warm (p-value exactly 1, never flagged)."""
    first = next((i for i, r in enumerate(results) if r.p_value < 1.0 or r.is_anomaly), len(results))
    return results[first:]


def _phase_rates(results: list, starts: np.ndarray, inject_ns: int) -> dict[str, Any]:
    results = warm_results(results)
    before = [r for r in results if starts[r.end_offset - 1] < inject_ns]
    fault = [r for r in results if starts[r.end_offset - 1] >= inject_ns]
    first = next((r for r in fault if r.is_anomaly), None)
    return {"windows_before": len(before), "rate_before": _rate(before), "windows_fault": len(fault),
            "rate_fault": _rate(fault),
            "first_alarm_s": float(starts[first.end_offset - 1] - inject_ns) / 1e9 if first else None}


def evaluate(progress: bool = True) -> list[dict[str, Any]]:
    from detectors.canonical import canonical_span

    rows = []
    todo = faults()
    bar = Progress("nezha", len(todo), progress)
    for f in todo:
        pod = f["inject_pod"]
        service = pod.rsplit("-", 2)[0]
        spans = pod_spans(f["files"], pod)
        inject_ns = int(f["inject_timestamp"]) * 1_000_000_000
        starts = np.array([s for s, _, _ in spans], dtype=np.int64)
        events = [canonical_span(op, 2, 0, dur * 1000, {"service.name": service}) for _, op, dur in spans]
        cbad = registry.create("cbad", profile=PROFILE, seed=42)
        numeric = registry.create("numeric", profile=PROFILE, seed=42)
        durations = np.log(np.array([max(d, 1) for _, _, d in spans], dtype=np.float64))
        row = {"fault": f"{f['inject_time']} {service} {f['inject_type']}", "service": service,
               "type": f["inject_type"], "spans": len(spans),
               "spans_before": int((starts < inject_ns).sum())}
        row["cbad"] = _phase_rates(cbad.update(EventBatch(events)), starts, inject_ns)
        row["numeric"] = _phase_rates(numeric.update(EventBatch(durations)), starts, inject_ns)
        rows.append(row)
        bar.step(note=row["fault"])
    return rows


def fmt_rate(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f} %"
