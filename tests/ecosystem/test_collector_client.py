"""A real OpenTelemetry Collector as the gateway's client, as a user from the OTel world would run it:
filelog receiver tailing a file this test writes -> memory_limiter + batch -> otlphttp exporter (gzip, then
zstd) -> the gateway's OTLP/HTTP port -> the recording gRPC downstream.

Asserted, per compression:
* every line written reaches the downstream (exactly the lines written; duplicates only from at-least-once
  retries), including the lines written while the gateway was restarting (the collector retries);
* the restart really happened under the collector: it logged export retries meanwhile;
* normal lines make no anomaly; a new error template appended to the file becomes one, stored and read
  back through the REST API, whose evidence is the error lines, which arrive downstream annotated;
* the collector's own log has no error (no export failure, nothing dropped).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from otlp_gateway.api.auth import make_jwt
from tests.e2e import detect_support as ds
from tests.fixtures.collector import CollectorProcess, filelog_to_otlphttp_config, otelcol_binary
from tests.fixtures.downstream import ThreadedDownstream
from tests.fixtures.gateway import GatewayProcess, gateway_config_dict
from tests.fixtures.waiting import wait_until

SERVICE = "tailed"
JWT_SECRET = "collector-test-secret-0123456789abcdef"
WARM_LINES = 1000  # balanced profile: warmed up after 800 events, then ~20 scored windows of normal lines
DOWNTIME_LINES = 200
INCIDENT_LINES = 12
TAIL_LINES = 100
ERROR_WORDS = ("payment", "provider", "rejected", "gateway", "timeout")


class LogFile:
    """An application log: seeded normal lines, then an error template never seen before."""

    def __init__(self, path: Path, seed: int = 5):
        self.path = path
        self.rng = random.Random(seed)
        self.written: list[str] = []
        self.ms = 0

    def _stamp(self) -> str:
        self.ms += 7
        seconds, ms = divmod(self.ms, 1000)
        return f"2024-05-01T12:{seconds // 60 % 60:02d}:{seconds % 60:02d}.{ms:03d}Z"

    def _append(self, lines: list[str]) -> None:
        with self.path.open("a", encoding="utf-8") as f:
            f.write("".join(line + "\n" for line in lines))
        self.written.extend(lines)

    def normal(self, n: int) -> None:
        rng, lines = self.rng, []
        for _ in range(n):
            kind = rng.randrange(3)
            if kind == 0:
                text = f"INFO order {rng.randrange(10_000)} placed for user {rng.randrange(50)}"
            elif kind == 1:
                region = rng.choice(["eu", "us", "ap"])
                text = f"INFO cache hit for item {rng.randrange(500)} in region {region}"
            else:
                text = f"INFO payment authorized in {rng.randrange(20, 80)} ms"
            lines.append(f"{self._stamp()} {text}")
        self._append(lines)

    def incident(self, n: int) -> list[str]:
        lines = [f"{self._stamp()} ERROR payment provider rejected card: gateway timeout after "
                 f"{self.rng.randrange(3, 6)} retries (upstream={self.rng.choice(['psp-a', 'psp-b'])})"
                 for _ in range(n)]
        self._append(lines)
        return lines


def received_bodies(downstream: ThreadedDownstream) -> list[str]:
    return [r.body.string_value for m in downstream.messages("logs") for rl in m.resource_logs
            for sl in rl.scope_logs for r in sl.log_records]


def stream_rows(api_url: str) -> list[dict]:
    token = make_jwt(JWT_SECRET, "collector-test", "read")
    rows = ds.all_anomalies(api_url, {"Authorization": f"Bearer {token}"})
    return [r for r in rows if r["stream_id"].startswith(f"logs/{SERVICE}/")]


def scored_logs(api_url: str) -> float:
    text = httpx.get(api_url + "/metrics", timeout=10).text
    return ds.metric_value(text, "driftlock_detector_events_total", stream_type="logs")


@pytest.fixture
def collector_binary() -> Path:
    return otelcol_binary()


@pytest.fixture
def running(tmp_path: Path, downstream: ThreadedDownstream) -> Iterator[dict]:
    config = gateway_config_dict(tmp_path / "gw", forward_to=downstream.endpoint,
                                 api={"jwt_secret": JWT_SECRET})
    gateway = GatewayProcess(config, tmp_path).start()
    state = {"gateway": gateway, "collector": None}
    try:
        yield state
    finally:
        if state["collector"] is not None:
            state["collector"].stop()
        if gateway.proc is not None and gateway.proc.poll() is None:
            gateway.terminate()


@pytest.mark.parametrize("compression", ["gzip", "zstd"])
def test_collector_tails_a_file_into_the_gateway(tmp_path: Path, downstream: ThreadedDownstream,
                                                collector_binary: Path, running: dict,
                                                compression: str) -> None:
    gateway: GatewayProcess = running["gateway"]
    log = LogFile(tmp_path / "app.log")
    log.normal(WARM_LINES)
    collector = CollectorProcess(filelog_to_otlphttp_config(log.path, gateway.http_url, compression, SERVICE),
                                 tmp_path, collector_binary)
    running["collector"] = collector.start()

    def delivered(n: int, what: str) -> None:
        downstream.wait_for(lambda: downstream.log_record_count() >= n, 90, what)

    delivered(WARM_LINES, "the first lines")
    wait_until(lambda: scored_logs(gateway.api_url) >= WARM_LINES, 60, "the first lines scored")

    # restart the gateway; lines written meanwhile wait in the collector, which retries
    assert gateway.terminate() == 0
    before_restart = downstream.log_record_count()  # the restarted process counts scored events anew
    retries_before = sum("Exporting failed" in r.get("msg", "") for r in collector.records())
    log.normal(DOWNTIME_LINES)
    wait_until(lambda: sum("Exporting failed" in r.get("msg", "") for r in collector.records())
               > retries_before, 30, "the collector retrying while the gateway is down")
    gateway.start()
    delivered(WARM_LINES + DOWNTIME_LINES, "the lines written during the restart")
    wait_until(lambda: scored_logs(gateway.api_url) >= downstream.log_record_count() - before_restart, 60,
               "the lines since the restart scored")
    assert stream_rows(gateway.api_url) == [], "normal lines made an anomaly"

    incident_start = downstream.log_record_count()  # the stream offset of the first error line
    errors = log.incident(INCIDENT_LINES)
    log.normal(TAIL_LINES)
    delivered(len(log.written), "every line")
    wait_until(lambda: stream_rows(gateway.api_url), 60, "an anomaly for the new error template")

    # every line, nothing else (duplicates could only come from a retried, already accepted request)
    got, sent = Counter(received_bodies(downstream)), Counter(log.written)
    assert set(got) == set(sent) and all(got[line] >= count for line, count in sent.items())

    rows = stream_rows(gateway.api_url)
    incident = range(incident_start, incident_start + INCIDENT_LINES)
    for row in rows:
        offsets = {int(e["offset"]) for e in row["evidence"]}
        assert offsets and offsets <= set(incident), (row["window_start_offset"], offsets, incident)
        tokens = {t[0] for t in row["explanation"]["top_events"][0]["tokens"]}
        assert tokens & set(ERROR_WORDS), tokens  # the explanation names the new template's words
    annotated = {r.body.string_value for m in downstream.messages("logs") for rl in m.resource_logs
                 for sl in rl.scope_logs for r in sl.log_records
                 if any(kv.key == "driftlock.anomaly.id" for kv in r.attributes)}
    assert annotated and annotated <= set(errors)

    collector.stop()
    problems = [r for r in collector.records() if r.get("level") in ("error", "fatal", "panic", "unparsed")
                or "Dropping data" in r.get("msg", "")]
    assert problems == [], problems
