"""The bystander as its own process: ``/healthz`` and one small gRPC export (and optionally one OTLP/HTTP
export) over and over, one JSON line per round on stdout, until stdin closes.

A process of its own so that its latency is the gateway's, not the GIL of a test process that is busy
generating hostile load.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time

import grpc
import httpx

from tests.fixtures.otlp_payloads import trace_request

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--api", required=True)
    parser.add_argument("--grpc", required=True)
    parser.add_argument("--http")
    parser.add_argument("--health-only", action="store_true", help="no export (ingest is refused on purpose)")
    args = parser.parse_args()
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    payload = trace_request(1, service="bystander").SerializeToString()
    with grpc.insecure_channel(args.grpc) as channel, httpx.Client() as http:
        export = channel.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
        while not stop.is_set():
            started = time.monotonic()
            acked, error = 0, None
            try:
                http.get(args.api + "/healthz", timeout=30).raise_for_status()
                if not args.health_only:
                    export(payload, timeout=30)
                    acked += 1
                if args.http:
                    http.post(args.http + "/v1/traces", content=payload, timeout=30,
                              headers={"content-type": "application/x-protobuf"}).raise_for_status()
                    acked += 1
            except Exception as exc:  # reported to the test, which asserts on it
                error = repr(exc)
            print(json.dumps({"latency": time.monotonic() - started, "acked": acked, "error": error}),
                  flush=True)
            stop.wait(0.05)


if __name__ == "__main__":
    main()
