"""Getting the store ready at start: migrate (or just reach it), retried with the store's backoff while the
database is unreachable, so the gateway serves and spools meanwhile."""

from __future__ import annotations

import asyncio
import logging
import time

from otlp_gateway.durable import Backoff
from otlp_gateway.store.base import AnomalyStore
from otlp_gateway.store.errors import StoreUnavailableError
from otlp_gateway.store.settings import StoreSettings

log = logging.getLogger(__name__)


async def prepare_store(store: AnomalyStore, settings: StoreSettings) -> None:
    """Apply pending migrations (``migrate_on_start``) or check the store answers; raises store errors."""
    if settings.migrate_on_start:
        applied = await store.migrate()
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
    else:
        await store.ping()


async def prepare_until_ready(store: AnomalyStore, settings: StoreSettings) -> None:
    """``prepare_store`` until it succeeds, waiting by ``store.retry`` between attempts (never giving up:
    readiness stays false meanwhile). Cancel to stop."""
    backoff = Backoff(settings.retry.model_copy(update={"enabled": True, "max_elapsed_seconds": 0.0}))
    started = time.monotonic()
    while True:
        delay = backoff.next_delay(time.monotonic() - started)
        assert delay is not None  # enabled, no elapsed limit
        await asyncio.sleep(delay)
        try:
            await prepare_store(store, settings)
        except StoreUnavailableError:
            continue
        except Exception:  # e.g. a migration refused: keep trying, readiness stays false, say why
            log.exception("anomaly store: preparing the schema failed; retrying")
            continue
        log.info("anomaly store reachable again")
        return
