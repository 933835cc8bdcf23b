"""OTLP/HTTP (http/protobuf) transport: POST /v1/<signal> with the request bytes as the body."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import ssl
import time

import httpx
from google.protobuf.message import DecodeError
from google.rpc import status_pb2

from otlp_gateway.batch import Signal
from otlp_gateway.errors import PermanentError, RetryableError
from otlp_gateway.exporter.endpoint import Endpoint
from otlp_gateway.exporter.settings import ExporterSettings, ExporterTLSSettings
from otlp_gateway.otlp.signals import SIGNAL_SPECS, ExportOutcome, outcome_from_response

RETRYABLE_HTTP_STATUS = frozenset({429, 502, 503, 504})
_GZIP_LEVEL = 1  # the body is usually forwarded once; speed matters more than the last few percent
_INLINE_GZIP_LIMIT = 16 * 1024  # larger bodies are compressed off the event loop (zlib drops the GIL)


class HttpTransport:
    def __init__(self, endpoint: Endpoint, settings: ExporterSettings):
        self._endpoint = endpoint
        self._gzip = settings.compression == "gzip"
        headers = {k: v.get_secret_value() for k, v in settings.headers.items()}
        headers["content-type"] = "application/x-protobuf"
        if self._gzip:
            headers["content-encoding"] = "gzip"
        self._client = httpx.AsyncClient(
            headers=headers, timeout=settings.timeout_seconds, follow_redirects=False,
            verify=_ssl_context(settings.tls) if endpoint.tls else False)
        self._urls = {signal: endpoint.http_url(spec.http_path) for signal, spec in SIGNAL_SPECS.items()}

    async def send(self, signal: Signal, payload: bytes) -> ExportOutcome:
        body = payload
        if self._gzip:
            if len(payload) > _INLINE_GZIP_LIMIT:
                body = await asyncio.to_thread(gzip.compress, payload, _GZIP_LEVEL)
            else:
                body = gzip.compress(payload, _GZIP_LEVEL)
        try:
            response = await self._client.post(self._urls[signal], content=body)
        except httpx.TransportError as err:  # connect/read/write errors and timeouts
            raise RetryableError(f"downstream unreachable: {type(err).__name__}: {err}") from None
        if 200 <= response.status_code < 300:
            return _outcome(signal, response)
        message = f"downstream answered HTTP {response.status_code}: {_status_message(response)}"
        if response.status_code in RETRYABLE_HTTP_STATUS:
            raise RetryableError(message, retry_after=parse_retry_after(response.headers.get("retry-after")))
        raise PermanentError(message)

    async def close(self) -> None:
        await self._client.aclose()


def _ssl_context(tls: ExporterTLSSettings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=tls.ca_file)
    if tls.cert_file and tls.key_file:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    if tls.insecure_skip_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _outcome(signal: Signal, response: httpx.Response) -> ExportOutcome:
    if not response.content or "protobuf" not in response.headers.get("content-type", ""):
        return ExportOutcome()
    try:
        return outcome_from_response(signal, SIGNAL_SPECS[signal].response_type.FromString(response.content))
    except DecodeError:
        return ExportOutcome()  # accepted; an unreadable body only loses the partial_success detail


def _status_message(response: httpx.Response) -> str:
    """The google.rpc.Status message OTLP servers put in error bodies, else a short text excerpt."""
    if "protobuf" in response.headers.get("content-type", ""):
        try:
            return status_pb2.Status.FromString(response.content).message
        except DecodeError:
            pass
    return response.text[:200]


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After is either delay-seconds or an HTTP date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
