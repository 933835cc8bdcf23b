"""Alert rules, their promtool unit tests, the PrometheusRule copy and the Grafana dashboard all name
series the gateway really exposes."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.deploy.render_prometheus_rule import render as render_prometheus_rule
from tests.deploy.support import (
    MONITORING,
    REPO,
    SCRAPE_LABELS,
    Series,
    emitted_series,
    load_yaml,
    references,
    render,
    require_tool,
    resolve,
    run,
)

RULES = MONITORING / "alert-rules.yaml"
RULE_TESTS = MONITORING / "alert-rules.test.yaml"
DASHBOARD = MONITORING / "grafana-dashboard.json"

# The runbook's alerts (Monitoring & Alerting > Alerting Rules): name here -> its expression there.
RUNBOOK_ALERTS = {
    "DriftlockApiServerDown": 'up{job="driftlock-api"} == 0',
    "DriftlockHighErrorRate":
        'rate(http_requests_total{status=~"5.."}[5m]) / rate(http_requests_total[5m]) > 0.05',
    "DriftlockHighLatency": "histogram_quantile(0.95, rate(http_request_duration_seconds_bucket[5m])) > 1",
    "DriftlockDatabaseConnectivity": 'driftlock_db_connections_total{connection_state="failed"} > 0',
    "DriftlockHighAnomalyRate": "rate(driftlock_anomalies_detected_total[5m]) > 100",
    "DriftlockMemoryPressure": "driftlock_memory_heap_bytes / (1024*1024*1024) > 0.8",
    "DriftlockConnectionPoolExhaustion": 'driftlock_db_connections_total{connection_state="max"} > 0',
    "DriftlockLowProcessingRate": "driftlock_cbad_events_per_second < 10",
    "DriftlockConfigurationChange": "sum(changes(driftlock_anomaly_ncd_threshold[5m])) > 0",
}
# Runbook expressions that are wrong as written; the rule file explains each correction and so must
# docs/operations.md.
CORRECTED = {"DriftlockHighErrorRate"}


def _rules() -> list[dict]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def _recorded() -> dict[str, Series]:
    """Series the recording rules create, with the labels of the series they copy."""
    emitted = emitted_series()
    recorded = {}
    for rule in _rules():
        if "record" in rule:
            (source,) = references(rule["expr"])
            recorded[rule["record"]] = Series(rule["record"], emitted[source.name].labels)
    return recorded


def _normalise(expr: str) -> str:
    return re.sub(r"\s+", "", expr)


def _check_expression(expr: str, known: dict[str, Series], where: str) -> list[str]:
    problems = []
    refs = references(expr)
    if not refs:
        problems.append(f"{where}: names no metric: {expr!r}")
    for ref in refs:
        matched = resolve(ref, known)
        if not matched:
            problems.append(f"{where}: {ref.name or ref.name_pattern!r} is not a series the gateway emits")
            continue
        for series in matched:
            unknown = ref.labels - series.labels - SCRAPE_LABELS
            if unknown:
                problems.append(f"{where}: {series.name} has no label(s) {sorted(unknown)}")
    return problems


# --------------------------------------------------------------------------------------------- promtool
def test_promtool_check_rules_accepts_the_rule_file():
    promtool = require_tool("promtool")
    result = run([promtool, "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    promtool = require_tool("promtool")
    result = run([promtool, "test", "rules", RULE_TESTS.name], cwd=MONITORING)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_promtool_unit_tests_catch_a_wrong_threshold(tmp_path: Path):
    """The unit tests can fail: move one threshold and they must."""
    promtool = require_tool("promtool")
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    text = RULES.read_text(encoding="utf-8")
    mutated = text.replace("driftlock_memory_heap_bytes / (1024*1024*1024) > 0.8",
                           "driftlock_memory_heap_bytes / (1024*1024*1024) > 0.9")
    assert mutated != text
    (tmp_path / RULES.name).write_text(mutated, encoding="utf-8")
    result = run([promtool, "test", "rules", RULE_TESTS.name], cwd=tmp_path)
    assert result.returncode != 0
    assert "DriftlockMemoryPressure" in result.stdout + result.stderr


def test_every_alert_has_a_firing_and_a_quiet_case():
    cases: dict[str, dict[str, bool]] = {name: {"fires": False, "quiet": False} for name in _alerts()}
    for test in load_yaml(RULE_TESTS)["tests"]:
        instances = {m.group(1) for s in test["input_series"]
                     for m in [re.search(r'instance="([^"]+)"', s["series"])] if m}
        for check in test.get("alert_rule_test", []):
            seen = cases.setdefault(check["alertname"], {"fires": False, "quiet": False})
            expected = check.get("exp_alerts") or []
            if expected:
                seen["fires"] = True
                alerted = {a["exp_labels"].get("instance") for a in expected}
                if instances - alerted:  # another input series must stay quiet in the same case
                    seen["quiet"] = True
            else:
                seen["quiet"] = True
    assert set(cases) == set(_alerts()), f"tests for unknown alerts: {set(cases) - set(_alerts())}"
    missing = {name: seen for name, seen in cases.items() if not all(seen.values())}
    assert not missing, f"alerts without a firing and a quiet case: {missing}"


# ------------------------------------------------------------------------------- runbook and names
def test_every_runbook_alert_is_defined():
    alerts = _alerts()
    missing = set(RUNBOOK_ALERTS) - set(alerts)
    assert not missing, missing
    for name, runbook_expr in RUNBOOK_ALERTS.items():
        ours = _normalise(alerts[name]["expr"])
        if name in CORRECTED:
            assert ours != _normalise(runbook_expr)
        else:
            assert ours == _normalise(runbook_expr), f"{name} must keep the runbook's expression"


def test_corrected_runbook_expressions_are_documented():
    operations = (REPO / "docs" / "operations.md").read_text(encoding="utf-8")
    for name in CORRECTED:
        assert name in operations, f"docs/operations.md must explain why {name} differs from the runbook"


def test_rules_read_only_emitted_or_recorded_series():
    known = {**emitted_series(), **_recorded(), "up": Series("up", frozenset({"job", "instance"}))}
    problems = []
    for rule in _rules():
        source = emitted_series() if "record" in rule else known
        problems += _check_expression(rule["expr"], source, rule.get("alert") or rule["record"])
    assert not problems, "\n".join(problems)


def test_recording_rules_give_the_runbook_names_to_real_series():
    recorded = _recorded()
    assert {"http_requests_total", "http_request_duration_seconds_bucket"} <= set(recorded)
    assert "status" in recorded["http_requests_total"].labels
    assert "le" in recorded["http_request_duration_seconds_bucket"].labels


def test_reference_reader_rejects_unknown_names_and_labels():
    """The name check itself can fail."""
    known = emitted_series()
    assert _check_expression("rate(http_requests_total[5m])", known, "x")
    assert _check_expression('driftlock_http_requests_total{code="500"}', known, "x")
    assert _check_expression("sum by (pod_name) (driftlock_streams_live)", known, "x")
    assert not _check_expression('sum by (status) (rate(driftlock_http_requests_total{status="500"}[5m]))',
                                 known, "x")


# ---------------------------------------------------------------------------------- PrometheusRule
def test_prometheus_rule_carries_the_same_groups():
    assert (MONITORING / "prometheus-rule.yaml").read_text(encoding="utf-8") == render_prometheus_rule(), (
        "k8s/monitoring/prometheus-rule.yaml is stale: run python tests/deploy/render_prometheus_rule.py")


def test_monitoring_kustomization_renders_rules_and_dashboard():
    docs = render("monitoring")
    kinds = sorted((d["kind"], d["metadata"]["name"]) for d in docs)
    assert kinds == [("ConfigMap", "driftlock-alert-rules"), ("ConfigMap", "driftlock-grafana-dashboard"),
                     ("PrometheusRule", "driftlock-api")]
    dashboard_map = next(d for d in docs if d["metadata"]["name"] == "driftlock-grafana-dashboard")
    assert dashboard_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    shipped = json.loads(dashboard_map["data"]["driftlock-otlp-gateway.json"])
    assert shipped == json.loads(DASHBOARD.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------- dashboard
def _dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append((panel["title"], target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            inner = re.fullmatch(r"label_values\((.*),\s*\w+\)", variable["definition"])
            assert inner, variable["definition"]
            queries.append((f"variable {variable['name']}", inner.group(1)))
    return queries


def test_dashboard_queries_name_only_emitted_series():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    known = {**emitted_series(), "up": Series("up", frozenset({"job", "instance"}))}
    queries = _dashboard_queries(dashboard)
    assert len(queries) >= 20
    problems = [p for title, expr in queries for p in _check_expression(expr, known, title)]
    assert not problems, "\n".join(problems)


def test_dashboard_covers_the_runbook_key_metrics_and_is_well_formed():
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    text = " ".join(expr for _, expr in _dashboard_queries(dashboard))
    for family in ("driftlock_goroutines", "driftlock_memory_allocated_bytes",
                   "driftlock_db_connections_total", "driftlock_http_requests_total",
                   "driftlock_http_request_duration_seconds",
                   "driftlock_anomalies_detected_total", "driftlock_anomaly_processing_duration_seconds",
                   "driftlock_cbad_events_per_second", "driftlock_cbad_compression_ratio",
                   "otelcol_exporter_queue_size", "otelcol_receiver_accepted_spans_total",
                   "driftlock_incidents_open", "driftlock_incidents_total",
                   "driftlock_false_incident_rate_measured", "driftlock_notifications_failed_total"):
        assert family in text, f"dashboard lacks {family}"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel["targets"], panel["title"]


@pytest.mark.parametrize("path", [RULES, RULE_TESTS, MONITORING / "prometheus-rule.yaml"])
def test_monitoring_files_are_valid_yaml(path: Path):
    assert load_yaml(path)


def test_incidents_page_and_anomaly_rates_do_not():
    """The paging alert is per service on open incidents; the runbook's anomaly-rate rule stays, low."""
    alerts = _alerts()
    page = alerts["DriftlockIncidentOpen"]
    assert page["labels"] == {"severity": "critical", "priority": "high"}
    assert "by (service, signal)" in page["expr"] and "driftlock_incidents_open" in page["expr"]
    assert alerts["DriftlockIncidentOpenWarning"]["labels"]["priority"] == "medium"
    assert alerts["DriftlockHighAnomalyRate"]["labels"] == {"severity": "info", "priority": "low"}
    paging = [name for name, rule in alerts.items() if rule["labels"]["priority"] == "high"
              and "anomalies_detected" in rule["expr"]]
    assert paging == []


def test_every_runbook_url_points_at_a_section_of_the_operations_guide():
    headings = re.findall(r"^#+ (.+)$", (REPO / "docs" / "operations.md").read_text(encoding="utf-8"), re.M)
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
    for name, rule in _alerts().items():
        url = rule["annotations"]["runbook_url"]
        assert url.startswith("docs/operations.md#"), name
        assert url.split("#", 1)[1] in anchors, f"{name}: no section for {url}"
