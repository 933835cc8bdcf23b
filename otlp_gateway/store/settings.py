"""Anomaly store settings. Postgres when a URL is set, otherwise an embedded SQLite file."""

from __future__ import annotations

from pydantic import Field, SecretStr

from otlp_gateway.durable.backoff import RetrySettings
from otlp_gateway.settings_base import Duration, StrictModel


class StoreRetrySettings(RetrySettings):
    """Backoff of the anomaly spool's drain and of preparing the store at start while it is unreachable
    (the collector's shape; shorter intervals than forwarding: the store is usually close by)."""

    initial_interval_seconds: Duration = Field(0.5, gt=0)
    """First backoff delay."""
    max_interval_seconds: Duration = Field(15.0, gt=0)
    """Upper bound of one backoff delay."""


class StoreSettings(StrictModel):
    database_url: SecretStr | None = None
    """``postgresql://user:pass@host:5432/db``; from ``DATABASE_URL``. Unset: SQLite in ``data_dir``."""
    sqlite_path: str | None = None
    """Override the embedded SQLite file (default ``<data_dir>/driftlock.db``)."""
    max_open_conns: int = Field(25, gt=0)
    """``DB_MAX_OPEN_CONNS``: pool maximum size."""
    max_idle_conns: int = Field(10, ge=0)
    """``DB_MAX_IDLE_CONNS``: connections kept open when idle (pool minimum size)."""
    conn_max_lifetime_seconds: Duration = Field(3600.0, gt=0)
    """``DB_CONN_MAX_LIFETIME`` (accepts Go-style durations such as ``1h`` in the environment)."""
    migrate_on_start: bool = True
    batch_max_rows: int = Field(500, gt=0)
    flush_interval_seconds: Duration = Field(1.0, gt=0)
    spool_max_rows: int = Field(1_000_000, gt=0)
    """Anomalies held on local disk while the database is unreachable."""
    retry: StoreRetrySettings = StoreRetrySettings()
    stream_retention_seconds: Duration = Field(7 * 86_400.0, ge=0)
    """Stream records and detector snapshots of streams unseen for this long are deleted (a stream that
    returns warms up again). Streams with settings changed through the API keep their record. 0: never."""
    prune_interval_seconds: Duration = Field(3600.0, gt=0)
    """How often the pruning job runs."""
    pressure_retention_seconds: Duration = Field(3600.0, ge=0)
    """While the data dir is at its size budget (and the store is the embedded SQLite in it), streams unseen
    for this long are pruned too, so a flood of one-off streams cannot keep ingest refused for the whole
    retention; streams being fed are snapshotted every minute and never reach it. 0: only the retention."""
