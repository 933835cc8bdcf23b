"""Overload: a real gateway driven at several times its measured maximum load; its peak resident memory
against the memory limiter's configured limit (issue 14, item 4).

The gateway runs as a child process configured like the standalone pod in k8s/base (detection on at the
default profile, ``max_live_streams`` 350, an export queue of 128 MiB in memory with the spool on disk,
64 MiB of admitted requests) with ``receiver.memory_limiter`` at ``--limit-mib`` (default 819 MiB: the
default 80 % of the pod's 1 GiB limit) and its default spike (20 %: refusing from 655 MiB). It forwards
over gRPC to a counting downstream in this process. Traffic is ``bench/traffic.py``'s never-repeated
spans (512 per request).

1. maximum load: a closed loop (``--inflight`` requests at a time) over ``--warm-requests`` requests;
   the rate it sustains is the gateway's maximum here.
2. overload: an open loop at ``--overload`` times that rate for ``--seconds`` (requests sent on schedule
   whatever happened to earlier ones, each with its own deadline; a refused request is not retried, so
   the offered load stays at the multiple). The gateway's RSS is sampled every 20 ms; its peak (and the
   kernel's high-water mark, VmHWM) is printed against the soft and hard limits, with the answers by code,
   the limiter's refusal counter, and whether every accepted request reached the downstream.

Pass ``--limit-mib 0`` to run the same overload with the limiter off (what the limit protects against).

    python bench/bench_overload.py [--limit-mib 819] [--overload 4] [--seconds 20] [--inflight 8]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import (
    GRPC_OPTIONS,
    METHODS,
    CountingDownstream,
    GatewayProcess,
    closed_loop,
    load_average,
    request_key,
)
from traffic import TrafficGenerator

MiB = 1024 * 1024
ITEMS = 512
POD = {  # k8s/base/gateway.yaml's memory-relevant settings
    "receiver": {"admission": {"max_inflight_bytes": 64 * MiB}},
    "exporter": {"queue": {"capacity_bytes": 128 * MiB}},
    "detection": {"workers": 2, "max_live_streams": 350},
}


class RssSampler:
    """The gateway's RSS every ``interval`` seconds on a thread: ``peak`` and the samples' count."""

    def __init__(self, gateway: GatewayProcess, interval: float = 0.02):
        self._process = gateway.process
        self._interval = interval
        self._stop = threading.Event()
        self.peak = 0
        self.samples = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            self.samples += 1
            self._stop.wait(self._interval)


async def overload(endpoint: str, payloads: list[bytes], rate: float, deadline: float
                   ) -> tuple[Counter[str], set[bytes], float, dict[str, list[float]]]:
    """Send ``payloads`` at ``rate`` per second, open loop; answers by code, the accepted requests, the
    seconds the sending took (the answers may come later) and each answer's time by code."""
    codes: Counter[str] = Counter()
    accepted: set[bytes] = set()
    waits: dict[str, list[float]] = {}
    async with grpc.aio.insecure_channel(endpoint, options=GRPC_OPTIONS) as channel:
        call = channel.unary_unary(METHODS["traces"], request_serializer=None, response_deserializer=None)

        async def one(payload: bytes) -> None:
            sent = time.monotonic()
            try:
                await call(payload, timeout=deadline)
                code = "OK"
            except grpc.aio.AioRpcError as exc:
                code = exc.code().name
            codes[code] += 1
            waits.setdefault(code, []).append(time.monotonic() - sent)
            if code == "OK":
                accepted.add(request_key(payload))

        start = time.monotonic()
        tasks = []
        for i, payload in enumerate(payloads):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(payload)))
        sending = time.monotonic() - start
        await asyncio.gather(*tasks)
    return codes, accepted, sending, waits


def answer_times(waits: dict[str, list[float]]) -> str:
    """Median / p99 / max seconds to each answer, by code."""
    def quantile(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]
    return "; ".join(f"{code} {quantile(v, 0.5):.2f} / {quantile(v, 0.99):.2f} / {max(v):.2f} s"
                     for code, v in sorted(waits.items()))


async def delivered_in_time(downstream: CountingDownstream, accepted: set[bytes], timeout: float) -> bool:
    """Wait until every accepted request has arrived downstream (by its first trace id)."""
    deadline = time.monotonic() + timeout
    while any(key not in downstream.arrivals for key in accepted):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def run(args: argparse.Namespace) -> int:
    gen = TrafficGenerator(seed=args.seed)
    warm = gen.requests("traces", args.warm_requests, ITEMS)
    downstream = CountingDownstream()
    await downstream.start()
    limiter = ({"limit_mib": args.limit_mib, "check_interval_seconds": args.check_interval}
               if args.limit_mib else {"enabled": False})
    overrides = {**POD, "receiver": {**POD["receiver"], "memory_limiter": limiter}}
    gateway = GatewayProcess(downstream.port, detection=True, overrides=overrides)
    try:
        await gateway.start()
        idle = gateway.rss_bytes()
        result = await closed_loop(gateway.endpoint, "traces", warm, args.inflight)
        max_rate = result.sent / result.seconds
        rate = max_rate * args.overload
        count = int(rate * args.seconds)
        print(f"maximum load: {max_rate:.1f} requests/s = {max_rate * ITEMS / 1e3:.1f} k spans/s "
              f"(closed loop, {args.inflight} in flight, {result.refused} refusals retried); "
              f"{load_average()}")
        print(f"generating {count} never-repeated requests for {args.overload:g}x that load "
              f"({rate:.0f} requests/s for {args.seconds:g} s)...", flush=True)
        payloads = gen.requests("traces", count, ITEMS)
        with RssSampler(gateway) as rss:
            started = time.monotonic()
            codes, accepted, sending, waits = await overload(gateway.endpoint, payloads, rate, args.deadline)
            seconds = time.monotonic() - started
        delivered = await delivered_in_time(downstream, accepted, 120)
        missing = sum(1 for key in accepted if key not in downstream.arrivals)
        hwm = gateway.peak_rss_bytes()
        refused = await gateway.metric("driftlock_memory_limiter_refused_requests_total")
        soft = await gateway.metric("driftlock_memory_limiter_limit_bytes", {"limit": "soft"})
        hard = await gateway.metric("driftlock_memory_limiter_limit_bytes", {"limit": "hard"})
        answers = ", ".join(f"{n} {code}" for code, n in codes.most_common())
        throttled = {reason: await gateway.metric("driftlock_ingest_throttled_requests_total",
                                                  {"transport": "grpc", "reason": reason})
                     for reason in ("admission", "queue_delay", "memory_limiter", "overloaded")}
        print(f"overload: {len(payloads)} requests sent in {sending:.1f} s ({len(payloads) / sending:.0f}/s "
              f"offered), all answered after {seconds:.1f} s ({codes['OK'] / seconds:.1f}/s accepted): "
              f"{answers}; memory limiter refusals counted: {refused:.0f}; {load_average()}")
        print(f"answer time median / p99 / max by code: {answer_times(waits)}; refused with a retry hint, by "
              f"reason: {', '.join(f'{r} {n:.0f}' for r, n in throttled.items() if n)}")
        print(f"gateway RSS: idle {idle / MiB:.0f} MiB; peak under overload {rss.peak / MiB:.0f} MiB "
              f"({rss.samples} samples), VmHWM {hwm / MiB:.0f} MiB")
        if args.limit_mib:
            print(f"limits: soft {soft / MiB:.0f} MiB, hard {hard / MiB:.0f} MiB; peak / hard limit = "
                  f"{rss.peak / hard:.2f} (VmHWM {hwm / hard:.2f})")
        print(f"accepted requests delivered downstream: {len(accepted) - missing} of {len(accepted)}"
              f"{'' if delivered else ' (timed out waiting)'}")
        within = not args.limit_mib or hwm <= hard
        return 0 if missing == 0 and within else 1
    finally:
        gateway.stop()
        await downstream.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit-mib", type=int, default=819, help="0: memory limiter off")
    ap.add_argument("--check-interval", type=float, default=1.0)
    ap.add_argument("--overload", type=float, default=4.0, help="multiple of the measured maximum load")
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--warm-requests", type=int, default=300)
    ap.add_argument("--inflight", type=int, default=8)
    ap.add_argument("--deadline", type=float, default=30.0, help="each overload request's gRPC deadline")
    ap.add_argument("--seed", type=int, default=1)
    sys.exit(asyncio.run(run(ap.parse_args())))


if __name__ == "__main__":
    main()
