"""The anomaly store: Postgres (psycopg 3, pooled) when a database URL is configured, else embedded SQLite.

One ``SqlStore`` runs the dialect's named queries (``store/sql/<dialect>.sql``) through that backend's
connector (``postgres.py``, ``sqlite.py``).

    store = open_store(settings, data_dir, metrics)      # PostgresStore | SqliteStore (not yet opened)
    await store.open(); await store.migrate(); ...; await store.close()
    writer = AnomalyWriter(store, spool_dir, settings, metrics)   # batched, spooled, idempotent writes
    applied = await run_migrations(settings, data_dir)   # `otlp-gateway migrate`
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Any

from otlp_gateway.store.base import AnomalyStore, ApiKeyStore, PruneResult, StreamPage
from otlp_gateway.store.errors import (
    AlreadyExistsError,
    InvalidCursorError,
    RowRejectedError,
    StoreUnavailableError,
)
from otlp_gateway.store.migrator import MigrationError
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.sql_store import SqlStore
from otlp_gateway.store.sqlite import SqliteStore, migrate_sqlite
from otlp_gateway.store.writer import AnomalyWriter
from otlp_gateway.telemetry.metrics import GatewayMetrics

if TYPE_CHECKING:  # psycopg costs ~0.1 s to import: loaded only when a database URL is configured
    from otlp_gateway.store.postgres import PostgresStore

SQLITE_FILE_NAME = "driftlock.db"


def sqlite_path(settings: StoreSettings, data_dir: Path) -> Path:
    return Path(settings.sqlite_path) if settings.sqlite_path else Path(data_dir) / SQLITE_FILE_NAME


def open_store(settings: StoreSettings, data_dir: Path,
               metrics: GatewayMetrics) -> PostgresStore | SqliteStore:
    """The configured backend, constructed but not opened (call ``await store.open()``)."""
    if settings.database_url is not None:
        from otlp_gateway.store.postgres import PostgresStore

        return PostgresStore(settings, metrics)
    return SqliteStore(sqlite_path(settings, data_dir))


async def run_migrations(settings: StoreSettings, data_dir: Path) -> list[str]:
    """Apply pending migrations to the configured backend; returns the labels applied (``0001_...``)."""
    if settings.database_url is not None:
        from otlp_gateway.store.postgres import migrate_postgres

        return await migrate_postgres(settings.database_url.get_secret_value())
    return await asyncio.to_thread(migrate_sqlite, sqlite_path(settings, data_dir))


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":
        from otlp_gateway.store.postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AlreadyExistsError",
    "AnomalyStore",
    "AnomalyWriter",
    "ApiKeyStore",
    "InvalidCursorError",
    "MigrationError",
    "PostgresStore",
    "PruneResult",
    "RowRejectedError",
    "SqlStore",
    "SqliteStore",
    "StoreUnavailableError",
    "StreamPage",
    "open_store",
    "run_migrations",
    "sqlite_path",
]
