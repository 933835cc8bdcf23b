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
    profile: Profile = "balanced"
    seed: int = 42
    compressor: Literal["cm", "zlib", "zstd"] = "cm"
    stream_key: list[str] = ["signal", "service.name", "name"]
    """Parts of the stream key; ``name`` is span name / metric name / log scope name. An explicit
    ``driftlock.stream_id`` attribute on the item or resource overrides the whole key."""
    overrides: list[StreamOverride] = []
    max_live_streams: int = Field(1_000, gt=0)
    """Least recently used streams beyond this are snapshotted to the store and evicted. A live log or span
    stream holds about 0.7 MiB (the context model's count table plus the retained events), so the default
    bounds detector memory near 700 MiB."""
    queue_max_events: int = Field(1_000_000, gt=0)
    workers: int = Field(2, gt=0)
    snapshot_interval_seconds: float = Field(60.0, gt=0)
