"""A real API on a real SQLite store: uvicorn on 127.0.0.1:0 inside an event loop on a background thread.

Tests drive it with a plain ``httpx.Client`` (and schemathesis over HTTP) and reach the store through
``LiveApi.run`` so all store calls happen on the loop that opened it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from otlp_gateway.api import ApiContext, ApiServer, cli_create_key, password_hasher
from otlp_gateway.config import GatewayConfig
from otlp_gateway.health import HealthState, Phase
from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.store.base import AnomalyRecord, StreamInfo
from otlp_gateway.store.sqlite import SqliteStore
from otlp_gateway.streams.control import StreamControl
from otlp_gateway.telemetry.metrics import GatewayMetrics

T = TypeVar("T")
JWT_SECRET = "0123456789abcdef0123456789abcdef-test-secret"
CALL_TIMEOUT = 30.0
# Still argon2id, at a cost a shared 2-core test machine can afford many times per test; the
# production default (64 MiB, t=3, p=4) is exercised by test_default_hash_cost.
FAST_HASH = {"time_cost": 1, "memory_kib": 1024, "parallelism": 1}


class LiveApi:
    def __init__(self, tmp_path: Path, *, rps: float = 10_000.0, burst: int = 10_000,
                 api_overrides: dict[str, Any] | None = None):
        api: dict[str, Any] = {"listen": "127.0.0.1:0", "jwt_secret": JWT_SECRET, "key_hash": FAST_HASH,
                               "rate_limit": {"rps": rps, "burst": burst, "per_client_rps": rps,
                                              "per_client_burst": burst, "per_key_rps": rps,
                                              "per_key_burst": burst}}
        api.update(api_overrides or {})
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.config = GatewayConfig.model_validate({"data_dir": str(tmp_path), "api": api})
        self.metrics = GatewayMetrics()
        self.health = HealthState()
        self.store = SqliteStore(tmp_path / "api-test.db")
        self.bucket = TokenBucket(self.config.api.rate_limit.rps, self.config.api.rate_limit.burst)
        self.ctx = ApiContext(config=self.config, store=self.store, metrics=self.metrics, health=self.health,
                              streams=StreamControl(self.config.detection.stream_settings(), self.store),
                              rate_limiter=self.bucket)
        self.server = ApiServer(self.ctx)
        self.hasher = password_hasher(self.config.api.key_hash)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="live-api", daemon=True)
        self._thread.start()
        self.run(self._start())
        self.url = f"http://127.0.0.1:{self.server.port}"
        self.client = httpx.Client(base_url=self.url, timeout=CALL_TIMEOUT)

    async def _start(self) -> None:
        await self.store.open()
        await self.store.migrate()
        await self.server.start()
        await self.server.load_app()
        self.health.set_phase(Phase.SERVING)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = CALL_TIMEOUT) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    def close(self) -> None:
        self.client.close()
        self.run(self.server.shutdown(2.0))
        self.run(self.store.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    # --- helpers

    def new_key(self, role: str = "admin", name: str = "test") -> str:
        _, presented = self.run(cli_create_key(self.store, name, role, self.hasher))
        return presented

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        value = self.metrics.registry.get_sample_value(name, labels or {})
        return 0.0 if value is None else value


def auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def wait_for(condition: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    delay = 0.005
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)


BASE_TIME = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


def make_anomaly(i: int, *, stream_id: str = "traces/checkout/GET /cart", service: str = "checkout",
                 signal: str = "traces", severity: str = "high") -> AnomalyRecord:
    start = BASE_TIME + dt.timedelta(minutes=i)
    return AnomalyRecord(
        stream_id=stream_id, signal=signal, service=service, window_start_offset=i * 10,
        window_end_offset=i * 10 + 50, window_start=start, window_end=start + dt.timedelta(seconds=30),
        score=3.5 + i, p_value=1e-4, severity=severity,  # type: ignore[arg-type]
        figures={"novelty_bits_per_event": 2.25, "ncd": 0.61},
        explanation={"sentence": f"span names never seen in the baseline ({i})", "tokens": ["x"]},
        evidence=[{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331"}],
        detector="cbad", config_hash="abc123", seed=42, engine_version="0.1.0",
        detected_at=start + dt.timedelta(seconds=31))


def make_stream(stream_id: str = "traces/checkout/GET /cart", state: str = "active") -> StreamInfo:
    signal, service, name = stream_id.split("/", 2)
    return StreamInfo(stream_id=stream_id, signal=signal, service=service, name=name,
                      state=state, profile="balanced", settings={},  # type: ignore[arg-type]
                      events_seen=1234, updated_at=BASE_TIME)


@pytest.fixture
def live_api_factory(tmp_path: Path) -> Iterator[Callable[..., LiveApi]]:
    made: list[LiveApi] = []

    def make(**kwargs: Any) -> LiveApi:
        api = LiveApi(tmp_path / f"api{len(made)}", **kwargs)
        made.append(api)
        return api

    yield make
    for api in made:
        api.close()


@pytest.fixture
def live_api(live_api_factory: Callable[..., LiveApi]) -> LiveApi:
    return live_api_factory()


@pytest.fixture
def admin_key(live_api: LiveApi) -> str:
    return live_api.new_key("admin", "test-admin")


@pytest.fixture
def read_key(live_api: LiveApi) -> str:
    return live_api.new_key("read", "test-reader")
