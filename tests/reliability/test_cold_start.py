"""First start with an empty JIT cache: no client-visible failure while the kernels compile, and the
compiled kernels are cached in the configured directory, never beside the installed sources.

The gateway runs as a child process from an installed copy of the package (outside the repository,
read-only) with an empty ``detection.jit_cache_dir``; the OpenTelemetry SDK's own gRPC span exporter, with
its default 10 s timeout, sends 1,000 spans. Compiling every kernel takes about a minute here; meanwhile
requests are forwarded within ``detection.budget_ms`` and detection catches up afterwards. The gateway
used to hold requests while compiling, and the SDK dropped them (DEADLINE_EXCEEDED: 256 of 1,000 spans
lost).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otlp_gateway.jit import kernel_sources_digest
from tests.e2e.detect_support import metric_value
from tests.fixtures.gateway import REPO, GatewayProcess, gateway_config_dict
from tests.fixtures.waiting import wait_until

SPANS = 1000


class RecordingExporter(SpanExporter):
    """The SDK's real exporter, with every ``export`` result kept (a FAILURE is spans the SDK dropped)."""

    def __init__(self, inner: SpanExporter):
        self.inner = inner
        self.results: list[tuple[int, SpanExportResult]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.results.append((len(spans), result))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)


class Complaints(logging.Handler):
    """Warnings and errors the SDK logs (retries, failed exports)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(f"{record.name}: {record.getMessage()}")


def _installed_copy(site: Path) -> None:
    """The package as ``pip install .`` lays it out, made read-only (as site-packages often is)."""
    for package in ("otlp_gateway", "detectors"):
        shutil.copytree(REPO / package, site / package, ignore=shutil.ignore_patterns("__pycache__"))
    for root, dirs, files in os.walk(site):
        for name in files:
            os.chmod(Path(root) / name, 0o444)
        for name in dirs:
            os.chmod(Path(root) / name, 0o555)


def _cache_files(directory: Path) -> list[Path]:
    return [p for p in directory.rglob("*") if p.suffix in (".nbi", ".nbc")]


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Path]:
    site = tmp_path / "site"
    _installed_copy(site)
    yield site
    for root, dirs, _ in os.walk(site):  # writable again, so pytest can delete it
        for name in dirs:
            os.chmod(Path(root) / name, 0o755)


def test_first_start_with_an_empty_jit_cache_loses_nothing(tmp_path: Path, site: Path, downstream) -> None:
    jit = tmp_path / "jit"
    config = gateway_config_dict(tmp_path / "data", forward_to=downstream.endpoint,
                                 api={"auth_required": False}, detection={"jit_cache_dir": str(jit)})
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env["XDG_CACHE_HOME"] = str(tmp_path / "user-cache")  # nothing may come from (or go to) the real one
    gateway = GatewayProcess(config, tmp_path, cwd=site, env=env).start()
    complaints = Complaints()
    sdk_logger = logging.getLogger("opentelemetry")
    sdk_logger.addHandler(complaints)
    try:
        exporter = RecordingExporter(OTLPSpanExporter(endpoint=gateway.grpc_endpoint, insecure=True))
        provider = TracerProvider(resource=Resource.create({"service.name": "first-start"}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        tracer = provider.get_tracer("cold-start")
        for i in range(SPANS):
            with tracer.start_as_current_span(f"GET /item/{i % 5}") as span:
                span.set_attribute("http.response.status_code", 200)
        assert provider.force_flush(120_000), "the SDK could not flush"
        readiness = httpx.get(gateway.api_url + "/readyz", timeout=10).json()
        provider.shutdown()

        assert sum(n for n, _ in exporter.results) == SPANS
        assert all(result is SpanExportResult.SUCCESS for _, result in exporter.results), exporter.results
        assert not complaints.records, complaints.records
        # the premise: every span was acknowledged while the kernels were still compiling
        assert readiness["components"]["jit"] is False, readiness

        downstream.wait_for(lambda: downstream.span_count() == SPANS, timeout=60, what="every span forwarded")
        metrics = lambda: httpx.get(gateway.api_url + "/metrics", timeout=10).text  # noqa: E731
        wait_until(lambda: metric_value(metrics(), "driftlock_detector_events_total", stream_type="traces")
                   == SPANS, 300, "detection to catch up with every span")
        assert metric_value(metrics(), "driftlock_annotation_skipped_total", signal="traces") > 0
        wait_until(lambda: httpx.get(gateway.api_url + "/readyz", timeout=10).status_code == 200, 300,
                   "the kernels to be compiled")
    finally:
        sdk_logger.removeHandler(complaints)
        assert gateway.terminate() == 0, gateway.log()

    # compiled into the configured directory, for the installed copy's sources; nothing beside them
    kernels = site / "detectors" / "_kernels"
    keyed = jit / kernel_sources_digest()  # keyed by the kernels' sources: a stale cache is never loaded
    cached = keyed / f"_kernels_{hashlib.sha1(str(kernels).encode()).hexdigest()}"
    assert _cache_files(cached), sorted(str(p.relative_to(jit)) for p in jit.rglob("*") if p.is_dir())
    assert _cache_files(site) == []
    assert not (tmp_path / "user-cache").exists()
