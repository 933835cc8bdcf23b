"""schemathesis against the served OpenAPI document: no 5xx, and every response matches its schema.

A real API on a real SQLite store (seeded with anomalies, streams, incidents and a score series), driven
over HTTP with an admin key. ``/v1/debug`` is left out here (it sleeps for the asked seconds by design; see
test_debug_ui_server).

The document is generated at import from an app built on the same code, and
``test_served_document_is_the_one_fuzzed`` proves the server serves exactly that document.
(schemathesis 4.32's lazy ``from_fixture`` loader fails under pytest 9: it reads ``node._nodeid``.)
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from otlp_gateway.api import ApiContext, create_api_app
from otlp_gateway.config import GatewayConfig
from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.health import HealthState
from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.store.base import ScoreBucket
from otlp_gateway.store.sqlite import SqliteStore
from otlp_gateway.streams.control import StreamControl
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.store.test_incidents import make_incident

from .conftest import LiveApi, auth, make_anomaly, make_stream


@pytest.fixture(scope="module")
def fuzz_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveApi]:
    api = LiveApi(tmp_path_factory.mktemp("fuzz"))
    api.run(api.store.write_anomalies([make_anomaly(i) for i in range(4)]))
    api.run(api.store.upsert_stream(make_stream()))
    stream = make_stream().stream_id
    api.run(api.store.upsert_incidents([make_incident(i, 0, minute=i, stream_id=stream if i == 0 else None,
                                                      status="open" if i % 2 == 0 else "resolved")
                                        for i in range(3)]))
    api.run(api.store.write_scores([ScoreBucket(stream, dt.datetime.now(dt.UTC) - dt.timedelta(minutes=m), 6,
                                                m % 2, 10.0 ** -m, float(m)) for m in range(5)]))
    api.admin_key = api.new_key("admin", "fuzzer")  # type: ignore[attr-defined]
    yield api
    api.close()


def _document() -> dict:
    config = GatewayConfig.model_validate({"api": {"listen": "127.0.0.1:0"}})
    store = SqliteStore(Path("unused.db"))  # never opened: building the app only reads the routes
    ctx = ApiContext(config=config, store=store, metrics=GatewayMetrics(), health=HealthState(),
                     streams=StreamControl(DetectionSettings().stream_settings(), store),
                     rate_limiter=TokenBucket(1, 1))
    return create_api_app(ctx).openapi()


DOCUMENT = _document()
# 400 is a right answer to two kinds of schema-valid input: a cursor this API did not issue, and
# since > until. 422 (a schema/validation mismatch) stays a failure.
FUZZ_CONFIG = SchemathesisConfig.from_dict({"checks": {"positive_data_acceptance": {
    "expected-statuses": ["2xx", "3xx", "400", "401", "403", "404", "409", "429"]}}})
schema = schemathesis.openapi.from_dict(DOCUMENT, config=FUZZ_CONFIG).exclude(path_regex=r"^/v1/debug/")


def test_served_document_is_the_one_fuzzed(fuzz_api: LiveApi):
    assert fuzz_api.client.get("/openapi.json").json() == DOCUMENT


@pytest.mark.slow  # schemathesis: every operation fuzzed against a live API
@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                 HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_openapi_document(case, fuzz_api: LiveApi):
    case.call_and_validate(base_url=fuzz_api.url, headers=auth(fuzz_api.admin_key))  # type: ignore[attr-defined]
