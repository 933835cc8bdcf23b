"""The Notifier: incident transitions become notifications in the configured receivers' outboxes.

Alertmanager gets the incident's alert when it opens, again every ``resend_interval_seconds`` while it is
open (all open incidents in one POST, skipped while earlier notifications still wait, so an outage does
not pile re-sends up), the old severity's alert ended and the new one fired when its severity rises, and
the alert with ``endsAt`` when it closes. The webhook gets one signed event per transition: opened,
acknowledged, resolved, accepted, false_positive. A component: ``start`` opens the outboxes (delivering
what a previous run left), ``shutdown`` delivers within the grace period and keeps the rest on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Callable, Iterable
from pathlib import Path

from otlp_gateway.incidents.notify import alertmanager, webhook
from otlp_gateway.incidents.notify.http import client, post
from otlp_gateway.incidents.notify.outbox import Outbox
from otlp_gateway.incidents.records import IncidentLinks
from otlp_gateway.incidents.settings import NotifySettings
from otlp_gateway.store.base import IncidentRecord
from otlp_gateway.telemetry.metrics import GatewayMetrics

log = logging.getLogger(__name__)

ALERTMANAGER = "alertmanager"
WEBHOOK = "webhook"


class Notifier:
    def __init__(self, settings: NotifySettings, data_dir: Path, links: IncidentLinks,
                 metrics: GatewayMetrics, open_incidents: Callable[[], Iterable[IncidentRecord]],
                 clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)):
        self.settings = settings
        self._links = links
        self._open_incidents = open_incidents
        self._clock = clock
        self._resend: asyncio.Task[None] | None = None
        self.alertmanager: Outbox | None = None
        self.webhook: Outbox | None = None
        am, hook = settings.alertmanager, settings.webhook
        if am.url is not None:
            self._am_url = am.url + alertmanager.PATH
            self._am_headers = {k: v.get_secret_value() for k, v in am.headers.items()}
            self._am_http = client(am.timeout_seconds, am.ca_file)
            self.alertmanager = Outbox(data_dir / "notify-alertmanager.sqlite3", ALERTMANAGER,
                                       self._to_alertmanager, settings.retry, settings.outbox_max_entries,
                                       metrics)
        if hook.url is not None:
            assert hook.secret is not None  # the settings require it with a url
            self._hook_url = hook.url
            self._hook_secret = hook.secret.get_secret_value().encode()
            self._hook_headers = {k: v.get_secret_value() for k, v in hook.headers.items()}
            self._hook_http = client(hook.timeout_seconds, hook.ca_file)
            self.webhook = Outbox(data_dir / "notify-webhook.sqlite3", WEBHOOK, self._to_webhook,
                                  settings.retry, settings.outbox_max_entries, metrics)

    @property
    def outboxes(self) -> list[Outbox]:
        return [o for o in (self.alertmanager, self.webhook) if o is not None]

    # --- lifecycle
    async def start(self) -> None:
        for outbox in self.outboxes:
            await outbox.start()
        if self.alertmanager is not None and self._resend is None:
            self._resend = asyncio.get_running_loop().create_task(self._resend_open(), name="notify-resend")

    async def shutdown(self, grace: float = 5.0) -> None:
        """Idempotent, safe without ``start``."""
        if self._resend is not None:
            self._resend.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._resend
            self._resend = None
        await asyncio.gather(*(outbox.shutdown(grace) for outbox in self.outboxes))
        if self.alertmanager is not None:
            await self._am_http.aclose()
        if self.webhook is not None:
            await self._hook_http.aclose()

    # --- transitions (event loop; never block, never raise)
    def opened(self, rec: IncidentRecord) -> None:
        self._alert([alertmanager.alert(rec, self._url(rec), self._clock(), ended=False)])
        self._event("opened", rec)

    def changed(self, before: IncidentRecord, after: IncidentRecord) -> None:
        """An open incident's severity rose: end the alert under the old severity, fire the new one."""
        if before.severity == after.severity:
            return
        now = self._clock()
        url = self._url(after)
        self._alert([alertmanager.alert(after, url, now, ended=True, as_severity=before.severity),
                     alertmanager.alert(after, url, now, ended=False)])

    def closed(self, rec: IncidentRecord) -> None:
        self._alert([alertmanager.alert(rec, self._url(rec), self._clock(), ended=True)])
        self._event(rec.status, rec)

    def acknowledged(self, rec: IncidentRecord) -> None:
        self._event("acknowledged", rec)

    # --- internals
    def _url(self, rec: IncidentRecord) -> str:
        return self._links.url(rec.id)

    def _alert(self, alerts: list[dict[str, object]]) -> None:
        if self.alertmanager is not None:
            self.alertmanager.put(alertmanager.payload(alerts))

    def _event(self, kind: str, rec: IncidentRecord) -> None:
        if self.webhook is not None:
            self.webhook.put(webhook.payload(webhook.event(kind, rec, self._url(rec), self._clock())))

    async def _resend_open(self) -> None:
        assert self.alertmanager is not None
        while True:
            await asyncio.sleep(self.settings.resend_interval_seconds)
            try:
                self.resend_now()
            except Exception:  # a defect must not end the re-sends
                log.exception("notify alertmanager: re-sending the open incidents failed")

    def resend_now(self) -> int:
        """Queue the alerts of every open incident (unless notifications are still waiting); returns how
        many were queued."""
        if self.alertmanager is None or self.alertmanager.pending:
            return 0
        now = self._clock()
        alerts = [alertmanager.alert(rec, self._url(rec), now, ended=False) for rec in self._open_incidents()]
        for start in range(0, len(alerts), alertmanager.MAX_ALERTS_PER_POST):
            self._alert(alerts[start:start + alertmanager.MAX_ALERTS_PER_POST])
        return len(alerts)

    async def _to_alertmanager(self, body: bytes) -> None:
        await post(self._am_http, self._am_url, body, self._am_headers)

    async def _to_webhook(self, body: bytes) -> None:
        await post(self._hook_http, self._hook_url, body,
                   {**self._hook_headers, **webhook.headers(self._hook_secret, body)})
