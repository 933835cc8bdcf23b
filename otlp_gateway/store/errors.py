"""Store errors, classified once here so callers never see a driver's exception types."""

from __future__ import annotations

from otlp_gateway.errors import PermanentError, RetryableError


class StoreUnavailableError(RetryableError):
    """The database cannot be reached or is failing right now; the same call may succeed later."""


class RowRejectedError(PermanentError):
    """The database refused the data itself (constraint, out-of-range value): retrying cannot help."""


class AlreadyExistsError(PermanentError):
    """A row with the same key exists (creating an API key twice)."""


class InvalidCursorError(ValueError):
    """A pagination cursor that this store did not issue (the API answers 400)."""
