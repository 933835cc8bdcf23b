"""Operations against a running gateway (real Postgres, real downstream, SDK traffic): the runbook's metric
names and the names the Grafana dashboard and alert rules read are in the LIVE /metrics and move with the
traffic; readiness and the database health check answer; an API key made by the CLI on the same database
is accepted by the running API."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.support import MONITORING, SCRAPE_LABELS, Series, load_yaml, references, resolve
from tests.e2e import detect_support as ds
from tests.fixtures.gateway import REPO, wait_until

RUNBOOK_SERIES = {  # name -> label names its samples must carry
    "driftlock_anomalies_detected_total": {"stream_type", "severity", "service"},
    "driftlock_anomaly_processing_duration_seconds_bucket": {"le"},
    "driftlock_cbad_events_per_second": set(),
    "driftlock_cbad_compression_ratio": {"stream_type"},
    "driftlock_http_requests_total": {"status"},
    "driftlock_http_request_duration_seconds_bucket": {"le"},
    "driftlock_db_connections_total": {"connection_state"},
    "driftlock_memory_allocated_bytes": set(),
    "driftlock_memory_heap_bytes": set(),
    "driftlock_goroutines": set(),
    "driftlock_anomaly_ncd_threshold": set(),
}
SUFFIXES = {"counter": ("_total",), "gauge": ("",), "histogram": ("_bucket", "_sum", "_count"),
            "summary": ("", "_sum", "_count"), "unknown": ("",)}


def live_series(text: str) -> dict[str, Series]:
    """Series names in a live exposition with the label names their samples carry. A labelled family
    with no sample yet is listed by its HELP/TYPE lines only: its names count, its labels are unknown."""
    series: dict[str, Series] = {}
    for family in text_string_to_metric_families(text):
        if not family.samples:
            for suffix in SUFFIXES[family.type]:
                series[family.name + suffix] = Series(family.name + suffix, frozenset({"*"}))
        for sample in family.samples:
            known = series.get(sample.name)
            labels = frozenset(sample.labels) | (known.labels if known else frozenset())
            series[sample.name] = Series(sample.name, labels)
    return series


def missing_names(exprs: list[tuple[str, str]], live: dict[str, Series]) -> list[str]:
    problems = []
    for where, expr in exprs:
        for ref in references(expr):
            if ref.name == "up":  # added by Prometheus at scrape time
                continue
            matched = resolve(ref, live)
            if not matched:
                problems.append(f"{where}: {ref.name or ref.name_pattern} is not in the live /metrics")
            for s in matched:
                unknown = ref.labels - s.labels - SCRAPE_LABELS
                if unknown and "*" not in s.labels:
                    problems.append(f"{where}: live {s.name} has no label(s) {sorted(unknown)}")
    return problems


def dashboard_and_rule_queries() -> list[tuple[str, str]]:
    dashboards = sorted(MONITORING.glob("*.json"))
    assert dashboards, f"no Grafana dashboard JSON under {MONITORING}"
    exprs = []
    for path in dashboards:
        for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
            exprs += [(f"{path.name}: {panel['title']}", t["expr"]) for t in panel.get("targets", [])]
    groups = load_yaml(MONITORING / "alert-rules.yaml")["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    exprs += [(f"rule {rule.get('alert') or rule['record']}", rule["expr"]) for rule in rules]
    assert len(exprs) > 30
    return exprs


def recorded_names(live: dict[str, Series]) -> dict[str, Series]:
    """Series the recording rules make from live ones (alerts may read those names)."""
    out = {}
    for group in load_yaml(MONITORING / "alert-rules.yaml")["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                (source,) = references(rule["expr"])
                if source.name in live:
                    out[rule["record"]] = Series(rule["record"], live[source.name].labels)
    return out


def cli_create_admin_key(data_dir: Path, dsn: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "otlp_gateway", "api-keys", "--database-url", dsn, "--data-dir", str(data_dir),
         "create", "--role", "admin", "--name", "ops-e2e"],
        capture_output=True, text=True, timeout=120, cwd=REPO, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    secret = result.stdout.strip().splitlines()[-1].strip()
    assert secret.startswith("dlk_"), result.stdout
    return secret


@pytest.mark.postgres
@pytest.mark.timeout(180)
def test_live_metrics_health_and_cli_key(pg_dsn: str, downstream, threaded_gateway) -> None:
    gw = threaded_gateway(forward_to=downstream.endpoint, store={"database_url": pg_dsn})
    api = httpx.Client(base_url=gw.api_url, timeout=10)
    before = api.get("/metrics")
    assert before.status_code == 200
    assert ds.metric_value(before.text, "otelcol_receiver_accepted_spans_total") == 0

    injected = ds.Injected()
    with ds.shop_service(gw.grpc_endpoint, seed=31) as svc:
        svc.normal_spans(ds.WARM_EVENTS)
        svc.incident_spans(injected)
        svc.normal_spans(ds.TAIL_EVENTS)
        svc.normal_logs(200)
        svc.gauge_points(20, 100.0)
        svc.flush()
        sent = svc.sent
        ds.wait_detected(lambda: api.get("/metrics").text, {"traces": sent.spans, "logs": sent.logs,
                                                            "metrics": sent.points})
    downstream.wait_for(lambda: downstream.span_count() == sent.spans
                        and downstream.log_record_count() == sent.logs
                        and downstream.metric_point_count() == sent.points, timeout=30, what="forwarding")

    # health: readiness once the kernels are warm, a real database round trip
    wait_until(lambda: api.get("/readyz").status_code == 200, 60, "/readyz 200")
    db = api.get("/healthz/db")
    assert db.status_code == 200, db.text
    assert db.json()["backend"] == "postgres" and db.json()["latency_seconds"] > 0

    # an API key created by the CLI on the same database is accepted by the running API
    assert api.get("/v1/anomalies").status_code == 401
    secret = cli_create_admin_key(Path(gw.config.data_dir), pg_dsn)
    authorized = api.get("/v1/anomalies", headers={"Authorization": f"Bearer {secret}"})
    assert authorized.status_code == 200, authorized.text
    assert any(item["stream_id"] == ds.SPAN_STREAM for item in authorized.json()["items"])
    assert api.get("/v1/streams", headers={"X-API-Key": secret}).status_code == 200
    assert api.get("/v1/anomalies", headers={"Authorization": f"Bearer {secret}x"}).status_code == 401

    text = api.get("/metrics").text
    live = live_series(text)
    # every runbook series, with its labels, has samples
    for name, labels in RUNBOOK_SERIES.items():
        assert name in live and "*" not in live[name].labels, f"{name} has no sample in the live /metrics"
        assert labels <= live[name].labels, (name, live[name].labels)
    # the counters moved with the traffic
    for noun, n in (("spans", sent.spans), ("log_records", sent.logs), ("metric_points", sent.points)):
        assert ds.metric_value(text, f"otelcol_receiver_accepted_{noun}_total", transport="grpc") == n
        assert ds.metric_value(text, f"otelcol_exporter_sent_{noun}_total") == n
    assert ds.metric_value(text, "driftlock_anomalies_detected_total", stream_type="traces") > 0
    assert ds.metric_value(text, "driftlock_anomaly_processing_duration_seconds_count") > 0
    assert ds.metric_value(text, "driftlock_cbad_compression_ratio", stream_type="traces") > 1
    assert ds.metric_value(text, "driftlock_http_requests_total", status="200") > 0
    assert ds.metric_value(text, "driftlock_http_requests_total", status="401") >= 2
    assert ds.metric_value(text, "driftlock_http_request_duration_seconds_count") > 0
    assert ds.metric_value(text, "driftlock_db_connections_total", connection_state="open") > 0
    assert ds.metric_value(text, "driftlock_memory_allocated_bytes") > 0
    assert ds.metric_value(text, "driftlock_memory_heap_bytes") > 0
    assert ds.metric_value(text, "driftlock_goroutines") > 0
    assert ds.metric_value(text, "driftlock_anomaly_ncd_threshold") == pytest.approx(1e-3)
    # what the dashboard and the alert rules read is there
    problems = missing_names(dashboard_and_rule_queries(), {**live, **recorded_names(live)})
    assert not problems, "\n".join(problems)
