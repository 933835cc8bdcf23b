"""Stream churn through a gateway child process: requests of 100 never-seen service names (100 new streams
each), one every half second, past the live-stream bound (``detection.max_live_streams``, default 1000),
while one small span is exported over gRPC every 20 ms and timed.

Every 5 requests prints the last request's latency, the bystander's worst latency since the previous line,
the gateway's RSS, live streams and streams evicted: RSS must level off once eviction keeps pace.

    python bench/bench_new_streams.py [REQUESTS=60]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from soak import GRPC_OPTIONS, GatewayProcess
from soak_downstream import RecordingDownstream
from soak_traffic import Traffic

from otlp_gateway.otlp.signals import SIGNAL_SPECS


def main(requests: int) -> None:
    downstream = RecordingDownstream().start()
    workdir = Path(tempfile.mkdtemp(prefix="new-streams-"))
    gateway = GatewayProcess(workdir, downstream.endpoint)
    print(f"gateway ready in {gateway.start():.1f} s")
    churn, small = Traffic(seed=5), Traffic(seed=6)
    method = SIGNAL_SPECS["traces"].grpc_method
    channels = [grpc.insecure_channel(gateway.grpc, options=GRPC_OPTIONS) for _ in range(2)]
    export, bystander_export = (c.unary_unary(method, request_serializer=None, response_deserializer=None)
                                for c in channels)
    latencies: list[float] = []
    stop = threading.Event()

    def bystander() -> None:
        while not stop.is_set():
            body = small.traces(n=1)[0].SerializeToString()
            began = time.monotonic()
            bystander_export(body, timeout=30)
            latencies.append(time.monotonic() - began)
            time.sleep(0.02)

    watcher = threading.Thread(target=bystander)
    watcher.start()
    time.sleep(2)
    seen = len(latencies)
    try:
        for i in range(1, requests + 1):
            body = churn.many_services("grpc").body
            began = time.monotonic()
            export(body, timeout=60)
            took = time.monotonic() - began
            time.sleep(0.5)
            if i % 5 == 0:
                print(f"{i:3d} requests ({i * 100} new streams): last took {took * 1000:.0f} ms; bystander "
                      f"max {max(latencies[seen:]) * 1000:.0f} ms; RSS {gateway.rss_mib():.0f} MiB; live "
                      f"{gateway.metric('driftlock_streams_live'):.0f}; evicted "
                      f"{gateway.metric('driftlock_streams_evicted_total'):.0f}", flush=True)
                seen = len(latencies)
    finally:
        stop.set()
        watcher.join()
        for channel in channels:
            channel.close()
        gateway.kill()
        downstream.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60)
