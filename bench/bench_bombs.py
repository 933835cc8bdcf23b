"""Parallel gzip bombs on OTLP/HTTP against a bystander on OTLP/gRPC, through a gateway child process.

K clients each POST a 256 KiB gzip body that inflates to 256 MiB (the gateway stops at its 64 MiB limit:
413) at once, three rounds; meanwhile one small span is exported over gRPC every 20 ms and timed. Prints
the bystander's worst latency before and during each round. Decoding on the event loop would stall every
client for the inflation time of all K bombs together.

    python bench/bench_bombs.py [K=8]
"""

from __future__ import annotations

import gzip
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import GRPC_OPTIONS, GatewayProcess, MiB
from soak_downstream import RecordingDownstream
from soak_traffic import Traffic

from otlp_gateway.otlp.signals import SIGNAL_SPECS


def main(k: int) -> None:
    downstream = RecordingDownstream().start()
    workdir = Path(tempfile.mkdtemp(prefix="bombs-"))
    gateway = GatewayProcess(workdir, downstream.endpoint)
    print(f"gateway ready in {gateway.start():.1f} s")
    bomb = gzip.compress(bytes(16 * MiB), compresslevel=9) * 16
    traffic = Traffic(seed=5)
    channel = grpc.insecure_channel(gateway.grpc, options=GRPC_OPTIONS)
    export = channel.unary_unary(SIGNAL_SPECS["traces"].grpc_method, request_serializer=None,
                                 response_deserializer=None)
    latencies: list[float] = []
    stop = threading.Event()

    def bystander() -> None:
        while not stop.is_set():
            body = traffic.traces(n=1)[0].SerializeToString()
            began = time.monotonic()
            export(body, timeout=30)
            latencies.append(time.monotonic() - began)
            time.sleep(0.02)

    codes: list[int] = []

    def bomber() -> None:
        codes.append(httpx.post(gateway.http + "/v1/traces", content=bomb, timeout=60, headers={
            "content-type": "application/x-protobuf", "content-encoding": "gzip"}).status_code)

    watcher = threading.Thread(target=bystander)
    watcher.start()
    time.sleep(2)
    before, seen = max(latencies), len(latencies)
    try:
        for round_ in range(3):
            bombers = [threading.Thread(target=bomber) for _ in range(k)]
            began = time.monotonic()
            for thread in bombers:
                thread.start()
            for thread in bombers:
                thread.join()
            took = time.monotonic() - began
            time.sleep(1)
            print(f"round {round_}: {k} bombs -> {codes[-k:]} in {took:.2f} s; bystander max during "
                  f"{max(latencies[seen:]) * 1000:.0f} ms (before: {before * 1000:.0f} ms)")
            seen = len(latencies)
    finally:
        stop.set()
        watcher.join()
        channel.close()
        gateway.kill()
        downstream.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 8)
