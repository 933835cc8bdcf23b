"""What waiting for a request's stream outcomes costs the event loop: each job awaited through its own
asyncio future (one cross-thread wake-up per stream, as the stage did before 2026-12-05) against the
stage's ``_all_done`` (the jobs count down, the last one wakes the loop once), alternately.

``--requests`` requests of ``--streams`` jobs each go to a 2-thread pool (the shard threads' stand-in: the
jobs do nothing, so the figure is the hand-off alone); printed: this process's CPU per request.

    python bench/bench_outcome_wakeups.py [--requests 2000] [--streams 48] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from otlp_gateway.detection.stage import _all_done


def _job() -> int:
    return 1


async def each_awaited(jobs: list[Future[int]]) -> None:
    for job in jobs:
        await asyncio.wrap_future(job)


async def all_done(jobs: list[Future[int]]) -> None:
    await _all_done(jobs)
    for job in jobs:
        job.result()


async def run(args: argparse.Namespace) -> None:
    pool = ThreadPoolExecutor(2)
    for _ in range(args.rounds):
        for wait in (each_awaited, all_done):
            started = time.process_time()
            for _ in range(args.requests):
                await wait([pool.submit(_job) for _ in range(args.streams)])
            per_request = (time.process_time() - started) / args.requests * 1e6
            print(f"{wait.__name__:>13}: {per_request:7.0f} us CPU per request of {args.streams} streams")
    pool.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--streams", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
