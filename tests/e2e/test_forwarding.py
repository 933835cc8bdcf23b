"""SDK exporters -> gateway -> a real recording downstream: nothing acknowledged is ever lost."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.sdk import emit, sdk_client
from tests.fixtures.gateway import GatewayProcess, gateway_config_dict, wait_until
from tests.fixtures.otlp_payloads import trace_request

TRACE_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def received_spans(downstream) -> dict[bytes, str]:
    spans = {}
    for message in downstream.messages("traces"):
        for rs in message.resource_spans:
            for ss in rs.scope_spans:
                for span in ss.spans:
                    spans[span.span_id] = span.name
    return spans


def received_log_bodies(downstream) -> list[str]:
    return [rec.body.string_value for m in downstream.messages("logs") for rl in m.resource_logs
            for sl in rl.scope_logs for rec in sl.log_records]


def counter_totals(downstream) -> dict[str, float]:
    totals: dict[str, float] = {}
    for m in downstream.messages("metrics"):
        for rm in m.resource_metrics:
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for point in metric.sum.data_points:
                        route = next(a.value.string_value for a in point.attributes if a.key == "route")
                        totals[route] = max(totals.get(route, 0), point.as_int or point.as_double)
    return totals


@pytest.mark.parametrize("transport", ["grpc", "http"])
def test_sdk_telemetry_arrives_downstream_with_equal_content(transport, downstream, threaded_gateway) -> None:
    gw = threaded_gateway(forward_to=downstream.endpoint, detection={"enabled": False})
    endpoint = gw.grpc_endpoint if transport == "grpc" else gw.http_url
    sent: dict[bytes, str] = {}

    def remember(span) -> None:
        sent[span.get_span_context().span_id.to_bytes(8, "big")] = span.name

    with sdk_client(transport, endpoint) as client:
        emit(client, 300, 40, on_span=remember)

    downstream.wait_for(lambda: len(received_spans(downstream)) >= 300 and downstream.log_record_count() >= 40
                        and len(counter_totals(downstream)) == 5, timeout=30, what="all telemetry")
    assert received_spans(downstream) == sent
    assert sorted(received_log_bodies(downstream)) == sorted(
        f"order {i} placed for user {i % 7}" for i in range(40))
    assert counter_totals(downstream) == {f"/item/{k}": 60 for k in range(5)}


def test_downstream_outage_then_recovery_loses_nothing(downstream, threaded_gateway) -> None:
    gw = threaded_gateway(forward_to=downstream.endpoint, detection={"enabled": False})
    downstream.fail_with(grpc.StatusCode.UNAVAILABLE)  # until cleared
    sent: set[bytes] = set()
    with sdk_client("grpc", gw.grpc_endpoint) as client:
        emit(client, 200, 0, on_span=lambda s: sent.add(s.get_span_context().span_id.to_bytes(8, "big")))
    downstream.wait_for(lambda: downstream.attempts["traces"] >= 2, what="the gateway retrying")
    assert downstream.span_count() == 0
    downstream.clear_failures()
    downstream.wait_for(lambda: set(received_spans(downstream)) >= sent, timeout=30, what="redelivery")
    assert set(received_spans(downstream)) == sent


def _send_acknowledged(endpoint: str, requests: list[bytes]) -> None:
    with grpc.insecure_channel(endpoint) as channel:
        call = channel.unary_unary(TRACE_EXPORT, request_serializer=None, response_deserializer=None)
        for raw in requests:
            call(raw, timeout=10)  # raises unless the gateway acknowledged it


@pytest.mark.parametrize("stop", ["sigterm", "sigkill"])
def test_acknowledged_data_survives_outage_and_restart(stop: str, downstream, tmp_path: Path) -> None:
    downstream.fail_with(grpc.StatusCode.UNAVAILABLE)
    config = gateway_config_dict(tmp_path / "data", forward_to=downstream.endpoint,
                                 detection={"enabled": False}, shutdown_grace_seconds=1)
    requests = [trace_request(50, seed=100 + i).SerializeToString() for i in range(10)]
    expected = {span.span_id for raw in requests
                for rs in ExportTraceServiceRequest.FromString(raw).resource_spans
                for ss in rs.scope_spans for span in ss.spans}

    first = GatewayProcess(config, tmp_path).start()
    try:
        _send_acknowledged(first.grpc_endpoint, requests)
        downstream.wait_for(lambda: downstream.attempts["traces"] >= 1, what="a failed delivery attempt")
    finally:
        if stop == "sigterm":
            assert first.terminate() == 0, first.log()
        else:
            first.kill()
    assert downstream.span_count() == 0

    downstream.clear_failures()
    second = GatewayProcess(config, tmp_path).start()
    try:
        downstream.wait_for(lambda: set(received_spans(downstream)) >= expected, timeout=60,
                            what="spooled requests delivered after restart")
    finally:
        assert second.terminate() == 0, second.log()
    assert set(received_spans(downstream)) == expected


def test_sigterm_drains_and_exits_zero(downstream, tmp_path: Path) -> None:
    config = gateway_config_dict(tmp_path / "data", forward_to=downstream.endpoint,
                                 detection={"enabled": False})
    gateway = GatewayProcess(config, tmp_path).start()
    _send_acknowledged(gateway.grpc_endpoint, [trace_request(20, seed=7).SerializeToString()])
    assert gateway.terminate() == 0, gateway.log()
    wait_until(lambda: downstream.span_count() == 20, what="delivery before exit")
    assert "draining" in gateway.log()
