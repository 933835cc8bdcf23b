"""Forwarding throughput of the gateway against the protobuf floor, measured in one run.

(a) floor: in-process upb parse + serialize of the same 512-span requests (thread CPU time);
(b) a client sending those requests with 16 in flight over gRPC through a gateway child process
    (forwarding only, persistent spool on) to a recording downstream in this process.
Prints spans/s delivered, gateway CPU seconds per span, the ratio (b)/(a) per span and peak RSS.

    python bench/bench_forwarding.py [--seconds 15] [--inflight 16] [--detection]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import psutil
import yaml
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from otlp_load import trace_request

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
SPANS_PER_REQUEST = 512


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def floor_cpu_per_span(requests: list[bytes], rounds: int = 20) -> float:
    start = time.thread_time()
    for _ in range(rounds):
        for raw in requests:
            ExportTraceServiceRequest.FromString(raw).SerializeToString()
    return (time.thread_time() - start) / (rounds * len(requests) * SPANS_PER_REQUEST)


class CountingDownstream:
    """A real gRPC trace service that counts what it receives (without parsing: it is not measured)."""

    def __init__(self) -> None:
        self.requests = 0
        self.bytes = 0
        self.server = grpc.aio.server(options=[("grpc.max_receive_message_length", 64 << 20)])
        handler = grpc.unary_unary_rpc_method_handler(
            self._export, request_deserializer=None,
            response_serializer=lambda _: ExportTraceServiceResponse().SerializeToString())
        self.server.add_generic_rpc_handlers(
            [grpc.method_handlers_generic_handler("opentelemetry.proto.collector.trace.v1.TraceService",
                                                  {"Export": handler})])
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    async def _export(self, request: bytes, context: grpc.aio.ServicerContext) -> None:
        self.requests += 1
        self.bytes += len(request)


async def drive(endpoint: str, payloads: list[bytes], seconds: float, inflight: int) -> int:
    sent = 0
    stop_at = time.monotonic() + seconds
    options = [("grpc.max_send_message_length", 64 << 20)]
    async with grpc.aio.insecure_channel(endpoint, options=options) as ch:
        call = ch.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)

        async def worker(k: int) -> None:
            nonlocal sent
            i = k
            while time.monotonic() < stop_at:
                try:
                    await call(payloads[i % len(payloads)], timeout=30)
                    sent += 1
                except grpc.aio.AioRpcError as exc:
                    if exc.code() != grpc.StatusCode.UNAVAILABLE:
                        raise
                    await asyncio.sleep(0.05)
                i += inflight

        await asyncio.gather(*(worker(k) for k in range(inflight)))
    return sent


def peak_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


async def main_async(args: argparse.Namespace) -> None:
    payloads = [trace_request(SPANS_PER_REQUEST, seed=s) for s in range(32)]
    floor = floor_cpu_per_span(payloads)

    downstream = CountingDownstream()
    await downstream.server.start()
    workdir = Path(tempfile.mkdtemp(prefix="bench-fwd-"))
    grpc_port = free_port()
    config = {
        "data_dir": str(workdir / "data"),
        "receiver": {"grpc_listen": f"127.0.0.1:{grpc_port}", "http_listen": f"127.0.0.1:{free_port()}",
                     "admission": {"max_inflight_items": 1_000_000}, "rate_limit": {"enabled": False}},
        "api": {"listen": f"127.0.0.1:{free_port()}"},
        "exporter": {"endpoint": f"grpc://127.0.0.1:{downstream.port}", "compression": "none",
                     "queue": {"persistent": not args.no_spool}},
        "detection": {"enabled": args.detection},
        "log_level": "warning",
    }
    (workdir / "gateway.yaml").write_text(yaml.safe_dump(config))
    with open(workdir / "gateway.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "otlp_gateway", "serve", "--config",
                                 str(workdir / "gateway.yaml")], stderr=log)
    gateway = psutil.Process(proc.pid)
    try:
        import httpx

        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"http://{config['api']['listen']}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"gateway did not become ready; log in {workdir / 'gateway.log'}")
            await asyncio.sleep(0.2)
        warm_sent = await drive(f"127.0.0.1:{grpc_port}", payloads, 2.0, args.inflight)  # warm-up
        while downstream.requests < warm_sent and proc.poll() is None:  # let the warm-up drain first
            await asyncio.sleep(0.05)
        base_delivered = downstream.requests
        cpu0 = sum(gateway.cpu_times()[:2])
        t0 = time.monotonic()
        sent = await drive(f"127.0.0.1:{grpc_port}", payloads, args.seconds, args.inflight)
        while downstream.requests - base_delivered < sent and time.monotonic() - t0 < args.seconds + 30:
            await asyncio.sleep(0.05)
        elapsed = time.monotonic() - t0
        cpu = sum(gateway.cpu_times()[:2]) - cpu0
        delivered = downstream.requests - base_delivered
        rss = peak_rss_bytes(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        await downstream.server.stop(None)

    spans = delivered * SPANS_PER_REQUEST
    per_span = cpu / max(spans, 1)
    mode = "forwarding + detection" if args.detection else "forwarding only"
    print(f"mode: {mode}; persistent spool: {not args.no_spool}; {args.inflight} in flight; "
          f"{SPANS_PER_REQUEST} spans/request; {os.cpu_count()} cores")
    print(f"(a) floor, upb parse+serialize: {floor * 1e6:.3f} us CPU/span "
          f"({1 / floor / 1e3:.0f} k spans/s/core)")
    print(f"(b) delivered downstream: {delivered} requests = {spans / elapsed / 1e3:.1f} k spans/s "
          f"(sent {sent}, {elapsed:.1f} s)")
    print(f"    gateway CPU: {per_span * 1e6:.3f} us/span ({cpu:.2f} s over the run)")
    print(f"    ratio (b)/(a) CPU per span: {per_span / floor:.2f}")
    print(f"    gateway peak RSS: {rss / 2**20:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--inflight", type=int, default=16)
    parser.add_argument("--detection", action="store_true", help="run with detection on (end-to-end figure)")
    parser.add_argument("--no-spool", action="store_true", help="in-memory queue only")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
