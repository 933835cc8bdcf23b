"""A stream's tunables: one type for the configuration's per-stream overrides, the API's changes and what a
stream runs with, validated the same way wherever they come from.

A stream's settings are layers, lowest first: the default profile < every ``detection.overrides`` entry
whose glob matches, in order < the settings changed through the API. ``None`` in a layer means "inherit
from the layer below"; numbers left unset everywhere are the profile's. Whatever the layers, the result
must be a consistent profile (``0 < hop <= window <= baseline``, a false-alarm target in (0, 1)).
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import ConfigDict, Field

from detectors.profiles import DEFAULT_PROFILE, Profile, resolve_profile
from otlp_gateway.settings_base import StrictModel
from otlp_gateway.streams.routing import StreamKey

log = logging.getLogger(__name__)

ProfileName = Literal["sensitive", "balanced", "strict"]
MAX_EVENTS = 1_000_000
"""Upper bound of a baseline, window or hop in events (a detector holds its baseline in memory)."""
TUNABLE_FIELDS = ("profile", "baseline", "window", "hop", "false_alarm_target", "enabled")


class InvalidStreamSettings(ValueError):
    """The layers resolve to an impossible profile (the message says why)."""


class StreamSettings(StrictModel):
    """One layer of a stream's settings; a resolved one has every layer applied (``profile`` and
    ``enabled`` always set)."""

    model_config = ConfigDict(frozen=True)

    profile: ProfileName | None = None
    """Window profile: sensitive 200/30/10 (target 1e-2), balanced 400/50/10 (1e-3), strict 800/100/20
    (1e-4)."""
    baseline: int | None = Field(None, gt=0, le=MAX_EVENTS)
    """Events of the reference the window is compared with (default: the profile's)."""
    window: int | None = Field(None, gt=0, le=MAX_EVENTS)
    """Events per scored window (default: the profile's)."""
    hop: int | None = Field(None, gt=0, le=MAX_EVENTS)
    """Events between two scored windows (default: the profile's)."""
    false_alarm_target: float | None = Field(None, gt=0, lt=1)
    """Probability that a window of normal data is flagged (default: the profile's)."""
    enabled: bool | None = None
    """Score this stream (false: events are forwarded unscored; the detector is kept)."""

    def values(self) -> dict[str, Any]:
        """The fields this layer sets (the others inherit)."""
        return {name: getattr(self, name) for name in TUNABLE_FIELDS if getattr(self, name) is not None}

    def over(self, below: StreamSettings) -> StreamSettings:
        """This layer applied on top of ``below``: fields set here win."""
        return StreamSettings(**{**below.values(), **self.values()})

    def changed(self, changes: Mapping[str, Any]) -> StreamSettings:
        """This layer after ``changes`` (``None`` clears a field); raises ``pydantic.ValidationError`` for an
        unknown field or a value out of bounds."""
        merged = {**self.values(), **changes}
        return StreamSettings.model_validate({k: v for k, v in merged.items() if v is not None})

    @classmethod
    def stored(cls, settings: Mapping[str, Any] | None, stream_id: str) -> StreamSettings:
        """The API layer as stored in a stream's row; an invalid one (written by an older version) is
        ignored, logged."""
        if not settings:
            return EMPTY
        try:
            return cls.model_validate(settings)
        except ValueError as exc:
            log.error("stream %s: stored settings %s are invalid (%s); ignoring them", stream_id,
                      dict(settings), exc)
            return EMPTY

    @property
    def profile_name(self) -> str:
        return self.profile or DEFAULT_PROFILE

    @property
    def scoring(self) -> bool:
        return self.enabled is not False

    def window_profile(self) -> Profile:
        """The detector's profile these settings give; raises ``InvalidStreamSettings`` when inconsistent."""
        try:
            return resolve_profile(self.profile_name, baseline=self.baseline, window=self.window,
                                   hop=self.hop, false_alarm_target=self.false_alarm_target)
        except ValueError as exc:
            raise InvalidStreamSettings(str(exc)) from None


class StreamOverride(StreamSettings):
    """Settings for the streams whose key matches ``match`` (configuration file)."""

    match: str
    """Glob over the stream key ``signal/service/name`` or the stream id (e.g. ``traces/checkout/*``)."""

    def matches(self, key: StreamKey) -> bool:
        return (fnmatch.fnmatchcase(key.match_path, self.match)
                or fnmatch.fnmatchcase(key.stream_id, self.match))


EMPTY = StreamSettings()


class StreamSettingsResolver:
    """Resolves a stream's layers: the default profile < matching overrides in order < the API's layer."""

    def __init__(self, default_profile: str, overrides: Sequence[StreamOverride] = ()):
        self._base = StreamSettings.model_validate({"profile": default_profile, "enabled": True})
        self._overrides = tuple(overrides)

    @property
    def default_profile(self) -> str:
        return self._base.profile_name

    def configured(self, key: StreamKey) -> StreamSettings:
        """What the configuration gives ``key`` (before any API change)."""
        settings = self._base
        for override in self._overrides:
            if override.matches(key):
                settings = override.over(settings)
        return settings

    def resolve(self, key: StreamKey, api: StreamSettings = EMPTY) -> StreamSettings:
        """The settings ``key`` runs with; raises ``InvalidStreamSettings`` when the layers contradict."""
        settings = api.over(self.configured(key))
        settings.window_profile()
        return settings

    def resolve_or_fall_back(self, key: StreamKey, api: StreamSettings = EMPTY) -> StreamSettings:
        """``resolve``, falling back (logged) to the configured layers, then to the default profile, when
        stored API settings and the configuration now contradict each other."""
        try:
            return self.resolve(key, api)
        except InvalidStreamSettings as exc:
            log.error("stream %s: %s; using its configured settings", key.stream_id, exc)
        try:
            return self.resolve(key)
        except InvalidStreamSettings as exc:
            log.error("stream %s: the overrides it matches contradict each other (%s); using the %s profile",
                      key.stream_id, exc, self.default_profile)
        return self._base

    def check_override(self, override: StreamOverride) -> None:
        """An override alone on the default profile must be consistent (raises ``InvalidStreamSettings``)."""
        override.over(self._base).window_profile()
