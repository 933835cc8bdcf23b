"""Play one scenario into a fresh gateway child process and measure it through the REST API."""

from __future__ import annotations

import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.scenarios.catalog import Scenario, Tick
from bench.scenarios.client import ServiceClient
from bench.scenarios.gateway import ScenarioGateway, metric_samples
from bench.scenarios.measure import ControlResult, FaultResult, control_result, fault_result
from bench.scenarios.traffic import NS, SERVICE, Shop

T0_NS = 1_767_225_600 * NS
"""2026-01-01T00:00:00Z: every scenario's event time starts here (the same run gives the same times)."""
FLUSH_EVERY_S = 60
"""Seconds of event time handed to the SDK between flushes (keeps the client's queues and the gateway's
detection backlog small)."""


@dataclass
class Run:
    scenario: Scenario
    result: FaultResult | ControlResult
    events: int
    incidents: list[dict[str, Any]]
    wall_s: float
    counters: dict[str, float]
    profile: str
    """The profile the gateway's streams ran with (its default)."""


def play(scenario: Scenario, endpoint: str, seed: int) -> ServiceClient:
    """Send the scenario's seconds in event-time order; returns the (closed) client with its counts."""
    rng = random.Random(f"{scenario.name}:{seed}")
    client = ServiceClient(endpoint, SERVICE, "1.4.2", rng)
    shop = Shop(client, rng)
    for second in range(scenario.total_s):
        hook = scenario.hooks(second)
        if hook is not None:
            hook(shop, second)
        in_fault = scenario.fault_start_s <= second < scenario.fault_end_s and scenario.kind == "fault"
        scenario.step(shop, Tick(second, T0_NS + second * NS, in_fault))
        if (second + 1) % FLUSH_EVERY_S == 0:
            client.flush()
    client.close()
    return client


def declared_rate(metrics_text: str, profile: str) -> float | None:
    for name, labels, value in metric_samples(metrics_text):
        if name == "driftlock_false_incident_rate_declared" and labels.get("profile") == profile:
            return value
    return None


def run_scenario(scenario: Scenario, seed: int = 1, workdir: Path | None = None,
                 gateway_extra: dict[str, Any] | None = None) -> Run:
    """A fresh gateway, the scenario played into it, the gateway settled, then measured."""
    with tempfile.TemporaryDirectory(prefix=f"scenario-{scenario.name}-", dir=workdir) as tmp:
        gateway = ScenarioGateway(Path(tmp), gateway_extra).start()
        try:
            started = time.monotonic()
            client = play(scenario, gateway.grpc_endpoint, seed)
            counters = gateway.settle(client.sent.total)
            wall = time.monotonic() - started
            incidents = gateway.incidents()
            anomalies = gateway.anomalies()
            metrics_text = gateway.metrics()
            streams = gateway.streams()
            profile = str(streams[0]["profile"]) if streams else "?"
            result: FaultResult | ControlResult
            if scenario.kind == "fault":
                assert scenario.target is not None
                t0 = T0_NS / NS
                result = fault_result(incidents, anomalies, scenario.target, t0 + scenario.fault_start_s,
                                      t0 + scenario.fault_end_s, t0 + scenario.total_s)
            else:
                result = control_result(incidents, anomalies, streams,
                                        declared_rate(metrics_text, profile))
        except BaseException:
            print(f"--- gateway log of {scenario.name} (tail)\n{gateway.log_tail()}")
            raise
        finally:
            gateway.stop()
    return Run(scenario, result, client.sent.total, incidents, wall, counters, profile)
