"""The API server answers the probes before its application is built, holds other requests until it is, and
says so when it cannot be built (otlp_gateway/api/front.py)."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from otlp_gateway.api import ApiServer, server

from .conftest import CALL_TIMEOUT, LiveApi


def test_probes_answer_while_the_application_loads_and_other_requests_wait_for_it(live_api: LiveApi):
    fresh = ApiServer(live_api.ctx)  # listens on another port of the same gateway state
    live_api.run(fresh.start())
    try:
        assert fresh.app is None
        with httpx.Client(base_url=f"http://127.0.0.1:{fresh.port}", timeout=CALL_TIMEOUT) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            assert ready.json() == live_api.client.get("/readyz").json()  # the same answer as the API's
            assert client.get("/healthz").json() == {"status": "ok", "phase": "serving"}
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                held = pool.submit(client.get, "/v1/streams")
                with pytest.raises(concurrent.futures.TimeoutError):
                    held.result(timeout=0.5)  # held, not refused, while nothing has been built
                live_api.run(fresh.load_app())
                answer = held.result(timeout=CALL_TIMEOUT)
            assert answer.status_code == 401 and answer.json()["error"] == "unauthorized"
            assert fresh.app is not None
            assert client.get("/openapi.json").status_code == 200  # served by the application now
    finally:
        live_api.run(fresh.shutdown(1.0))


def test_an_application_that_cannot_be_built_makes_the_gateway_unready(live_api: LiveApi,
                                                                       monkeypatch: pytest.MonkeyPatch):
    def broken(ctx: object) -> None:
        raise RuntimeError("route table is broken")

    monkeypatch.setattr(server, "_build_app", broken)
    fresh = ApiServer(live_api.ctx)
    live_api.run(fresh.start())
    try:
        live_api.run(fresh.load_app())
        with httpx.Client(base_url=f"http://127.0.0.1:{fresh.port}", timeout=CALL_TIMEOUT) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["reasons"] == {
                "api": "the API application could not be built: RuntimeError: route table is broken"}
            refused = client.get("/v1/streams")
            assert refused.status_code == 503 and "route table is broken" in refused.json()["detail"]
    finally:
        live_api.run(fresh.shutdown(1.0))
