from __future__ import annotations

from otlp_gateway.detection.settings import DetectionSettings, StreamOverride
from otlp_gateway.streams.routing import StreamKey, StreamRouter
from otlp_gateway.streams.settings import StreamSettings


def test_default_key_is_signal_service_name() -> None:
    router = StreamRouter(DetectionSettings().stream_key)
    assert router.stream_id("traces", "checkout", "GET /cart", {}, {"service.name": "checkout"}) == \
        "traces/checkout/GET /cart"
    assert router.stream_id("logs", "checkout", "", {}, {}) == "logs/checkout/-"


def test_explicit_stream_id_on_item_wins_over_resource_and_key() -> None:
    router = StreamRouter(DetectionSettings().stream_key)
    res = {"service.name": "checkout", "driftlock.stream_id": "from-resource"}
    item = {"driftlock.stream_id": "from-item"}
    assert router.stream_id("traces", "checkout", "x", item, res) == "from-item"
    assert router.stream_id("traces", "checkout", "x", {}, res) == "from-resource"


def test_configurable_parts_use_item_then_resource_attributes() -> None:
    router = StreamRouter(["signal", "service.name", "deployment.environment", "http.route"])
    res = {"service.name": "api", "deployment.environment": "prod"}
    assert router.stream_id("traces", "api", "n", {"http.route": "/a"}, res) == "traces/api/prod//a"
    assert router.stream_id("traces", "api", "n", {}, res) == "traces/api/prod/-"


def test_overrides_apply_in_order_and_api_settings_win() -> None:
    settings = DetectionSettings(overrides=[
        StreamOverride(match="traces/checkout/*", profile="sensitive", window=40),
        StreamOverride(match="traces/*/GET *", hop=5),
        StreamOverride(match="logs/*", enabled=False),
    ])
    resolver = settings.stream_settings()
    key = StreamKey("traces/checkout/GET /x", "traces", "checkout", "GET /x")
    config = resolver.resolve(key)
    assert (config.profile, config.window, config.hop, config.enabled) == ("sensitive", 40, 5, True)
    config = resolver.resolve(key, StreamSettings(profile="strict", enabled=False))
    assert (config.profile, config.window, config.enabled) == ("strict", 40, False)
    other = resolver.resolve(StreamKey("logs/a/-", "logs", "a", "-"))
    assert (other.profile, other.enabled) == ("balanced", False)
