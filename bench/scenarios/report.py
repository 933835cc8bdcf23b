"""The scenario tables (terminal and markdown) and their section of ``docs/quality.md``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from bench.scenarios.measure import ControlResult, FaultResult
from bench.scenarios.runner import Run

BEGIN = "<!-- scenarios:begin -->"
END = "<!-- scenarios:end -->"
"""The whole section lies between these markers; ``python -m detectors.evaluate --write-docs`` keeps it."""


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _yes(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "**no**")


def fault_rows(runs: Sequence[Run]) -> list[list[str]]:
    rows = []
    for run in runs:
        r = run.result
        assert isinstance(r, FaultResult)
        resolve = _s(r.resolve_s) if r.resolve_s is not None else ("still open" if r.incidents else "-")
        kinds = sorted(set(r.statuses))
        count = f"{r.incidents} ({', '.join(kinds)})" if kinds else str(r.incidents)
        rows.append([run.scenario.name, run.scenario.description, count, _s(r.detect_s),
                     f"{100 * r.open_share:.0f} %", resolve, str(r.false_incidents), _yes(r.passed),
                     f"{_s(r.window_detect_s)} / {100 * r.window_share:.0f} % / {r.windows_outside}",
                     f"{run.events} / {run.wall_s:.0f}"])
    return rows


def summary_rows(runs: Sequence[Run]) -> list[list[str]]:
    """What each fault's incidents told a person: their one-sentence summaries, as stored."""
    rows = []
    for run in runs:
        r = run.result
        assert isinstance(r, FaultResult)
        said = " / ".join(f"`{text}`" if text else "(none)" for text in r.summaries) or "-"
        rows.append([run.scenario.name, said])
    return rows


def control_rows(runs: Sequence[Run]) -> list[list[str]]:
    rows = []
    for run in runs:
        r = run.result
        assert isinstance(r, ControlResult)
        declared = "-" if r.declared_per_million is None else f"{r.declared_per_million:g}"
        rows.append([run.scenario.name, run.scenario.description, f"{r.normal_events}",
                     str(r.false_incidents), f"{r.per_million:.1f} (<= {r.upper_per_million:.1f})", declared,
                     _yes(r.passed), str(r.windows), f"{run.events} / {run.wall_s:.0f}"])
    return rows


FAULT_HEAD = ["fault", "what changes", "incidents (goal 1)", "detect (s)", "open share of fault",
              "resolve after fault (s)", "other incidents", "bar met",
              "windows: detect (s) / share / outside", "events / wall s"]
SUMMARY_HEAD = ["fault", "the incident's summary (one per incident)"]
CONTROL_HEAD = ["control", "what", "events after warm-up", "false incidents",
                "per million events (95 % upper)", "declared per million", "within", "anomalous windows",
                "events / wall s"]


def markdown_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def text_table(head: list[str], rows: list[list[str]]) -> str:
    # the long description column is left out of the terminal table
    keep = [i for i, h in enumerate(head) if h not in ("what changes", "what")]
    cols = [[head[i]] + [row[i] for row in rows] for i in keep]
    widths = [max(len(c) for c in col) for col in cols]
    lines = []
    for r in range(len(rows) + 1):
        lines.append("  ".join(col[r].ljust(w) for col, w in zip(cols, widths, strict=True)))
        if r == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def shortfalls(runs: Sequence[Run]) -> list[str]:
    """One plain line per scenario that misses the bar, saying how (generated, so never stale)."""
    lines = []
    for run in runs:
        r = run.result
        if isinstance(r, FaultResult) and not r.passed:
            if r.incidents == 0:
                seen = ("no anomalous window in the fault" if r.windows_in_fault == 0 else
                        f"anomalous windows covered {100 * r.window_share:.0f} % of the fault (the first "
                        f"{_s(r.window_detect_s)} s after its start) but no incident opened")
                why = f"no incident: {seen}"
            elif r.incidents > 2:
                why = f"{r.incidents} incidents for one fault"
            elif r.open_share < 0.9:
                why = f"open for {100 * r.open_share:.0f} % of the fault only"
            elif r.resolve_s is None:
                why = "still open at the end of the traffic"
            elif any(s != "resolved" for s in r.statuses):
                why = f"closed as {', '.join(sorted(set(r.statuses)))}, not resolved"
            else:
                why = f"closed {-r.resolve_s:.0f} s before the fault ended"
            lines.append(f"- `{run.scenario.name}`: {why}.")
        elif isinstance(r, ControlResult) and r.passed is False:
            per_stream = Counter(str(i["stream_id"]) for i in run.incidents)
            where = ", ".join(f"{n} on `{stream}`" for stream, n in sorted(per_stream.items()))
            lines.append(f"- `{run.scenario.name}`: {r.false_incidents} false incidents in {r.normal_events} "
                         f"events ({r.per_million:.1f} per million): {where}.")
    return lines


def split(runs: Sequence[Run]) -> tuple[list[Run], list[Run]]:
    faults = [r for r in runs if r.scenario.kind == "fault"]
    return faults, [r for r in runs if r.scenario.kind == "control"]


def terminal(runs: Sequence[Run]) -> str:
    faults, controls = split(runs)
    parts = []
    if faults:
        parts.append(text_table(FAULT_HEAD, fault_rows(faults)))
        parts.append(text_table(SUMMARY_HEAD, summary_rows(faults)))
    if controls:
        parts.append(text_table(CONTROL_HEAD, control_rows(controls)))
    misses = shortfalls(runs)
    if misses:
        parts.append("\n".join(misses))
    return "\n\n".join(parts)


SECTION_TEXT = """## Scenarios: incidents through the real gateway

Generated by `{command}` (`bench/scenarios/`); {when}. Each scenario starts its own
gateway as a child process (`otlp-gateway serve --config ...`: embedded SQLite in a temporary directory,
the embedded defaults, detection on, profile `{profile}`) and sends service `shop`'s telemetry through the
OpenTelemetry Python SDK's OTLP/gRPC exporters (metric points as the SDK's `MetricsData` through its
`OTLPMetricExporter`, because its meter stamps points with the wall clock). Traffic comes from a seeded
generator with realistic cardinality (unique trace and span ids, a million user ids, 50,000 product
paths, order numbers in log lines) and its event times are set by the generator, so
{fault_min} minutes of fault take seconds; the gateway judges event time. A fault scenario is {warm_min}
minutes of normal traffic, the fault, then {after_min} minutes of normal traffic; the faulty stream has
an unchanged neighbour stream beside it. Everything is read back through the REST API
(`GET /v1/incidents`, `/v1/incidents/{{id}}`, `/v1/anomalies`, `/v1/streams`) after the gateway's own
counters show every event scored and every finding stored. Two runs with the same seed gave the same
incidents (ids, times, windows; checked on `high_cardinality_attribute`).

Columns: *incidents* on the faulty stream during the fault or the {aftermath} s after it (goal exactly 1);
*detect*: event time from the fault's start to the first of them opening (`opened_at` is the first event
of the window that opened it, so it may precede the fault's start by up to one window's span; when it was
known is the window column's first figure); *open share*: the part of the fault they cover; *resolve*:
event time from the fault's end to the last of them closing; *other
incidents*: anywhere else, false; *bar met*: found with <= 2 incidents, open >= 90 % of the fault,
resolved after it ends. *windows*: the same read off the anomalous windows (the detectors' output before
incidents): first flagged window's end after the fault start, share of the fault covered by flagged
windows, flagged windows outside the fault. Controls: false incidents per million events scored after
each stream's warm-up, with the 95 % upper bound (a count of 0 in N events bounds the rate only down to
3.7 per N); *within*: at most 1.5 x the profile's declared rate (`driftlock_false_incident_rate_declared`).
"""


def section(runs: Sequence[Run], *, command: str, when: str, profile: str, notes: str = "") -> str:
    faults, controls = split(runs)
    fault = faults[0].scenario if faults else None
    text = SECTION_TEXT.format(
        command=command, when=when, profile=profile,
        fault_min=fault.fault_s // 60 if fault else "-", warm_min=fault.warmup_s // 60 if fault else "-",
        after_min=fault.after_s // 60 if fault else "-", aftermath=300)
    parts = [BEGIN, text]
    if faults:
        parts += [markdown_table(FAULT_HEAD, fault_rows(faults)), ""]
        parts += ["What each fault's incident told the on-call engineer (its `summary`, as stored):", "",
                  markdown_table(SUMMARY_HEAD, summary_rows(faults)), ""]
    if controls:
        parts += [markdown_table(CONTROL_HEAD, control_rows(controls)), ""]
    misses = shortfalls(runs)
    if misses:
        parts += ["Where the bar is missed:", "", *misses, ""]
    if notes:
        parts += [notes.strip(), ""]
    parts.append(END)
    return "\n".join(parts) + "\n"


def write_section(doc: Path, text: str) -> None:
    """Replace the section between the markers, or append it."""
    current = doc.read_text()
    if BEGIN in current and END in current:
        head, rest = current.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        doc.write_text(head + text.rstrip("\n") + tail)
    else:
        doc.write_text(current.rstrip("\n") + "\n\n" + text)
