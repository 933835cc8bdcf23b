"""The gateway's own CPU per item with detection on, every event scored, several rounds in one gateway.

``bench_forwarding.py`` measures one maximum-load phase per gateway and waits until scored + dropped events
reach their target; when its warm-up overflows the detection queue (``queue_max_bytes``) the measured
phase ends before detection has scored all of it, and the CPU per item it prints is then too low. Here
the queue bounds are raised so that nothing is dropped, the phase waits for every one of its own events
to be scored (the scored counter's delta), and ``--rounds`` phases of new requests run in the same
gateway after one warm-up: per round, the gateway's own process and its child processes (the detector
processes with ``--detector-processes``), per item, and the rate at which the round's items were scored.
``--cpus 0`` pins the gateway to one core (``taskset``; its child processes inherit the pin): run with and
without it for the two-core ratio. Each round also prints the cores kept busy by the gateway (its processes'
CPU over the round's wall time) and by this bench (its client, the downstream and the polling share the
machine: on 2 cores, what they take is not the gateway's).

    python bench/bench_gateway_cpu.py [--signal traces|logs] [--detector-processes] [--requests 170]
                                      [--rounds 3] [--inflight 16] [--cpus 0] [--workers N]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import ITEM, CountingDownstream, GatewayProcess, closed_loop, load_average
from traffic import TrafficGenerator

ITEMS = 512


async def scored_events(gateway: GatewayProcess, signal: str) -> tuple[float, float]:
    labels = {"stream_type": signal}
    scored, dropped = await gateway.metrics([("driftlock_detector_events_total", labels),
                                             ("driftlock_detector_dropped_events_total", labels)])
    return scored, dropped


async def wait_scored(gateway: GatewayProcess, signal: str, target: float, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        scored, dropped = await scored_events(gateway, signal)
        if scored + dropped >= target:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"detection did not score {target} events in {timeout} s")


async def run(args: argparse.Namespace) -> None:
    signal = args.signal
    gen = TrafficGenerator(seed=args.seed)
    downstream = CountingDownstream()
    await downstream.start()
    detection: dict[str, object] = {"max_live_streams": 1000, "queue_max_bytes": 1 << 32,
                                    "queue_max_events": 10_000_000}
    if args.detector_processes:
        detection["detector_processes"] = True
    if args.workers is not None:
        detection["workers"] = args.workers
    gateway = GatewayProcess(downstream.port, True, overrides={"detection": detection}, cpus=args.cpus)
    mode = "detector processes" if args.detector_processes else "in-process"
    if args.cpus:
        mode += f", pinned to cpus {args.cpus}"
    own_list: list[float] = []
    rates: list[float] = []
    gateway_cores: list[float] = []
    bench_cores: list[float] = []
    try:
        await gateway.start()
        warm = max(args.warm_requests, 2 * math.ceil(len(gen.services) / gen.resources_per_request))
        sent = 0
        while sent < warm:
            part = gen.requests(signal, min(50, warm - sent), ITEMS)
            await closed_loop(gateway.endpoint, signal, part, args.inflight)
            sent += len(part)
        await downstream.wait_for(warm, 600)
        await wait_scored(gateway, signal, warm * ITEMS)
        delivered = downstream.requests
        for _ in range(args.rounds):
            payloads = gen.requests(signal, args.requests, ITEMS)
            scored0, dropped0 = await scored_events(gateway, signal)
            cpu0, own0 = gateway.cpu_seconds(), gateway.own_cpu_seconds()
            bench0 = time.process_time()
            t0 = time.monotonic()
            result = await closed_loop(gateway.endpoint, signal, payloads, args.inflight)
            delivered += len(payloads)
            await downstream.wait_for(delivered, 300)
            await wait_scored(gateway, signal, scored0 + dropped0 + len(payloads) * ITEMS)
            elapsed = time.monotonic() - t0
            cpu, own = gateway.cpu_seconds() - cpu0, gateway.own_cpu_seconds() - own0
            bench = time.process_time() - bench0
            scored, dropped = await scored_events(gateway, signal)
            items = len(payloads) * ITEMS
            own_list.append(own / items)
            rates.append(items / elapsed)
            gateway_cores.append(cpu / elapsed)
            bench_cores.append(bench / elapsed)
            rate = items / elapsed / 1e3
            print(f"{signal} {mode}: {items} {ITEM[signal]}s in {elapsed:.1f} s ({rate:.1f} k/s, "
                  f"scored {int(scored - scored0)}, dropped {int(dropped - dropped0)}, retries "
                  f"{result.refused}); gateway's own process {own / items * 1e6:6.2f} us/{ITEM[signal]}, "
                  f"child processes {(cpu - own) / items * 1e6:6.2f} us; cores busy: the gateway "
                  f"{cpu / elapsed:.2f}, this bench (client, downstream, polling) {bench / elapsed:.2f}; "
                  f"{load_average()}", flush=True)
    finally:
        gateway.stop()
        await downstream.stop()
    print(f"{signal} {mode}: median own {statistics.median(own_list) * 1e6:.2f} us/{ITEM[signal]}, median "
          f"rate (every event scored) {statistics.median(rates) / 1e3:.1f} k/s over {len(own_list)} rounds; "
          f"cores busy: the gateway {statistics.median(gateway_cores):.2f}, this bench "
          f"{statistics.median(bench_cores):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signal", choices=["traces", "logs"], default="traces")
    parser.add_argument("--detector-processes", action="store_true")
    parser.add_argument("--requests", type=int, default=170)
    parser.add_argument("--warm-requests", type=int, default=240)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, help="detection.workers (shards; default: the config's)")
    parser.add_argument("--cpus", help="pin the gateway (and its child processes) with taskset -c, e.g. 0")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
