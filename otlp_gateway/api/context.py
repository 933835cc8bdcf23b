"""Everything the :8080 surface needs from the rest of the gateway, passed in explicitly."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from otlp_gateway.health import HealthState
from otlp_gateway.ratelimit import TokenBucket
from otlp_gateway.store.base import AnomalyStore, ApiKeyStore, IncidentRecord
from otlp_gateway.streams.control import StreamControl
from otlp_gateway.telemetry.metrics import GatewayMetrics

if TYPE_CHECKING:  # config imports api.settings; a runtime import here would be circular
    from otlp_gateway.config import GatewayConfig


class ApiStore(AnomalyStore, ApiKeyStore, Protocol):
    """The one store object holds anomalies, incidents, streams, API keys and the audit log."""


class IncidentFollower(Protocol):
    """The incident sink: told of operators' actions (metrics, log lines, notifications)."""

    def operator_acted(self, rec: IncidentRecord, action: str, actor: str) -> None: ...


@dataclass
class ApiContext:
    config: GatewayConfig
    store: ApiStore
    metrics: GatewayMetrics
    health: HealthState
    streams: StreamControl
    rate_limiter: TokenBucket
    """The ``GLOBAL_RATE_LIMIT_*`` bucket shared by every authenticated ``/v1`` request."""
    loaded_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    """When the configuration was loaded."""
    incidents: IncidentFollower | None = None
    """The incident sink (None when detection is off or in API-only setups)."""
