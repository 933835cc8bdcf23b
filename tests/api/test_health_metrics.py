"""Health endpoints per phase, /metrics names and labels moving with traffic, and the rate limit."""

from __future__ import annotations

import re

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from otlp_gateway.health import Phase

from .conftest import LiveApi, auth


def test_health_codes_follow_the_phase(live_api: LiveApi):
    get, health = live_api.client.get, live_api.health
    for phase, code in ((Phase.STARTING, 503), (Phase.SERVING, 200), (Phase.DRAINING, 503)):
        health.set_phase(phase)
        response = get("/healthz")
        assert response.status_code == code and response.json()["phase"] == phase.value
    health.set_phase(Phase.SERVING)


def test_readyz_needs_every_component(live_api: LiveApi):
    get, health = live_api.client.get, live_api.health
    health.set_ready("jit", False)
    health.set_ready("store", True)
    response = get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "not_ready", "phase": "serving", "components": {"jit": False,
                                                                                         "store": True,
                                                                                         "api": True},
                               "reasons": {"jit": "not ready yet"}}
    health.set_ready("jit", True)
    assert get("/readyz").status_code == 200
    health.set_phase(Phase.DRAINING)
    assert get("/readyz").json()["status"] == "not_ready"


def test_db_health_is_a_real_round_trip(live_api: LiveApi):
    ok = live_api.client.get("/healthz/db")
    assert ok.status_code == 200
    assert ok.json()["backend"] == "sqlite" and ok.json()["latency_seconds"] >= 0
    live_api.run(live_api.store.close())
    failing = live_api.client.get("/healthz/db")
    assert failing.status_code == 503 and failing.json()["status"] == "failing" and failing.json()["error"]
    live_api.run(live_api.store.open())
    assert live_api.client.get("/healthz/db").status_code == 200


def test_config_health_identifies_the_config_without_revealing_secrets(live_api: LiveApi):
    body = live_api.client.get("/healthz/config").json()
    assert body == {"status": "ok", "loaded": True, "valid": True,
                    "config_hash": live_api.config.config_hash(),
                    "loaded_at": live_api.ctx.loaded_at.isoformat(),
                    "secrets_set": {"receiver.bearer_token": False, "exporter.headers": False,
                                    **{f"exporter.signals.{s}.headers": False
                                       for s in ("traces", "metrics", "logs")},
                                    "store.database_url": False, "notify.alertmanager.headers": False,
                                    "notify.webhook.secret": False, "notify.webhook.headers": False,
                                    "api.jwt_secret": True}, "errors": []}
    # the hash is over the configuration without its secrets: another JWT secret gives the same hash
    other = live_api.config.model_copy(update={"api": live_api.config.api.model_copy(
        update={"jwt_secret": SecretStr("z" * 40)})})
    assert other.config_hash() == live_api.config.config_hash()


def _scrape(api: LiveApi) -> dict[str, list]:
    response = api.client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    return {fam.name: fam.samples for fam in text_string_to_metric_families(response.text)}


def test_metrics_exist_with_documented_labels_and_move(live_api: LiveApi, read_key: str):
    families = _scrape(live_api)
    for name in ("driftlock_http_requests", "driftlock_http_request_duration_seconds",
                 "driftlock_memory_allocated_bytes", "driftlock_memory_heap_bytes", "driftlock_goroutines",
                 "driftlock_rate_limited_requests", "driftlock_anomalies_detected"):
        assert name in families, name
    assert families["driftlock_memory_allocated_bytes"][0].value > 10_000_000
    assert families["driftlock_memory_heap_bytes"][0].value > 0
    assert families["driftlock_goroutines"][0].value >= 2  # the test thread + the loop thread at least

    ok_before = live_api.metric("driftlock_http_requests_total", {"status": "200"})
    unauth_before = live_api.metric("driftlock_http_requests_total", {"status": "401"})
    count_before = live_api.metric("driftlock_http_request_duration_seconds_count")
    for _ in range(3):
        live_api.client.get("/v1/anomalies", headers=auth(read_key))
    live_api.client.get("/v1/anomalies")
    assert live_api.metric("driftlock_http_requests_total", {"status": "200"}) == ok_before + 3
    assert live_api.metric("driftlock_http_requests_total", {"status": "401"}) == unauth_before + 1
    assert live_api.metric("driftlock_http_request_duration_seconds_count") == count_before + 4
    # the runbook's rules select on status; no label carries a path, key or client
    text = live_api.client.get("/metrics").text
    labels = set(re.findall(r'^driftlock_http_requests_total\{([a-z_]+)=', text, re.M))
    assert labels == {"status"}


def test_burst_beyond_the_bucket_gets_429_with_retry_after(live_api_factory):
    api = live_api_factory(rps=0.5, burst=3)
    codes = [api.client.get("/v1/anomalies").status_code for _ in range(5)]
    assert codes[:3] == [401, 401, 401]  # within the burst: reaches auth
    assert codes[3:] == [429, 429]
    limited = api.client.get("/v1/streams")
    assert limited.status_code == 429 and limited.json()["error"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert api.metric("driftlock_rate_limited_requests_total", {"surface": "api"}) == 3
    assert api.metric("driftlock_http_requests_total", {"status": "429"}) == 3
    assert api.client.get("/healthz").status_code == 200  # health and metrics are never throttled
    assert api.client.get("/metrics").status_code == 200


def test_store_outage_is_503_with_retry_after_not_500(live_api: LiveApi, read_key: str):
    assert live_api.client.get("/v1/anomalies", headers=auth(read_key)).status_code == 200
    live_api.run(live_api.store.close())
    response = live_api.client.get("/v1/anomalies", headers=auth(read_key))
    assert response.status_code == 503 and response.json()["error"] == "unavailable"
    assert int(response.headers["retry-after"]) >= 1
    live_api.run(live_api.store.open())
    assert live_api.client.get("/v1/anomalies", headers=auth(read_key)).status_code == 200
