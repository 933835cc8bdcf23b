"""A counter sent by the OpenTelemetry SDK (its OTLP metric exporter, cumulative temporality: the SDK's
default) through a real gateway: the gateway scores its per-interval deltas, so the client restarting (a
new MeterProvider: the total starts again from 0 under a new start time) raises no incident.

Before, the running total itself was scored: the restart's drop from thousands to a handful was a cliff.
"""

from __future__ import annotations

import httpx
import numpy as np
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource

from tests.e2e import detect_support as ds
from tests.fixtures.waiting import wait_until

STREAM = "metrics/shop/checkout.attempts"
POINTS = (600, 250, 250)
"""Points exported by each SDK instance (the client restarts twice); the first warms the detector up."""


def run_sdk_instance(endpoint: str, increments: np.ndarray) -> None:
    """One life of the client: a fresh MeterProvider, one export per point (each a cumulative total)."""
    reader = PeriodicExportingMetricReader(OTLPMetricExporter(endpoint=endpoint, insecure=True, timeout=30),
                                           export_interval_millis=3_600_000)
    provider = MeterProvider(resource=Resource.create({"service.name": "shop"}), metric_readers=[reader])
    counter = provider.get_meter("shop.checkout").create_counter("checkout.attempts")
    try:
        for n in increments.tolist():
            counter.add(int(n), {"route": "POST /checkout"})
            assert provider.force_flush(30_000), "the SDK could not export a point"
    finally:
        provider.shutdown()


def test_a_cumulative_counter_restart_raises_no_incident(threaded_gateway) -> None:
    gw = threaded_gateway(api={"auth_required": False})
    rng = np.random.default_rng(11)
    for n in POINTS:
        run_sdk_instance(gw.grpc_endpoint, 1 + rng.poisson(10, n))  # never 0: every export has a point

    def text() -> str:
        return httpx.get(f"{gw.api_url}/metrics", timeout=10).text

    ds.wait_detected(text, {"metrics": sum(POINTS)}, timeout=120)
    metrics = text()
    skipped = {reason: ds.metric_value(metrics, "driftlock_detector_skipped_points_total", signal="metrics",
                                       reason=reason)
               for reason in ("cumulative_reference", "cumulative_reset", "out_of_order")}
    # one series (same resource and attributes each life): its first point, then a reset per restart
    assert skipped == {"cumulative_reference": 1, "cumulative_reset": 2, "out_of_order": 0}
    def stream() -> dict:
        return httpx.get(f"{gw.api_url}/v1/streams/{STREAM}", timeout=10).json()

    def settled() -> dict | None:
        # every point the gateway took (the SDK also exports once more when shut down), fed to the
        # detector but for the three left out
        fed = ds.metric_value(text(), "driftlock_detector_events_total", stream_type="metrics")
        info = stream()
        return info if info["events_seen"] == fed - 3 else None

    info = wait_until(settled, 30, "the stream's detector to have taken every point but three")
    assert info["state"] == "active", info  # warmed up before the first restart: the restarts were judged
    listed = httpx.get(f"{gw.api_url}/v1/incidents", params={"signal": "metrics"}, timeout=10)
    incidents = listed.json()["items"]
    assert incidents == [], [(i["stream_id"], i["opened_at"], i["summary"]) for i in incidents]
