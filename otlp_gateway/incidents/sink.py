"""IncidentSink: where the detection stage hands each decided batch's incident changes and score buckets.

For every ``IncidentChange`` it builds the stored row (``records.incident_record``: evidence already
mapped to trace/span ids on the stream's shard thread) and submits it to the anomaly writer (batched,
spooled while the store is down, idempotent), and follows the incident's life:

* opened: ``driftlock_incidents_total`` and ``driftlock_incidents_open`` count it, one structured WARNING
  log line, the notifier is told;
* changed while open (severity rose, more windows): the open gauge follows its severity;
* closed (resolved, accepted, false positive): the open gauge drops it, one INFO line, the notifier is
  told; an acceptance the detector decided (``accept_after``) is also written to the audit log.

The sink knows which incidents are open: those it saw open, plus the store's open incidents, read at
start and again every ``rate_refresh_interval_seconds`` (so a restarted gateway keeps re-sending them and
closes them properly, and with several gateways on one store each one's series and re-sends follow the
incidents the others open and close, an operator's close on another replica included). An update of an
incident the sink saw close is ignored (a late or replayed one never reopens it), as the store's upsert
ignores it.

Score buckets are coalesced per (stream, bucket) and written every ``score_flush_interval_seconds``: a
bucket's latest cumulative state once, not once per request.

Event loop only; ``handle`` never blocks and never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any, Protocol

from otlp_gateway.incidents.metrics import IncidentMetrics
from otlp_gateway.incidents.notify import Notifier
from otlp_gateway.incidents.records import IncidentLinks, audit_target, duration_seconds, incident_record
from otlp_gateway.incidents.settings import IncidentSettings
from otlp_gateway.store.base import (
    AnomalyStore,
    ApiKeyStore,
    AuditEntry,
    IncidentFilter,
    IncidentRecord,
    ScoreBucket,
)
from otlp_gateway.streams.incidents import IncidentChange
from otlp_gateway.streams.live import ScoreOutcome
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger("otlp_gateway.incidents")

REMEMBERED_CLOSED = 10_000
"""Ids of recently closed incidents kept to ignore their late updates (the store ignores them anyway)."""
SEED_PAGE = 500
SEED_RETRY_SECONDS = 5.0
DETECTOR_ACTOR = "detector"


class RowSink(Protocol):
    """The anomaly writer: takes rows at once, never blocks."""

    def submit(self, rows: Sequence[Any]) -> None: ...


class IncidentStore(AnomalyStore, ApiKeyStore, Protocol):
    """Incidents, streams and the audit log live in one store."""


class IncidentSink:
    """A component: ``start`` reads the open incidents and starts the periodic writes; ``shutdown`` writes
    the coalesced score buckets (before the writer stops)."""

    def __init__(self, writer: RowSink, store: IncidentStore | None, metrics: GatewayMetrics,
                 settings: IncidentSettings, links: IncidentLinks, notifier: Notifier | None = None,
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)):
        self._writer = writer
        self._store = store
        self._settings = settings
        self._links = links
        self._notifier = notifier
        self._clock = clock
        self.metrics = IncidentMetrics(metrics)
        self._open: dict[str, IncidentRecord] = {}
        self._foreign: set[str] = set()
        """Open incidents learned from the store after the start: another gateway's streams'."""
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._scores: dict[tuple[str, dt.datetime], ScoreBucket] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.seeded = asyncio.Event()
        """Set once the store's open incidents were read (or there is no store)."""

    # --- lifecycle
    async def start(self) -> None:
        if self._tasks:
            return
        loop = asyncio.get_running_loop()
        self._tasks.append(loop.create_task(self._flush_scores_periodically(), name="incident-scores"))
        if self._store is None:
            self.seeded.set()
            return
        self._tasks.append(loop.create_task(self._seed_until_done(), name="incident-seed"))
        self._tasks.append(loop.create_task(self._refresh_periodically(), name="incident-refresh"))

    async def shutdown(self, grace: float = 5.0) -> None:
        """Idempotent, safe without ``start``."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.flush_scores()
        if self._background:
            await asyncio.wait(list(self._background), timeout=max(grace, 0.1))

    # --- from the detection stage
    def handle(self, outcomes: Iterable[ScoreOutcome]) -> None:
        """The incident changes and score buckets of one decided batch."""
        changes: list[IncidentChange] = []
        for outcome in outcomes:
            changes.extend(outcome.incidents)
            for bucket in outcome.scores:
                self._scores[(bucket.stream_id, bucket.bucket_start)] = bucket  # cumulative: latest wins
        if changes:
            self.handle_changes(changes)

    def handle_changes(self, changes: Sequence[IncidentChange]) -> list[IncidentRecord]:
        """Store and follow incident changes (also those an operator's action caused); returns the rows."""
        now = self._clock()
        rows = [incident_record(change, now) for change in changes]
        self._writer.submit(rows)
        for change, row in zip(changes, rows, strict=True):
            try:
                self._follow(row, change.actor)
            except Exception:  # metrics, logs and notifications never cost the row
                log.exception("incidents: following incident %s failed", row.id)
        return rows

    # --- from the API (the store already holds the operator's change)
    def operator_acted(self, rec: IncidentRecord, action: str, actor: str) -> None:
        if action == "acknowledge":
            if rec.id in self._open:
                self._open[rec.id] = rec
            log.info("incident %s acknowledged by %s", rec.id, actor, extra=self._fields(rec, "acknowledged"))
            if self._notifier is not None:
                self._notifier.acknowledged(rec)
            return
        self._follow(rec, actor, by_api=True)

    # --- what the rest of the gateway reads
    def open_incidents(self) -> list[IncidentRecord]:
        return list(self._open.values())

    def resendable_incidents(self) -> list[IncidentRecord]:
        """The open incidents this gateway re-sends to Alertmanager: its own streams', and those open when it
        started (a restarted single gateway keeps their alerts alive); not those another gateway sharing
        the store opened since, which that gateway re-sends (and ends: a re-send from here could re-fire
        an alert it has just ended)."""
        return [rec for rec in self._open.values() if rec.id not in self._foreign]

    def open_incident_of(self, stream_id: str) -> str | None:
        newest = max((r for r in self._open.values() if r.stream_id == stream_id),
                     key=lambda r: r.opened_at, default=None)
        return newest.id if newest is not None else None

    def flush_scores(self) -> int:
        """Hand the coalesced score buckets to the writer; returns how many."""
        buckets, self._scores = list(self._scores.values()), {}
        if buckets:
            self._writer.submit(buckets)
        return len(buckets)

    # --- the incident's life
    def _follow(self, rec: IncidentRecord, actor: str | None, *, by_api: bool = False) -> None:
        before = self._open.get(rec.id)
        if rec.is_open:
            if rec.id in self._closed:
                return  # a late update of an incident seen closing: it stays closed
            if before is None:
                self._open[rec.id] = rec
                self.metrics.opened(rec)
                self.flush_scores()  # its page plots the stream's scores: write them now, not in 10 s
                log.warning("incident %s opened on %s (%s, severity %s): %s", rec.id, rec.stream_id,
                            rec.service, rec.severity, rec.summary, extra=self._fields(rec, "opened"))
                if self._notifier is not None:
                    self._notifier.opened(rec)
                return
            rec = dataclasses.replace(rec, acknowledged_by=before.acknowledged_by,
                                      acknowledged_at=before.acknowledged_at)
            self._open[rec.id] = rec
            self._foreign.discard(rec.id)  # its stream is scored here now
            self.metrics.is_open(rec)
            if self._notifier is not None:
                self._notifier.changed(before, rec)
            return
        if before is None and (rec.id in self._closed or (actor is not None and not by_api)):
            return  # already closed (here, or by the operator whose action the detector now takes)
        self._open.pop(rec.id, None)
        self._foreign.discard(rec.id)
        self._remember_closed(rec.id)
        self.metrics.closed(rec.id)
        who = f" by {actor}" if actor else ""
        what = "marked a false positive" if rec.status == "false_positive" else rec.status
        log.info("incident %s %s%s after %.1f s (%d anomalous windows)", rec.id, what, who,
                 duration_seconds(rec), rec.anomalous_windows, extra=self._fields(rec, rec.status))
        if self._notifier is not None:
            self._notifier.closed(rec)
        if rec.status == "accepted" and actor is None:
            self._audit_acceptance(rec, before)

    def _audit_acceptance(self, rec: IncidentRecord, before: IncidentRecord | None) -> None:
        """The detector adopted a lasting change as the new normal (``accept_after``): audited like an
        operator's acceptance, with ``detector`` as the actor."""
        if self._store is None:
            return
        was = _audit_view(before) if before is not None else {"id": rec.id, "status": "open"}
        entry = AuditEntry(actor=DETECTOR_ACTOR, action="incident.accept", target=audit_target(rec.id),
                           before=was, after={**_audit_view(rec), "reason": "open longer than accept_after"},
                           at=self._clock())
        self._spawn(self._append_audit(entry))

    async def _append_audit(self, entry: AuditEntry) -> None:
        assert self._store is not None
        try:
            await self._store.append_audit(entry)
        except Exception as exc:
            log.error("incidents: the audit entry for %s (%s) could not be written: %s", entry.target,
                      entry.action, exc)

    def _fields(self, rec: IncidentRecord, event: str) -> dict[str, Any]:
        return {"incident_id": rec.id, "incident_event": event, "stream_id": rec.stream_id,
                "service": rec.service, "signal": rec.signal, "severity": rec.severity, "status": rec.status,
                "incident_url": self._links.url(rec.id)}

    # --- background work
    async def _seed_until_done(self) -> None:
        while True:
            try:
                await self._seed()
            except Exception as exc:
                log.warning("incidents: could not read the open incidents from the store (%s); retrying in "
                            "%.0f s", exc, SEED_RETRY_SECONDS)
                await asyncio.sleep(SEED_RETRY_SECONDS)
                continue
            self.seeded.set()
            return

    async def _seed(self) -> None:
        seen = await self.reconcile()
        if seen:
            log.info("incidents: %d open incidents from the store", seen)

    async def reconcile(self) -> int:
        """Follow the store: count its open incidents this sink does not know yet (opened by another
        gateway, or before a restart), and drop those the store has closed meanwhile (by another gateway,
        or an operator's action answered there; that gateway notified). Returns how many were added."""
        assert self._store is not None
        stored: dict[str, IncidentRecord] = {}
        cursor: str | None = None
        while True:
            page = await self._store.query_incidents(IncidentFilter(status="open"), SEED_PAGE, cursor)
            stored.update((rec.id, rec) for rec in page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        added = 0
        for rec in stored.values():
            if rec.id not in self._open and rec.id not in self._closed:
                self._open[rec.id] = rec
                if self.seeded.is_set():
                    self._foreign.add(rec.id)
                self.metrics.is_open(rec)
                added += 1
        for incident_id in [i for i in self._open if i not in stored]:
            # not open in the store: closed there, or opened here and not written yet (then it is kept)
            now = await self._store.get_incident(incident_id)
            if now is not None and not now.is_open and incident_id in self._open:
                del self._open[incident_id]
                self._foreign.discard(incident_id)
                self._remember_closed(incident_id)
                self.metrics.closed(incident_id)
        return added

    def _remember_closed(self, incident_id: str) -> None:
        self._closed[incident_id] = None
        while len(self._closed) > REMEMBERED_CLOSED:
            self._closed.popitem(last=False)

    async def _flush_scores_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._settings.score_flush_interval_seconds)
            self.flush_scores()

    async def _refresh_periodically(self) -> None:
        assert self._store is not None
        while True:
            try:
                self.metrics.measured(await self._store.false_incident_counts())
                if self.seeded.is_set():
                    await self.reconcile()
            except Exception as exc:  # the store is down: the series keep their last values
                log.debug("incidents: could not refresh from the store: %s", exc)
            await asyncio.sleep(self._settings.rate_refresh_interval_seconds)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _audit_view(rec: IncidentRecord) -> dict[str, Any]:
    return {"id": rec.id, "stream_id": rec.stream_id, "status": rec.status, "severity": rec.severity,
            "anomalous_windows": rec.anomalous_windows}
