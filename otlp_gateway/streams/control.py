"""``StreamControl`` over the live pipeline: API changes reach the in-memory detector at once.

A change of profile/baseline/window/hop/false_alarm_target starts a new detector for the stream (it warms
up again; offsets continue); ``enabled: false`` pauses scoring and keeps the detector. Changes are
persisted in the store's ``StreamInfo.settings`` so they survive restarts and eviction. A profile set
through the API is also kept in ``settings["profile"]`` so it wins over the configuration file.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

from otlp_gateway.store.base import StreamInfo, all_streams
from otlp_gateway.streams.changes import InvalidStreamChange, UnknownStreamError, apply_changes
from otlp_gateway.streams.live import detector_spec
from otlp_gateway.streams.routing import StreamKey, check_profile, resolve_stream_config

if TYPE_CHECKING:
    from otlp_gateway.detection.stage import Pipeline


class PipelineStreamControl:
    def __init__(self, pipeline: Pipeline):
        self._pipeline = pipeline

    async def get_stored(self, stream_id: str) -> StreamInfo | None:
        store = self._pipeline.store
        return await store.get_stream(stream_id) if store is not None else None

    async def list_streams(self) -> list[StreamInfo]:
        store = self._pipeline.store
        stored = await all_streams(store) if store is not None else []
        live = {s.key.stream_id: self._pipeline.stream_info(s) for s in self._pipeline.live_streams()}
        merged = [live.pop(info.stream_id, info) for info in stored]
        merged.extend(live.values())
        return sorted(merged, key=lambda info: info.stream_id)

    async def get_stream(self, stream_id: str) -> StreamInfo | None:
        stream = self._pipeline.live_stream(stream_id)
        if stream is not None:
            return self._pipeline.stream_info(stream)
        return await self.get_stored(stream_id)

    async def update_stream(self, stream_id: str, changes: dict[str, Any]) -> StreamInfo:
        pipeline = self._pipeline
        current = await self.get_stream(stream_id)
        if current is None:
            raise UnknownStreamError(stream_id)
        updated = apply_changes(current, changes)
        settings = dict(updated.settings)
        if "profile" in changes:
            settings["profile"] = updated.profile
        key = StreamKey(current.stream_id, current.signal, current.service, current.name)
        config = resolve_stream_config(pipeline.settings, key, settings)
        try:
            check_profile(config)
        except ValueError as exc:
            raise InvalidStreamChange(str(exc)) from None
        updated = dataclasses.replace(updated, profile=config.profile, settings=settings,
                                      updated_at=dt.datetime.now(dt.UTC))
        stream = pipeline.live_stream(stream_id)
        if stream is not None:
            stream.api_settings = settings
            cfg = pipeline.settings
            stream.desired_spec = detector_spec(key.signal, cfg.seed, cfg.compressor, config)
            updated = pipeline.stream_info(stream)
            if stream.desired_spec.identity() != stream.spec.identity():
                updated = dataclasses.replace(updated, state="warming", profile=config.profile)
        if pipeline.store is not None:
            await pipeline.store.upsert_stream(updated)
        return updated
