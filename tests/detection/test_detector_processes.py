"""Span and log detectors in one process per shard (``detection.detector_processes``): the same anomalies,
incidents and snapshots as detectors in the gateway's process, whatever the number of shards; a snapshot
taken in one place restores in the other; a process that dies is replaced, and its streams start over
with their offsets continuing (anomaly ids never repeat)."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from pathlib import Path

import pytest

from otlp_gateway.detection.detector_processes import DetectorProcess
from otlp_gateway.streams.live import LiveStream, detector_spec
from otlp_gateway.streams.places import LOCAL
from otlp_gateway.streams.routing import StreamKey
from otlp_gateway.streams.settings import StreamSettings
from tests.detection.support import chunks, log_phase, open_run, span_phase, summary
from tests.otlp.otlp_data import logs_request, traces_request

CHUNKS = [64, 17, 200]
KEY = StreamKey("logs/shop/app", "logs", "shop", "app")
SPEC = detector_spec("logs", 42, "cm", StreamSettings(profile="sensitive"))


def _requests() -> list[tuple[str, object]]:
    normal, tail, _ = log_phase(11)
    spans, span_tail, _ = span_phase(5)
    logs = [("logs", logs_request(c)) for c in chunks(normal + tail, [70, 150, 40])]
    traces = [("traces", traces_request(c)) for c in chunks(spans + span_tail, [300, 90])]
    return [item for pair in zip(logs, traces, strict=False) for item in pair] + logs[len(traces):] \
        + traces[len(logs):]


async def _run(tmp_path: Path, name: str, *, processes: bool, workers: int = 2,
               kill_after: int | None = None, at_once: bool = False) -> tuple[list, float]:
    run = await open_run(tmp_path / f"{name}.db", detector_processes=processes, workers=workers)
    killed: list[int | None] = []
    try:
        if at_once:  # queued together: a shard's group holds several batches of one stream
            for signal_name in ("logs", "traces"):
                await run.feed(signal_name, [r for s, r in _requests() if s == signal_name], concurrent=True)
        for i, (signal_name, request) in enumerate(() if at_once else _requests()):
            if kill_after is not None and i == kill_after:
                await run.stage.drain()
                killed = [p.pid() for p in run.stage.detector_processes]
                assert len(killed) == workers and all(killed), "every shard's detector process is running"
                for pid in killed:
                    os.kill(pid, signal.SIGKILL)  # type: ignore[arg-type]
            await run.feed(signal_name, [request])
        if killed:
            replaced = [p.pid() for p in run.stage.detector_processes]
            assert all(replaced) and not set(replaced) & set(killed), "new processes took the shards over"
        records = await run.stored()
        scored = sum(run.metric("driftlock_detector_events_total", {"stream_type": t})
                     for t in ("logs", "traces"))
        return records, scored
    finally:
        await run.close()


def test_detectors_in_processes_find_the_same_anomalies(tmp_path: Path) -> None:
    async def scenario() -> None:
        reference, scored = await _run(tmp_path, "in-process", processes=False)
        assert reference, "the injected log template and span regression were detected"
        assert {r.signal for r in reference} == {"logs", "traces"}
        assert scored == 1120 + 2200
        for workers in (1, 2):
            records, scored = await _run(tmp_path, f"processes-{workers}", processes=True, workers=workers)
            assert scored == 1120 + 2200
            assert summary(records) == summary(reference)
        records, scored = await _run(tmp_path, "processes-at-once", processes=True, at_once=True)
        assert scored == 1120 + 2200
        assert summary(records) == summary(reference)

    asyncio.run(scenario())


def test_a_dead_detector_process_is_replaced_and_its_streams_start_over(tmp_path: Path) -> None:
    async def scenario() -> None:
        records, scored = await _run(tmp_path, "killed", processes=True, kill_after=6)
        # the streams start over after the kill: every later event is still scored, by fresh detectors
        assert scored == 1120 + 2200
        ids = [r.id for r in records]
        assert len(ids) == len(set(ids)), "offsets continue past the lost detectors: anomaly ids never repeat"

    asyncio.run(scenario())


def _feed(stream: LiveStream, batches: list) -> list[tuple]:
    out = []
    for seq, batch in enumerate(batches):
        outcome = stream.score(batch, seq)
        out.append((outcome.scored, [(w.start_offset, w.end_offset, w.result.score, w.result.p_value,
                                      w.incident_id) for w in outcome.windows],
                    [(c.incident_id, c.update) for c in outcome.incidents]))
    return out


def _log_batches() -> list:
    from otlp_gateway.otlp.codec import ExtractionOptions, RequestCodec

    codec = RequestCodec(ExtractionOptions())
    normal, tail, _ = log_phase(3)
    batches = []
    for chunk in chunks(normal + tail, CHUNKS):
        extraction = codec.extract("logs", logs_request(chunk).SerializeToString())
        (batch,) = extraction.streams.values()
        batches.append(batch)
    return batches


@pytest.fixture
def process():  # type: ignore[no-untyped-def]
    place = DetectorProcess("test-detector-process")
    yield place
    place.close()


def test_snapshots_move_between_the_process_and_the_gateway(process: DetectorProcess) -> None:
    batches = _log_batches()
    key = batches[0].key
    half = len(batches) // 2
    local = LiveStream(key, SPEC, 0)
    expected = _feed(local, batches)
    assert any(windows for _, windows, _ in expected), "the injected template was scored anomalous"

    remote = LiveStream(key, SPEC, 0, place=process)
    first = _feed(remote, batches[:half])
    # taken in the process, restored in the gateway's process, and back
    here = LiveStream.restore(remote.snapshot(), key, SPEC, 0, LOCAL)
    there = LiveStream.restore(here.snapshot(), key, SPEC, 0, process)
    assert first + _feed(there, batches[half:]) == expected
    again = LiveStream(key, SPEC, 0)
    _feed(again, batches)
    assert there.snapshot() == again.snapshot(), "the same state, byte for byte"


def test_a_snapshot_that_does_not_restore_in_the_process_starts_the_stream_over(
        process: DetectorProcess) -> None:
    batches = _log_batches()
    stream = LiveStream(batches[0].key, SPEC, 0)
    _feed(stream, batches[:3])
    seen = stream.events_seen
    detector_part = len(stream.detector.snapshot())
    # the detector's part is damaged; the stream's header still reads
    data = stream.snapshot()[:-detector_part] + b"not a detector snapshot"
    restored = LiveStream.restore(data, stream.key, SPEC, 0, process)
    outcome = restored.score(batches[3], 3)
    assert outcome.state_changed and restored.state == "warming"
    assert restored.offset_base == seen, "offsets continue past the lost detector"
    assert restored.events_seen == seen + len(batches[3].times)
    in_process = LiveStream.restore(data, stream.key, SPEC, 0, LOCAL)  # the same offsets in-process
    in_process.score(batches[3], 3)
    assert in_process.events_seen == restored.events_seen


def test_incident_actions_reach_a_detector_in_the_process(process: DetectorProcess) -> None:
    batches = _log_batches()
    local, remote = LiveStream(batches[0].key, SPEC, 0), LiveStream(batches[0].key, SPEC, 0, place=process)
    resolved = None
    for batch in batches:
        here = _feed(local, [batch])
        assert _feed(remote, [batch]) == here
        opened = [update.seq for _, _, changes in here for _, update in changes if update.status == "open"]
        if opened and resolved is None:
            resolved = local.incident_action(opened[0], "resolve")
            assert remote.incident_action(opened[0], "resolve").update == resolved.update
    assert resolved is not None and resolved.update.status == "resolved", "an incident opened, then resolved"
    with pytest.raises(ValueError):
        remote.incident_action(999, "resolve")
    assert remote.snapshot() == local.snapshot()


def test_a_detector_let_go_of_leaves_the_process(process: DetectorProcess) -> None:
    batches = _log_batches()
    streams = [LiveStream(batches[0].key, SPEC, 0, place=process) for _ in range(5)]
    for each in streams:
        _feed(each, batches[:2])
    del each
    assert process.held() == 5
    replaced = streams[0].detector
    streams[0].desired_spec = detector_spec("logs", 42, "cm", StreamSettings(profile="balanced"))
    _feed(streams[0], batches[2:3])  # a new detector for the new settings: the old one goes
    del replaced
    del streams[3:]  # evicted
    gc.collect()
    assert process.held() == 3
