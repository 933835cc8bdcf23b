"""The ``incidents:`` and ``notify:`` configuration sections."""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from otlp_gateway.durable.backoff import RetrySettings
from otlp_gateway.settings_base import Duration, StrictModel


class IncidentSettings(StrictModel):
    metrics_max_services: int = Field(100, ge=1)
    """Distinct ``service`` label values of driftlock_incidents_* and driftlock_anomalies_detected_total;
    services seen after that many are reported as ``other`` (bounded cardinality)."""
    score_flush_interval_seconds: Duration = Field(10.0, gt=0)
    """The streams' score series (10 s buckets for the incident plots) are written this often, each bucket's
    latest state once."""
    rate_refresh_interval_seconds: Duration = Field(60.0, gt=0)
    """How often driftlock_false_incident_rate_measured is recomputed from the store, and the open
    incidents re-read from it (those other gateways sharing the store opened or closed)."""


def _http_url(value: str | None) -> str | None:
    if value is None or value == "":  # ``${VAR:-}`` left unset
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"expected an http:// or https:// URL, got {value!r}")
    return value.rstrip("/")


class NotifyRetrySettings(RetrySettings):
    """Backoff of notifications a receiver did not take (it is down, or answered 5xx/429); they wait in the
    outbox on disk meanwhile and are retried until delivered."""

    initial_interval_seconds: Duration = Field(1.0, gt=0)
    """First backoff delay."""
    max_interval_seconds: Duration = Field(60.0, gt=0)
    """Upper bound of one backoff delay."""


class AlertmanagerSettings(StrictModel):
    url: str | None = None
    """Alertmanager's base URL, e.g. ``http://alertmanager:9093``: alerts are POSTed to
    ``<url>/api/v2/alerts``. Unset: no Alertmanager notifications."""
    headers: dict[str, SecretStr] = {}
    """Extra HTTP headers (for example ``Authorization``), kept secret in ``check-config``."""
    timeout_seconds: Duration = Field(10.0, gt=0)
    """One delivery attempt's time limit."""
    ca_file: str | None = None
    """PEM CA bundle to verify an https Alertmanager (default: the system's)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return _http_url(value)


class WebhookSettings(StrictModel):
    url: str | None = None
    """Receives one JSON POST per incident event (opened, acknowledged, resolved, accepted,
    false_positive), signed in ``X-Driftlock-Signature: sha256=<hex HMAC-SHA256 of the body>``. Unset: off."""
    secret: SecretStr | None = None
    """The HMAC-SHA256 key (at least 16 characters); required with a url."""
    headers: dict[str, SecretStr] = {}
    """Extra HTTP headers, kept secret in ``check-config``."""
    timeout_seconds: Duration = Field(10.0, gt=0)
    """One delivery attempt's time limit."""
    ca_file: str | None = None
    """PEM CA bundle to verify an https receiver (default: the system's)."""

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        return _http_url(value)

    @model_validator(mode="after")
    def _signed(self) -> WebhookSettings:
        if self.url is not None and (self.secret is None or len(self.secret.get_secret_value()) < 16):
            raise ValueError("a webhook needs a secret of at least 16 characters (notify.webhook.secret or "
                             "DRIFTLOCK_WEBHOOK_SECRET) to sign its requests")
        return self


class NotifySettings(StrictModel):
    """Direct notifications of incidents; both go through a persistent outbox (``<data_dir>/notify-*``), so a
    notification survives a gateway restart and a receiver outage."""

    alertmanager: AlertmanagerSettings = AlertmanagerSettings()
    webhook: WebhookSettings = WebhookSettings()
    resend_interval_seconds: Duration = Field(60.0, gt=0)
    """Open incidents are re-sent to Alertmanager this often (it ends an alert that is not re-sent)."""
    retry: NotifyRetrySettings = NotifyRetrySettings()
    outbox_max_entries: int = Field(10_000, ge=1)
    """Notifications held per receiver while it is unreachable; beyond it new ones are refused (counted in
    driftlock_notifications_failed_total{reason="outbox_full"} and logged)."""

    @property
    def enabled(self) -> bool:
        return self.alertmanager.url is not None or self.webhook.url is not None
