"""Wiring: build every component from the configuration; start downstream-first, stop upstream-first.

Start order (consumers are ready before producers): store -> anomaly writer -> exporter -> pipeline -> API
-> receivers. Shutdown walks the other way so each stage drains into a live consumer:
receivers stop accepting (new requests get a retry hint), in-flight requests finish, the pipeline
snapshots its streams, the exporter delivers within the grace period (the rest stays in its spool),
the anomaly writer flushes, the store closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from collections.abc import Awaitable
from pathlib import Path
from typing import TYPE_CHECKING

from otlp_gateway import __version__
from otlp_gateway.config import GatewayConfig
from otlp_gateway.health import HealthState, Phase
from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.store.errors import StoreUnavailableError
from otlp_gateway.telemetry.metrics import GatewayMetrics

if TYPE_CHECKING:  # the components import grpc, uvicorn, numba: loaded only when the gateway starts
    from otlp_gateway.api import ApiServer
    from otlp_gateway.detection import Pipeline
    from otlp_gateway.exporter import Exporter
    from otlp_gateway.receiver import OtlpGrpcReceiver, OtlpHttpReceiver
    from otlp_gateway.receiver.decoding import DecodePool
    from otlp_gateway.store import AnomalyWriter
    from otlp_gateway.store.base import AnomalyStore

log = logging.getLogger("otlp_gateway")


class Gateway:
    """One gateway process: owns its metrics registry, health state and every component."""

    def __init__(self, config: GatewayConfig):
        self.config = config
        self.metrics = GatewayMetrics()
        self.health = HealthState()
        self.rate_limiter = TokenBucket(config.api.rate_limit.rps, config.api.rate_limit.burst)
        self.data_dir = Path(config.data_dir)
        self.store: AnomalyStore | None = None
        self.writer: AnomalyWriter | None = None
        self.exporter: Exporter | None = None
        self.pipeline: Pipeline | None = None
        self.api: ApiServer | None = None
        self.grpc_receiver: OtlpGrpcReceiver | None = None
        self.http_receiver: OtlpHttpReceiver | None = None
        self.decoder: DecodePool | None = None
        self._stopped = asyncio.Event()
        self._store_task: asyncio.Task[None] | None = None
        self._shutdown_started = False

    # ----------------------------------------------------------------------------------------------- start
    async def start(self) -> None:
        from otlp_gateway.api import ApiContext, ApiServer
        from otlp_gateway.exporter import Exporter
        from otlp_gateway.otlp.codec import ExtractionOptions
        from otlp_gateway.receiver import AdmissionController, OtlpGrpcReceiver, OtlpHttpReceiver
        from otlp_gateway.receiver.decoding import DecodePool
        from otlp_gateway.store import AnomalyWriter, open_store
        from otlp_gateway.streams.changes import StoreStreamControl

        cfg = self.config
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.metrics.anomaly_ncd_threshold.set(_false_alarm_target(cfg))
        for name in ("jit", "store", "receivers"):
            self.health.set_ready(name, False)

        self.store = open_store(cfg.store, self.data_dir, self.metrics)
        await self.store.open()
        log.info("anomaly store: %s", self.store.backend)
        try:
            await self._prepare_store()
        except StoreUnavailableError as exc:
            # The database being down must not stop ingest and forwarding: anomalies spool on disk
            # until it is back; readiness stays false meanwhile.
            log.warning("anomaly store unreachable at start (%s); retrying in the background", exc)
            self._store_task = asyncio.create_task(self._prepare_store_until_reachable())

        self.writer = AnomalyWriter(self.store, self.data_dir / "anomaly-spool", cfg.store, self.metrics)
        await self.writer.start()

        self.exporter = Exporter(cfg.exporter, self.data_dir, self.metrics)
        await self.exporter.start()
        # the exporter itself states at start-up whether it forwards or runs detection-only

        consumer = self.exporter
        stream_control = StoreStreamControl(self.store)
        if cfg.detection.enabled:
            from otlp_gateway.detection import Pipeline

            self.pipeline = Pipeline(cfg.detection, self.exporter, self.writer, self.store, self.metrics,
                                     engine_version=__version__)
            await self.pipeline.start()
            consumer = self.pipeline
            stream_control = self.pipeline.stream_control
            threading.Thread(target=self._warm_jit, name="jit-warmup", daemon=True).start()
        else:
            log.warning("detection disabled: the gateway only forwards")
            self.health.set_ready("jit", True)

        ctx = ApiContext(config=cfg, store=self.store, metrics=self.metrics, health=self.health,
                         streams=stream_control, rate_limiter=self.rate_limiter)
        self.api = ApiServer(ctx)
        await self.api.start()

        admission = AdmissionController(cfg.receiver.admission, self.metrics)
        limiter = self.rate_limiter if cfg.api.rate_limit.apply_to_ingest else None
        # one decode pool for both receivers; with detection on it also extracts the events
        extraction = ExtractionOptions.of(cfg.detection) if cfg.detection.enabled else None
        self.decoder = DecodePool(cfg.receiver.decode_workers, extraction)
        self.decoder.warm_up()
        if cfg.receiver.grpc_enabled:
            self.grpc_receiver = OtlpGrpcReceiver(cfg.receiver, consumer, self.metrics, self.health,
                                                  admission, limiter, self.decoder)
        if cfg.receiver.http_enabled:
            self.http_receiver = OtlpHttpReceiver(cfg.receiver, consumer, self.metrics, self.health,
                                                  admission, limiter, self.decoder)
        for receiver in self.receivers:
            await receiver.start()
        self.health.set_ready("receivers", True)
        self.health.set_phase(Phase.SERVING)
        log.info("driftlock otlp-gateway %s serving: grpc=%s http=%s api=%s", __version__, self.grpc_port,
                 self.http_port, self.api_port)

    async def _prepare_store(self) -> None:
        if self.config.store.migrate_on_start:
            applied = await self.store.migrate()
            if applied:
                log.info("applied migrations: %s", ", ".join(applied))
        else:
            await self.store.ping()
        self.health.set_ready("store", True)

    async def _prepare_store_until_reachable(self) -> None:
        delay = 0.5
        while True:
            await asyncio.sleep(delay)
            try:
                await self._prepare_store()
            except StoreUnavailableError:
                delay = min(delay * 2, 15.0)
                continue
            except Exception:  # e.g. a migration refused: keep trying, readiness stays false, say why
                log.exception("anomaly store: preparing the schema failed; retrying")
                delay = min(delay * 2, 60.0)
                continue
            log.info("anomaly store reachable again")
            return

    def _warm_jit(self) -> None:
        """Compile (or load from cache) every kernel off the loop, then report ready."""
        started = time.perf_counter()
        try:
            warm_up_detectors(self.config)
        except Exception:  # warm-up failing must not kill the process; detection compiles lazily then
            log.exception("JIT warm-up failed; kernels will compile on first use")
        self.health.set_ready("jit", True)
        log.info("detector kernels ready in %.2f s", time.perf_counter() - started)

    # ----------------------------------------------------------------------------------------------- ports
    @property
    def receivers(self) -> list[OtlpGrpcReceiver | OtlpHttpReceiver]:
        return [r for r in (self.grpc_receiver, self.http_receiver) if r is not None]

    @property
    def grpc_port(self) -> int | None:
        return self.grpc_receiver.port if self.grpc_receiver else None

    @property
    def http_port(self) -> int | None:
        return self.http_receiver.port if self.http_receiver else None

    @property
    def api_port(self) -> int | None:
        return self.api.port if self.api else None

    # ----------------------------------------------------------------------------------------------- stop
    async def shutdown(self, grace: float | None = None) -> None:
        """Drain and stop every component; idempotent."""
        if self._shutdown_started:
            await self._stopped.wait()
            return
        self._shutdown_started = True
        grace = self.config.shutdown_grace_seconds if grace is None else grace
        deadline = time.monotonic() + grace
        self.health.set_phase(Phase.DRAINING)
        log.info("draining (grace %.1f s)", grace)
        if self._store_task is not None:
            self._store_task.cancel()

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        for receiver in self.receivers:
            await _quietly(receiver.stop_accepting(), "receiver stop_accepting")
        for receiver in reversed(self.receivers):
            await _quietly(receiver.shutdown(left()), "receiver shutdown")
        if self.decoder is not None:
            self.decoder.shutdown()
        if self.pipeline is not None:
            await _quietly(self.pipeline.shutdown(left()), "pipeline shutdown")
        if self.exporter is not None:
            await _quietly(self.exporter.shutdown(left()), "exporter shutdown")
        if self.writer is not None:
            await _quietly(self.writer.shutdown(left()), "anomaly writer shutdown")
        if self.api is not None:
            await _quietly(self.api.shutdown(min(left(), 2.0)), "api shutdown")
        if self.store is not None:
            await _quietly(self.store.close(), "store close")
        self.health.set_phase(Phase.STOPPED)
        self._stopped.set()
        log.info("stopped")

    async def run_until_signalled(self) -> None:
        """Start, serve until SIGTERM/SIGINT, then drain within the grace period."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            await stop.wait()
            log.info("signal received")
        finally:
            await self.shutdown()


def warm_up_detectors(config: GatewayConfig | None = None) -> None:
    """Run every registered detector on its example events once, so every kernel is compiled (or loaded
    from numba's cache) before the first request needs it."""
    from detectors import registry
    from otlp_gateway.otlp.codec import warm_up as warm_up_codec

    seed = config.detection.seed if config else 0
    for kind in registry.available():
        detector = registry.create(kind, seed=seed)
        detector.update(type(detector).example_events(1000, seed))
    warm_up_codec()


def _false_alarm_target(cfg: GatewayConfig) -> float:
    from detectors.profiles import resolve_profile

    return resolve_profile(cfg.detection.profile).false_alarm_target


async def _quietly(awaitable: Awaitable[object], what: str) -> None:
    try:
        await awaitable
    except Exception:  # one component failing to stop must not keep the others running
        log.exception("%s failed", what)
