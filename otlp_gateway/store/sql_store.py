"""``SqlStore``: the anomaly store over any SQL backend, the dialect's named queries run by its connector."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from otlp_gateway.store import codec
from otlp_gateway.store.base import (
    CLOSING_ACTIONS,
    AnomalyFilter,
    AnomalyRecord,
    AnomalyStatus,
    ApiKey,
    AuditEntry,
    IncidentAction,
    IncidentFilter,
    IncidentPage,
    IncidentRecord,
    Page,
    PruneResult,
    ScoreBucket,
    StreamInfo,
    StreamPage,
    StreamState,
)
from otlp_gateway.store.connector import Connector
from otlp_gateway.store.leases import LeaseRequest, StreamLease
from otlp_gateway.store.queries import load_queries

PRUNE_BATCH_ROWS = 2000
"""Rows deleted per statement while pruning: other store calls interleave between batches."""
_ANOMALY_EQUALITY_FILTERS: tuple[str, ...] = ("stream_id", "service", "signal", "severity", "status")
_INCIDENT_EQUALITY_FILTERS: tuple[str, ...] = ("status", "service", "signal", "severity", "stream_id")
SERIES_MAX_BUCKETS = 10_000
"""Most buckets one series read returns (27 hours of 10 s buckets)."""


class SqlStore:
    """``AnomalyStore``, ``ApiKeyStore`` and ``LeaseStore``; every public method raises only store errors."""

    def __init__(self, connector: Connector):
        self.connector = connector
        self.backend: str = connector.dialect
        self._q = load_queries(connector.dialect)
        self._time = connector.time

    async def open(self) -> None:
        await self.connector.open()

    async def close(self) -> None:
        await self.connector.close()

    async def migrate(self) -> list[str]:
        return await self.connector.migrate()

    async def ping(self) -> float:
        started = time.perf_counter()
        await self._fetch("ping", {})
        return time.perf_counter() - started

    # --- anomalies

    async def write_anomalies(self, rows: list[AnomalyRecord]) -> int:
        if not rows:
            return 0
        c = self.connector
        return await c.insert_many(self._q["insert_anomalies"], codec.ANOMALY_WRITE_COLUMNS, rows,
                                   lambda r: codec.anomaly_values(r, c.time, c.flag))

    async def query_anomalies(self, flt: AnomalyFilter, limit: int, cursor: str | None) -> Page:
        codec.check_limit(limit)
        to_db = self._time
        conditions: list[str] = []
        params: dict[str, Any] = {"limit": limit + 1}
        for field in _ANOMALY_EQUALITY_FILTERS:
            value = getattr(flt, field)
            if value is not None:
                conditions.append(f"anomalies_where_{field}")
                params[field] = value
        if flt.since is not None:
            conditions.append("anomalies_where_since")
            params["since"] = to_db(flt.since)
        if flt.until is not None:
            conditions.append("anomalies_where_until")
            params["until"] = to_db(flt.until)
        if cursor is not None:
            at, last_id = codec.decode_cursor(cursor, str)
            conditions.append("anomalies_where_before")
            params.update(before_at=to_db(at), before_id=last_id)
        rows = await self.connector.fetch(self._q.with_where("query_anomalies", conditions), params)
        return codec.anomaly_page(rows, limit, self.connector.decode)

    async def get_anomaly(self, anomaly_id: str) -> AnomalyRecord | None:
        rows = await self._fetch("get_anomaly", {"id": anomaly_id})
        return self.connector.decode.anomaly(rows[0]) if rows else None

    async def set_anomaly_status(self, anomaly_id: str, status: AnomalyStatus) -> AnomalyRecord | None:
        rows = await self._fetch("set_anomaly_status", {"id": anomaly_id, "status": status})
        return self.connector.decode.anomaly(rows[0]) if rows else None

    # --- streams and detector state

    async def upsert_stream(self, info: StreamInfo) -> None:
        await self._execute("upsert_stream", codec.stream_params(info, self._time))

    async def list_streams(self, after: str | None = None, limit: int = 500,
                           state: StreamState | None = None) -> StreamPage:
        codec.check_limit(limit)
        rows = await self._fetch("list_streams", {"after": after or "", "limit": limit + 1, "state": state})
        items = [self.connector.decode.stream(r) for r in rows[:limit]]
        return StreamPage(items, items[-1].stream_id if len(rows) > limit else None)

    async def get_stream(self, stream_id: str) -> StreamInfo | None:
        rows = await self._fetch("get_stream", {"stream_id": stream_id})
        return self.connector.decode.stream(rows[0]) if rows else None

    async def stream_services(self, limit: int = 1000) -> list[str]:
        codec.check_limit(limit)
        return [r["service"] for r in await self._fetch("stream_services", {"limit": limit})]

    async def save_state(self, stream_id: str, snapshot: bytes, at: dt.datetime | None = None) -> None:
        saved_at = self._time(at or dt.datetime.now(dt.UTC))
        await self._execute("save_state", {"stream_id": stream_id, "snapshot": bytes(snapshot),
                                           "saved_at": saved_at})

    async def load_state(self, stream_id: str) -> bytes | None:
        rows = await self._fetch("load_state", {"stream_id": stream_id})
        return bytes(rows[0]["snapshot"]) if rows else None

    async def prune_unseen(self, older_than: dt.datetime) -> PruneResult:
        cutoff = self.connector.time(older_than)
        deleted: dict[str, int] = {}
        for query in ("prune_streams", "prune_states", "prune_scores"):
            deleted[query] = 0
            while True:
                n = await self._execute(query, {"cutoff": cutoff, "limit": PRUNE_BATCH_ROWS})
                deleted[query] += n
                if n < PRUNE_BATCH_ROWS:
                    break
        result = PruneResult(streams=deleted["prune_streams"], snapshots=deleted["prune_states"],
                             score_buckets=deleted["prune_scores"])
        if result.streams or result.snapshots or result.score_buckets:
            await self.connector.reclaim_space()
        return result

    # --- incidents and the streams' score series

    async def upsert_incidents(self, rows: list[IncidentRecord]) -> int:
        return await self.connector.execute_many(
            self._q["upsert_incidents"], [codec.incident_params(r, self._time) for r in rows])

    async def query_incidents(self, flt: IncidentFilter, limit: int, cursor: str | None) -> IncidentPage:
        codec.check_limit(limit)
        conditions: list[str] = []
        params: dict[str, Any] = {"limit": limit + 1}
        for field in _INCIDENT_EQUALITY_FILTERS:
            value = getattr(flt, field)
            if value is not None:
                conditions.append(f"incidents_where_{field}")
                params[field] = value
        if flt.since is not None:
            conditions.append("incidents_where_since")
            params["since"] = self._time(flt.since)
        if flt.until is not None:
            conditions.append("incidents_where_until")
            params["until"] = self._time(flt.until)
        if cursor is not None:
            closed, at, last_id = codec.decode_incident_cursor(cursor)
            conditions.append("incidents_where_after")
            params.update(after_closed=closed, after_at=self._time(at), after_id=last_id)
        rows = await self.connector.fetch(self._q.with_where("query_incidents", conditions), params)
        return codec.incident_page(rows, limit, self.connector.decode)

    async def get_incident(self, incident_id: str) -> IncidentRecord | None:
        rows = await self._fetch("get_incident", {"id": incident_id})
        return self.connector.decode.incident(rows[0]) if rows else None

    async def act_on_incident(self, incident_id: str, action: IncidentAction, actor: str,
                              at: dt.datetime, pending: bool = False,
                              closed_at: dt.datetime | None = None) -> IncidentRecord | None:
        when = self._time(at)
        if action == "acknowledge":
            rows = await self._fetch("acknowledge_incident", {"id": incident_id, "actor": actor, "at": when})
        else:
            rows = await self._fetch("close_incident", {
                "id": incident_id, "status": CLOSING_ACTIONS[action], "actor": actor, "at": when,
                "closed_at": self._time(closed_at if closed_at is not None else at),
                "pending": action if pending else None})
        return self.connector.decode.incident(rows[0]) if rows else None

    async def pending_incident_actions(self, stream_id: str | None = None) -> list[IncidentRecord]:
        rows = await self._fetch("pending_incident_actions", {"stream_id": stream_id})
        return [self.connector.decode.incident(r) for r in rows]

    async def clear_pending_action(self, incident_id: str) -> None:
        await self._execute("clear_pending_action", {"id": incident_id})

    async def open_incident_ids(self, stream_ids: list[str]) -> dict[str, str]:
        if not stream_ids:
            return {}
        rows = await self._fetch("open_incident_ids", {"stream_ids": codec.dumps_json(list(stream_ids))})
        return {r["stream_id"]: r["id"] for r in rows}

    async def false_incident_counts(self) -> dict[str, tuple[int, int]]:
        """``profile -> (false positives marked by operators, events scored)`` over the stored streams."""
        rows = await self._fetch("false_incident_counts", {})
        return {r["profile"]: (int(r["false_positives"] or 0), int(r["events"] or 0)) for r in rows}

    async def write_scores(self, buckets: list[ScoreBucket]) -> int:
        return await self.connector.execute_many(
            self._q["write_scores"], [codec.score_params(b, self._time) for b in buckets])

    async def latest_score(self, stream_id: str) -> ScoreBucket | None:
        rows = await self._fetch("latest_score", {"stream_id": stream_id})
        return self.connector.decode.score(rows[0]) if rows else None

    async def score_series(self, stream_id: str, since: dt.datetime, until: dt.datetime) -> list[ScoreBucket]:
        rows = await self._fetch("score_series", {"stream_id": stream_id, "since": self._time(since),
                                                  "until": self._time(until), "limit": SERIES_MAX_BUCKETS})
        return [self.connector.decode.score(r) for r in rows]

    # --- API keys and audit log

    async def create_api_key(self, key: ApiKey) -> None:
        await self._execute("create_api_key", codec.api_key_params(key, self._time))

    async def get_api_key(self, key_id: str) -> ApiKey | None:
        rows = await self._fetch("get_api_key", {"key_id": key_id})
        return self.connector.decode.api_key(rows[0]) if rows else None

    async def list_api_keys(self) -> list[ApiKey]:
        """Every key (keys are made one by one by admins: a short list)."""
        rows = await self._fetch("list_api_keys", {})
        return [self.connector.decode.api_key(r) for r in rows]

    async def update_api_key(self, key: ApiKey) -> None:
        await self._execute("update_api_key", codec.api_key_params(key, self._time))

    async def touch_api_key(self, key_id: str, at: dt.datetime) -> None:
        await self._execute("touch_api_key", {"key_id": key_id, "at": self._time(at)})

    async def append_audit(self, entry: AuditEntry) -> int:
        rows = await self._fetch("append_audit", codec.audit_params(entry, self._time))
        entry.id = int(rows[0]["id"])
        return entry.id

    async def query_audit(self, since: dt.datetime | None, actor: str | None, limit: int,
                          cursor: str | None, target: str | None = None,
                          ) -> tuple[list[AuditEntry], str | None]:
        codec.check_limit(limit)
        conditions: list[str] = []
        params: dict[str, Any] = {"limit": limit + 1}
        if since is not None:
            conditions.append("audit_where_since")
            params["since"] = self.connector.time(since)
        if actor is not None:
            conditions.append("audit_where_actor")
            params["actor"] = actor
        if target is not None:
            conditions.append("audit_where_target")
            params["target"] = target
        if cursor is not None:
            at, last_id = codec.decode_cursor(cursor, int)
            conditions.append("audit_where_before")
            params.update(before_at=self.connector.time(at), before_id=last_id)
        rows = await self.connector.fetch(self._q.with_where("query_audit", conditions), params)
        return codec.audit_page(rows, limit, self.connector.decode)

    # --- stream ownership (scale-out)

    def _clock(self, ttl: float = 0.0) -> dict[str, Any]:
        # SQLite's statements take the gateway's clock; Postgres' use the database's and ignore these
        now = dt.datetime.now(dt.UTC)
        return {"now": self._time(now), "expires_at": self._time(now + dt.timedelta(seconds=ttl)),
                "ttl": float(ttl)}

    async def register_instance(self, instance_id: str, token: str, ttl: float) -> None:
        await self._execute("register_instance", {"instance_id": instance_id, "token": token,
                                                  **self._clock(ttl)})

    async def renew_instance(self, instance_id: str, token: str, ttl: float) -> bool:
        return await self._execute("renew_instance", {"instance_id": instance_id, "token": token,
                                                      **self._clock(ttl)}) > 0

    async def retire_instance(self, instance_id: str, token: str) -> None:
        await self._execute("retire_instance", {"instance_id": instance_id, "token": token})

    async def prune_instances(self, older_than: dt.datetime) -> int:
        pruned = await self._execute("prune_instances", {"cutoff": self._time(older_than)})
        await self._execute("prune_orphan_leases", {})
        return pruned

    async def get_lease(self, stream_id: str) -> StreamLease | None:
        rows = await self._fetch("get_lease", {"stream_id": stream_id, **self._clock()})
        if not rows:
            return None
        row = rows[0]
        beat = row["owner_heartbeat_at"]
        return StreamLease(stream_id=row["stream_id"], owner=row["owner"],
                           owner_alive=bool(row["owner_alive"]),
                           owner_heartbeat_at=self.connector.decode.time(beat) if beat is not None else None,
                           requested_by=row["requested_by"])

    async def insert_lease(self, stream_id: str, owner: str) -> bool:
        return await self._execute("insert_lease", {"stream_id": stream_id, "owner": owner,
                                                    **self._clock()}) > 0

    async def take_lapsed_lease(self, stream_id: str, owner: str, previous: str) -> bool:
        return await self._execute("take_lapsed_lease", {"stream_id": stream_id, "owner": owner,
                                                         "previous": previous, **self._clock()}) > 0

    async def request_lease(self, stream_id: str, owner: str, requester: str) -> bool:
        return await self._execute("request_lease", {"stream_id": stream_id, "owner": owner,
                                                     "requester": requester, **self._clock()}) > 0

    async def withdraw_request(self, stream_id: str, requester: str) -> None:
        await self._execute("withdraw_request", {"stream_id": stream_id, "requester": requester})

    async def withdraw_requests(self, requester: str) -> None:
        await self._execute("withdraw_requests", {"requester": requester})

    async def transfer_lease(self, stream_id: str, owner: str) -> bool:
        return await self._execute("transfer_lease", {"stream_id": stream_id, "owner": owner,
                                                      **self._clock()}) > 0

    async def release_lease(self, stream_id: str, owner: str) -> bool:
        return await self._execute("release_lease", {"stream_id": stream_id, "owner": owner}) > 0

    async def release_leases(self, owner: str) -> int:
        return await self._execute("release_leases", {"owner": owner})

    async def lease_requests(self, owner: str) -> list[LeaseRequest]:
        rows = await self._fetch("lease_requests", {"owner": owner})
        return [LeaseRequest(r["stream_id"], r["requested_by"]) for r in rows]

    async def count_leases(self, owner: str) -> int:
        rows = await self._fetch("count_leases", {"owner": owner})
        return int(rows[0]["n"])

    async def owned_streams(self, owner: str) -> set[str]:
        return {r["stream_id"] for r in await self._fetch("owned_streams", {"owner": owner})}

    # --- plumbing

    async def _fetch(self, name: str, params: dict[str, Any]) -> list[codec.Row]:
        return await self.connector.fetch(self._q[name], params)

    async def _execute(self, name: str, params: dict[str, Any]) -> int:
        return await self.connector.execute(self._q[name], params)
