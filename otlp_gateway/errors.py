"""Error classes, decided once where the error happens and mapped onto the wire at the edges.

A *permanent* error means the same data will always fail (drop it, count it, never retry). Anything
else is *retryable*; ``retry_after`` carries a server-side hint when there is one.
"""

from __future__ import annotations


class GatewayError(Exception):
    """Base class of errors the gateway classifies."""


class PermanentError(GatewayError):
    """The same data will always fail (bad payload, downstream INVALID_ARGUMENT, 400...)."""


class RetryableError(GatewayError):
    """May succeed later; ``retry_after`` in seconds when the peer (or we) suggested a delay."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class OverloadedError(RetryableError):
    """Admission control or a full queue refused the request; the client should back off."""


class RateLimitedError(RetryableError):
    """The global token bucket is empty."""
