"""The API's control over streams, the same whether detection runs or not: read and page through them,
change their settings without a restart.

Reads show the live table's view of a stream (fresher state and event count) over the store's row. A
change is applied to the stream's API layer (one ``StreamSettings``, the type the configuration's
overrides use, so the same bounds hold) and resolved with the layers the configuration gives the stream:
it is refused exactly when the stream would run with an impossible profile. Accepted changes are stored
in the stream's row, so they survive restarts and eviction, and reach a live detector at once: a change
of profile/baseline/window/hop/false_alarm_target starts a new detector for the stream (it warms up
again; offsets continue); ``enabled: false`` pauses scoring and keeps the detector.

Operators' closing actions on incidents (resolve, accept, false positive) reach the stream's live detector
(``incident_action``), or wait in the store until the stream next opens.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ValidationError

from detectors.calibration import MIN_CALIBRATION
from detectors.profiles import Profile
from otlp_gateway.store.base import AnomalyStore, IncidentAction, StreamInfo, StreamState
from otlp_gateway.streams.incidents import IncidentActionsUnsupported
from otlp_gateway.streams.live import LiveStream, stream_info
from otlp_gateway.streams.routing import StreamKey
from otlp_gateway.streams.settings import InvalidStreamSettings, StreamSettings, StreamSettingsResolver
from otlp_gateway.streams.table import LiveStreamTable

log = logging.getLogger(__name__)
CHANGEABLE_KEYS = tuple(StreamSettings.model_fields)
ActionOutcome = Literal["applied", "pending", "not_applicable"]
"""``applied``: the live detector took it; ``pending``: it waits for the stream's detector (not live, or
without an incident tracker); ``not_applicable``: the detector has no such open incident."""


class UnknownStreamError(LookupError):
    """No stream with that id."""


class InvalidStreamChange(ValueError):
    """The change would leave the stream with an impossible configuration (the message says why)."""


class InvalidCursorError(ValueError):
    """A cursor this API did not issue."""


@dataclass(frozen=True, slots=True)
class StreamPage:
    items: list[StreamInfo]
    next_cursor: str | None
    """Pass back as ``cursor`` for the next page; ``None`` on the last page."""


class StreamControl:
    def __init__(self, resolver: StreamSettingsResolver, store: AnomalyStore | None,
                 table: LiveStreamTable | None = None):
        self._resolver = resolver
        self._store = store
        self._table = table

    # --- reads ------------------------------------------------------------------------------------
    async def list_streams(self, *, limit: int = 100, cursor: str | None = None,
                           state: StreamState | None = None) -> StreamPage:
        """Streams in stream-id order, at most ``limit`` per page (a page may hold fewer when a live
        stream's state no longer matches ``state``; follow ``next_cursor`` until it is ``None``)."""
        after = decode_cursor(cursor) if cursor is not None else None
        if self._store is not None:
            stored = await self._store.list_streams(after=after, limit=limit, state=state)
            rows, next_after = stored.items, stored.next_after
        else:
            live = sorted((stream_info(s) for s in self._live_streams()
                           if after is None or s.key.stream_id > after), key=lambda i: i.stream_id)
            rows = live[:limit]
            next_after = rows[-1].stream_id if len(live) > limit else None
        items = [self._live_view(info) for info in rows]
        items = [i for i in items if state is None or i.state == state]
        return StreamPage(items, encode_cursor(next_after) if next_after is not None else None)

    async def services(self, limit: int = 1000) -> list[str]:
        """The distinct services of the streams, in code-point order, at most ``limit`` (the store's, as
        ``list_streams``; the live streams' without a store)."""
        if self._store is not None:
            return await self._store.stream_services(limit)
        return sorted({s.key.service for s in self._live_streams()})[:limit]

    async def get_stream(self, stream_id: str) -> StreamInfo | None:
        stream = self._table.get(stream_id) if self._table is not None else None
        if stream is not None:
            return stream_info(stream)
        return await self._store.get_stream(stream_id) if self._store is not None else None

    def effective(self, info: StreamInfo) -> Profile | None:
        """The window profile the stream runs with (``None`` when its stored settings contradict the
        configuration)."""
        try:
            return self._resolver.resolve(stream_key(info), api_layer(info)).window_profile()
        except InvalidStreamSettings:
            return None

    # --- changes ----------------------------------------------------------------------------------
    async def update_stream(self, stream_id: str, changes: Mapping[str, Any]) -> StreamInfo:
        """Apply ``changes`` (fields of ``StreamSettings``; ``None`` clears the API's value of a field).

        Raises ``UnknownStreamError`` or ``InvalidStreamChange``; takes effect without a restart."""
        current = await self.get_stream(stream_id)
        if current is None:
            raise UnknownStreamError(stream_id)
        try:
            api = api_layer(current).changed(changes)
        except ValidationError as exc:
            raise InvalidStreamChange(_first_error(exc)) from None
        try:
            resolved = self._resolver.resolve(stream_key(current), api)
        except InvalidStreamSettings as exc:
            raise InvalidStreamChange(str(exc)) from None
        now = dt.datetime.now(dt.UTC)
        stream = self._table.reconfigure(stream_id, api, resolved) if self._table is not None else None
        if stream is not None:
            updated = stream_info(stream)
            assert stream.desired_spec is not None
            if stream.desired_spec.identity() != stream.spec.identity():
                updated = dataclasses.replace(updated, state="warming")
            updated = dataclasses.replace(updated, profile=resolved.profile_name)
        else:
            updated = dataclasses.replace(current, profile=resolved.profile_name, settings=api.values(),
                                          updated_at=now)
        if self._store is not None:
            await self._store.upsert_stream(updated)
        return updated

    # --- incidents --------------------------------------------------------------------------------
    async def incident_action(self, stream_id: str, seq: int, action: IncidentAction, *,
                              actor: str | None = None, incident_id: str | None = None) -> ActionOutcome:
        """Give the stream's detector an operator's closing action on its incident ``seq``."""
        if self._table is None:
            return "pending"
        try:
            change = await self._table.incident_action(stream_id, seq, action, actor, incident_id)
        except IncidentActionsUnsupported:
            change = None
        except ValueError:
            return "not_applicable"
        except Exception:  # a defect in the detector: the action waits, to be taken when the stream reloads
            log.exception("incident action %s on %s (incident %s) failed; kept pending", action, stream_id,
                          incident_id)
            change = None
        if change is None:
            self._table.note_pending_action(stream_id)
            return "pending"
        return "applied"

    async def open_incident_ids(self, stream_ids: list[str]) -> dict[str, str]:
        """``stream_id -> id`` of each stream's open incident (the store's view; the live streams' without
        a store)."""
        if self._store is not None:
            return await self._store.open_incident_ids(stream_ids)
        live = {s.key.stream_id: s.open_incident_id for s in self._live_streams()}
        return {sid: iid for sid in stream_ids if (iid := live.get(sid)) is not None}

    def warmup(self, info: StreamInfo) -> tuple[int, int]:
        """``(events, needed)``: how far the stream's detector is in its warm-up (events = needed once warm).
        ``needed`` is the baseline plus the windows calibration needs before p-values are trusted."""
        stream = self._table.get(info.stream_id) if self._table is not None else None
        profile = stream.spec.config.window_profile() if stream is not None else self.effective(info)
        if profile is None:
            return 0, 0
        needed = profile.baseline + MIN_CALIBRATION * profile.hop
        if stream is not None:
            return (needed, needed) if stream.detector.warmed_up else (min(stream.detector.events_seen,
                                                                            needed - 1), needed)
        if info.state == "warming":
            return min(info.events_seen, needed - 1), needed
        return needed, needed

    # --- helpers ----------------------------------------------------------------------------------
    def _live_streams(self) -> list[LiveStream]:
        return self._table.streams() if self._table is not None else []

    def _live_view(self, info: StreamInfo) -> StreamInfo:
        stream = self._table.get(info.stream_id) if self._table is not None else None
        return stream_info(stream) if stream is not None else info


def stream_key(info: StreamInfo) -> StreamKey:
    return StreamKey(info.stream_id, info.signal, info.service, info.name)


def api_layer(info: StreamInfo) -> StreamSettings:
    """The layer set through the API, as stored in the stream's row."""
    return StreamSettings.stored(info.settings, info.stream_id)


def encode_cursor(stream_id: str) -> str:
    return base64.urlsafe_b64encode(b"s:" + stream_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        if not raw.startswith(b"s:"):
            raise ValueError("wrong prefix")
        return raw[2:].decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursorError(f"invalid cursor {cursor[:40]!r}: not issued by this API") from None


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "settings"
    return f"{where}: {'unknown setting' if err['type'] == 'extra_forbidden' else err['msg']}"
