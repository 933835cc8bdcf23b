"""First start on a data dir written by the previous version: its spools are drained, nothing acknowledged
is lost. The spools are produced by the previous version's own writers (tests/durable/previous/)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from otlp_gateway.durable import DurableFifo, legacy
from otlp_gateway.exporter.queue import SPOOL_FILE_NAME
from otlp_gateway.store import AnomalyWriter, SqliteStore
from otlp_gateway.store.base import AnomalyFilter
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.writer import REJECTED_FILE
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.durable.previous.anomaly_spool import AnomalySpool
from tests.durable.previous.export_spool import Spool
from tests.durable.previous_writer import SPANS
from tests.durable.support import run
from tests.exporter.support import new_exporter, traces_payload
from tests.fixtures.downstream import ThreadedDownstream
from tests.store.support import make_record

REPO = Path(__file__).resolve().parents[2]


def _previous_export_spool_killed(data_dir: Path, count: int) -> tuple[set[int], set[int]]:
    """Run the previous export spool in a child, SIGKILL it once it acknowledged everything."""
    command = [sys.executable, "-m", "tests.durable.previous_writer", str(data_dir), str(count)]
    child = subprocess.Popen(command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                             stdout=subprocess.PIPE, text=True)
    acked: set[int] = set()
    forgot: set[int] = set()
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        while (line := child.stdout.readline().strip()) != "READY":
            assert line, f"child exited early with {child.wait()}"
            kind, n = line.split()
            (acked if kind == "ACK" else forgot).add(int(n))
            assert time.monotonic() < deadline, "child too slow"
        child.send_signal(signal.SIGKILL)
    finally:
        child.kill()
        child.wait(timeout=10)
    return acked, forgot


def test_export_spool_of_the_previous_version_is_delivered_after_a_crash(
        tmp_path: Path, downstream: ThreadedDownstream, caplog: pytest.LogCaptureFixture) -> None:
    acked, forgot = _previous_export_spool_killed(tmp_path, 60)
    assert len(acked) == 60
    expected = {traces_payload(f"old-{n}", SPANS) for n in acked - forgot}

    async def first_start() -> None:
        exporter, _ = new_exporter(downstream.endpoint, tmp_path)
        await exporter.start()
        await downstream.wait_for_async(lambda: expected <= set(downstream.requests["traces"]), timeout=20,
                                        what=f"the {len(expected)} requests the previous version spooled")
        assert exporter.queue is not None
        await downstream.wait_for_async(lambda: exporter.queue.pending_requests == 0)  # type: ignore[union-attr]
        await exporter.shutdown(grace=1)

    with caplog.at_level(logging.INFO, logger="otlp_gateway"):
        run(first_start())
    kept = [r.getMessage() for r in caplog.records if "previous spool format kept" in r.getMessage()]
    assert len(kept) == 1 and int(kept[0].split(": ")[1].split()[0]) >= len(expected)
    assert expected <= set(downstream.requests["traces"])
    sent_once = len(downstream.requests["traces"])

    with contextlib.closing(sqlite3.connect(tmp_path / "export-spool" / SPOOL_FILE_NAME)) as conn:  # in place
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"fifo"} and conn.execute("PRAGMA user_version").fetchone()[0] == 1

    async def second_start() -> None:
        exporter, _ = new_exporter(downstream.endpoint, tmp_path)
        await exporter.start()
        assert exporter.queue is not None and exporter.queue.pending_requests == 0
        await exporter.shutdown(grace=1)

    run(second_start())
    assert len(downstream.requests["traces"]) == sent_once  # delivered ones are not sent again


def test_anomaly_segments_of_the_previous_version_are_written_once(tmp_path: Path) -> None:
    spool_dir = tmp_path / "anomaly-spool"
    rows = [make_record(7, o) for o in range(10)]
    previous = AnomalySpool(spool_dir, 10**6, 4)
    previous.open()
    assert previous.append(rows) == 10  # two sealed segments of 4 rows, an active one of 2
    previous._active.write(b'{"id": "torn')  # type: ignore[union-attr]  # killed mid-append
    previous._active.flush()  # type: ignore[union-attr]
    previous.reject([make_record(7, 99)], "RowRejectedError: kept for an operator")
    assert len(list(spool_dir.glob("seg-*.jsonl"))) == 2 and len(list(spool_dir.glob("active-*.jsonl"))) == 1
    dead_letters = (spool_dir / REJECTED_FILE).read_bytes()
    metrics = GatewayMetrics()
    settings = StoreSettings(batch_max_rows=50, flush_interval_seconds=0.02)

    async def start_twice() -> list[str]:
        store = SqliteStore(tmp_path / "s.db")
        await store.open()
        await store.migrate()
        for _ in range(2):
            writer = AnomalyWriter(store, spool_dir, settings, metrics)
            await writer.start()
            assert await writer.flush(30), f"{writer.pending_rows} rows pending"
            await writer.shutdown(1)
        page = await store.query_anomalies(AnomalyFilter(), 100, None)
        await store.close()
        return [r.id for r in page.items]

    stored = run(start_twice())
    assert sorted(stored) == sorted(r.id for r in rows)
    assert metrics.registry.get_sample_value("driftlock_store_anomalies_written_total",
                                             {"backend": "sqlite"}) == 10
    assert [p.name for p in spool_dir.glob("*.jsonl")] == [REJECTED_FILE]  # the segments are gone
    assert (spool_dir / REJECTED_FILE).read_bytes() == dead_letters  # the operator's dead letters stay


def test_a_damaged_previous_segment_keeps_its_bad_lines_aside(tmp_path: Path) -> None:
    previous = AnomalySpool(tmp_path, 10**6, 3)
    previous.open()
    previous.append([make_record(8, o) for o in range(3)])  # one sealed segment
    (segment,) = legacy.jsonl_segments(tmp_path)
    with segment.open("ab") as fh:
        fh.write(b"not json at all\n")
    payload, lines, dropped = legacy.read_jsonl_segment(segment)
    assert (lines, dropped) == (3, 1) and payload.count(b"\n") == 3
    assert (tmp_path / (segment.name + ".undecodable")).read_bytes().endswith(b"not json at all\n")


def test_gateway_first_start_on_a_previous_data_dir_drains_both_spools(
        tmp_path: Path, downstream: ThreadedDownstream, threaded_gateway) -> None:
    data_dir = tmp_path / "gw0"  # where the threaded_gateway fixture puts its first gateway's data
    requests = [traces_payload(f"kept-{n}", 2) for n in range(12)]
    rows = [make_record(9, o) for o in range(7)]

    async def previous_version_wrote() -> None:
        spool = Spool(data_dir / "export-spool", on_durable=lambda r, p: None, on_failed=lambda *a: None)
        await spool.open()
        for payload in requests:
            await spool.append("traces", payload, 2)
        await spool.close()

    run(previous_version_wrote())
    anomalies = AnomalySpool(data_dir / "anomaly-spool", 10**6, 5)
    anomalies.open()
    anomalies.append(rows)
    anomalies.close()

    downstream.fail_with(grpc.StatusCode.UNAVAILABLE, times=3)  # the first deliveries are retried
    gw = threaded_gateway(forward_to=downstream.endpoint, detection={"enabled": False})
    downstream.wait_for(lambda: set(requests) <= set(downstream.requests["traces"]), timeout=30,
                        what="the 12 requests spooled by the previous version")
    gw.stop()

    async def stored_ids() -> list[str]:
        store = SqliteStore(data_dir / "driftlock.db")
        await store.open()
        page = await store.query_anomalies(AnomalyFilter(), 100, None)
        await store.close()
        return [r.id for r in page.items]

    assert sorted(run(stored_ids())) == sorted(r.id for r in rows)
    assert not list((data_dir / "anomaly-spool").glob("*.jsonl"))


def test_previous_segments_stay_where_they_are_when_the_spool_cannot_take_them(tmp_path: Path) -> None:
    previous = AnomalySpool(tmp_path, 10**6, 2)
    previous.open()
    previous.append([make_record(6, o) for o in range(4)])  # two sealed segments

    async def take_over() -> int:
        fifo = DurableFifo(tmp_path / "anomaly-spool.sqlite3", name="anomaly-spool")
        await fifo.open()
        await fifo.close()  # appends now fail, as on a full disk
        return await legacy.import_jsonl_segments(tmp_path, fifo, "anomalies")

    assert run(take_over()) == 0
    assert len(legacy.jsonl_segments(tmp_path)) == 2  # for the next start
