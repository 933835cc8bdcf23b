"""One POST to a receiver, its answer classified: 2xx delivered; 408, 425, 429 and 5xx (and no answer at
all) retryable, with the Retry-After hint; any other status permanent."""

from __future__ import annotations

import httpx

from otlp_gateway.errors import PermanentError, RetryableError
from otlp_gateway.exporter.http_transport import parse_retry_after

RETRYABLE_STATUSES = frozenset({408, 425, 429})


def client(timeout: float, ca_file: str | None) -> httpx.AsyncClient:
    return httpx.AsyncClient(timeout=timeout, verify=ca_file if ca_file else True, follow_redirects=False)


async def post(http: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str]) -> None:
    try:
        response = await http.post(url, content=body, headers={"Content-Type": "application/json", **headers})
    except httpx.HTTPError as exc:  # connection refused, timeout, reset: the receiver may come back
        raise RetryableError(f"POST {url}: {type(exc).__name__}: {exc}") from exc
    if response.is_success:
        return
    detail = f"POST {url}: HTTP {response.status_code}: {response.text[:300].strip()}"
    if response.status_code in RETRYABLE_STATUSES or response.status_code >= 500:
        raise RetryableError(detail, retry_after=parse_retry_after(response.headers.get("retry-after")))
    raise PermanentError(detail)
