"""One figure per dataset (scores against labels), written as PNG under docs/quality/."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

NAB_EXAMPLES = ("realKnownCause/nyc_taxi.csv", "realKnownCause/machine_temperature_system_failure.csv",
                "realAWSCloudwatch/ec2_cpu_utilization_825cc2.csv",
                "artificialWithAnomaly/art_daily_jumpsdown.csv",
                "realTweets/Twitter_volume_AAPL.csv", "realTraffic/speed_7578.csv")


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt



def _save(plt: Any, fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path

def _shade(ax: Any, labels: np.ndarray, color: str = "tab:red") -> None:
    idx = np.flatnonzero(np.diff(np.concatenate([[0], labels.astype(np.int8), [0]])))
    for a, b in zip(idx[::2], idx[1::2], strict=True):
        ax.axvspan(a, b - 1, color=color, alpha=0.15, lw=0)


def nab(path: Path, result: dict[str, Any]) -> Path:
    from detectors.evaluate.nab import load_series

    plt = _plt()
    rows = result["_rows"]
    files = [f for f in NAB_EXAMPLES if f in rows["scores"]] or sorted(rows["scores"])[:6]
    fig, axes = plt.subplots(len(files), 1, figsize=(11, 2.1 * len(files)), squeeze=False)
    for ax, rel in zip(axes[:, 0], files, strict=True):
        series = load_series(rel)
        ax.plot(series.values, lw=0.6, color="tab:blue")
        _shade(ax, rows["labels"][rel])
        tw = ax.twinx()
        s = np.asarray(rows["scores"][rel])
        tw.plot(s, lw=0.5, color="tab:gray", alpha=0.7)
        hit = np.flatnonzero(s >= result["threshold"])
        tw.scatter(hit, s[hit], s=14, color="tab:red", zorder=3)
        tw.set_ylim(0, 1.05)
        ax.set_title(rel, fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
        tw.tick_params(labelsize=7)
    fig.suptitle("NAB: value (blue), label windows (red band), anomaly_score (grey), detections (red dots)",
                 fontsize=9)
    return _save(plt, fig, path)


def hdfs(path: Path, result: dict[str, Any]) -> Path:
    plt = _plt()
    rows = result["_rows"]
    surprise = np.array([-math.log10(max(p, 1e-300)) for p in rows["p_values"]])
    labels = np.array(rows["labels"])
    fig, ax = plt.subplots(figsize=(8, 3))
    bins = np.linspace(0, max(6.0, float(surprise.max()) + 0.5), 40)
    ax.hist(surprise[~labels], bins=bins, alpha=0.6, label="normal sessions")
    ax.hist(surprise[labels], bins=bins, alpha=0.6, label="anomalous sessions")
    ax.set_xlabel("-log10 p-value of the session's window")
    ax.set_yscale("log")
    ax.legend(fontsize=8)
    ax.set_title("HDFS robust_log_valid: calibrated surprise by label", fontsize=9)
    return _save(plt, fig, path)


def bgl(path: Path, result: dict[str, Any]) -> Path:
    plt = _plt()
    rows = result["_rows"]
    labels = np.array(rows["labels"])
    fig, ax = plt.subplots(figsize=(11, 3))
    _shade(ax, labels)
    ax.plot(rows["excess_bits"], lw=0.5)
    ax.set_xlabel("line")
    ax.set_ylabel("max excess bits")
    ax.set_title("BGL_2k: per-line excess bits (alert lines shaded)", fontsize=9)
    return _save(plt, fig, path)


def _pct_or_zero(rate: float) -> float:
    return 0.0 if rate is None or math.isnan(rate) else 100.0 * rate


def nezha(path: Path, rows: list[dict[str, Any]]) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(11, 3.2))
    x = np.arange(len(rows))
    for i, (det, color) in enumerate((("cbad", "tab:blue"), ("numeric", "tab:orange"))):
        before = [_pct_or_zero(r[det]["rate_before"]) for r in rows]
        fault = [_pct_or_zero(r[det]["rate_fault"]) for r in rows]
        ax.bar(x + (i - 0.5) * 0.4 - 0.1, before, 0.18, color=color, alpha=0.4, label=f"{det} before")
        ax.bar(x + (i - 0.5) * 0.4 + 0.1, fault, 0.18, color=color, label=f"{det} fault")
    ax.set_xticks(x, [r["fault"][11:] for r in rows], fontsize=6, rotation=15)
    ax.set_ylabel("% windows anomalous")
    ax.legend(fontsize=7, ncol=4)
    ax.set_title("Nezha: faulty service's span windows flagged, minute before vs fault minutes", fontsize=9)
    return _save(plt, fig, path)


def stationary(path: Path, rows: list[dict[str, Any]]) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3))
    labels = [f"{r['signal']}\n{r['profile']}" for r in rows]
    ratio = [r["ratio"] or 0.0 for r in rows]
    lo = [max(0.0, (r["ratio"] or 0.0) - r["ratio_ci95"][0]) if r["ratio_ci95"] else 0 for r in rows]
    hi = [max(0.0, r["ratio_ci95"][1] - (r["ratio"] or 0.0)) if r["ratio_ci95"] else 0 for r in rows]
    ax.bar(np.arange(len(rows)), ratio, yerr=[lo, hi], capsize=3)
    ax.axhspan(0.5, 1.5, color="tab:green", alpha=0.12)
    ax.axhline(1.0, color="tab:green", lw=0.8)
    ax.set_xticks(np.arange(len(rows)), labels, fontsize=7)
    ax.set_ylabel("measured / target false-alarm rate")
    ax.set_title("Stationary streams: false alarms per window vs profile target (band = +-50 %)", fontsize=9)
    return _save(plt, fig, path)
