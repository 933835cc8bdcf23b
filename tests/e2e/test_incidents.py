"""An incident end to end through a real gateway: the OpenTelemetry SDK sends a service's logs, a burst of
a new error template opens an incident, the real Alertmanager gets the alert with the link to the incident
page, ``/metrics`` and the API show it, an operator key resolves it and the alert ends.

The detectors are the real engine: the burst opens an incident through their tracker; it stays open
until the operator resolves it or, once the burst has left the window, after the profile's normal windows.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest

from otlp_gateway.api import cli_create_key, password_hasher
from tests.e2e import detect_support as ds
from tests.fixtures.alertmanager import AlertmanagerProcess
from tests.fixtures.gateway import wait_until

PUBLIC = "https://driftlock.example"


def test_an_incident_pages_and_an_operator_resolves_it(threaded_gateway, alertmanager: AlertmanagerProcess,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    gw = threaded_gateway(notify={"alertmanager": {"url": alertmanager.url}, "resend_interval_seconds": 1},
                          api={"public_url": PUBLIC})
    _, operator = asyncio.run_coroutine_threadsafe(
        cli_create_key(gw.gateway.store, "on-call", "operator", password_hasher(gw.config.api.key_hash)),
        gw.loop).result(30)
    api = httpx.Client(base_url=gw.api_url, headers={"Authorization": f"Bearer {operator}"}, timeout=10)
    injected = ds.Injected()
    with ds.shop_service(gw.grpc_endpoint) as svc:
        svc.normal_logs(ds.WARM_EVENTS)
        svc.incident_logs(injected)
        svc.normal_logs(ds.TAIL_EVENTS)

    def open_incidents() -> list[dict]:
        return api.get("/v1/incidents", params={"status": "open"}).json()["items"]

    [incident] = wait_until(open_incidents, 60, "an open incident")
    assert (incident["stream_id"], incident["service"], incident["signal"]) == (ds.LOG_STREAM, "shop", "logs")
    assert incident["url"] == f"{PUBLIC}/incidents/{incident['id']}"
    detail = api.get(f"/v1/incidents/{incident['id']}").json()
    assert detail["evidence"] and all(e["time_unix_nano"] for e in detail["evidence"])
    assert detail["fields"] and detail["summary"]
    # the scores up to the opening were written when it opened (the rest every 10 s)
    assert sum(p["anomalous"] for p in detail["series"]["points"]) >= 1

    def alert() -> dict | None:
        held = [a for a in alertmanager.alerts() if a["annotations"].get("incident_id") == incident["id"]]
        return held[0] if held else None

    paged = wait_until(alert, 30, "the alert in alertmanager")
    assert paged["labels"]["service"] == "shop" and paged["labels"]["stream"] == ds.LOG_STREAM
    assert paged["generatorURL"] == incident["url"]
    metrics = httpx.get(f"{gw.api_url}/metrics").text
    assert ds.metric_value(metrics, "driftlock_incidents_open", service="shop", signal="logs") == 1
    assert ds.metric_value(metrics, "driftlock_anomalies_detected_total", service="shop") >= 1

    resolved = api.post(f"/v1/incidents/{incident['id']}/resolve", json={"note": "card processor back"})
    assert resolved.status_code == 200 and resolved.json()["status"] == "resolved"
    wait_until(lambda: alert() is None, 30, "the alert to end")
    metrics = httpx.get(f"{gw.api_url}/metrics").text
    assert ds.metric_value(metrics, "driftlock_incidents_open", service="shop", signal="logs") == 0
    # the live detector took the action: nothing waits for it
    pending = asyncio.run_coroutine_threadsafe(gw.gateway.store.pending_incident_actions(), gw.loop)
    assert pending.result(10) == []
    api.close()
