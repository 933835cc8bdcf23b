"""What one /metrics scrape costs the gateway, with detection's series present: a gateway child process
takes ``--warm-requests`` never-repeated requests of ``bench/traffic.py`` (so its streams' series exist),
idles, then is scraped ``--scrapes`` times; printed: the gateway's own CPU per scrape, and its idle CPU per
second for comparison. Benchmarks that poll /metrics while they measure pay this inside their figures.

    python bench/bench_scrape_cost.py [--warm-requests 40] [--scrapes 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import CountingDownstream, GatewayProcess, closed_loop
from traffic import TrafficGenerator


async def run(args: argparse.Namespace) -> None:
    downstream = CountingDownstream()
    await downstream.start()
    gateway = GatewayProcess(downstream.port, True)
    try:
        await gateway.start()
        await closed_loop(gateway.endpoint, "traces", TrafficGenerator(seed=1).requests("traces",
                          args.warm_requests, 512), 8)
        await asyncio.sleep(3)  # detection catches up
        cpu0, t0 = gateway.own_cpu_seconds(), time.monotonic()
        await asyncio.sleep(3)
        idle = (gateway.own_cpu_seconds() - cpu0) / (time.monotonic() - t0)
        cpu0 = gateway.own_cpu_seconds()
        for _ in range(args.scrapes):
            await gateway.metric("driftlock_detector_events_total", {"stream_type": "traces"})
        per_scrape = (gateway.own_cpu_seconds() - cpu0) / args.scrapes
        print(f"one /metrics scrape: {per_scrape * 1e3:.2f} ms of the gateway's CPU "
              f"(idle: {idle * 1e3:.1f} ms CPU per second)")
    finally:
        gateway.stop()
        await downstream.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warm-requests", type=int, default=40)
    parser.add_argument("--scrapes", type=int, default=100)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
