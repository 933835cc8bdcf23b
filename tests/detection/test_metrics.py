"""The stage's self-metrics say what they measure: the cbad rate counts cbad events only, numeric events
have their own rate, and the runbook's threshold series holds the default profile's false-alarm target."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import numpy as np

from tests.detection.support import open_run
from tests.otlp.otlp_data import gauge_request, logs_request, normal_logs

CBAD_RATE, NUMERIC_RATE = "driftlock_cbad_events_per_second", "driftlock_numeric_events_per_second"


def test_event_rates_are_per_detector(tmp_path: Path) -> None:
    async def scenario() -> None:
        run = await open_run(tmp_path / "r.db")
        values = 50 + np.random.default_rng(5).normal(0, 1, 100)
        sent = 0

        async def feed_points() -> float:  # the rate is published once a second of traffic has passed
            nonlocal sent
            await run.feed("metrics", [gauge_request("svc", "queue.depth", values, start_ns=10**18 + sent)])
            sent += 10**11
            return run.metric(NUMERIC_RATE)

        deadline = asyncio.get_running_loop().time() + 30
        while not await feed_points():
            assert asyncio.get_running_loop().time() < deadline, "no numeric rate within 30 s"
        assert run.metric(CBAD_RATE) == 0, "metric points counted as cbad events"

        numeric = run.metric(NUMERIC_RATE)
        seed = 0
        deadline = asyncio.get_running_loop().time() + 30
        while not run.metric(CBAD_RATE):
            assert asyncio.get_running_loop().time() < deadline, "no cbad rate within 30 s"
            seed += 1
            await run.feed("logs", [logs_request(normal_logs(50, seed))])
            await run.stage.drain()
        assert run.metric(NUMERIC_RATE) == numeric  # log records did not move the numeric rate
        await run.close()

    asyncio.run(scenario())


def test_the_threshold_series_holds_the_default_profiles_false_alarm_target(tmp_path: Path) -> None:
    async def scenario(profile: str) -> float:
        run = await open_run(tmp_path / f"{profile}.db", profile=profile)
        value = run.metric("driftlock_anomaly_ncd_threshold")
        help_text = run.metrics.anomaly_ncd_threshold._documentation
        assert "false-alarm target" in help_text and "default profile" in help_text
        await run.close()
        return value

    assert asyncio.run(scenario("strict")) == 1e-4
    assert asyncio.run(scenario("sensitive")) == 1e-2


def test_anomalies_carry_a_capped_service_label() -> None:
    """Each anomaly counts under its service; beyond ``max_services`` services, under ``other``."""
    from otlp_gateway.detection.decision import Decision
    from otlp_gateway.detection.metrics import DetectionMetrics
    from otlp_gateway.telemetry.metrics import GatewayMetrics
    from tests.api.conftest import make_anomaly

    metrics = GatewayMetrics(max_services=2)
    stage_metrics = DetectionMetrics(metrics, "balanced")
    records = [make_anomaly(i, service=s) for i, s in enumerate(["cart", "search", "cart", "payments",
                                                                 "ledger"])]
    stage_metrics.decided("traces", Decision(records=records), [], 0.0)

    def count(service: str) -> float:
        return metrics.registry.get_sample_value("driftlock_anomalies_detected_total", {
            "stream_type": "traces", "severity": "high", "service": service}) or 0.0

    assert (count("cart"), count("search"), count("other"), count("payments")) == (2, 1, 2, 0)


def test_attributes_capped_by_the_stages_own_extraction_are_counted(tmp_path: Path) -> None:
    """A request the receiver forwarded without extracting it (detection was behind, or the kernels were
    still compiling) is extracted by the stage: the attributes its caps leave out count there, once."""
    attrs = {f"attr.{i}": i for i in range(6)}
    logs = [dataclasses.replace(spec, attrs=attrs) for spec in normal_logs(10, 3)]
    request = logs_request(logs)

    async def scenario() -> None:
        run = await open_run(tmp_path / "r.db", max_item_attributes=4)
        [batch] = await run.feed("logs", [request])  # no extraction with it: the stage extracts
        assert batch.extraction is None
        await run.stage.drain()
        assert run.metric("driftlock_detector_events_total", {"stream_type": "logs"}) == 10
        capped = run.metric("driftlock_detection_capped_attributes_total",
                            {"signal": "logs", "reason": "item_attributes"})
        await run.close()
        assert capped == 10 * 2

    asyncio.run(scenario())
