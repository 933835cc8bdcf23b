"""How the API reads and changes per-stream detection settings without a restart.

``StreamControl`` is the seam between the API and whoever owns live detectors: the detection pipeline
supplies a live implementation (changes apply to the in-memory detector at once); ``StoreStreamControl``
is the store-backed one (changes are persisted and picked up by whoever loads the stream next).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Protocol

from detectors.profiles import DEFAULT_PROFILE, Profile, resolve_profile
from otlp_gateway.store.base import AnomalyStore, StreamInfo, all_streams

OVERRIDE_KEYS = ("baseline", "window", "hop", "false_alarm_target")
"""Per-stream numeric overrides of the profile, kept in ``StreamInfo.settings``."""
CHANGEABLE_KEYS = ("profile", *OVERRIDE_KEYS, "enabled")


class UnknownStreamError(LookupError):
    """No stream with that id."""


class InvalidStreamChange(ValueError):
    """The change would leave the stream with an impossible configuration (the message says why)."""


class StreamControl(Protocol):
    """Async because the store-backed implementation does I/O; a live one may return at once."""

    async def list_streams(self) -> list[StreamInfo]: ...

    async def get_stream(self, stream_id: str) -> StreamInfo | None: ...

    async def update_stream(self, stream_id: str, changes: dict[str, Any]) -> StreamInfo:
        """Apply ``changes`` (keys from ``CHANGEABLE_KEYS``; ``None`` clears a numeric override).

        Raises ``UnknownStreamError`` or ``InvalidStreamChange``; takes effect without a restart.
        """
        ...


def effective_profile(info: StreamInfo) -> Profile:
    """The profile a stream runs with: its named profile plus its numeric overrides."""
    overrides = {k: info.settings.get(k) for k in OVERRIDE_KEYS}
    return resolve_profile(info.profile or DEFAULT_PROFILE, **overrides)


def apply_changes(info: StreamInfo, changes: dict[str, Any], now: dt.datetime | None = None) -> StreamInfo:
    """Pure: the stream as it would be after ``changes``; raises ``InvalidStreamChange``."""
    unknown = set(changes) - set(CHANGEABLE_KEYS)
    if unknown:
        raise InvalidStreamChange(f"unknown setting(s): {', '.join(sorted(unknown))}")
    settings = dict(info.settings)
    profile = info.profile
    for key, value in changes.items():
        if key == "profile":
            if value is None:
                raise InvalidStreamChange("profile cannot be null")
            profile = str(value)
        elif value is None:
            settings.pop(key, None)
        else:
            settings[key] = value
    updated = dataclasses.replace(info, profile=profile, settings=settings,
                                  updated_at=now or dt.datetime.now(dt.UTC))
    try:
        effective_profile(updated)
    except ValueError as exc:
        raise InvalidStreamChange(str(exc)) from None
    return updated


class StoreStreamControl:
    """``StreamControl`` over the store: reads and persists ``StreamInfo`` rows."""

    def __init__(self, store: AnomalyStore):
        self._store = store

    async def list_streams(self) -> list[StreamInfo]:
        return await all_streams(self._store)

    async def get_stream(self, stream_id: str) -> StreamInfo | None:
        return await self._store.get_stream(stream_id)

    async def update_stream(self, stream_id: str, changes: dict[str, Any]) -> StreamInfo:
        current = await self._store.get_stream(stream_id)
        if current is None:
            raise UnknownStreamError(stream_id)
        updated = apply_changes(current, changes)
        await self._store.upsert_stream(updated)
        return updated
