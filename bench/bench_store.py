"""Anomaly rows written per second through AnomalyWriter (batch 500), on Postgres and on SQLite,
straight from memory and through the disk spool; then the spool's own cost during an outage.

    python bench/bench_store.py [--rows 50000] [--dsn postgresql://...]

Without ``--dsn`` a throwaway PostgreSQL 15 cluster is started (the test suite's helper) and removed.
Prints, per backend: wall rows/s, client CPU per row (process CPU time: the loop plus the SQLite/spool
threads; the Postgres server's own CPU is not included) and the CPU/wall ratio. Records are built before
timing starts. The machine is shared: compare CPU figures, not wall figures, across runs.

Outage: every row arrives while the (SQLite) store is down, so all of them go to the spool; printed are
the CPU per row to spool them, the bytes the spool holds on disk per row, and the CPU per row to drain
them once the store is back. Uses only the writer's public API, so the same script measures any version.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pydantic import SecretStr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from otlp_gateway.store import AnomalyWriter, SqliteStore, open_store
from otlp_gateway.store.base import AnomalyRecord
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.store.support import make_record

BATCH = 500
SUBMIT_CHUNK = 50


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

    cluster = None
    if args.dsn is None:
        from tests.fixtures.postgres import _start_cluster

        cluster = _start_cluster()
    workroot = Path(tempfile.mkdtemp(prefix="bench-store-"))
    try:
        print(f"rows per run: {args.rows}, batch {BATCH}, runs per backend: {args.repeat} (median shown)")
        # "memory": rows go straight from the queue to the store (the normal path). "spool": the burst
        # exceeds the writer's memory bound, so rows pass through the disk spool (JSON + fsync + re-read),
        # which is also the cost of draining after an outage.
        for backend, path in (("postgres", "memory"), ("sqlite", "memory"), ("postgres", "spool"),
                              ("sqlite", "spool")):
            memory_max = args.rows if path == "memory" else BATCH
            results = []
            for run_no in range(args.repeat):
                rows = [make_record(s, run_no * 10**7 + o) for s in range(10) for o in range(args.rows // 10)]
                workdir = workroot / f"{backend}-{path}-{run_no}"
                workdir.mkdir()
                if backend == "postgres":
                    dsn = args.dsn or cluster.new_test_database()  # type: ignore[union-attr]
                    settings = StoreSettings(database_url=SecretStr(dsn), batch_max_rows=BATCH)
                else:
                    settings = StoreSettings(sqlite_path=str(workdir / "bench.db"), batch_max_rows=BATCH)
                results.append(asyncio.run(measure(settings, workdir, rows, memory_max)))
            med = {k: sorted(r[k] for r in results)[len(results) // 2] for k in results[0]}
            spread = ", ".join(f"{r['rows_per_s']:,.0f}" for r in results)
            print(f"{backend:8s} via {path:6s}  {med['rows_per_s']:>9,.0f} rows/s (runs: {spread})   "
                  f"client CPU {med['cpu_us_per_row']:6.1f} us/row   CPU/wall {med['cpu_per_wall']:.2f}")
        results = []
        for run_no in range(args.repeat):
            rows = [make_record(s, run_no * 10**7 + o) for s in range(10) for o in range(args.rows // 10)]
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
            shutil.rmtree(cluster.root, ignore_errors=True)


if __name__ == "__main__":
    main()
