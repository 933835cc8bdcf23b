"""One hostile value must not stall the gateway: a bystander is served within 1 s meanwhile.

A span attribute or log body made of one long token (64 KiB, 20 MB) used to freeze every client for
seconds to forever: masking ran a regular expression quadratic in the value's length while holding the GIL.
The gateway runs as a child process here, so the bystander's latency is the gateway's, not this test's GIL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tests.fixtures.gateway import GatewayProcess, gateway_config_dict
from tests.fixtures.otlp_payloads import trace_request
from tests.fixtures.waiting import wait_until

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
BYSTANDER_BOUND_SECONDS = 1.0


def _span_with_attribute(value: str, service: str = "poison") -> bytes:
    request = trace_request(1, service=service, seed=7)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="payload").value.string_value = value
    return request.SerializeToString()


def _log_with_body(body: str) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = "poison"
    record = resource_logs.scope_logs.add().log_records.add(severity_number=9, time_unix_nano=1)
    record.body.string_value = body
    return request.SerializeToString()


class Bystander:
    """Asks ``/healthz`` and exports one small span, over and over, recording each answer's latency."""

    def __init__(self, gateway: GatewayProcess):
        self._gateway = gateway
        self._stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []
        self._thread = threading.Thread(target=self._run, name="bystander", daemon=True)

    def __enter__(self) -> Bystander:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        payload = trace_request(1, service="bystander").SerializeToString()
        with grpc.insecure_channel(self._gateway.grpc_endpoint) as channel, httpx.Client() as http:
            export = channel.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    http.get(self._gateway.api_url + "/healthz", timeout=30).raise_for_status()
                    export(payload, timeout=30)
                except Exception as exc:  # recorded, asserted on below
                    self.failures.append(repr(exc))
                self.latencies.append(time.monotonic() - started)
                self._stop.wait(0.05)


@pytest.fixture
def gateway(tmp_path: Path, downstream) -> Iterator[GatewayProcess]:
    config = gateway_config_dict(tmp_path / "data", forward_to=downstream.endpoint)
    gw = GatewayProcess(config, tmp_path).start()
    try:
        wait_until(lambda: httpx.get(gw.api_url + "/readyz", timeout=2).status_code == 200, 120,
                   "the gateway to be ready (kernels loaded)")
        yield gw
    finally:
        if gw.proc is not None and gw.proc.poll() is None:
            gw.terminate()


@pytest.mark.parametrize(("method", "payload", "items"), [
    pytest.param(TRACE_EXPORT, lambda: _span_with_attribute("A" * 65_536), 1, id="attribute-64KiB-token"),
    pytest.param(TRACE_EXPORT, lambda: _span_with_attribute("a" * 20_000_000), 1, id="attribute-20MB-token"),
    pytest.param(LOGS_EXPORT, lambda: _log_with_body("A" * 20_000_000), 1, id="log-body-20MB-token"),
])
def test_one_long_token_does_not_stall_a_bystander(gateway, downstream, method, payload, items) -> None:
    poison = payload()
    signal = "traces" if method == TRACE_EXPORT else "logs"
    with grpc.insecure_channel(gateway.grpc_endpoint,
                               options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        export = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        with Bystander(gateway) as bystander:
            time.sleep(0.3)  # the bystander's baseline before the poison arrives
            for _ in range(3):
                export(poison, timeout=60)  # acknowledged: OK
            wait_until(lambda: downstream.item_count(signal) >= 3 * items, 60, "the poison items downstream")
            time.sleep(0.3)
    assert not bystander.failures, bystander.failures
    assert bystander.latencies, "the bystander never got an answer"
    assert max(bystander.latencies) < BYSTANDER_BOUND_SECONDS, sorted(bystander.latencies)[-5:]
    if signal == "traces":
        wait_until(lambda: downstream.span_count() >= 3 + len(bystander.latencies), 30, "bystander spans")
