"""Notifications of incidents: Alertmanager's v2 API and a signed JSON webhook, each behind its own
persistent outbox (a ``DurableFifo`` drained by a ``RetryWorker``), so a notification survives a gateway
restart and a receiver outage, and one slow receiver never holds the other back.

    notifier = Notifier(settings, data_dir, links, metrics, open_incidents)
    await notifier.start(); notifier.opened(record); notifier.closed(record); await notifier.shutdown()
"""

from otlp_gateway.incidents.notify.notifier import Notifier

__all__ = ["Notifier"]
