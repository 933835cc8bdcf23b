"""One ``StreamSettings`` type: the same fields and bounds for configuration overrides and API changes, one
layering rule, and inconsistent overrides refused when the configuration loads."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from otlp_gateway.config import ConfigError, load_config
from otlp_gateway.detection.settings import DetectionSettings
from otlp_gateway.streams.routing import StreamKey
from otlp_gateway.streams.settings import (
    InvalidStreamSettings,
    StreamOverride,
    StreamSettings,
    StreamSettingsResolver,
)

KEY = StreamKey("traces/checkout/GET /cart", "traces", "checkout", "GET /cart")


def test_a_layer_sets_only_what_it_names_and_wins_over_the_one_below() -> None:
    below = StreamSettings(profile="strict", window=60, enabled=True)
    above = StreamSettings(window=40, hop=5)
    merged = above.over(below)
    assert merged.values() == {"profile": "strict", "window": 40, "hop": 5, "enabled": True}
    assert merged.window_profile().baseline == 800  # strict's, nobody set it


def test_a_change_clears_with_none_and_is_validated_like_a_config_override() -> None:
    layer = StreamSettings(window=40, false_alarm_target=1e-4)
    assert layer.changed({"window": None, "hop": 5}).values() == {"false_alarm_target": 1e-4, "hop": 5}
    for bad in ({"window": 0}, {"hop": 1_000_001}, {"false_alarm_target": 1.0}, {"profile": "wild"},
                {"colour": "red"}):
        with pytest.raises(ValidationError):
            layer.changed(bad)
        with pytest.raises(ValidationError):  # the configuration file's type refuses the same values
            StreamOverride.model_validate({"match": "*", **bad})


def test_resolution_refuses_an_impossible_profile_whatever_layer_causes_it() -> None:
    resolver = StreamSettingsResolver("balanced", [StreamOverride(match="traces/checkout/*", window=40)])
    assert resolver.resolve(KEY).window == 40
    with pytest.raises(InvalidStreamSettings, match="hop <= window"):
        resolver.resolve(KEY, StreamSettings(hop=45))  # fine on balanced (window 50), not on this stream
    assert resolver.resolve(StreamKey("logs/a/-", "logs", "a", "-"), StreamSettings(hop=45)).hop == 45


def test_contradicting_stored_settings_fall_back_to_the_configured_ones() -> None:
    resolver = StreamSettingsResolver("balanced", [StreamOverride(match="traces/*", window=40)])
    fallback = resolver.resolve_or_fall_back(KEY, StreamSettings(hop=45))
    assert (fallback.window, fallback.hop, fallback.profile) == (40, None, "balanced")


def test_an_inconsistent_override_fails_at_load_naming_it() -> None:
    with pytest.raises(ValidationError, match=r"overrides.1 \(match 'logs/\*'\).*hop <= window"):
        DetectionSettings(overrides=[{"match": "traces/*", "window": 40},
                                     {"match": "logs/*", "hop": 60}])
    # the same through the configuration loader: one line with the path
    with pytest.raises(ConfigError, match="detection"):
        load_config(None, env={}, overrides={("detection",): {"overrides": [{"match": "*", "baseline": 20}]}})
    # consistent on top of the configured default profile: strict has window 100
    assert DetectionSettings(profile="strict", overrides=[{"match": "*", "hop": 60}]).overrides[0].hop == 60


def test_stored_api_settings_written_by_an_older_version_are_ignored_not_fatal() -> None:
    assert StreamSettings.stored({"window": -3}, "s") == StreamSettings()
    assert StreamSettings.stored({"window": 30, "enabled": False}, "s").values() == {"window": 30,
                                                                                     "enabled": False}
