"""Summary lines for the terminal and docs/quality.md (+ docs/quality/*.png, results.json)."""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors.evaluate import plots

_STATIONARY_BAR_SIGNALS = ("metrics", "logs", "spans")
_BARS = {"nab": "NAB standard >= 60 at threshold 0.5", "hdfs": "F1 >= 0.95",
         "bgl": "none: F1 >= 0.8 withdrawn (labels follow alert categories); unsupervised ceiling F1 0.58",
         "stationary": "measured rate within +-50 % of each target"}


def _f(x: Any, nd: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:.{nd}f}" if isinstance(x, float) else str(x)


def _fp_for_f1(ceiling: dict[str, Any]) -> str:
    needed = ceiling["fp_for_f1_0.9"]
    return "never" if needed is None else str(needed)


def summary(which: str, r: dict[str, Any]) -> str:
    if "pending" in r:
        return f"{which}: pending ({r['pending']})"
    if which == "nab":
        lines = []
        for prof, run in r["runs"].items():
            s = run["scores"]["standard"]
            line = (f"nab [{prof}]: standard {s['at_threshold']['normalized']:.1f} at {run['threshold']} "
                    f"({s['at_threshold']['windows_hit']}/{s['at_threshold']['windows']} windows, "
                    f"{s['at_threshold']['fp_rows']} FP rows)")
            if "optimized" in s:
                line += f"; optimized {s['optimized']['normalized']:.1f} at {s['optimized']['threshold']:.3f}"
            lines.append(line)
        return "\n".join(lines)
    if which in ("hdfs", "bgl"):
        line = (f"{which} [{r['profile']}]: precision {r['precision']:.3f} recall {r['recall']:.3f} "
                f"F1 {r['f1']:.3f} (tp {r['tp']} fp {r['fp']} fn {r['fn']})")
        if "held_out_check" in r:
            c = r["held_out_check"]
            line += (f"; {c['file']}: precision {c['precision']:.3f} recall {c['recall']:.3f} "
                     f"F1 {c['f1']:.3f}")
        for prof, o in _ordered(r.get("other_profiles", {}), _PROFILE_ORDER):
            line += f"; at {prof}: F1 {o['f1']:.3f} (recall {o['recall']:.3f}, fp {o['fp']})"
        for c in r.get("budget_ceilings", ()):
            line += f"\n  ceiling, {c['score']}: " + ", ".join(
                f"{prof} F1 {c[prof]['f1']:.3f}" for prof in _PROFILE_ORDER if prof in c) + (
                f"; normal sessions flagged to reach F1 0.9: {_fp_for_f1(c)}")
        return line
    if which == "nezha":
        return "nezha: " + "; ".join(
            f"{row['fault'][11:]}: cbad {_pct(row['cbad']['rate_before'])}->"
            f"{_pct(row['cbad']['rate_fault'])}, "
            f"numeric {_pct(row['numeric']['rate_before'])}->{_pct(row['numeric']['rate_fault'])}"
            for row in r["rows"])
    if which == "stationary":
        return "stationary: " + "; ".join(
            f"{row['signal']}/{row['profile']} {row['alarms']}/{row['windows']} = {row['rate']:.2e} "
            f"(target {row['target']:.0e}, x{_f(row['ratio'], 2)}); incidents {row['incidents']} in "
            f"{row['scored_events']} events at {row['rate_per_s']:g}/s = "
            f"{_f(row['incidents_per_million'], 2)}/M (declared {row['declared_per_million']:g}/M)"
            for row in r["rows"])
    return f"{which}: {r}"


def _verdict(v: bool | None) -> str:
    return "too few windows" if v is None else ("yes" if v else "no")


def _pct(x: Any) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}%"


def _strip(r: Any) -> Any:
    if isinstance(r, dict):
        return {k: _strip(v) for k, v in r.items() if not k.startswith("_") or k == "_seconds"}
    return r


def write_docs(results: dict[str, Any], docs: Path, command: str) -> Path:
    out_dir = docs / "quality"
    out_dir.mkdir(parents=True, exist_ok=True)
    store = out_dir / "results.json"
    merged: dict[str, Any] = json.loads(store.read_text()) if store.exists() else {}
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    for which, r in results.items():
        merged[which] = {**_strip(r), "_when": stamp, "_command": command}
        if "pending" in r:
            continue
        if which == "nab":
            first = next(iter(r["runs"].values()))
            if "_rows" in first:
                plots.nab(out_dir / "nab.png", first)
        elif which == "hdfs" and "_rows" in r:
            plots.hdfs(out_dir / "hdfs.png", r)
        elif which == "bgl" and "_rows" in r:
            plots.bgl(out_dir / "bgl.png", r)
        elif which == "nezha":
            plots.nezha(out_dir / "nezha.png", r["rows"])
        elif which == "stationary":
            plots.stationary(out_dir / "stationary.png", r["rows"])
    store.write_text(json.dumps(merged, indent=1, sort_keys=True, default=float) + "\n")
    path = docs / "quality.md"
    path.write_text(render(merged) + _kept_sections(path))
    return path


KEPT_SECTION = re.compile(r"<!-- (?P<name>[a-z-]+):begin -->.*?<!-- (?P=name):end -->", re.DOTALL)
"""Sections written by hand or by another tool (``<!-- scenarios:begin -->`` ... ``<!-- scenarios:end -->``,
``bench/scenarios/run.py``; ``incidents``, measured by commands the generator does not run): kept, in their
order, after the generated part."""


def _kept_sections(path: Path) -> str:
    old = path.read_text() if path.exists() else ""
    return "".join("\n" + found.group(0) + "\n" for found in KEPT_SECTION.finditer(old))


def render(m: dict[str, Any]) -> str:
    from detectors.evaluate.quality_text import FOOTER, HEADER

    parts = [HEADER, _summary_table(m)]
    if "nab" in m:
        parts.append(_nab(m["nab"]))
    for key, title in (("hdfs", "HDFS sessions"), ("bgl", "BGL_2k per line")):
        if key in m:
            parts.append(_prf(key, title, m[key]))
    if "nezha" in m:
        parts.append(_nezha(m["nezha"]))
    if "stationary" in m:
        parts.append(_stationary(m["stationary"]))
    parts.append(FOOTER)
    return "\n".join(parts)


def _summary_table(m: dict[str, Any]) -> str:
    rows = ["## Summary", "", "| dataset | figure | bar | met | run |", "|---|---|---|---|---|"]
    for key in ("nab", "hdfs", "bgl", "nezha", "stationary"):
        r = m.get(key)
        if r is None:
            continue
        met: bool | None
        if "pending" in r:
            rows.append(f"| {key} | pending: {r['pending']} | {_BARS.get(key, '-')} | - | {r['_when']} |")
            continue
        if key == "nab":
            parts, passed = [], []
            for prof, run in _ordered(r["runs"], _PROFILE_ORDER):
                v = run["scores"]["standard"]["at_threshold"]["normalized"]
                opt = run["scores"]["standard"].get("optimized", {}).get("normalized", float("nan"))
                parts.append(f"{prof} {v:.1f} (optimized {opt:.1f})")
                if v >= 60:
                    passed.append(prof)
            fig = "standard: " + ", ".join(parts)
            met = bool(passed)
            if passed:
                fig += f"; bar met by {', '.join(passed)}"
        elif key in ("hdfs", "bgl"):
            fig = f"P {r['precision']:.3f} / R {r['recall']:.3f} / F1 {r['f1']:.3f}"
            met = r["f1"] >= 0.95 if key == "hdfs" else None  # BGL: read beside its ceilings
        elif key == "nezha":
            up = sum(1 for row in r["rows"] if _gt(row["cbad"]["rate_fault"], row["cbad"]["rate_before"]))
            fig, met = f"cbad rate higher in the fault phase for {up}/{len(r['rows'])} faults", None
        else:
            # the bar names logs, spans and metrics; other rows (counter deltas) are shown beside it
            barred = [row for row in r["rows"] if row["signal"] in _STATIONARY_BAR_SIGNALS]
            extra = [row for row in r["rows"] if row["signal"] not in _STATIONARY_BAR_SIGNALS]
            ok = sum(1 for row in barred if row["within_50pct"])
            judged = sum(1 for row in barred if row["within_50pct"] is not None)
            fig = (f"{ok}/{judged} judged signal x profile within +-50 % "
                   f"({len(barred) - judged} with too few windows)")
            for signal in dict.fromkeys(row["signal"] for row in extra):
                rows_of = [row for row in extra if row["signal"] == signal]
                fig += (f"; beyond the bar, {signal}: " + ", ".join(
                    f"{row['profile']} {row['ratio']:.2f}x" for row in rows_of if row["ratio"] is not None))
            met = ok == judged
        verdict = "-" if met is None else ("yes" if met else "no")
        rows.append(f"| {key} | {fig} | {_BARS.get(key, '-')} | {verdict} "
                    f"| {r['_when']}, {r.get('_seconds', 0):.0f} s |")
    return "\n".join(rows) + "\n"


def _gt(a: Any, b: Any) -> bool:
    return a is not None and b is not None and not (math.isnan(a) or math.isnan(b)) and a > b


_PROFILE_ORDER = ("sensitive", "balanced", "strict")
_NAB_ORDER = ("standard", "reward_low_FP_rate", "reward_low_FN_rate")


def _ordered(d: dict[str, Any], order: tuple[str, ...]) -> list[tuple[str, Any]]:
    return sorted(d.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order))


def _nab(r: dict[str, Any]) -> str:
    first = _ordered(r["runs"], _PROFILE_ORDER)[0][1]
    out = ["## NAB (58 files)", "", f"Command: `{r['_command']}`. Detector configuration for every file "
           f"(`detectors.evaluate.nab.nab_config`, shown for {first['profile']}): "
           f"`{json.dumps(first['config'])}`.", "",
           f"| detector profile | NAB profile | score at threshold {first['threshold']:.2f} | windows hit | "
           "FP rows | optimized score (threshold) |", "|---|---|---|---|---|---|"]
    for prof, run in _ordered(r["runs"], _PROFILE_ORDER):
        for nab_prof, e in _ordered(run["scores"], _NAB_ORDER):
            a, o = e["at_threshold"], e.get("optimized")
            opt = f"{o['normalized']:.1f} ({o['threshold']:.3f})" if o else "-"
            out.append(f"| {prof} | {nab_prof} | **{a['normalized']:.1f}** | "
                       f"{a['windows_hit']}/{a['windows']} | {a['fp_rows']} | {opt} |")
    zb = r.get("zscore_baseline")
    if zb:
        figures = "; ".join(
            f"{p} {e['at_threshold']['normalized']:.1f} at 0.5, {e['optimized']['normalized']:.1f} optimized "
            f"({e['optimized']['threshold']:.3f})" for p, e in _ordered(zb, _NAB_ORDER))
        out += ["", "Rolling z-score baseline (`../shared/tools/nab_zscore_baseline.py`, window 1000) on the "
                f"same scorer: {figures}."]
    out += ["", "Published NAB standard scores (optimized thresholds): " + ", ".join(
        f"{k} {v}" for k, v in first["published"].items()) + ".", "", "![NAB](quality/nab.png)", ""]
    return "\n".join(out)


def _prf(key: str, title: str, r: dict[str, Any]) -> str:
    if "pending" in r:
        return f"## {title}\n\nPending: {r['pending']}.\n"
    extra = (f"{r['train_sessions']} training sessions, {r['sessions']} scored" if key == "hdfs"
             else f"{r['lines']} lines, {r['alerts']} alerts")
    warm = ""
    if "held_out_check" in r:
        c = r["held_out_check"]
        warm = (f"\nSame detector and threshold on `{c['file']}` (its {c['sessions']} rows, {c['distinct']} "
                f"distinct, whose sequence is not in robust_log_valid.csv; a labelled file not used to "
                f"choose anything): precision {c['precision']:.3f}, "
                f"recall {c['recall']:.3f}, "
                f"F1 {c['f1']:.3f} (TP {c['tp']}, FP {c['fp']}, FN {c['fn']}, TN {c['tn']}).\n")
    if "after_warm_up" in r:
        a = r["after_warm_up"]
        warm = (f"\nAfter warm-up (from line {r['warm_from_line']}; {r['alerts_before_warm']} alerts came "
                f"before it): precision {a['precision']:.3f}, recall {a['recall']:.3f}, F1 {a['f1']:.3f} "
                f"(TP {a['tp']}, FP {a['fp']}, FN {a['fn']}).\n")
    if r.get("other_profiles"):
        warm += ("\nThe same mapping at the other profiles (each its own per-session target): " + "; ".join(
            f"{prof} precision {o['precision']:.3f}, recall {o['recall']:.3f}, F1 {o['f1']:.3f} "
            f"(TP {o['tp']}, FP {o['fp']})" for prof, o in _ordered(r["other_profiles"], _PROFILE_ORDER))
            + ".\n")
    if r.get("novelty"):
        nov = r["novelty"]
        warm += ("\nHow novel the sessions are (`detectors.evaluate.logs.hdfs_novelty`): " + "; ".join(
            f"{v['never_seen']} of the {v['sessions']} {kind} sessions hold a key transition no training "
            f"session holds, {v['held_by_at_most_2']} one that at most 2 hold" for kind, v in nov.items())
            + ".\n")
    if r.get("budget_ceilings"):
        profiles = [k for k in r["budget_ceilings"][0] if k in _PROFILE_ORDER]
        warm += ("\nCeilings within each profile's false-positive budget (the threshold chosen on the labels "
                 "so that at most target x 1,000 of the 1,000 normal sessions are flagged; bounds for a "
                 "per-session decision, not detectors; `detectors.evaluate.logs.hdfs_budget_ceilings`), "
                 "F1 (recall):\n\n| score | " + " | ".join(
                     f"{prof}: at most {r['budget_ceilings'][0][prof]['budget']} FP" for prof in profiles)
                 + " | normal sessions flagged to reach F1 0.9 |\n|---|" + "---|" * (len(profiles) + 1) + "\n"
                 + "".join(f"| {c['score']} | " + " | ".join(
                     f"{c[prof]['f1']:.3f} ({c[prof]['recall']:.3f})" for prof in profiles)
                     + f" | {_fp_for_f1(c)} |\n" for c in r["budget_ceilings"]))
    if r.get("ceilings"):
        warm += ("\nCeilings of the bar (loghub's ground-truth templates given, the threshold k chosen on "
                 "the "
                 "labels: bounds for novelty, not detectors; `detectors.evaluate.logs.bgl_ceilings`):\n\n"
                 "| rule | best k | precision | recall | F1 |\n|---|---|---|---|---|\n"
                 + "".join(f"| {c['rule']} | {'-' if c['k'] is None else c['k']} | {c['precision']:.3f} | "
                           f"{c['recall']:.3f} | {c['f1']:.3f} |\n" for c in r["ceilings"]))
    return "\n".join([f"## {title}", "", f"Command: `{r['_command']}` (profile {r['profile']}; {extra}).", "",
                      "| precision | recall | F1 | TP | FP | FN | TN |", "|---|---|---|---|---|---|---|",
                      f"| {r['precision']:.3f} | {r['recall']:.3f} | **{r['f1']:.3f}** | {r['tp']} | "
                      f"{r['fp']} | "
                      f"{r['fn']} | {r['tn']} |", warm, f"![{key}](quality/{key}.png)", ""])


def _nezha(r: dict[str, Any]) -> str:
    if "pending" in r:
        return f"## Nezha OnlineBoutique\n\nPending: {r['pending']}.\n"
    out = ["## Nezha OnlineBoutique (faulty service's spans)", "", f"Command: `{r['_command']}`.", "",
           "| fault | spans (before) | cbad windows before / fault | cbad rate before -> fault "
           "| cbad first alarm (s) | numeric rate before -> fault | numeric first alarm (s) |",
           "|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        c, n = row["cbad"], row["numeric"]
        out.append(f"| {row['fault']} | {row['spans']} ({row['spans_before']}) | {c['windows_before']} / "
                   f"{c['windows_fault']} | {_pct(c['rate_before'])} -> {_pct(c['rate_fault'])} | "
                   f"{_f(c['first_alarm_s'], 1)} | {_pct(n['rate_before'])} -> {_pct(n['rate_fault'])} | "
                   f"{_f(n['first_alarm_s'], 1)} |")
    out += ["", "![Nezha](quality/nezha.png)", ""]
    return "\n".join(out)


def _stationary(r: dict[str, Any]) -> str:
    out = ["## Stationary synthetic streams: false alarms per window", "", f"Command: `{r['_command']}`.", "",
           "| signal | profile | events | windows | alarms | drifts | measured rate | target "
           "| ratio (95 % CI) | within +-50 % | CPU s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in r["rows"]:
        ci = row["ratio_ci95"]
        out.append(f"| {row['signal']} | {row['profile']} | {row['events']} | {row['windows']} | "
                   f"{row['alarms']} | "
                   f"{row['drifts']} | {row['rate']:.2e} | {row['target']:.0e} | {_f(row['ratio'], 2)} "
                   f"({_f(ci[0], 2) if ci else '-'} to {_f(ci[1], 2) if ci else '-'}) | "
                   f"{_verdict(row['within_50pct'])} | {row['cpu_s']:.1f} |")
    out += ["", "![stationary](quality/stationary.png)", ""]
    return "\n".join(out)
