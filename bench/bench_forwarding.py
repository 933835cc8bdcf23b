"""The whole gateway, gRPC in -> (detection) -> gRPC out, on never-repeated realistic traffic.

For each signal (spans, log records), in one run:

(a) floor: upb parse + serialize of the very requests sent below, in this process (thread CPU time);
(b) maximum load: a closed-loop client with ``--inflight`` requests in flight sends ``--seconds`` worth of
    new requests through a gateway child process (persistent spool on, ``compression: none`` downstream)
    to a counting gRPC downstream in this process; the gateway's CPU (user + system of its process, every
    thread) per item, until every request was delivered and, with detection, every event scored;
(c) latency: a paced open-loop client at 50 % of (b)'s rate for ``--latency-seconds``; p50/p99 of the
    acknowledgement (what an exporter waits for) and of the delivery downstream (what the data waits),
    both from each request's scheduled send time, and the gateway's CPU per item at that load;
(d) memory: RSS when ready, at the end, the live streams, and (end - ready) / live streams.

Before (b) a warm-up sends every stream traffic (``--streams`` live streams: services x 6 routes or
loggers) so streams are open and the JIT cache is loaded; the warm-up is not measured.

    python bench/bench_forwarding.py [--signal traces|logs|both] [--detection] [--streams 48]
                                     [--seconds 6] [--latency-seconds 8] [--inflight 16] [--cpus 0]
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

from harness import (
    ITEM,
    CountingDownstream,
    GatewayProcess,
    Profiler,
    closed_loop,
    delivery_latencies,
    floor_seconds_per_item,
    load_average,
    ms,
    open_loop,
    percentile,
    us,
)
from traffic import TrafficGenerator

ITEMS = 512
POLL_SECONDS = 0.2
"""How often the measured phase asks whether detection has scored everything (one /metrics scrape)."""


async def wait_scored(gateway: GatewayProcess, signal: str, target: float, timeout: float) -> float:
    """Wait until the gateway has scored (or dropped) ``target`` events of ``signal``; returns scored."""
    deadline = time.monotonic() + timeout
    scored = 0.0
    labels = {"stream_type": signal}
    while time.monotonic() < deadline:
        scored, dropped = await gateway.metrics([("driftlock_detector_events_total", labels),
                                                 ("driftlock_detector_dropped_events_total", labels)])
        if scored + dropped >= target:
            break
        # a scrape costs the gateway 2.6-3.9 ms of CPU (bench_scrape_cost.py): polled every 50 ms (two
        # scrapes each), as before 2026-12-05, it added ~9-13 % of a core to the CPU measured meanwhile
        await asyncio.sleep(POLL_SECONDS)
    return scored


async def run_signal(args: argparse.Namespace, signal: str) -> dict[str, float]:
    gen = TrafficGenerator(seed=args.seed, streams=args.streams)
    streams = gen.span_streams if signal == "traces" else gen.log_streams
    warm_requests = max(args.warm_requests, 2 * math.ceil(len(gen.services) / gen.resources_per_request))

    downstream = CountingDownstream()
    await downstream.start()
    overrides: dict[str, object] = {}
    if args.detection:
        live = args.max_live if args.max_live else max(1000, int(streams * 1.2))
        overrides["detection"] = {"max_live_streams": live}
    if args.decode_workers:
        overrides.setdefault("receiver", {})["decode_workers"] = args.decode_workers  # type: ignore[index]
    if args.detection_workers:
        overrides.setdefault("detection", {})["workers"] = args.detection_workers  # type: ignore[index]
    if args.extract_processes is not None:
        overrides.setdefault("detection", {})["extract_processes"] = args.extract_processes  # type: ignore[index]
    if args.detector_processes:
        overrides.setdefault("detection", {})["detector_processes"] = True  # type: ignore[index]
    gateway = GatewayProcess(downstream.port, args.detection, spool=not args.no_spool, overrides=overrides,
                             cpus=args.cpus)
    out: dict[str, float] = {}
    try:
        await gateway.start()
        rss_ready = gateway.rss_bytes()
        # warm-up: every stream opened (and past its own warm-up, with the default 48 streams), kernels
        # loaded; its rate sizes the measured phase. Sent in parts: the traffic is generated as it goes.
        busy = 0.0  # seconds spent sending (not generating)
        sent_warm = 0
        while sent_warm < warm_requests:
            part = gen.requests(signal, min(50, warm_requests - sent_warm), ITEMS)
            busy += (await closed_loop(gateway.endpoint, signal, part, args.inflight)).seconds
            sent_warm += len(part)
            if gateway.rss_bytes() > args.max_rss_gib * 2**30:
                live = await gateway.metric("driftlock_streams_live")
                per_stream = (gateway.rss_bytes() - rss_ready) / max(live, 1)
                raise SystemExit(f"== {signal}: gateway RSS {gateway.rss_bytes() / 2**30:.1f} GiB > "
                                 f"{args.max_rss_gib} GiB after {sent_warm} warm-up requests with "
                                 f"{int(live)} live streams ({per_stream / 1024:.0f} KiB each over the RSS "
                                 f"when ready); stopped")
        t0 = time.monotonic()
        await downstream.wait_for(warm_requests, 600)
        scored_target = warm_requests * ITEMS
        if args.detection:
            await wait_scored(gateway, signal, scored_target, 600)
        warm_rate = warm_requests / (busy + time.monotonic() - t0)

        count = args.requests or max(32, int(warm_rate * args.seconds * 1.3))
        payloads = gen.requests(signal, count, ITEMS)
        floor = floor_seconds_per_item(signal, payloads[:200], ITEMS)

        # (b) maximum load
        delivered0 = downstream.requests
        profile = f"{args.profile}.{signal}" if args.profile else None
        dropped_metric = ("driftlock_detector_dropped_events_total", {"stream_type": signal})
        dropped0 = await gateway.metric(*dropped_metric) if args.detection else 0.0
        with Profiler(gateway.process.pid, profile):
            cpu0, own0 = gateway.cpu_seconds(), gateway.own_cpu_seconds()
            t0 = time.monotonic()
            sent = await closed_loop(gateway.endpoint, signal, payloads, args.inflight)
            await downstream.wait_for(delivered0 + len(payloads), 300)
            forwarded = time.monotonic() - t0  # every request delivered; detection may still be scoring
            scored = 0.0
            if args.detection:
                scored_target += len(payloads) * ITEMS
                scored = await wait_scored(gateway, signal, scored_target, 300) - (scored_target
                                                                                  - len(payloads) * ITEMS)
            elapsed = time.monotonic() - t0
            cpu, own = gateway.cpu_seconds() - cpu0, gateway.own_cpu_seconds() - own0
        items = len(payloads) * ITEMS
        max_rate = len(payloads) / elapsed
        out.update(floor=floor, cpu=cpu / items, own_cpu=own / items, rate=items / elapsed,
                   refused=sent.refused, scored=scored, items=items, seconds=elapsed,
                   forward_rate=items / forwarded,
                   dropped_b=(await gateway.metric(*dropped_metric) if args.detection else 0.0) - dropped0)

        # (c) latency at half the maximum
        rate = max_rate / 2
        paced = gen.requests(signal, max(20, int(rate * args.latency_seconds)), ITEMS)
        delivered0 = downstream.requests
        cpu0 = gateway.cpu_seconds()
        result = await open_loop(gateway.endpoint, signal, paced, rate)
        await downstream.wait_for(delivered0 + len(paced), 300)
        if args.detection:
            scored_target += len(paced) * ITEMS
            await wait_scored(gateway, signal, scored_target, 300)
        cpu_paced = gateway.cpu_seconds() - cpu0
        deliveries = delivery_latencies(result.sent_at, downstream.arrivals)
        out.update(paced_rate=rate * ITEMS, paced_cpu=cpu_paced / (len(paced) * ITEMS),
                   ack_p50=percentile(result.ack_latencies, 0.5),
                   ack_p99=percentile(result.ack_latencies, 0.99),
                   del_p50=percentile(deliveries, 0.5), del_p99=percentile(deliveries, 0.99),
                   paced_refused=result.refused)

        # (d) memory
        out.update(rss_ready=rss_ready, rss_end=gateway.rss_bytes(), rss_peak=gateway.peak_rss_bytes(),
                   live=await gateway.metric("driftlock_streams_live"),
                   evicted=await gateway.metric("driftlock_streams_evicted_total"),
                   dropped=await gateway.metric("driftlock_detector_dropped_events_total",
                                                {"stream_type": signal}),
                   skipped=await gateway.metric("driftlock_annotation_skipped_total", {"signal": signal}),
                   streams=streams)
    finally:
        gateway.stop()
        await downstream.stop()
    report(args, signal, out)
    if args.profile:
        from profile_summary import summarize

        print("    profile of (b) (the profilers cost CPU too: (b)'s figures are from a run with them):")
        summarize(f"{args.profile}.{signal}", out["items"], out["cpu"] * out["items"])
    return out


def report(args: argparse.Namespace, signal: str, r: dict[str, float]) -> None:
    item = ITEM[signal]
    mode = "forwarding + detection" if args.detection else "forwarding only"
    pinned = f", gateway pinned to cpus {args.cpus}" if args.cpus else ""
    print(f"== {signal}: {mode}; {int(r['streams'])} streams; {ITEMS} {item}s/request; "
          f"{args.inflight} in flight; spool {'off' if args.no_spool else 'on'}{pinned}; {load_average()}")
    print(f"(a) floor upb parse+serialize   {us(r['floor']):>8} us CPU/{item}")
    scored = f", scored {int(r['scored'])}" if args.detection else ""
    print(f"(b) max load: {r['rate'] / 1e3:7.1f} k {item}s/s delivered ({int(r['items'])} in "
          f"{r['seconds']:.1f} s{scored}; client retries {int(r['refused'])})")
    if args.detection:
        print(f"    forwarded {r['forward_rate'] / 1e3:7.1f} k {item}s/s (every request delivered, before "
              f"detection caught up); dropped unscored {int(r['dropped_b'])}")
    print(f"    gateway CPU                  {us(r['cpu']):>8} us/{item} = {r['cpu'] / r['floor']:5.1f}x "
          f"floor ({1 / r['cpu'] / 1e3:.0f} k {item}s per CPU-second)")
    if r["own_cpu"] < r["cpu"] * 0.99:  # child processes (detectors, extraction) did part of the work
        print(f"      of which the gateway's own process {us(r['own_cpu']):>6} us/{item}, its child "
              f"processes {us(r['cpu'] - r['own_cpu'])} us/{item}")
    print(f"(c) at 50% load ({r['paced_rate'] / 1e3:.1f} k {item}s/s, open loop): ack p50 {ms(r['ack_p50'])} "
          f"ms, p99 {ms(r['ack_p99'])} ms; delivered p50 {ms(r['del_p50'])} ms, p99 {ms(r['del_p99'])} ms; "
          f"CPU {us(r['paced_cpu'])} us/{item} = {r['paced_cpu'] / r['floor']:.1f}x floor")
    per_stream = (r["rss_end"] - r["rss_ready"]) / r["live"] if r["live"] else float("nan")
    print(f"(d) RSS ready {r['rss_ready'] / 2**20:.0f} MiB, end {r['rss_end'] / 2**20:.0f} MiB, peak "
          f"{r['rss_peak'] / 2**20:.0f} MiB; live streams {int(r['live'])} (evicted {int(r['evicted'])}); "
          f"(end - ready) / live = {per_stream / 1024:.0f} KiB")
    if args.detection:
        print(f"    events dropped unscored {int(r['dropped'])}; requests forwarded before their decision "
              f"(past the budget, or detection behind) {int(r['skipped'])}")


async def cores_ratio(args: argparse.Namespace, signal: str) -> None:
    """The gateway pinned to one core (``taskset -c 0``) and on every core, alternately, ``--repeat``
    times: the ratio of the maximum loads delivered (wall clock: the machine's other load shows here)."""
    rates: dict[str, list[float]] = {"one core": [], "every core": []}
    scored: dict[str, list[float]] = {"one core": [], "every core": []}
    for _ in range(args.repeat):
        for label, cpus in (("one core", "0"), ("every core", None)):
            args.cpus = cpus
            run = await run_signal(args, signal)
            rates[label].append(run["rate"])
            scored[label].append(run["scored"] / run["seconds"])
    one, every = (statistics.median(rates[k]) for k in ("one core", "every core"))
    shown = {k: ", ".join(f"{r / 1e3:.1f}" for r in v) for k, v in rates.items()}
    print(f"== {signal}: maximum load on one core {shown['one core']} k/s, on every core "
          f"{shown['every core']} k/s: ratio of the medians {every / one:.2f}; {load_average()}")
    if args.detection:  # events detection dropped unscored count as done above: the scored rate does not
        one, every = (statistics.median(scored[k]) for k in ("one core", "every core"))
        shown = {k: ", ".join(f"{r / 1e3:.1f}" for r in v) for k, v in scored.items()}
        print(f"== {signal}: scored on one core {shown['one core']} k/s, on every core {shown['every core']} "
              f"k/s: ratio of the medians {every / one:.2f}")


async def starvation(args: argparse.Namespace, signal: str) -> None:
    """Forwarding only, then forwarding + detection, on new requests of the same generator: how much of
    forwarding's maximum load the gateway still forwards with detection on (wall clock, both measured in
    this run), and how much of it detection scored."""
    args.detection = False
    plain = await run_signal(args, signal)
    args.detection, given = True, args.requests
    args.requests = given or min(int(plain["items"] / ITEMS), 1200)  # as many, within reason
    detecting = await run_signal(args, signal)
    args.requests = given
    share = detecting["scored"] / detecting["items"]
    with_detection, alone = detecting["forward_rate"], plain["forward_rate"]
    print(f"== {signal}: forwarded with detection {with_detection / 1e3:.1f} k/s / forwarding only "
          f"{alone / 1e3:.1f} k/s = {with_detection / alone:.2f}; "
          f"detection scored {share:.0%} of (b) ({int(detecting['dropped_b'])} dropped unscored); "
          f"{load_average()}")


async def main_async(args: argparse.Namespace) -> None:
    signals = ("traces", "logs") if args.signal == "both" else (args.signal,)
    for signal in signals:
        if args.starvation:
            await starvation(args, signal)
        elif args.cores_ratio:
            await cores_ratio(args, signal)
        else:
            await run_signal(args, signal)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--signal", choices=["traces", "logs", "both"], default="both")
    parser.add_argument("--detection", action="store_true", help="run with detection on")
    parser.add_argument("--streams", type=int, default=None,
                        help="live streams (default: 8 services x 6 = 48)")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of the maximum-load phase")
    parser.add_argument("--latency-seconds", type=float, default=8.0)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--warm-requests", type=int, default=240,
                        help="at least (and two passes over every stream)")
    parser.add_argument("--max-live", type=int,
                        help="detection.max_live_streams (default: 1.2 x the streams, at least 1000)")
    parser.add_argument("--max-rss-gib", type=float, default=12.0,
                        help="stop when the gateway grows beyond this (the machine is shared)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cpus", help="pin the gateway with taskset -c (e.g. 0)")
    parser.add_argument("--cores-ratio", action="store_true",
                        help="run pinned to core 0 and on every core, alternately, and print the ratio")
    parser.add_argument("--repeat", type=int, default=2, help="with --cores-ratio: runs of each")
    parser.add_argument("--requests", type=int,
                        help="requests in (b) (default: --seconds' worth at the warm-up's rate)")
    parser.add_argument("--starvation", action="store_true",
                        help="forwarding only, then with detection: the ratio of the loads forwarded")
    parser.add_argument("--decode-workers", type=int, help="receiver.decode_workers (default: the config's)")
    parser.add_argument("--extract-processes", type=int,
                        help="detection.extract_processes (default: the config's; 0: the stage's thread)")
    parser.add_argument("--detection-workers", type=int, help="detection.workers (default: the config's)")
    parser.add_argument("--detector-processes", action="store_true",
                        help="detection.detector_processes: span and log detectors in one process per shard")
    parser.add_argument("--profile", metavar="PREFIX",
                        help="profile the gateway during (b) (py-spy, perf) to PREFIX.<signal>.*; summarized "
                             "by bench/profile_summary.py")
    parser.add_argument("--no-spool", action="store_true", help="in-memory export queue only")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
