"""Detection settings: profiles, stream routing, bounds."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from otlp_gateway.settings_base import StrictModel

Profile = Literal["sensitive", "balanced", "strict"]


class StreamOverride(StrictModel):
    match: str
    """Glob over the stream key ``signal/service/name`` (for example ``traces/checkout/*``)."""
    profile: Profile | None = None
    baseline: int | None = Field(None, gt=0)
    window: int | None = Field(None, gt=0)
    hop: int | None = Field(None, gt=0)
    false_alarm_target: float | None = Field(None, gt=0, lt=1)
    enabled: bool = True


class DetectionSettings(StrictModel):
    enabled: bool = True
    """Run anomaly detection (off: the gateway only forwards)."""
    profile: Profile = "balanced"
    """Default window profile: sensitive 200/30/10 (target 1e-2), balanced 400/50/10 (1e-3), strict
    800/100/20 (1e-4)."""
    seed: int = 42
    """Seed of every detector: the same input and seed give the same anomalies."""
    compressor: Literal["cm", "zlib", "zstd"] = "cm"
    """cm: the numba context model (default, fastest); zlib and zstd: real compressors, primed with the
    baseline."""
    stream_key: list[str] = ["signal", "service.name", "name"]
    """Parts of the stream key; ``name`` is span name / metric name / log scope name. An explicit
    ``driftlock.stream_id`` attribute on the item or resource overrides the whole key."""
    max_item_attributes: int = Field(128, ge=0)
    """Attributes of one span or log record that enter detection (the first ones on the wire; the rest are
    still forwarded). Counted in ``driftlock_detection_capped_attributes{reason="item_attributes"}``."""
    max_request_keys: int = Field(1024, ge=0, le=1_000_000)
    """Distinct attribute keys of one request that enter detection (the first ones on the wire; the rest are
    still forwarded). Counted in ``driftlock_detection_capped_attributes{reason="request_keys"}``."""
    overrides: list[StreamOverride] = []
    """Per-stream settings, first matching glob wins."""
    max_live_streams: int = Field(1_000, gt=0)
    """Least recently used streams beyond this are snapshotted to the store and evicted. A live log or span
    stream holds about 0.7 MiB (the context model's count table plus the retained events), so the default
    bounds detector memory near 700 MiB."""
    queue_max_events: int = Field(1_000_000, gt=0)
    """Events waiting for a detector; beyond it events are forwarded unscored and counted."""
    workers: int = Field(2, gt=0)
    """Detection threads (numba kernels release the GIL); streams are sharded over them."""
    snapshot_interval_seconds: float = Field(60.0, gt=0)
    """How often live detector state is snapshotted to the store (also on shutdown)."""
