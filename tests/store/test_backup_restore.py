"""The runbook's backup procedure, round-tripped on the real cluster.

    pg_dump -h <db-host> -U <db-user> -d <db-name> | gzip > driftlock-backup.sql.gz
    gunzip -c driftlock-backup.sql.gz | psql -h <db-host> -U <db-user> -d <new-db>

After the restore every table holds the same rows, the migration history says the schema is current,
and identity sequences continue (a new audit entry gets a fresh id).
"""

from __future__ import annotations

import datetime as dt
import gzip
import subprocess
from pathlib import Path

import psycopg
import pytest
from pydantic import SecretStr

from otlp_gateway.store import PostgresStore
from otlp_gateway.store.base import ApiKey, AuditEntry, StreamInfo
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.fixtures.postgres import SUPERUSER, PgCluster
from tests.store.support import T0, make_record, run

pytestmark = pytest.mark.postgres

TABLES = ("anomalies", "streams", "detector_state", "api_keys", "audit_log", "schema_migrations")


def _contents(dsn: str) -> dict[str, list[tuple[object, ...]]]:
    with psycopg.connect(dsn) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in TABLES}


async def _populate_and_use(dsn: str, *, expect_migrations: bool) -> int:
    store = PostgresStore(StoreSettings(database_url=SecretStr(dsn), max_idle_conns=1), GatewayMetrics())
    await store.open()
    try:
        applied = await store.migrate()
        assert applied == [] or expect_migrations
        if expect_migrations:
            await store.write_anomalies([make_record(s, o) for s in range(3) for o in range(50)])
            await store.upsert_stream(StreamInfo("s1", "logs", "cart", "app.log", "active", "default",
                                                 {"window": 300}, 1234, T0))
            await store.save_state("s1", b"\x00\x01snapshot\xff")
            await store.create_api_key(ApiKey("k1", "ops", "admin", "$argon2id$x", T0))
        return await store.append_audit(AuditEntry("cli", "api_key.create", "key:k1", None, {"name": "ops"},
                                                   at=T0 + dt.timedelta(seconds=1)))
    finally:
        await store.close()


def test_pg_dump_then_psql_restore_gives_equal_rows(pg_cluster: PgCluster, pg_dsn: str,
                                                     tmp_path: Path) -> None:
    first_audit_id = run(_populate_and_use(pg_dsn, expect_migrations=True))
    source_db = pg_dsn.rsplit("/", 1)[1]
    backup = tmp_path / "driftlock-backup.sql.gz"
    dump = subprocess.run([pg_cluster.tool("pg_dump"), "-h", "127.0.0.1", "-p", str(pg_cluster.port),
                           "-U", SUPERUSER, "-d", source_db], capture_output=True, check=True, timeout=60)
    backup.write_bytes(gzip.compress(dump.stdout))

    restored_db = pg_cluster.create_database()  # an empty database, as on a fresh server
    try:
        subprocess.run([pg_cluster.tool("psql"), "-h", "127.0.0.1", "-p", str(pg_cluster.port),
                        "-U", SUPERUSER, "-d", restored_db, "-v", "ON_ERROR_STOP=1", "-q"],
                       input=gzip.decompress(backup.read_bytes()), capture_output=True, check=True,
                       timeout=60)
        restored_dsn = pg_cluster.dsn(restored_db)
        before, after = _contents(pg_dsn), _contents(restored_dsn)
        assert len(before["anomalies"]) == 150
        assert after == before
        next_id = run(_populate_and_use(restored_dsn, expect_migrations=False))
        assert next_id > first_audit_id
    finally:
        pg_cluster.drop_database(restored_db)
