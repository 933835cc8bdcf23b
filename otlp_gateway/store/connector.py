"""What a store backend supplies: how statements run and how values cross into and out of the database.

The statements themselves are the dialect's named queries (``store/sql/<dialect>.sql``); ``SqlStore`` picks
and parameterises them. Adding a backend = one SQL file, its migrations folder, and one ``Connector``.
Every method raises only the store's errors (``StoreUnavailableError``, ``RowRejectedError``,
``AlreadyExistsError``), never a driver's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from otlp_gateway.store.codec import Row, RowDecoder
from otlp_gateway.store.migrator import Dialect

T = TypeVar("T")


class Connector(Protocol):
    dialect: Dialect
    """Names the query file and the migrations folder; also the store's ``backend`` metric label."""
    decode: RowDecoder
    """How times and JSON columns come back."""

    def time(self, value: dt.datetime) -> Any:
        """How a time goes in (an aware datetime, fixed-width text...)."""
        ...

    def flag(self, value: bool) -> Any:
        """How a boolean goes in."""
        ...

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def migrate(self) -> list[str]:
        """Apply pending migrations in order; return the labels applied."""
        ...

    async def fetch(self, sql: str, params: Mapping[str, Any]) -> list[Row]: ...

    async def execute(self, sql: str, params: Mapping[str, Any]) -> int:
        """Run one statement; returns the rows it changed."""
        ...

    async def execute_many(self, sql: str, params: Sequence[Mapping[str, Any]]) -> int:
        """Run one statement once per parameter set, all in one transaction; returns the rows changed."""
        ...

    async def insert_many(self, sql: str, columns: Sequence[str], rows: Sequence[T],
                          encode: Callable[[T], tuple[Any, ...]]) -> int:
        """Insert ``rows`` in one batch (COPY, executemany...) with ``sql``, the named insert statement
        whose parameters are ``columns``; ``encode`` gives a row's values in that order, and runs off the
        event loop. Returns the rows inserted (conflicts skipped)."""
        ...

    async def reclaim_space(self) -> None:
        """After large deletes: give free space back to the filesystem where the engine does not."""
        ...
