"""The Postgres store: psycopg 3 with an async connection pool, COPY for batched anomaly writes."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool, PoolClosed, PoolTimeout

from otlp_gateway.store import codec
from otlp_gateway.store.base import (
    AnomalyFilter,
    AnomalyRecord,
    AnomalyStatus,
    ApiKey,
    AuditEntry,
    Page,
    StreamInfo,
    StreamState,
)
from otlp_gateway.store.errors import AlreadyExistsError, RowRejectedError, StoreUnavailableError
from otlp_gateway.store.migrator import check_history, load_migrations
from otlp_gateway.store.pool_metrics import PoolMetricsExporter
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

MIGRATION_LOCK_KEY = 0x647269667430  # pg_advisory_lock key held while migrating ("driftl0")

ANOMALY_COLUMNS = codec.ANOMALY_WRITE_COLUMNS
_COPY_TYPES: tuple[str, ...] = (
    "text", "text", "text", "text", "timestamptz", "timestamptz", "int8", "int8", "float8", "float8", "text",
    *("float8",) * len(codec.FIGURE_COLUMNS), "text", "text", "text", "text", "text", "int8", "text", "bool",
    "text", "timestamptz",
)
_JSON_COLUMNS = frozenset({"figures", "explanation", "evidence"})

# Batches are COPYed into a per-connection temp table, then moved with one INSERT ... ON CONFLICT DO
# NOTHING: COPY is the fastest bulk path and the conflict clause makes replays (spool drains) idempotent.
_CREATE_INCOMING = sql.SQL(
    "CREATE TEMP TABLE IF NOT EXISTS anomalies_incoming ({}) ON COMMIT DELETE ROWS"
).format(sql.SQL(", ").join(
    sql.SQL("{} {}").format(sql.Identifier(c), sql.SQL(t)) for c, t in zip(ANOMALY_COLUMNS, _COPY_TYPES,
                                                                          strict=True)))
_COPY_INCOMING = sql.SQL("COPY anomalies_incoming ({}) FROM STDIN (FORMAT BINARY)").format(
    sql.SQL(", ").join(map(sql.Identifier, ANOMALY_COLUMNS)))
_MOVE_INCOMING = sql.SQL(
    "INSERT INTO anomalies ({cols}) SELECT {exprs} FROM anomalies_incoming ON CONFLICT DO NOTHING"
).format(
    cols=sql.SQL(", ").join(map(sql.Identifier, ANOMALY_COLUMNS)),
    exprs=sql.SQL(", ").join(
        sql.SQL("{}::jsonb").format(sql.Identifier(c)) if c in _JSON_COLUMNS else sql.Identifier(c)
        for c in ANOMALY_COLUMNS),
)

_ANOMALY_READ = codec.ANOMALY_READ_COLUMNS
_SELECT_ANOMALY = sql.SQL(f"SELECT {_ANOMALY_READ} FROM anomalies")

_STREAM_COLUMNS = codec.STREAM_COLUMNS
_KEY_COLUMNS = codec.KEY_COLUMNS
_AUDIT_COLUMNS = codec.AUDIT_COLUMNS


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


# psycopg returns aware datetimes (in the session's zone) and jsonb already decoded.
_DECODE = codec.RowDecoder(time=codec.as_utc, json=lambda value: value)


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


class PostgresStore:
    """``AnomalyStore`` and ``ApiKeyStore`` on Postgres. Every public method raises only store errors."""

    backend = "postgres"

    def __init__(self, settings: StoreSettings, metrics: GatewayMetrics, *,
                 acquire_timeout: float = 5.0, stats_interval: float = 1.0):
        if settings.database_url is None:
            raise ValueError("PostgresStore needs store.database_url (DATABASE_URL)")
        self._dsn = settings.database_url.get_secret_value()
        self._settings = settings
        self._metrics = metrics
        max_size = settings.max_open_conns
        self._pool = AsyncConnectionPool(
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
        self._pool_metrics = PoolMetricsExporter(self._pool, metrics.db_connections, stats_interval)

    @staticmethod
    async def _configure_connection(conn: psycopg.AsyncConnection[Any]) -> None:
        # Once per connection, not per batch: the temp table outlives transactions (rows do not).
        await conn.execute(_CREATE_INCOMING)
        await conn.commit()

    async def open(self) -> None:
        """Start the pool without waiting: the gateway starts (and spools) even while Postgres is down."""
        await self._pool.open(wait=False)
        self._pool_metrics.start()

    async def close(self) -> None:
        await self._pool_metrics.stop()
        await self._pool.close()

    async def migrate(self) -> list[str]:
        return await migrate_postgres(self._dsn)

    def refresh_pool_metrics(self) -> None:
        self._pool_metrics.refresh()

    async def ping(self) -> float:
        started = time.perf_counter()
        async with _db_errors(), self._pool.connection() as conn:
            await conn.execute("SELECT 1")
        return time.perf_counter() - started

    # --- anomalies

    async def write_anomalies(self, rows: list[AnomalyRecord]) -> int:
        if not rows:
            return 0
        # Encoding 500 rows takes ~10 ms of CPU: do it off the loop so ingest keeps being served.
        encoded = await asyncio.to_thread(lambda: [codec.anomaly_values(r) for r in rows])
        async with _db_errors(), self._pool.connection() as conn, conn.cursor() as cur:
            async with cur.copy(_COPY_INCOMING) as copy:
                copy.set_types(list(_COPY_TYPES))
                for row in encoded:
                    await copy.write_row(row)
            await cur.execute(_MOVE_INCOMING)
            return max(cur.rowcount, 0)

    async def query_anomalies(self, flt: AnomalyFilter, limit: int, cursor: str | None) -> Page:
        codec.check_limit(limit)
        where, params = codec.anomaly_where(flt, cursor, "%s", codec.as_utc)
        query = _SELECT_ANOMALY + sql.SQL(where + " ORDER BY detected_at DESC, id DESC LIMIT %s")
        rows = await self._fetch(query, [*params, limit + 1])
        return codec.anomaly_page(rows, limit, _DECODE)

    async def get_anomaly(self, anomaly_id: str) -> AnomalyRecord | None:
        rows = await self._fetch(_SELECT_ANOMALY + sql.SQL(" WHERE id = %s"), (anomaly_id,))
        return _DECODE.anomaly(rows[0]) if rows else None

    async def set_anomaly_status(self, anomaly_id: str, status: AnomalyStatus) -> AnomalyRecord | None:
        rows = await self._fetch(
            f"UPDATE anomalies SET status = %s WHERE id = %s RETURNING {_ANOMALY_READ}",
            (status, anomaly_id))
        return _DECODE.anomaly(rows[0]) if rows else None

    # --- streams and detector state

    async def upsert_stream(self, info: StreamInfo) -> None:
        await self._execute(
            f"INSERT INTO streams ({_STREAM_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s::jsonb, %s, %s) "
            "ON CONFLICT (stream_id) DO UPDATE SET signal = EXCLUDED.signal, service = EXCLUDED.service, "
            "name = EXCLUDED.name, state = EXCLUDED.state, profile = EXCLUDED.profile, "
            "settings = EXCLUDED.settings, events_seen = EXCLUDED.events_seen, "
            "updated_at = EXCLUDED.updated_at",
            codec.stream_values(info, codec.as_utc))

    async def list_streams(self, *, after: str | None = None, limit: int | None = None,
                           state: StreamState | None = None) -> list[StreamInfo]:
        where, params = codec.stream_where(after, state, "%s", ' COLLATE "C"')
        page = f" LIMIT {int(limit)}" if limit is not None else ""
        rows = await self._fetch(
            f'SELECT {_STREAM_COLUMNS} FROM streams{where} ORDER BY stream_id COLLATE "C"{page}', params)
        return [_DECODE.stream(r) for r in rows]

    async def get_stream(self, stream_id: str) -> StreamInfo | None:
        rows = await self._fetch(f"SELECT {_STREAM_COLUMNS} FROM streams WHERE stream_id = %s", (stream_id,))
        return _DECODE.stream(rows[0]) if rows else None

    async def save_state(self, stream_id: str, snapshot: bytes) -> None:
        await self._execute(
            "INSERT INTO detector_state (stream_id, snapshot, saved_at) VALUES (%s, %s, now()) "
            "ON CONFLICT (stream_id) DO UPDATE SET snapshot = EXCLUDED.snapshot, "
            "saved_at = EXCLUDED.saved_at",
            (stream_id, snapshot))

    async def load_state(self, stream_id: str) -> bytes | None:
        rows = await self._fetch("SELECT snapshot FROM detector_state WHERE stream_id = %s", (stream_id,))
        return bytes(rows[0]["snapshot"]) if rows else None

    # --- API keys and audit log

    async def create_api_key(self, key: ApiKey) -> None:
        await self._execute(
            f"INSERT INTO api_keys ({_KEY_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            codec.api_key_values(key, codec.as_utc))

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = await self._fetch(f"SELECT {_KEY_COLUMNS} FROM api_keys WHERE key_id = %s", (key_id,))
        return _DECODE.api_key(rows[0]) if rows else None

    async def list_api_keys(self) -> list[ApiKey]:
        rows = await self._fetch(f"SELECT {_KEY_COLUMNS} FROM api_keys ORDER BY created_at, key_id", ())
        return [_DECODE.api_key(r) for r in rows]

    async def update_api_key(self, key: ApiKey) -> None:
        await self._execute(
            "UPDATE api_keys SET name = %s, role = %s, secret_hash = %s, created_at = %s, revoked_at = %s, "
            "rotated_at = %s, last_used_at = %s WHERE key_id = %s",
            (*codec.api_key_values(key, codec.as_utc)[1:], key.key_id))

    async def touch_api_key(self, key_id: str, at: dt.datetime) -> None:
        await self._execute("UPDATE api_keys SET last_used_at = %s WHERE key_id = %s",
                            (codec.as_utc(at), key_id))

    async def append_audit(self, entry: AuditEntry) -> int:
        rows = await self._fetch(
            "INSERT INTO audit_log (actor, action, target, before, after, at) "
            "VALUES (%s, %s, %s, %s::jsonb, %s::jsonb, %s) RETURNING id",
            codec.audit_values(entry, codec.as_utc))
        entry.id = int(rows[0]["id"])
        return entry.id

    async def query_audit(self, since: dt.datetime | None, actor: str | None, limit: int,
                          cursor: str | None) -> tuple[list[AuditEntry], str | None]:
        codec.check_limit(limit)
        where, params = codec.audit_where(since, actor, cursor, "%s", codec.as_utc)
        rows = await self._fetch(
            f"SELECT {_AUDIT_COLUMNS} FROM audit_log{where} ORDER BY at DESC, id DESC LIMIT %s",
            [*params, limit + 1])
        return codec.audit_page(rows, limit, _DECODE)

    # --- plumbing

    async def _fetch(self, query: Any, params: Sequence[Any]) -> list[dict[str, Any]]:
        async with (_db_errors(), self._pool.connection() as conn,
                    conn.cursor(row_factory=dict_row) as cur):
            await cur.execute(query, params)
            return await cur.fetchall()

    async def _execute(self, query: Any, params: Sequence[Any]) -> None:
        async with _db_errors(), self._pool.connection() as conn:
            await conn.execute(query, params)
