"""The Postgres connector: psycopg 3 with an async connection pool; anomaly batches go in by binary COPY.

Batches are COPYed into a per-connection staging table (``postgres.create_staging``), then moved with one
``insert_anomalies`` (``INSERT ... SELECT ... ON CONFLICT DO NOTHING``): COPY is the fastest bulk path
and the conflict clause makes replays (spool drains) idempotent. Times go in and come out as aware
datetimes, JSON comes back decoded (jsonb), booleans are native.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from otlp_gateway.store import codec
from otlp_gateway.store.errors import AlreadyExistsError, RowRejectedError, StoreUnavailableError
from otlp_gateway.store.migrator import Dialect, check_history, load_migrations
from otlp_gateway.store.pool_metrics import PoolMetricsExporter
from otlp_gateway.store.queries import load_queries
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.sql_store import SqlStore
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)
T = TypeVar("T")

MIGRATION_LOCK_KEY = 0x647269667430  # pg_advisory_lock key held while migrating ("driftl0")
_QUERIES = load_queries("postgres")


def _classify(exc: BaseException) -> Exception | None:
    """The store's error for a driver error (None: not a database error, let it through)."""
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return AlreadyExistsError(str(exc).strip())
    if isinstance(exc, psycopg.DataError | psycopg.IntegrityError):
        return RowRejectedError(f"postgres refused the data: {str(exc).strip()}")
    if isinstance(exc, psycopg.Error | PoolTimeout | PoolClosed | OSError):
        # Connection loss, timeouts, a missing table (not migrated yet): may succeed later.
        return StoreUnavailableError(f"postgres unavailable: {type(exc).__name__}: {str(exc).strip()}")
    return None


@contextlib.asynccontextmanager
async def _db_errors() -> AsyncIterator[None]:
    try:
        yield
    except Exception as exc:
        mapped = _classify(exc)
        if mapped is None:
            raise
        raise mapped from exc


def _connect_kwargs(dsn: str) -> dict[str, Any]:
    """Defaults the DSN may override: a bounded connect time and a recognizable application name."""
    given = conninfo_to_dict(dsn)
    extra: dict[str, Any] = {}
    if "connect_timeout" not in given:
        extra["connect_timeout"] = 5
    if "application_name" not in given:
        extra["application_name"] = "driftlock-otlp-gateway"
    return extra


async def migrate_postgres(dsn: str) -> list[str]:
    """Apply pending migrations on a dedicated connection; concurrent migrators wait on an advisory lock."""
    migrations = load_migrations("postgres")
    applied: list[str] = []
    async with _db_errors():
        conn = await psycopg.AsyncConnection.connect(dsn, autocommit=True, **_connect_kwargs(dsn))
        async with conn:
            await conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            try:
                await conn.execute(
                    "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                    "name text NOT NULL, checksum text NOT NULL, "
                    "applied_at timestamptz NOT NULL DEFAULT now())")
                cur = await conn.execute("SELECT version, checksum FROM schema_migrations")
                history = {int(v): str(c) for v, c in await cur.fetchall()}
                for migration in check_history(migrations, history):
                    async with conn.transaction():
                        await conn.execute(migration.sql.encode())  # no parameters: several statements
                        await conn.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum))
                    log.info("applied postgres migration %s", migration.label)
                    applied.append(migration.label)
            finally:
                await conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied


class PostgresConnector:
    """``Connector`` for Postgres (see the module docstring)."""

    dialect: Dialect = "postgres"
    # psycopg returns aware datetimes (in the session's zone) and jsonb already decoded.
    decode = codec.RowDecoder(time=codec.as_utc, json=lambda value: value)

    def __init__(self, settings: StoreSettings, metrics: GatewayMetrics, *,
                 acquire_timeout: float = 5.0, stats_interval: float = 1.0):
        if settings.database_url is None:
            raise ValueError("PostgresStore needs store.database_url (DATABASE_URL)")
        self._dsn = settings.database_url.get_secret_value()
        max_size = settings.max_open_conns
        self._staging_types: list[int] | None = None
        self.pool = AsyncConnectionPool(
            self._dsn,
            kwargs=_connect_kwargs(self._dsn),
            min_size=min(settings.max_idle_conns, max_size),
            max_size=max_size,
            max_lifetime=settings.conn_max_lifetime_seconds,
            timeout=acquire_timeout,
            check=AsyncConnectionPool.check_connection,
            configure=self._configure_connection,
            name="driftlock-store",
            open=False,
        )
        self.pool_metrics = PoolMetricsExporter(self.pool, metrics.db_connections, stats_interval)

    def time(self, value: dt.datetime) -> dt.datetime:
        return codec.as_utc(value)

    def flag(self, value: bool) -> bool:
        return value

    async def _configure_connection(self, conn: psycopg.AsyncConnection[Any]) -> None:
        # Once per connection, not per batch: the staging table outlives transactions (its rows do not).
        await conn.execute(_QUERIES["postgres.create_staging"])
        if self._staging_types is None:
            cur = await conn.execute(_QUERIES["postgres.staging_columns"])
            columns = await cur.fetchall()
            names = tuple(str(name) for name, _ in columns)
            if names != codec.ANOMALY_WRITE_COLUMNS:
                raise RuntimeError(f"postgres.create_staging has columns {names}, expected "
                                   f"{codec.ANOMALY_WRITE_COLUMNS} (store/sql/postgres.sql)")
            self._staging_types = [int(oid) for _, oid in columns]
        await conn.commit()

    async def open(self) -> None:
        """Start the pool without waiting: the gateway starts (and spools) even while Postgres is down."""
        await self.pool.open(wait=False)
        self.pool_metrics.start()

    async def close(self) -> None:
        await self.pool_metrics.stop()
        await self.pool.close()

    async def migrate(self) -> list[str]:
        return await migrate_postgres(self._dsn)

    async def fetch(self, sql: str, params: Mapping[str, Any]) -> list[codec.Row]:
        async with (_db_errors(), self.pool.connection() as conn,
                    conn.cursor(row_factory=dict_row) as cur):
            await cur.execute(sql.encode(), params)
            return list(await cur.fetchall())

    async def execute(self, sql: str, params: Mapping[str, Any]) -> int:
        async with _db_errors(), self.pool.connection() as conn, conn.cursor() as cur:
            await cur.execute(sql.encode(), params)
            return max(cur.rowcount, 0)

    async def execute_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> int:
        if not params:
            return 0
        async with _db_errors(), self.pool.connection() as conn, conn.cursor() as cur:
            await cur.executemany(sql.encode(), params)  # pipelined: one round trip for the batch
            return max(cur.rowcount, 0)

    async def insert_many(self, sql: str, columns: Sequence[str], rows: Sequence[T],
                          encode: Callable[[T], tuple[Any, ...]]) -> int:
        if tuple(columns) != codec.ANOMALY_WRITE_COLUMNS:
            raise ValueError("the Postgres connector stages anomaly rows only")
        # Encoding 500 rows takes ~10 ms of CPU: do it off the loop so ingest keeps being served.
        encoded = await asyncio.to_thread(lambda: [encode(r) for r in rows])
        async with _db_errors(), self.pool.connection() as conn, conn.cursor() as cur:
            assert self._staging_types is not None  # set when the pool configured the connection
            async with cur.copy(_QUERIES["postgres.copy_staging"].encode()) as copy:
                copy.set_types(self._staging_types)
                for row in encoded:
                    await copy.write_row(row)
            await cur.execute(sql.encode())
            return max(cur.rowcount, 0)

    async def reclaim_space(self) -> None:
        """Nothing to do: autovacuum makes deleted rows' space reusable."""


class PostgresStore(SqlStore):
    """The store on Postgres: ``SqlStore`` with a ``PostgresConnector``."""

    def __init__(self, settings: StoreSettings, metrics: GatewayMetrics, *,
                 acquire_timeout: float = 5.0, stats_interval: float = 1.0):
        self.connector: PostgresConnector
        super().__init__(PostgresConnector(settings, metrics, acquire_timeout=acquire_timeout,
                                           stats_interval=stats_interval))

    def refresh_pool_metrics(self) -> None:
        self.connector.pool_metrics.refresh()
