"""Wiring: build every component from the configuration; start them downstream first, stop upstream first.

Start order (tiers of ``Components``): anomaly store -> API -> anomaly writer -> notifier -> incident sink
-> exporter -> kernel warm-up -> detection stage -> memory limiter -> receivers (gRPC and HTTP together)
-> the API application (FastAPI, built on a worker thread: the API server answers the health probes and
holds other requests until then).
Shutdown walks the other way, so each component drains into a live consumer: the receivers stop accepting
(new requests get a retry hint) and finish in-flight requests, the detection stage finishes in-flight
detection and snapshots its streams, the exporter delivers within the grace period (the rest stays in its
spool), the incident sink hands its last score buckets to the writer, the notifier delivers what it can
(the rest stays in its outboxes), the anomaly writer flushes, the API stops answering (it reports the
drain until then), the store closes.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, cast

from otlp_gateway import __version__
from otlp_gateway.component import Components
from otlp_gateway.config import GatewayConfig
from otlp_gateway.health import HealthState, Phase
from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.startup_notes import admin_key_advice, describe_store, ui_url
from otlp_gateway.store.errors import StoreUnavailableError
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

if TYPE_CHECKING:  # the components import grpc, uvicorn, numba: loaded only when the gateway starts
    from otlp_gateway.api import ApiServer
    from otlp_gateway.detection import DetectionStage
    from otlp_gateway.durable import DataDirBudget
    from otlp_gateway.exporter import Exporter
    from otlp_gateway.incidents.notify import Notifier
    from otlp_gateway.incidents.sink import IncidentSink
    from otlp_gateway.receiver import OtlpGrpcReceiver, OtlpHttpReceiver
    from otlp_gateway.receiver.decoding import DecodePool
    from otlp_gateway.receiver.memory_limiter import MemoryLimiter
    from otlp_gateway.store import AnomalyWriter
    from otlp_gateway.store.base import AnomalyStore, ApiKeyStore, IncidentRecord
    from otlp_gateway.store.maintenance import StreamPruner

log = logging.getLogger("otlp_gateway")


class Gateway:
    """One gateway process: owns its metrics registry, health state and every component."""

    def __init__(self, config: GatewayConfig, config_path: str | None = None):
        """``config_path``: the file the configuration came from, quoted in the start-up advice."""
        self.config = config
        self.config_path = config_path
        self.metrics = GatewayMetrics(max_services=config.incidents.metrics_max_services)
        self.health = HealthState()
        self.rate_limiter = TokenBucket(config.api.rate_limit.rps, config.api.rate_limit.burst)
        """The API's shared bucket (GLOBAL_RATE_LIMIT_*); ingest has its own below."""
        ingest = config.receiver.rate_limit
        self.ingest_rate_limiter = TokenBucket(ingest.rps, ingest.burst) if ingest.enabled else None
        self.data_dir = Path(config.data_dir)
        self.components = Components()
        self.store: AnomalyStore | None = None
        self.writer: AnomalyWriter | None = None
        self.budget: DataDirBudget | None = None
        self.pruner: StreamPruner | None = None
        self.exporter: Exporter | None = None
        self.stage: DetectionStage | None = None
        self.incidents: IncidentSink | None = None
        self.notifier: Notifier | None = None
        self.api: ApiServer | None = None
        self.grpc_receiver: OtlpGrpcReceiver | None = None
        self.http_receiver: OtlpHttpReceiver | None = None
        self.decoder: DecodePool | None = None
        self.memory_limiter: MemoryLimiter | None = None
        self._stopped = asyncio.Event()
        self._shutdown_started = False

    # ----------------------------------------------------------------------------------------------- start
    async def start(self) -> None:
        """Build and start every component; a failure names the component (``ComponentStartError``)."""
        self.build()
        await self.components.start_all()
        self.health.set_ready("receivers", True)
        self.health.set_phase(Phase.SERVING)
        log.info("driftlock otlp-gateway %s serving: grpc=%s http=%s api=%s", __version__, self.grpc_port,
                 self.http_port, self.api_port)
        ui = ui_url(self.config, self.api_port)
        log.info("web UI %s; REST API %sv1 (OpenAPI %sopenapi.json), metrics %smetrics, health %shealthz",
                 ui, ui, ui, ui, ui, extra={"ui_url": ui})

    def build(self) -> Components:
        """Construct every component from the configuration, in start order (nothing runs yet)."""
        from otlp_gateway.api import ApiApplicationLoader, ApiContext, ApiServer
        from otlp_gateway.detection import DetectionStage
        from otlp_gateway.durable import DataDirBudget
        from otlp_gateway.exporter import Exporter
        from otlp_gateway.incidents.notify import Notifier
        from otlp_gateway.incidents.records import IncidentLinks
        from otlp_gateway.incidents.sink import IncidentSink
        from otlp_gateway.jit import KernelWarmup
        from otlp_gateway.otlp.codec import ExtractionOptions
        from otlp_gateway.receiver import AdmissionController, OtlpGrpcReceiver, OtlpHttpReceiver
        from otlp_gateway.receiver.decoding import DecodePool
        from otlp_gateway.receiver.memory_limiter import MemoryLimiter
        from otlp_gateway.receiver.refusals import IngestRefusals
        from otlp_gateway.store import AnomalyWriter, open_store
        from otlp_gateway.store.maintenance import StreamPruner
        from otlp_gateway.streams.control import StreamControl

        if self.components.items():
            raise RuntimeError("the gateway's components are already built")
        cfg = self.config
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log.info("data directory %s (export and anomaly spools); anomaly store: %s", self.data_dir,
                 describe_store(cfg, self.data_dir),
                 extra={"data_dir": str(self.data_dir),
                        "store_backend": "postgres" if cfg.store.database_url is not None else "sqlite"})
        for name in ("jit", "store", "receivers"):
            self.health.set_ready(name, False)

        self.store = open_store(cfg.store, self.data_dir, self.metrics)
        self.writer = AnomalyWriter(self.store, self.data_dir / "anomaly-spool", cfg.store, self.metrics)
        # the exporter itself states at start-up whether it forwards or runs detection-only
        self.budget = DataDirBudget(self.data_dir, cfg.data_dir_budget_bytes, self.metrics)
        self.health.set_ready("data_dir", True)
        self.budget.on_change(lambda exhausted: self.health.set_ready("data_dir", not exhausted))
        self.exporter = Exporter(cfg.exporter, self.data_dir, self.metrics, budget=self.budget)
        links = IncidentLinks(lambda: cfg.api.public_url or ui_url(cfg, self.api_port))
        if cfg.notify.enabled:
            self.notifier = Notifier(cfg.notify, self.data_dir, links, self.metrics, self._open_incidents)
        self.incidents = IncidentSink(self.writer, self.store, self.metrics, cfg.incidents, links,
                                      self.notifier)
        self.stage = DetectionStage.create(cfg.detection, self.exporter, self.writer, self.store,
                                           self.metrics, engine_version=__version__, incidents=self.incidents)
        if not cfg.detection.enabled:
            log.warning("detection disabled: the gateway only forwards")
        streams = StreamControl(cfg.detection.stream_settings(), self.store, self.stage.streams)
        self.api = ApiServer(ApiContext(config=cfg, store=self.store, metrics=self.metrics,
                                        health=self.health, streams=streams, rate_limiter=self.rate_limiter,
                                        incidents=self.incidents))
        admission = AdmissionController(cfg.receiver.admission, self.metrics)
        refusals = IngestRefusals(cfg.receiver.readiness)
        self.health.add_condition("ingest", refusals.reason)
        limiter = self.ingest_rate_limiter
        memory = None
        if cfg.receiver.memory_limiter.enabled:
            memory = self.memory_limiter = MemoryLimiter(cfg.receiver.memory_limiter, self.metrics)
            self.health.add_condition("memory", memory.reason)
        # one decode pool for both receivers; with detection on it also extracts the events
        extraction = ExtractionOptions.of(cfg.detection) if cfg.detection.enabled else None
        decoder = DecodePool(cfg.receiver.decode_workers, extraction)
        if cfg.receiver.grpc_enabled:
            self.grpc_receiver = OtlpGrpcReceiver(cfg.receiver, self.stage, self.metrics, self.health,
                                                  admission, limiter, refusals, decoder, memory)
        if cfg.receiver.http_enabled:
            self.http_receiver = OtlpHttpReceiver(cfg.receiver, self.stage, self.metrics, self.health,
                                                  admission, limiter, refusals, decoder, memory)

        self.components.add(("anomaly store", StoreComponent(self.store, cfg.store, self.health,
                                                             on_ready=self._advise_on_access)))
        self.components.add(("API", self.api))
        self.components.add(("anomaly writer", self.writer))
        if self.notifier is not None:
            self.components.add(("notifier", self.notifier))
        self.components.add(("incident sink", self.incidents))
        self.components.add(("stream pruner", StreamPruner(self.store, cfg.store, self.metrics,
                                                           budget=self.budget)))
        self.components.add(("exporter", self.exporter))
        # measured first once the store and both spools are open
        self.components.add(("data dir budget", self.budget))
        warmup = KernelWarmup(self.health, cfg.detection.seed, enabled=cfg.detection.enabled)
        self.components.add(("kernel warm-up", warmup))
        self.components.add(("detection stage", self.stage))
        self.components.add(("request decoders", decoder))
        if memory is not None:  # reads memory before the receivers take the first request
            self.components.add(("memory limiter", memory))
        receivers = (("OTLP gRPC receiver", self.grpc_receiver), ("OTLP HTTP receiver", self.http_receiver))
        self.components.add(*((name, r) for name, r in receivers if r is not None))
        # the API server answers probes from its start; its application loads once ingest is open
        self.components.add(("API application", ApiApplicationLoader(self.api, after=warmup.finished)))
        return self.components

    def _open_incidents(self) -> list[IncidentRecord]:
        return self.incidents.resendable_incidents() if self.incidents is not None else []

    async def _advise_on_access(self) -> None:
        """Say how to get past the 401 every /v1 call answers until an admin key exists."""
        assert self.store is not None
        try:
            keys = await cast("ApiKeyStore", self.store).list_api_keys()
        except Exception:  # advice only: never let it stop the start
            log.warning("could not list API keys for the start-up advice", exc_info=True)
            return
        advice = admin_key_advice(self.config, self.data_dir, self.config_path, keys)
        if advice:
            log.warning(advice)

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
        self.health.set_phase(Phase.DRAINING)
        log.info("draining (grace %.1f s)", grace)
        await self.components.shutdown_all(grace)
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


class StoreComponent:
    """The anomaly store as a component: opened at start and its schema migrated (or checked); a database
    down at start is retried in the background, since ingest and forwarding must not wait for it
    (anomalies spool on disk meanwhile; readiness ``store`` stays false). Closed last."""

    def __init__(self, store: AnomalyStore, settings: StoreSettings, health: HealthState,
                 on_ready: Callable[[], Awaitable[None]] | None = None):
        """``on_ready``: awaited once the schema is ready (the start-up advice on API keys)."""
        self._store = store
        self._settings = settings
        self._health = health
        self._on_ready = on_ready
        self._retry: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._store.open()
        try:
            await self._prepare()
        except StoreUnavailableError as exc:
            log.warning("anomaly store unreachable at start (%s); retrying in the background", exc)
            self._retry = asyncio.create_task(self._prepare_until_reachable())

    async def shutdown(self, grace: float = 0.0) -> None:
        """Idempotent, safe without ``start`` (closing an unopened store does nothing)."""
        if self._retry is not None:
            self._retry.cancel()
        await self._store.close()

    async def _prepare(self) -> None:
        from otlp_gateway.store.prepare import prepare_store

        await prepare_store(self._store, self._settings)
        await self._ready()

    async def _prepare_until_reachable(self) -> None:
        from otlp_gateway.store.prepare import prepare_until_ready

        await prepare_until_ready(self._store, self._settings)  # the store's backoff (store.retry)
        await self._ready()

    async def _ready(self) -> None:
        self._health.set_ready("store", True)
        if self._on_ready is not None:
            await self._on_ready()

