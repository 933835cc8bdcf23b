"""A database that is down at start-up must not stop ingest and forwarding."""

from __future__ import annotations

import httpx

from tests.e2e.test_forwarding import _send_acknowledged, received_spans
from tests.fixtures.gateway import free_port, wait_until
from tests.fixtures.otlp_payloads import trace_request


def test_gateway_serves_and_forwards_while_postgres_is_unreachable(downstream, threaded_gateway) -> None:
    dead_dsn = f"postgresql://driftlock@127.0.0.1:{free_port()}/driftlock?connect_timeout=1"
    gw = threaded_gateway(forward_to=downstream.endpoint, store={"database_url": dead_dsn})
    api = httpx.Client(base_url=gw.api_url, timeout=10)
    assert api.get("/healthz").status_code == 200
    ready = api.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["components"]["store"] is False
    assert api.get("/healthz/db").status_code == 503

    request = trace_request(30, seed=5)
    _send_acknowledged(gw.grpc_endpoint, [request.SerializeToString()])
    expected = {s.span_id for rs in request.resource_spans for ss in rs.scope_spans for s in ss.spans}
    wait_until(lambda: set(received_spans(downstream)) == expected, what="forwarding without a database")
