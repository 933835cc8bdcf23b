"""Per-signal routes configured the OpenTelemetry way (OTEL_EXPORTER_OTLP_*), delivered to real servers:
traces to a per-signal HTTP URL used as-is, logs to the shared HTTP base URL + /v1/logs, metrics over
gRPC to the recording downstream; a signal without any endpoint is consumed for detection only."""

from __future__ import annotations

from pathlib import Path

from otlp_gateway.config import load_config
from otlp_gateway.exporter import Exporter
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.exporter.support import FAST_RETRY, batch, eventually, run, sample
from tests.exporter.test_http_transport import RecordingHttpDownstream, http_downstream  # noqa: F401
from tests.fixtures.downstream import ThreadedDownstream


def test_otel_variables_route_each_signal(tmp_path: Path, http_downstream: RecordingHttpDownstream,  # noqa: F811
                                          downstream: ThreadedDownstream) -> None:
    base = http_downstream.endpoint
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": f"{base}/collector",
           "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{base}/ingest/spans",
           "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": downstream.endpoint.replace("grpc://", "http://"),
           "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc",
           "OTEL_EXPORTER_OTLP_HEADERS": "x-tenant=shop%20eu",
           "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=traces",
           "OTEL_EXPORTER_OTLP_COMPRESSION": "none"}
    config = load_config(None, env=env, overrides={("exporter", "retry"): FAST_RETRY})

    async def scenario() -> None:
        exporter = Exporter(config.exporter, tmp_path, GatewayMetrics())
        await exporter.start()
        sent = {signal: batch(signal, f"routed-{signal}") for signal in ("traces", "metrics", "logs")}
        for b in sent.values():
            await exporter.consume(b)
        await eventually(lambda: len(http_downstream.received) == 2, what="two HTTP posts")
        await downstream.wait_for_async(lambda: downstream.metric_point_count() == 4, what="4 points")
        assert http_downstream.bodies("/ingest/spans") == [sent["traces"].payload]
        assert http_downstream.bodies("/collector/v1/logs") == [sent["logs"].payload]
        assert downstream.requests["metrics"] == [sent["metrics"].payload]
        tenants = {path: headers.get("x-tenant") for path, headers, _ in http_downstream.received}
        assert tenants == {"/ingest/spans": "traces", "/collector/v1/logs": "shop eu"}
        assert downstream.server.metadata[0].get("x-tenant") == "shop eu"
        assert all("content-encoding" not in headers for _, headers, _ in http_downstream.received)
        await exporter.shutdown(grace=1)

    run(scenario())


def test_signal_without_endpoint_is_detection_only(tmp_path: Path,
                                                   http_downstream: RecordingHttpDownstream) -> None:  # noqa: F811
    env = {"OTEL_EXPORTER_OTLP_LOGS_ENDPOINT": f"{http_downstream.endpoint}/v1/logs"}
    config = load_config(None, env=env, overrides={("exporter", "retry"): FAST_RETRY})

    async def scenario() -> None:
        metrics = GatewayMetrics()
        exporter = Exporter(config.exporter, tmp_path, metrics)
        await exporter.start()
        await exporter.consume(batch("traces", "not-forwarded"))
        await exporter.consume(batch("logs", "forwarded"))
        await eventually(lambda: len(http_downstream.received) == 1, what="the logs post")
        assert [path for path, _, _ in http_downstream.received] == ["/v1/logs"]
        assert exporter.discarded_items == 4
        assert sample(metrics, "driftlock_exporter_discarded_items_total", signal="traces") == 4
        await exporter.shutdown(grace=1)

    run(scenario())
