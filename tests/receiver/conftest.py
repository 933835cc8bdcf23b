"""Receiver test harness: real gRPC and HTTP receivers on 127.0.0.1:0 in a background event loop, feeding a
small recording next stage that can be told to fail or to hold requests."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from otlp_gateway.batch import TelemetryBatch
from otlp_gateway.health import HealthState, Phase
from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.receiver import AdmissionController, OtlpGrpcReceiver, OtlpHttpReceiver
from otlp_gateway.receiver.decoding import DecodePool
from otlp_gateway.receiver.settings import ReceiverSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.fixtures.waiting import wait_until  # noqa: F401  (re-exported for the receiver tests)


class RecordingConsumer:
    """The next stage: records every batch; can raise chosen errors or hold calls until released."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.batches: list[TelemetryBatch] = []
        self._failures: list[BaseException] = []
        self._held = False
        self._release: asyncio.Event | None = None
        self.waiting = 0
        """Calls currently held."""

    async def consume(self, batch: TelemetryBatch) -> None:
        with self._lock:
            failure = self._failures.pop(0) if self._failures else None
            held = self._held
            if held and self._release is None:
                self._release = asyncio.Event()
            release = self._release
        if failure is not None:
            raise failure
        if held and release is not None:
            with self._lock:
                self.waiting += 1
            try:
                await release.wait()
            finally:
                with self._lock:
                    self.waiting -= 1
        with self._lock:
            self.batches.append(batch)

    def fail_next(self, *errors: BaseException) -> None:
        with self._lock:
            self._failures.extend(errors)

    def hold(self) -> None:
        with self._lock:
            self._held = True

    def release(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._held = False
            event, self._release = self._release, None
        if event is not None:
            loop.call_soon_threadsafe(event.set)

    def items(self, signal: str | None = None) -> int:
        with self._lock:
            return sum(b.item_count for b in self.batches if signal in (None, b.signal))

    def snapshot(self) -> list[TelemetryBatch]:
        with self._lock:
            return list(self.batches)


@dataclass
class Receivers:
    settings: ReceiverSettings
    metrics: GatewayMetrics
    health: HealthState
    consumer: RecordingConsumer
    admission: AdmissionController
    grpc: OtlpGrpcReceiver
    http: OtlpHttpReceiver
    loop: asyncio.AbstractEventLoop

    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc.port}"

    @property
    def http_url(self) -> str:
        scheme = "https" if self.settings.tls.enabled else "http"
        return f"{scheme}://127.0.0.1:{self.http.port}"

    def run(self, coro, timeout: float = 30.0):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def release(self) -> None:
        self.consumer.release(self.loop)

    def sample(self, name: str, labels: dict[str, str] | None = None) -> float:
        return self.metrics.registry.get_sample_value(name, labels or {}) or 0.0


class _LoopThread:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="receiver-loop", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


@pytest.fixture
def start_receivers() -> Iterator[Callable[..., Receivers]]:
    """``start_receivers(rate_limiter=None, phase=Phase.SERVING, **settings)`` -> running ``Receivers``."""
    started: list[Receivers] = []
    pools: list[DecodePool] = []
    loop_thread = _LoopThread()

    def start(rate_limiter: TokenBucket | None = None, phase: Phase = Phase.SERVING,
              decoder: DecodePool | None = None, **overrides: Any) -> Receivers:
        settings = ReceiverSettings.model_validate(
            {"grpc_listen": "127.0.0.1:0", "http_listen": "127.0.0.1:0", **overrides})
        metrics, health, consumer = GatewayMetrics(), HealthState(), RecordingConsumer()
        admission = AdmissionController(settings.admission, metrics)
        args = (settings, consumer, metrics, health, admission, rate_limiter)
        if decoder is not None:  # one pool for both receivers, as the gateway wires them
            decoder.warm_up()
            pools.append(decoder)
        rx = Receivers(settings, metrics, health, consumer, admission,
                       OtlpGrpcReceiver(*args, decoder=decoder), OtlpHttpReceiver(*args, decoder=decoder),
                       loop_thread.loop)
        rx.run(rx.grpc.start())
        rx.run(rx.http.start())
        for receiver in (rx.grpc, rx.http):  # the fast path, not the upb one used while kernels compile
            assert receiver._core.decoder.wait_for_kernels(120), "the codec's kernels never became ready"
        health.set_phase(phase)
        started.append(rx)
        return rx

    yield start
    for rx in started:
        rx.release()
        rx.run(rx.grpc.shutdown(1.0))
        rx.run(rx.http.shutdown(1.0))
    for pool in pools:
        pool.close()
    loop_thread.stop()
