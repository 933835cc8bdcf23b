"""NaN and infinite metric points: skipped and counted by the detector, the request still scored and
forwarded, one log line per kind however many requests carry them."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import numpy as np
import pytest

from otlp_gateway.streams import live
from tests.detection.support import open_run
from tests.otlp.otlp_data import gauge_request


def test_non_finite_points_are_skipped_counted_and_logged_once(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "SKIPPED_POINTS_LOG", live._SkippedPointsLog())  # a fresh minute
    rng = np.random.default_rng(7)
    values = 50 + rng.normal(0, 1, 1400)
    values[1300:1310] = 400.0  # an anomaly after the bad points: the stream goes on being scored
    bad = {5: np.nan, 240: np.inf, 241: -np.inf, 777: np.nan, 1201: np.nan}
    for i, v in bad.items():
        values[i] = v

    async def scenario() -> None:
        run = await open_run(tmp_path / "m.db")
        requests = [gauge_request("svc", "queue.depth", values[i:i + 100], start_ns=10**18 + i * 10**9)
                    for i in range(0, 1400, 100)]
        with caplog.at_level(logging.WARNING, logger="otlp_gateway.streams.live"):
            batches = await run.feed("metrics", requests)
            records = await run.stored()
        assert [b.payload for b in run.consumer.batches] == [b.payload for b in batches]
        assert records and min(r.window_start_offset for r in records) >= 1200
        skipped = "driftlock_detector_skipped_points_total"
        assert run.metric(skipped, {"signal": "metrics", "reason": "nan"}) == 3
        assert run.metric(skipped, {"signal": "metrics", "reason": "inf"}) == 2
        assert run.metric("driftlock_detector_events_total", {"stream_type": "metrics"}) == 1400
        await run.close()

    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if "skipped by the detectors" in r.getMessage()]
    # NaN points arrive in three requests, infinite ones in one: one line per kind within the minute
    assert len([line for line in lines if " nan point" in line]) == 1
    assert len([line for line in lines if " inf point" in line]) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
