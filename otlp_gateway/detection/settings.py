"""Detection settings: profiles, stream routing, per-stream overrides, bounds, the ingest budget."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from otlp_gateway.settings_base import Duration, StrictModel
from otlp_gateway.streams.ownership import OwnershipSettings
from otlp_gateway.streams.settings import (
    InvalidStreamSettings,
    ProfileName,
    StreamOverride,
    StreamSettingsResolver,
)

__all__ = ["DetectionSettings", "StreamOverride"]


class DetectionSettings(StrictModel):
    enabled: bool = True
    """Run anomaly detection (off: the gateway only forwards)."""
    profile: ProfileName = "balanced"
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
    """Per-stream settings: every entry whose glob matches applies, in order (a later one wins a field both
    set); settings changed through the API win over them. Each entry must be a consistent profile on top
    of ``profile``."""
    max_live_streams: int = Field(1_000, gt=0)
    """Least recently used streams beyond this are snapshotted to the store and evicted. A live log or span
    stream with a full baseline holds about 49 KiB of heap at rest (its retained events compressed, the count
    table held compact between calls, the field test, the ring of recent items; docs/benchmarks.md), so the
    default bounds detectors' heap near 50 MiB."""
    queue_max_events: int = Field(1_000_000, gt=0)
    """Events waiting for a detector; beyond it events are forwarded unscored and counted."""
    queue_max_bytes: int = Field(32 << 20, gt=0)
    """Request bytes waiting for a detector (requests forwarded before their decision included); beyond it
    requests are forwarded unscored and counted, so a detection backlog cannot grow memory without bound
    (an empty backlog takes one request of any size)."""
    budget_ms: float = Field(250.0, ge=0)
    """Longest a request waits for its detection decision before it is forwarded unannotated (it is still
    scored afterwards, in order, and its anomalies stored; counted in driftlock_annotation_skipped_total).
    Normal requests are decided in a few ms; the bound keeps a slow request, or kernels compiling on a
    first start, from stalling the clients."""
    workers: int = Field(2, gt=0)
    """Detection threads (numba kernels release the GIL); streams are sharded over them."""
    detector_processes: bool = False
    """Run each detection worker's span and log detectors in a process of its own (one per ``workers``),
    so their per-window Python runs beside the gateway's instead of under its GIL. Same results either way;
    each process costs ~50 MiB of its own (130 MiB resident, counting the pages it shares with the
    forkserver that starts them, ~45 MiB) besides the detectors it holds, which move out of the gateway's
    process. A process that dies is replaced; its streams start over with fresh detectors."""
    extract_processes: int = Field(0, ge=0, le=64)
    """Worker processes extracting the events of requests forwarded before detection took them (detection
    was behind): extraction is mostly Python, and in a process of its own it does not hold the gateway's
    GIL. 0 (default): the stage's one extraction thread does it. Same results either way; each process
    costs ~180 MiB resident, and no gain was measured yet (docs/benchmarks.md)."""
    snapshot_interval_seconds: Duration = Field(60.0, gt=0)
    """How often live detector state is snapshotted to the store (also on shutdown)."""
    ownership: OwnershipSettings = OwnershipSettings()
    """Scale-out: a lease per stream in the store, so gateways sharing one Postgres score each stream once
    and hand it over with its snapshot when the collector's ring moves it (docs/operations.md)."""
    jit_cache_dir: str | None = None
    """numba's cache of compiled kernels. Unset: ``NUMBA_CACHE_DIR`` when set, else a per-user cache
    directory (never inside the installed package). ``otlp-gateway warmup`` fills the same directory."""

    @model_validator(mode="after")
    def _overrides_are_consistent(self) -> DetectionSettings:
        resolver = self.stream_settings()
        for i, override in enumerate(self.overrides):
            try:
                resolver.check_override(override)
            except InvalidStreamSettings as exc:
                raise ValueError(f"overrides.{i} (match {override.match!r}): {exc}") from None
        return self

    def stream_settings(self) -> StreamSettingsResolver:
        """How streams' settings resolve under this configuration."""
        return StreamSettingsResolver(self.profile, self.overrides)
