"""Notifications against real receivers: the Prometheus Alertmanager (Debian's package, started here) and a
local HTTP server checking the webhook's signature; both through the persistent outboxes, across a
receiver outage and a gateway restart."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from otlp_gateway.incidents.notify import Notifier
from otlp_gateway.incidents.records import IncidentLinks
from otlp_gateway.incidents.settings import IncidentSettings, NotifySettings
from otlp_gateway.incidents.sink import IncidentSink
from otlp_gateway.store import AnomalyWriter
from otlp_gateway.store.settings import StoreSettings
from otlp_gateway.store.sqlite import SqliteStore
from otlp_gateway.telemetry.metrics import GatewayMetrics
from tests.fixtures.alertmanager import AlertmanagerProcess
from tests.fixtures.waiting import eventually, free_port
from tests.incidents.test_sink import Changes, key, update

UI = "https://ui.example"
FAST_RETRY = {"initial_interval_seconds": 0.05, "max_interval_seconds": 0.2}
SECRET = "webhook-secret-0123456789"


class Gateway:
    """The incident sink and notifier of one gateway process over a data dir (store, spool, outboxes)."""

    def __init__(self, data_dir: Path, notify: dict[str, Any]):
        self.data_dir = data_dir
        self.metrics = GatewayMetrics()
        self.store = SqliteStore(data_dir / "store.db")
        self.writer = AnomalyWriter(self.store, data_dir / "spool",
                                    StoreSettings(flush_interval_seconds=0.02), self.metrics)
        links = IncidentLinks(lambda: UI)
        settings = NotifySettings.model_validate({"retry": FAST_RETRY, **notify})
        self.notifier = Notifier(settings, data_dir, links, self.metrics,
                                 lambda: self.sink.resendable_incidents())
        self.sink = IncidentSink(self.writer, self.store, self.metrics, IncidentSettings(), links,
                                 self.notifier)

    async def start(self) -> Gateway:
        await self.store.open()
        await self.store.migrate()
        await self.writer.start()
        await self.notifier.start()
        await self.sink.start()
        await asyncio.wait_for(self.sink.seeded.wait(), 10)
        return self

    async def stop(self, grace: float = 0.0) -> None:
        await self.sink.shutdown(grace)
        await self.notifier.shutdown(grace)
        await self.writer.shutdown(1)
        await self.store.close()

    def count(self, name: str, **labels: str) -> float:
        return self.metrics.registry.get_sample_value(name, labels) or 0.0


def _ours(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["annotations"]["incident_id"]: a for a in alerts
            if a["labels"]["alertname"] == "DriftlockIncident"}


def test_alertmanager_gets_the_incident_its_severity_and_its_end(tmp_path: Path,
                                                                 alertmanager: AlertmanagerProcess) -> None:
    change = Changes()

    async def body() -> None:
        gw = await Gateway(tmp_path / "gw", {"alertmanager": {"url": alertmanager.url},
                                             "resend_interval_seconds": 0.2}).start()
        [opened] = gw.sink.handle_changes([change(key(), update(severity="medium"))])
        alerts = await eventually(lambda: _ours(alertmanager.alerts()), 20, "the alert in alertmanager")
        alert = alerts[opened.id]
        assert alert["labels"] == {"alertname": "DriftlockIncident", "service": "cart", "signal": "traces",
                                   "stream": "traces/cart/POST /cart", "severity": "medium"}
        assert alert["annotations"]["summary"] == opened.summary
        assert opened.id in alert["annotations"]["description"]
        assert alert["generatorURL"] == f"{UI}/incidents/{opened.id}"
        assert alert["status"]["state"] == "active"
        # re-sent while open: deliveries keep coming without any change
        sent = gw.count("driftlock_notifications_sent_total", receiver="alertmanager")
        await eventually(lambda: gw.count("driftlock_notifications_sent_total", receiver="alertmanager")
                         >= sent + 3, 20, "three re-sends")
        # the severity rises: the alert moves to the new severity (the old one is ended)
        gw.sink.handle_changes([change(key(), update(windows=3, severity="critical"))])
        await eventually(lambda: [a["labels"]["severity"] for a in _ours(alertmanager.alerts()).values()]
                         == ["critical"], 20, "one alert, at severity critical")
        # it closes: the alert is ended (endsAt), so Alertmanager no longer lists it
        gw.sink.handle_changes([change(key(), update(status="resolved", windows=3, severity="critical",
                                                     closed=1))])
        await eventually(lambda: _ours(alertmanager.alerts()) == {}, 20, "the alert to end")
        assert gw.count("driftlock_notifications_failed_total", receiver="alertmanager",
                        reason="permanent") == 0
        await gw.stop()

    asyncio.run(body())


def test_notifications_survive_an_alertmanager_outage_and_a_gateway_restart(
        tmp_path: Path, alertmanager: AlertmanagerProcess) -> None:
    change = Changes()
    notify = {"alertmanager": {"url": alertmanager.url}, "resend_interval_seconds": 3600}  # no re-send here

    async def body() -> None:
        gw = await Gateway(tmp_path / "gw", notify).start()
        [a] = gw.sink.handle_changes([change(key("cart"), update())])
        await eventually(lambda: a.id in _ours(alertmanager.alerts()), 20, "incident A in alertmanager")

        alertmanager.kill()  # the receiver goes away mid-way
        [b] = gw.sink.handle_changes([change(key("search"), update())])
        gw.sink.handle_changes([change(key("cart"), update(status="resolved", closed=1))])
        await eventually(lambda: gw.count("driftlock_notifications_retried_total", receiver="alertmanager"),
                         20, "a failed delivery being retried")
        assert gw.notifier.alertmanager is not None and gw.notifier.alertmanager.pending == 2
        await gw.stop()  # the gateway stops with both notifications in its outbox
        assert (tmp_path / "gw" / "notify-alertmanager.sqlite3").exists()

        alertmanager.start()  # back, remembering nothing
        assert _ours(alertmanager.alerts()) == {}
        gw2 = await Gateway(tmp_path / "gw", notify).start()  # restarted on the same data dir
        held = await eventually(lambda: _ours(alertmanager.alerts()), 20, "the outbox to be delivered")
        assert list(held) == [b.id]  # B opened; A's end arrived too (it is not listed as active)
        outbox = gw2.notifier.alertmanager
        assert outbox is not None
        await eventually(lambda: outbox.pending == 0, 20, "an empty outbox")
        assert gw2.count("driftlock_notifications_sent_total", receiver="alertmanager") == 2
        assert gw2.count("driftlock_notify_outbox_entries", receiver="alertmanager") == 0
        assert {r.id for r in gw2.sink.open_incidents()} == {b.id}
        await gw2.stop()

    asyncio.run(body())


class WebhookReceiver:
    """A local HTTP server that checks the signature itself, answering ``statuses`` in turn (then 200)."""

    def __init__(self, statuses: list[int]):
        self.statuses = list(statuses)
        self.received: list[tuple[dict[str, Any], bool, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                signed = hmac.compare_digest(expected, self.headers.get("X-Driftlock-Signature", ""))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                if status == 200:
                    receiver.received.append((json.loads(body), signed, dict(self.headers)))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/driftlock"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_the_webhook_gets_signed_events_in_order_through_failures(tmp_path: Path) -> None:
    receiver = WebhookReceiver([503, 503])
    change = Changes()

    async def body() -> None:
        gw = await Gateway(tmp_path / "gw", {"webhook": {"url": receiver.url, "secret": SECRET}}).start()
        [opened] = gw.sink.handle_changes([change(key(), update())])
        assert await gw.writer.flush(10)
        # what the API does for an operator: the store first, then the sink (then the stream's detector)
        acked = await gw.store.act_on_incident(opened.id, "acknowledge", "key:alice", opened.opened_at)
        assert acked is not None
        gw.sink.operator_acted(acked, "acknowledge", "key:alice")
        closed = await gw.store.act_on_incident(opened.id, "false_positive", "key:alice", opened.opened_at)
        assert closed is not None
        gw.sink.operator_acted(closed, "false_positive", "key:alice")
        # the detector's update for the action it took is not notified again
        gw.sink.handle_changes([change(key(), update(status="false_positive", closed=1), "key:alice")])
        await eventually(lambda: len(receiver.received) == 3, 20, "three events")
        await asyncio.sleep(0.3)  # a fourth would have been queued at once: give it time to show up
        events = [(b["type"], b["id"], signed) for b, signed, _ in receiver.received]
        assert events == [("incident.opened", f"{opened.id}:opened", True),
                          ("incident.acknowledged", f"{opened.id}:acknowledged", True),
                          ("incident.false_positive", f"{opened.id}:false_positive", True)]
        assert receiver.received[1][0]["incident"]["acknowledged_by"] == "key:alice"
        body0, _, headers = receiver.received[0]
        assert headers["X-Driftlock-Event"] == "incident.opened"
        assert headers["X-Driftlock-Delivery"] == f"{opened.id}:opened"
        assert body0["incident"]["url"] == f"{UI}/incidents/{opened.id}"
        assert body0["incident"]["status"] == "open" and body0["incident"]["summary"] == opened.summary
        assert gw.count("driftlock_notifications_retried_total", receiver="webhook") == 2
        await gw.stop(1)

    try:
        asyncio.run(body())
    finally:
        receiver.close()


def test_a_detector_close_is_notified_and_a_refused_notification_is_counted(tmp_path: Path) -> None:
    receiver = WebhookReceiver([400])
    change = Changes()

    async def body() -> None:
        gw = await Gateway(tmp_path / "gw", {"webhook": {"url": receiver.url, "secret": SECRET}}).start()
        gw.sink.handle_changes([change(key(), update())])  # refused for good (400): dropped, counted
        gw.sink.handle_changes([change(key(), update(status="resolved", closed=1))])
        await eventually(lambda: len(receiver.received) == 1, 20, "the resolved event")
        assert receiver.received[0][0]["type"] == "incident.resolved" and receiver.received[0][1]
        assert gw.count("driftlock_notifications_failed_total", receiver="webhook", reason="permanent") == 1
        await gw.stop()

    try:
        asyncio.run(body())
    finally:
        receiver.close()


def test_a_full_outbox_refuses_and_counts(tmp_path: Path) -> None:
    change = Changes()
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: every delivery fails

    async def body() -> None:
        gw = await Gateway(tmp_path / "gw", {"alertmanager": {"url": dead}, "outbox_max_entries": 2,
                                             "resend_interval_seconds": 3600}).start()
        for service in ("a", "b", "c"):
            gw.sink.handle_changes([change(key(service), update())])
        assert gw.notifier.alertmanager is not None and gw.notifier.alertmanager.pending == 2
        assert gw.count("driftlock_notifications_failed_total", receiver="alertmanager",
                        reason="outbox_full") == 1
        assert gw.notifier.resend_now() == 0  # no re-send piles up behind undelivered ones
        await gw.stop()

    asyncio.run(body())
