"""Anomaly rows written per second through AnomalyWriter (batch 500), on Postgres and on SQLite,
straight from memory and through the disk spool; then the spool's own cost during an outage.

    python bench/bench_store.py [--rows 50000] [--dsn postgresql://...]

Without ``--dsn`` a throwaway PostgreSQL 15 cluster is started (``bench/pg_cluster.py``, default
durability) and removed. Rows are anomalies of the shared generator's streams (``bench/traffic.py``: its
services and routes, random evidence ids, explanations with canonical events), never repeated.
Prints, per backend: wall rows/s, client CPU per row (process CPU time: the loop plus the SQLite/spool
threads; the Postgres server's own CPU is not included), the CPU/wall ratio, and the ratio to the floor:
the bare driver writing the same rows' columns into an unindexed table of the same shape in batches of
500 (COPY for Postgres, executemany for SQLite), measured in the same run. Then the latency from
``submit`` to the row being written, paced open-loop at 50 % of the memory path's maximum rate. Records
are built before timing starts. The machine is shared: compare CPU figures, not wall figures, across runs.

Outage: every row arrives while the (SQLite) store is down, so all of them go to the spool; printed are
the CPU per row to spool them, the bytes the spool holds on disk per row, and the CPU per row to drain
them once the store is back. Uses only the writer's public API, so the same script measures any version.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness import load_average, percentile
from pg_cluster import BenchCluster
from traffic import TrafficGenerator

from detectors.canonical import canonical_span
from otlp_gateway.store import AnomalyWriter, SqliteStore, open_store
from otlp_gateway.store.base import AnomalyRecord
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

BATCH = 500
SUBMIT_CHUNK = 50
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
SEVERITIES = ("low", "medium", "high", "critical")


def anomaly_rows(n: int, seed: int) -> list[AnomalyRecord]:
    """``n`` anomalies of the generator's span streams, each with its own window (never repeated)."""
    gen = TrafficGenerator(seed=seed)
    rng = random.Random(seed)
    streams = [(service, route) for service in gen.services for route in service.routes]
    offsets = dict.fromkeys(range(len(streams)), 1000 * seed)
    rows = []
    for _ in range(n):
        k = rng.randrange(len(streams))
        service, route = streams[k]
        offsets[k] += 10 * rng.randint(1, 40)
        at = T0 + dt.timedelta(seconds=offsets[k] / 50)
        events = [{"offset": offsets[k] - j, "excess_bits": round(rng.uniform(5, 90), 2),
                   "event": canonical_span(route.span_name, 2, rng.choice((0, 2)), rng.randint(10**5, 10**9),
                                           {"http.route": route.template, "client.address": "10.0.0.1"}
                                           ).decode()} for j in range(3)]
        rows.append(AnomalyRecord(
            stream_id=f"traces/{service.name}/{route.span_name}", signal="traces", service=service.name,
            window_start_offset=offsets[k] - 50, window_end_offset=offsets[k],
            window_start=at - dt.timedelta(seconds=1), window_end=at,
            score=rng.uniform(3, 12), p_value=rng.uniform(1e-6, 1e-3), severity=rng.choice(SEVERITIES),
            figures={"novelty_bits_per_byte": rng.uniform(0.5, 3),
                     "novelty_bits_per_event": rng.uniform(10, 90), "ncd": rng.uniform(0.3, 0.9),
                     "compression_ratio_window": rng.uniform(1.5, 4),
                     "compression_ratio_conditional": rng.uniform(1.5, 6),
                     "entropy_window": rng.uniform(4, 6)},
            explanation={"sentence": f"{len(events)} unusual events in {route.span_name}",
                         "top_events": events},
            evidence=[{"offset": str(e["offset"]), "trace_id": rng.randbytes(16).hex(),
                       "span_id": rng.randbytes(8).hex()} for e in events],
            detector="cbad", config_hash="9f2c41aa07b3d1e5", seed=42, engine_version="bench",
            detected_at=at))
    return rows


def _columns(r: AnomalyRecord) -> tuple[object, ...]:
    return (r.id, r.stream_id, r.signal, r.service, r.window_start, r.window_end, r.window_start_offset,
            r.window_end_offset, r.score, r.p_value, r.severity, json.dumps(r.figures),
            json.dumps(r.explanation), json.dumps(r.evidence), r.detector, r.config_hash, r.seed,
            r.engine_version, r.detected_at)


_FLOOR_TABLE = ("floor_rows (id text, stream_id text, signal text, service text, window_start {ts}, "
                "window_end {ts}, window_start_offset bigint, window_end_offset bigint, "
                "score double precision, p_value double precision, severity text, figures {js}, "
                "explanation {js}, evidence {js}, "
                "detector text, config_hash text, seed bigint, engine_version text, detected_at {ts})")


def floor_postgres(dsn: str, rows: list[AnomalyRecord]) -> float:
    """Client CPU seconds per row of COPY into an unindexed table of the same shape, 500 rows a commit."""
    import psycopg

    with psycopg.connect(dsn) as conn:
        conn.execute(("CREATE TABLE " + _FLOOR_TABLE.format(ts="timestamptz", js="jsonb")).encode())
        conn.commit()
        cpu0 = time.process_time()
        for i in range(0, len(rows), BATCH):
            with conn.cursor().copy("COPY floor_rows FROM STDIN") as copy:
                for r in rows[i:i + BATCH]:
                    copy.write_row(_columns(r))
            conn.commit()
        return (time.process_time() - cpu0) / len(rows)


def _sqlite_columns(r: AnomalyRecord) -> tuple[object, ...]:
    c = _columns(r)
    return (*c[:4], r.window_start.isoformat(), r.window_end.isoformat(), *c[6:18], r.detected_at.isoformat())


def floor_sqlite(path: Path, rows: list[AnomalyRecord]) -> float:
    """CPU seconds per row of executemany into an unindexed table of the same shape, 500 rows a commit
    (WAL, synchronous=FULL, as the store)."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE " + _FLOOR_TABLE.format(ts="text", js="text"))
    cpu0 = time.process_time()
    for i in range(0, len(rows), BATCH):
        with conn:
            conn.executemany(f"INSERT INTO floor_rows VALUES ({', '.join('?' * 19)})",
                             [_sqlite_columns(r) for r in rows[i:i + BATCH]])
    cpu = time.process_time() - cpu0
    conn.close()
    return cpu / len(rows)


async def paced_latency(settings: StoreSettings, workdir: Path, rows: list[AnomalyRecord],
                        rate: float) -> tuple[float, float]:
    """p50/p99 seconds from ``submit`` (chunks of SUBMIT_CHUNK rows, paced at ``rate`` rows/s) until the
    store counted the chunk written."""
    metrics = GatewayMetrics()
    store = open_store(settings, workdir, metrics)
    await store.open()
    await store.migrate()
    writer = AnomalyWriter(store, workdir / "spool", settings, metrics, memory_max_rows=len(rows))
    await writer.start()
    due: list[tuple[int, float]] = []
    latencies: list[float] = []

    def written() -> float:
        return metrics.registry.get_sample_value("driftlock_store_anomalies_written_total",
                                                 {"backend": store.backend}) or 0

    start = time.monotonic()
    for n, i in enumerate(range(0, len(rows), SUBMIT_CHUNK)):
        at = start + n * SUBMIT_CHUNK / rate
        while time.monotonic() < at:
            done = written()
            while due and due[0][0] <= done:
                latencies.append(time.monotonic() - due.pop(0)[1])
            await asyncio.sleep(0.001)
        writer.submit(rows[i:i + SUBMIT_CHUNK])
        due.append((i + SUBMIT_CHUNK, at))
    while due:
        done = written()
        while due and due[0][0] <= done:
            latencies.append(time.monotonic() - due.pop(0)[1])
        await asyncio.sleep(0.001)
    await writer.shutdown(5)
    await store.close()
    return percentile(latencies, 0.5), percentile(latencies, 0.99)


async def measure(settings: StoreSettings, workdir: Path, rows: list[AnomalyRecord],
                  memory_max_rows: int) -> dict[str, float]:
    metrics = GatewayMetrics()
    store = open_store(settings, workdir, metrics)
    await store.open()
    try:
        await store.migrate()
        writer = AnomalyWriter(store, workdir / "spool", settings, metrics, memory_max_rows=memory_max_rows)
        await writer.start()
        wall0, cpu0 = time.perf_counter(), time.process_time()
        for i in range(0, len(rows), SUBMIT_CHUNK):
            writer.submit(rows[i:i + SUBMIT_CHUNK])
            if i % (SUBMIT_CHUNK * 20) == 0:
                await asyncio.sleep(0)  # let the writer run, as it would between ingest requests
        if not await writer.flush(600):
            raise RuntimeError(f"flush did not finish: {writer.pending_rows} rows pending")
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        await writer.shutdown(5)
        written = metrics.registry.get_sample_value("driftlock_store_anomalies_written_total",
                                                    {"backend": store.backend}) or 0
        if written != len(rows):
            raise RuntimeError(f"wrote {written} of {len(rows)} rows")
    finally:
        await store.close()
    return {"rows_per_s": len(rows) / wall, "cpu_us_per_row": cpu / len(rows) * 1e6,
            "cpu_per_wall": cpu / wall}


def disk_bytes(directory: Path) -> int:
    """Bytes allocated by the files under ``directory``."""
    return sum(os.stat(os.path.join(root, name)).st_blocks * 512
               for root, _, names in os.walk(directory) for name in names)


async def outage(workdir: Path, rows: list[AnomalyRecord]) -> dict[str, float]:
    metrics = GatewayMetrics()
    settings = StoreSettings(sqlite_path=str(workdir / "bench.db"), batch_max_rows=BATCH)
    store = SqliteStore(workdir / "bench.db")  # not opened yet: every write fails as unavailable
    writer = AnomalyWriter(store, workdir / "spool", settings, metrics, memory_max_rows=BATCH)
    await writer.start()
    cpu0 = time.process_time()
    for i in range(0, len(rows), SUBMIT_CHUNK):
        writer.submit(rows[i:i + SUBMIT_CHUNK])
        if i % (SUBMIT_CHUNK * 20) == 0:
            await asyncio.sleep(0)
    while (metrics.registry.get_sample_value("driftlock_store_spool_rows") or 0) < len(rows):
        await asyncio.sleep(0.005)
    spool_cpu = time.process_time() - cpu0
    held = disk_bytes(workdir / "spool")
    await store.open()
    await store.migrate()
    cpu1 = time.process_time()
    if not await writer.flush(600):
        raise RuntimeError(f"drain did not finish: {writer.pending_rows} rows pending")
    drain_cpu = time.process_time() - cpu1
    await writer.shutdown(5)
    await store.close()
    written = metrics.registry.get_sample_value("driftlock_store_anomalies_written_total",
                                                {"backend": "sqlite"}) or 0
    if written != len(rows):
        raise RuntimeError(f"wrote {written} of {len(rows)} rows")
    return {"spool_us_per_row": spool_cpu / len(rows) * 1e6, "disk_bytes_per_row": held / len(rows),
            "drain_us_per_row": drain_cpu / len(rows) * 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--dsn", help="an existing, empty Postgres database (default: a throwaway cluster)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per backend; the median is printed")
    args = parser.parse_args()

    cluster = BenchCluster.start() if args.dsn is None else None
    workroot = Path(tempfile.mkdtemp(prefix="bench-store-"))
    databases = iter(range(1_000_000))

    def postgres_dsn() -> str:
        return args.dsn or cluster.new_database(f"bench_{next(databases)}")  # type: ignore[union-attr]

    try:
        print(f"rows per run: {args.rows}, batch {BATCH}, runs per backend: {args.repeat} (median shown); "
              f"{load_average()}")
        floor_rows = anomaly_rows(args.rows, seed=999)
        floors = {"postgres": floor_postgres(postgres_dsn(), floor_rows),
                  "sqlite": floor_sqlite(workroot / "floor.db", floor_rows)}
        print(f"reference, the bare driver on the same rows: postgres COPY "
              f"{floors['postgres'] * 1e6:.1f} us/row, sqlite executemany "
              f"{floors['sqlite'] * 1e6:.1f} us/row")
        max_rate: dict[str, float] = {}
        # "memory": rows go straight from the queue to the store (the normal path). "spool": the burst
        # exceeds the writer's memory bound, so rows pass through the disk spool (JSON + fsync + re-read),
        # which is also the cost of draining after an outage.
        for backend, path in (("postgres", "memory"), ("sqlite", "memory"), ("postgres", "spool"),
                              ("sqlite", "spool")):
            memory_max = args.rows if path == "memory" else BATCH
            results = []
            for run_no in range(args.repeat):
                rows = anomaly_rows(args.rows, seed=run_no)
                workdir = workroot / f"{backend}-{path}-{run_no}"
                workdir.mkdir()
                if backend == "postgres":
                    settings = StoreSettings(database_url=SecretStr(postgres_dsn()), batch_max_rows=BATCH)
                else:
                    settings = StoreSettings(sqlite_path=str(workdir / "bench.db"), batch_max_rows=BATCH)
                results.append(asyncio.run(measure(settings, workdir, rows, memory_max)))
            med = {k: sorted(r[k] for r in results)[len(results) // 2] for k in results[0]}
            spread = ", ".join(f"{r['rows_per_s']:,.0f}" for r in results)
            print(f"{backend:8s} via {path:6s}  {med['rows_per_s']:>9,.0f} rows/s (runs: {spread})   "
                  f"client CPU {med['cpu_us_per_row']:6.1f} us/row = "
                  f"{med['cpu_us_per_row'] / 1e6 / floors[backend]:.1f}x the bare driver   "
                  f"CPU/wall {med['cpu_per_wall']:.2f}")
            if path == "memory":
                max_rate[backend] = med["rows_per_s"]
        for backend in ("postgres", "sqlite"):
            workdir = workroot / f"latency-{backend}"
            workdir.mkdir()
            if backend == "postgres":
                settings = StoreSettings(database_url=SecretStr(postgres_dsn()), batch_max_rows=BATCH)
            else:
                settings = StoreSettings(sqlite_path=str(workdir / "bench.db"), batch_max_rows=BATCH)
            rate = max_rate[backend] / 2
            rows = anomaly_rows(min(args.rows, int(rate * 10)), seed=77)
            p50, p99 = asyncio.run(paced_latency(settings, workdir, rows, rate))
            print(f"{backend:8s} at 50% load ({rate:,.0f} rows/s, open loop): submit -> written p50 "
                  f"{p50 * 1e3:.1f} ms, p99 {p99 * 1e3:.1f} ms")
        results = []
        for run_no in range(args.repeat):
            rows = anomaly_rows(args.rows, seed=100 + run_no)
            workdir = workroot / f"outage-{run_no}"
            workdir.mkdir()
            results.append(asyncio.run(outage(workdir, rows)))
        med = {k: sorted(r[k] for r in results)[len(results) // 2] for k in results[0]}
        print(f"outage (sqlite): spooling {med['spool_us_per_row']:6.1f} us/row CPU, "
              f"{med['disk_bytes_per_row']:6.0f} bytes/row on disk, "
              f"draining {med['drain_us_per_row']:6.1f} us/row CPU")
    finally:
        shutil.rmtree(workroot, ignore_errors=True)
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
