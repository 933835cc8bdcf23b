"""Run the incident scenarios through real gateways and print the table.

    python bench/scenarios/run.py                      # every scenario, full length (about 20 min)
    python bench/scenarios/run.py --only latency_x5 --only client_restart
    python bench/scenarios/run.py --write-docs         # also rewrite the section in docs/quality.md
    python bench/scenarios/run.py --quick              # short phases (a smoke run; not for the docs)
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.scenarios import report
from bench.scenarios.catalog import catalog, with_phases
from bench.scenarios.runner import Run, run_scenario

REPO = Path(__file__).resolve().parents[2]
QUICK = (300, 300, 300)
"""--quick: 5 min warm-up, 5 min fault, 5 min after (controls: 15 min)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", action="append", default=[], metavar="NAME",
                        help="run only these scenarios")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="short phases, for a smoke run")
    parser.add_argument("--write-docs", action="store_true", help="write the section into docs/quality.md")
    parser.add_argument("--notes", default="", help="text added under the tables (with --write-docs)")
    args = parser.parse_args(argv)

    scenarios = catalog()
    names = [s.name for s in scenarios]
    unknown = [n for n in args.only if n not in names]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; known: {', '.join(names)}")
    if args.only:
        scenarios = [s for s in scenarios if s.name in args.only]
    if args.quick:
        scenarios = [with_phases(s, *QUICK) for s in scenarios]
    if args.write_docs and args.quick:
        parser.error("--write-docs takes full-length runs only")

    started = time.monotonic()
    runs: list[Run] = []
    for scenario in scenarios:
        run = run_scenario(scenario, seed=args.seed)
        runs.append(run)
        print(f"{scenario.name}: {run.events} events, {run.wall_s:.0f} s, {len(run.incidents)} incidents",
              flush=True)
    print()
    print(report.terminal(runs))
    if args.write_docs:
        command = "python bench/scenarios/run.py --write-docs" + "".join(f" --only {n}" for n in args.only)
        when = (f"run {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, seed {args.seed}, "
                f"{time.monotonic() - started:.0f} s wall on a shared 2-core machine")
        report.write_section(REPO / "docs" / "quality.md",
                             report.section(runs, command=command, when=when, profile=runs[0].profile,
                                            notes=args.notes))
        print("\nwrote the Scenarios section of docs/quality.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
