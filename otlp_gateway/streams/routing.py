"""Stream routing: which stream an item belongs to, and the detector configuration of each stream.

Pure functions and small value types; no I/O. The stream id is the ``/``-joined key parts
(default ``signal/service.name/name``), or the value of an explicit ``driftlock.stream_id`` attribute
on the item or its resource, which overrides the whole key.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # a type only: importing it closes a cycle (detection -> stage -> codec -> here)
    from otlp_gateway.detection.settings import DetectionSettings

EXPLICIT_STREAM_ATTRIBUTE = "driftlock.stream_id"
UNKNOWN_SERVICE = "unknown_service"
"""The OpenTelemetry default when a resource carries no ``service.name``."""
EMPTY_PART = "-"
"""Rendering of a key part with no value (for example a log scope without a name)."""

DETECTOR_KIND = {"traces": "cbad", "logs": "cbad", "metrics": "numeric"}
TUNABLE_FIELDS = ("profile", "baseline", "window", "hop", "false_alarm_target", "enabled")


@dataclass(frozen=True, slots=True)
class StreamKey:
    stream_id: str
    signal: str
    service: str
    name: str

    @property
    def match_path(self) -> str:
        """What override globs match against: ``signal/service/name``."""
        return f"{self.signal}/{self.service}/{self.name}"


class StreamRouter:
    """Computes stream ids from the configured key parts.

    Parts: ``signal``, ``name`` (span name / metric name / log scope name) or an attribute key, looked
    up on the item first and then on its resource (``service.name`` is the usual resource one).
    """

    def __init__(self, parts: Sequence[str]):
        if not parts:
            raise ValueError("detection.stream_key needs at least one part")
        self.parts = tuple(parts)
        self._default = self.parts == ("signal", "service.name", "name")

    @property
    def is_default(self) -> bool:
        """Whether the key is the default ``signal/service.name/name``."""
        return self._default

    def stream_id(self, signal: str, service: str, name: str, item_attrs: Mapping[str, Any] | None,
                  resource_attrs: Mapping[str, Any]) -> str:
        explicit = (item_attrs.get(EXPLICIT_STREAM_ATTRIBUTE) if item_attrs else None) \
            or resource_attrs.get(EXPLICIT_STREAM_ATTRIBUTE)
        if explicit:
            return str(explicit)
        if self._default:
            return f"{signal}/{service}/{name or EMPTY_PART}"
        values = []
        for part in self.parts:
            if part == "signal":
                value: Any = signal
            elif part == "name":
                value = name
            elif part == "service.name":
                value = (item_attrs or {}).get(part) or service
            else:
                value = (item_attrs or {}).get(part)
                if value is None:
                    value = resource_attrs.get(part)
            values.append(EMPTY_PART if value is None or value == "" else str(value))
        return "/".join(values)


def service_of(resource_attrs: Mapping[str, Any]) -> str:
    service = resource_attrs.get("service.name")
    return str(service) if service else UNKNOWN_SERVICE


@dataclass(frozen=True, slots=True)
class StreamConfig:
    """The resolved detector configuration of one stream (``None`` = the profile's value)."""

    profile: str
    baseline: int | None = None
    window: int | None = None
    hop: int | None = None
    false_alarm_target: float | None = None
    enabled: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_stream_config(settings: DetectionSettings, key: StreamKey,
                          api_settings: Mapping[str, Any] | None = None) -> StreamConfig:
    """Defaults < every matching ``settings.overrides`` entry in order < settings set through the API."""
    fields: dict[str, Any] = {"profile": settings.profile}
    path = key.match_path
    for override in settings.overrides:
        if fnmatch.fnmatchcase(path, override.match) or fnmatch.fnmatchcase(key.stream_id, override.match):
            for name in TUNABLE_FIELDS:
                value = getattr(override, name)
                if value is not None and (name != "enabled" or "enabled" in override.model_fields_set):
                    fields[name] = value
    for name, value in (api_settings or {}).items():
        if name in TUNABLE_FIELDS and value is not None:
            fields[name] = value
    return StreamConfig(**fields)


def check_profile(config: StreamConfig) -> None:
    """Raise ``ValueError`` when the merged profile is inconsistent (for example hop > window)."""
    from detectors.profiles import resolve_profile

    resolve_profile(config.profile, baseline=config.baseline, window=config.window, hop=config.hop,
                    false_alarm_target=config.false_alarm_target)
