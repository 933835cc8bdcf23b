"""Profiling endpoints and the server's lifecycle contract (the web UI: tests/ui)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from otlp_gateway.api import ApiServer

from .conftest import LiveApi, auth


def _busy_loop_work(api: LiveApi, stop: threading.Event) -> threading.Thread:
    """Keep the gateway's loop doing Python work while it is being profiled."""

    async def spin() -> None:
        while not stop.is_set():
            sum(range(200_000))  # C-level work: the profiler's per-call hooks cannot slow it down
            await asyncio.sleep(0.002)  # leave the loop room to serve the profiling requests themselves

    thread = threading.Thread(target=lambda: api.run(spin(), timeout=60), daemon=True)
    thread.start()
    return thread


def _spin_frame_name() -> str:
    return "spin"


def test_cpu_profile_samples_the_whole_loop(live_api: LiveApi, admin_key: str):
    stop = threading.Event()
    worker = _busy_loop_work(live_api, stop)
    try:
        text = live_api.client.post("/v1/debug/profile", params={"seconds": 0.5}, headers=auth(admin_key))
        speedscope = live_api.client.post("/v1/debug/profile", headers=auth(admin_key),
                                          params={"seconds": 0.3, "format": "speedscope"})
    finally:
        stop.set()
        worker.join(10)
    assert text.status_code == 200 and text.headers["content-type"].startswith("text/plain")
    assert int(text.headers["x-profile-samples"]) > 10
    assert _spin_frame_name() in text.text  # another task's frames, not only the request's own
    assert speedscope.status_code == 200
    assert "speedscope" in json.loads(speedscope.text)["$schema"]
    too_long = live_api.client.post("/v1/debug/profile", params={"seconds": 3600}, headers=auth(admin_key))
    assert too_long.status_code == 422 and too_long.json()["fields"][0]["path"] == "query.seconds"


def test_memory_report(live_api: LiveApi, admin_key: str):
    response = live_api.client.get("/v1/debug/memory", params={"top": 5, "seconds": 0.2},
                                   headers=auth(admin_key))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["rss_bytes"] > 0 and body["traced_seconds"] >= 0.2
    assert len(body["object_types"]) == 5 and body["object_types"][0]["count"] > 100
    assert len(body["top_allocations"]) <= 5


def test_profiling_can_be_disabled(live_api_factory):
    api = live_api_factory(api_overrides={"profiling_enabled": False})
    key = api.new_key("admin")
    response = api.client.post("/v1/debug/profile", params={"seconds": 1}, headers=auth(key))
    assert response.status_code == 404 and "disabled" in response.json()["detail"]


def test_server_lifecycle(live_api: LiveApi):
    unstarted = ApiServer(live_api.ctx)
    live_api.run(unstarted.shutdown(1.0))  # safe without start
    live_api.run(unstarted.shutdown(1.0))
    clash = live_api.config.model_copy(deep=True)
    clash.api.listen = f"127.0.0.1:{live_api.server.port}"
    taken = ApiServer(type(live_api.ctx)(**{**live_api.ctx.__dict__, "config": clash}))
    with pytest.raises(OSError, match="cannot listen"):
        live_api.run(taken.start())
    live_api.run(live_api.server.shutdown(1.0))
    live_api.run(live_api.server.shutdown(1.0))  # idempotent
    with pytest.raises(Exception):  # noqa: B017 - any connection error: nothing listens any more
        live_api.client.get("/healthz")
