"""One hostile value must not stall the gateway: a bystander is served within 1 s meanwhile.

A span attribute or log body made of one long token (64 KiB, 20 MB) used to freeze every client for
seconds to forever: masking ran a regular expression quadratic in the value's length while holding the GIL.
The gateway runs as a child process here, so the bystander's latency is the gateway's, not this test's GIL.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from tests.fixtures.gateway import GatewayProcess
from tests.fixtures.otlp_payloads import trace_request
from tests.fixtures.waiting import wait_until
from tests.reliability.support import LOGS_EXPORT, TRACE_EXPORT, record, start_gateway, stop_gateway, watched


def _span_with_attribute(value: str, service: str = "poison") -> bytes:
    request = trace_request(1, service=service, seed=7)
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="payload").value.string_value = value
    return request.SerializeToString()


def _log_with_body(body: str) -> bytes:
    request = ExportLogsServiceRequest()
    resource_logs = request.resource_logs.add()
    resource_logs.resource.attributes.add(key="service.name").value.string_value = "poison"
    log_record = resource_logs.scope_logs.add().log_records.add(severity_number=9, time_unix_nano=1)
    log_record.body.string_value = body
    return request.SerializeToString()


@pytest.fixture
def gateway(tmp_path: Path, downstream) -> Iterator[GatewayProcess]:
    gw = start_gateway(tmp_path, downstream.endpoint)
    try:
        yield gw
    finally:
        stop_gateway(gw)


@pytest.mark.parametrize(("method", "payload", "items"), [
    pytest.param(TRACE_EXPORT, lambda: _span_with_attribute("A" * 65_536), 1, id="attribute-64KiB-token"),
    pytest.param(TRACE_EXPORT, lambda: _span_with_attribute("a" * 20_000_000), 1, id="attribute-20MB-token"),
    pytest.param(LOGS_EXPORT, lambda: _log_with_body("A" * 20_000_000), 1, id="log-body-20MB-token"),
])
def test_one_long_token_does_not_stall_a_bystander(gateway, downstream, method, payload, items,
                                                   request) -> None:
    case = request.node.callspec.id
    poison = payload()
    signal = "traces" if method == TRACE_EXPORT else "logs"
    with grpc.insecure_channel(gateway.grpc_endpoint,
                               options=[("grpc.max_send_message_length", 64 << 20)]) as channel:
        export = channel.unary_unary(method, request_serializer=None, response_deserializer=None)
        with watched(gateway) as (bystander, rss):
            for _ in range(3):
                export(poison, timeout=60)  # acknowledged: OK
            wait_until(lambda: downstream.item_count(signal) >= 3 * items, 60, "the poison items downstream")
            time.sleep(0.3)  # the bystander keeps asking after the poison went through
    bystander.assert_served()
    expected_spans = bystander.acked_spans + (3 * items if signal == "traces" else 0)
    wait_until(lambda: downstream.span_count() >= expected_spans, 30, "every acknowledged span downstream")
    record(f"poison value: {case}", "OK (forwarded)", bystander, rss, "0")
