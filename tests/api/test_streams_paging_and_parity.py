"""``/v1/streams``: cursor pages (it used to answer every stream at once), and a PATCH answered the same
whether detection runs or not (it used to depend on it)."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import grpc
import httpx

from otlp_gateway.store.base import StreamInfo
from tests.fixtures.gateway import ThreadedGateway
from tests.fixtures.waiting import wait_until
from tests.otlp.otlp_data import logs_request, normal_logs

from .conftest import LiveApi, auth, make_stream

LOGS_EXPORT = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
STREAM = "logs/checkout/app.orders"
OVERRIDES = [{"match": "logs/checkout/*", "window": 40}]


def test_streams_are_paged_with_a_cursor(live_api: LiveApi, read_key: str) -> None:
    ids = [f"traces/svc{i % 9}/op-{i:04d}" for i in range(230)]
    for sid in ids:
        live_api.run(live_api.store.upsert_stream(make_stream(sid, state="warming" if sid.endswith("7")
                                                              else "active")))
    get = live_api.client.get
    headers = auth(read_key)
    first = get("/v1/streams", headers=headers).json()
    assert len(first["items"]) == 100 and first["next_cursor"]  # the default page, not everything
    seen: list[str] = []
    cursor = None
    while True:
        page = get("/v1/streams", params={"limit": 80, **({"cursor": cursor} if cursor else {})},
                   headers=headers).json()
        seen += [s["stream_id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(ids)
    warming = get("/v1/streams", params={"state": "warming", "limit": 1000}, headers=headers).json()
    assert [s["stream_id"] for s in warming["items"]] == sorted(s for s in ids if s.endswith("7"))
    bad = get("/v1/streams", params={"cursor": "not-a-cursor"}, headers=headers)
    assert bad.status_code == 400 and "cursor" in bad.json()["detail"]
    assert get("/v1/streams", params={"limit": 1001}, headers=headers).status_code == 422
    assert get("/v1/streams", params={"limit": 0}, headers=headers).status_code == 422


def test_services_are_the_streams_distinct_services(live_api: LiveApi, read_key: str) -> None:
    """The incidents list's service suggestions: one distinct query, not every stream's record."""
    get = live_api.client.get
    headers = auth(read_key)
    assert get("/v1/services", headers=headers).json() == {"items": [], "truncated": False}
    for i in range(60):
        live_api.run(live_api.store.upsert_stream(make_stream(f"traces/svc{i % 9}/op-{i:04d}")))
    assert get("/v1/services", headers=headers).json() == {"items": [f"svc{i}" for i in range(9)],
                                                           "truncated": False}
    assert get("/v1/services", params={"limit": 4}, headers=headers).json() == {
        "items": ["svc0", "svc1", "svc2", "svc3"], "truncated": True}
    assert get("/v1/services", params={"limit": 9}, headers=headers).json()["truncated"] is False
    assert get("/v1/services", params={"limit": 0}, headers=headers).status_code == 422
    assert get("/v1/services").status_code == 401


def _patch(gw: ThreadedGateway, body: dict[str, Any]) -> httpx.Response:
    return httpx.patch(f"{gw.api_url}/v1/streams/{STREAM}", json=body, timeout=30)


def _state(gw: ThreadedGateway) -> str:
    return httpx.get(f"{gw.api_url}/v1/streams/{STREAM}", timeout=10).json()["state"]


def _stored_row(gw: ThreadedGateway) -> None:
    """The stream as an earlier run left it in the store."""
    info = StreamInfo(stream_id=STREAM, signal="logs", service="checkout", name="app.orders", state="evicted",
                      profile="balanced", settings={}, events_seen=500, updated_at=dt.datetime.now(dt.UTC))
    assert gw.gateway.store is not None
    asyncio.run_coroutine_threadsafe(gw.gateway.store.upsert_stream(info), gw.loop).result(30)


def test_a_patch_gets_the_same_answer_with_detection_on_and_off(threaded_gateway) -> None:
    answers = {}
    for detection in (False, True):
        gw = threaded_gateway(detection={"enabled": detection, "overrides": OVERRIDES},
                              api={"auth_required": False})
        _stored_row(gw)
        if detection:  # and live in the detection stage
            payload = logs_request(normal_logs(30, 1)).SerializeToString()
            with grpc.insecure_channel(gw.grpc_endpoint) as channel:
                channel.unary_unary(LOGS_EXPORT, request_serializer=None, response_deserializer=None)(
                    payload, timeout=30)
            wait_until(lambda gw=gw: _state(gw) == "warming", 60, "the stream to be live")
        # window 40 from the configuration's override: a hop of 45 is impossible, 30 is fine
        refused, accepted = _patch(gw, {"hop": 45}), _patch(gw, {"hop": 30})
        effective = accepted.json()["effective"]
        answers[detection] = (refused.status_code, accepted.status_code, effective["window"],
                              effective["hop"])
        assert "hop <= window" in refused.json()["detail"]
        gw.stop()
    assert answers[False] == answers[True] == (409, 200, 40, 30), answers
