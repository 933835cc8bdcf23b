"""``python -m detectors.evaluate {nab,hdfs,bgl,nezha,stationary,all} [--profile P] [--out DIR] ...``"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from detectors.evaluate import _paths, report

DATASETS = ("nab", "hdfs", "bgl", "nezha", "stationary")


def _cbad_available() -> bool:
    from detectors import registry

    return "cbad" in registry.available()


def run(which: str, args: argparse.Namespace) -> dict[str, Any]:
    progress = not args.quiet
    if which == "nab":
        from detectors.evaluate import nab

        profiles = (args.profile,) if args.profile else ("sensitive", "balanced", "strict")
        runs = {}
        for i, prof in enumerate(profiles):
            out = None
            if args.out:
                out = Path(args.out) / prof if len(profiles) > 1 else Path(args.out)
            runs[prof] = nab.evaluate(prof, out, args.threshold, args.optimize, progress,
                                      with_baseline=i == 0)
        return {"runs": runs, "zscore_baseline": runs[profiles[0]].get("zscore_baseline")}
    if which == "stationary":
        from detectors.evaluate import stationary

        signals: tuple[str, ...] = stationary.SIGNALS if _cbad_available() else stationary.NUMERIC_SIGNALS
        profiles = (args.profile,) if args.profile else ("sensitive", "balanced", "strict")
        budget: dict[str, int] = {}
        if args.byte_events:
            budget.update(logs=args.byte_events, spans=args.byte_events)
        if args.numeric_events:
            budget.update(metrics=args.numeric_events, counts=args.numeric_events)
        if args.signal:
            signals = tuple(s for s in signals if s in args.signal)
        return {"rows": stationary.evaluate(signals, profiles, budget or None, progress,
                                            tuple(args.rate or (10.0,)), args.seed)}
    if not _cbad_available():
        return {"pending": "the cbad detector is not registered"}
    if which == "hdfs":
        from detectors.evaluate import logs

        return logs.hdfs(args.profile or "sensitive", progress)
    if which == "bgl":
        from detectors.evaluate import logs

        return logs.bgl(args.profile or "sensitive", progress)
    if which == "nezha":
        from detectors.evaluate import nezha

        return {"rows": nezha.evaluate(progress)}
    raise ValueError(which)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m detectors.evaluate", description=__doc__)
    ap.add_argument("dataset", choices=(*DATASETS, "all"))
    ap.add_argument("--profile", choices=("sensitive", "balanced", "strict"), default=None,
                    help="detector profile (default: sensitive; "
                         "stationary: all three)")
    ap.add_argument("--out", help="nab: write NAB-format result files (DIR/<category>/<file>.csv) here; "
                                  "DIR/<profile>/... when several profiles run")
    ap.add_argument("--threshold", type=float, default=0.5, help="nab: decision threshold on anomaly_score")
    ap.add_argument("--optimize", action="store_true", help="nab: also report the corpus-optimal threshold")
    ap.add_argument("--byte-events", type=int, default=None,
                    help="stationary: events per log/span stream (default: enough for ~20 expected window "
                         "alarms, capped at 250,000)")
    ap.add_argument("--numeric-events", type=int, default=None,
                    help="stationary: events per metric/count stream (at least what the window target needs)")
    ap.add_argument("--rate", type=float, action="append",
                    help="stationary: event rate (events/s) of the streams' times; repeatable (default 10)")
    ap.add_argument("--signal", action="append", choices=("metrics", "counts", "logs", "spans"),
                    help="stationary: only these signals (repeatable)")
    ap.add_argument("--seed", type=int, default=7,
                    help="stationary: seed of the generated streams (another seed: a held-out check)")
    ap.add_argument("--write-docs", action="store_true",
                    help="rewrite the tracked docs/quality.md, its plots and results.json "
                         "(default: only print)")
    ap.add_argument("--quiet", action="store_true", help="no progress lines")
    args = ap.parse_args(argv)
    todo = DATASETS if args.dataset == "all" else (args.dataset,)
    if args.dataset == "all":
        args.optimize = True
    results: dict[str, Any] = {}
    for which in todo:
        t0 = time.monotonic()
        results[which] = run(which, args)
        results[which]["_seconds"] = time.monotonic() - t0
        print(report.summary(which, results[which]))
        sys.stdout.flush()
    if args.write_docs:
        path = report.write_docs(results, _paths.docs_dir(), " ".join(["python -m detectors.evaluate",
                                                                        *(argv or sys.argv[1:])]))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
