"""Migrations apply from empty, in order, once; a rerun changes nothing; concurrent migrators are safe."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
from pathlib import Path

import psycopg
import pytest

from otlp_gateway.store import MigrationError, run_migrations
from otlp_gateway.store.migrator import load_migrations
from otlp_gateway.store.postgres import migrate_postgres
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.sqlite import migrate_sqlite
from tests.fixtures.postgres import PgCluster
from tests.store.support import run

EXPECTED_TABLES = {"anomalies", "streams", "detector_state", "api_keys", "audit_log", "schema_migrations"}


def test_migration_files_are_ordered_and_paired() -> None:
    pg, lite = load_migrations("postgres"), load_migrations("sqlite")
    assert [m.version for m in pg] == list(range(1, len(pg) + 1))
    assert [m.label for m in pg] == [m.label for m in lite]  # every change lands in both dialects


def _pg_schema(cluster: PgCluster, dbname: str) -> str:
    out = subprocess.run([cluster.tool("pg_dump"), "--schema-only", "--no-owner", "-d", cluster.dsn(dbname)],
                         capture_output=True, text=True, check=True, timeout=60)
    # pg_dump >= 15.14 frames its output with a random \restrict key: not part of the schema.
    framing = ("\\restrict", "\\unrestrict")
    return "\n".join(line for line in out.stdout.splitlines() if not line.startswith(framing))


def _pg_history(dsn: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT version, name, checksum, applied_at FROM schema_migrations "
                            "ORDER BY version").fetchall()


@pytest.mark.postgres
def test_postgres_from_empty_then_rerun_changes_nothing(pg_cluster: PgCluster) -> None:
    name = pg_cluster.create_database()
    dsn = pg_cluster.dsn(name)
    try:
        applied = run(migrate_postgres(dsn))
        assert applied == [m.label for m in load_migrations("postgres")]
        schema, history = _pg_schema(pg_cluster, name), _pg_history(dsn)
        for table in EXPECTED_TABLES:
            assert f"CREATE TABLE public.{table} " in schema
        assert "anomalies_stream_window_key UNIQUE (stream_id, window_start_offset)" in schema
        settings = StoreSettings.model_validate({"database_url": dsn})
        assert run(run_migrations(settings, Path("/nonexistent"))) == []
        assert _pg_schema(pg_cluster, name) == schema
        assert _pg_history(dsn) == history
    finally:
        pg_cluster.drop_database(name)


@pytest.mark.postgres
def test_postgres_concurrent_migrators_apply_once(pg_cluster: PgCluster) -> None:
    name = pg_cluster.create_database()
    dsn = pg_cluster.dsn(name)
    try:
        async def race() -> list[list[str]]:
            return await asyncio.gather(*(migrate_postgres(dsn) for _ in range(4)))

        results = run(race())
        assert sorted(len(r) for r in results) == [0, 0, 0, len(load_migrations("postgres"))]
        assert len(_pg_history(dsn)) == len(load_migrations("postgres"))
    finally:
        pg_cluster.drop_database(name)


@pytest.mark.postgres
def test_postgres_refuses_an_edited_migration(pg_cluster: PgCluster, pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("UPDATE schema_migrations SET checksum = 'tampered' WHERE version = 1")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        run(migrate_postgres(pg_dsn))


def _sqlite_schema(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").fetchall()


def _sqlite_history(path: Path) -> list[tuple[object, ...]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT * FROM schema_migrations ORDER BY version").fetchall()


def test_sqlite_from_empty_then_rerun_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "driftlock.db"
    settings = StoreSettings()
    applied = run(run_migrations(settings, tmp_path))  # default file in data_dir
    assert applied == [m.label for m in load_migrations("sqlite")]
    schema, history = _sqlite_schema(path), _sqlite_history(path)
    assert {name for kind, name, _, _ in schema if kind == "table"} >= EXPECTED_TABLES
    assert migrate_sqlite(path) == []
    assert _sqlite_schema(path) == schema
    assert _sqlite_history(path) == history
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_sqlite_concurrent_migrators_apply_once(tmp_path: Path) -> None:
    path = tmp_path / "race.db"

    async def race() -> list[list[str]]:
        return await asyncio.gather(*(asyncio.to_thread(migrate_sqlite, path) for _ in range(4)))

    results = run(race())
    # Each migration is its own transaction: racers may share the work, but each file is applied once.
    assert sorted(label for r in results for label in r) == [m.label for m in load_migrations("sqlite")]


def test_sqlite_refuses_unknown_and_edited_history(tmp_path: Path) -> None:
    path = tmp_path / "x.db"
    migrate_sqlite(path)
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (9999, 'future', 'x', '2030-01-01T00:00:00Z')")
    with pytest.raises(MigrationError, match="unknown to this version"):
        migrate_sqlite(path)
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM schema_migrations WHERE version = 9999")
        conn.execute("UPDATE schema_migrations SET checksum = 'tampered'")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        migrate_sqlite(path)
