"""The store's SQL as named queries: one file per dialect (``store/sql/<dialect>.sql``, package data).

A file is a sequence of sections, each opened by a ``-- name: <name>`` line and holding one statement
(comments allowed). Every public name exists in every dialect; names starting with ``<dialect>.`` are
private to that dialect's connector (for example Postgres' COPY staging). A list query carries a
``/*where*/`` slot that ``with_where`` fills with the ``<query>_where_<field>`` conditions that apply.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from importlib import resources

from otlp_gateway.store.migrator import Dialect

DIALECTS: tuple[Dialect, ...] = ("postgres", "sqlite")
WHERE_SLOT = "/*where*/"
_NAME = re.compile(r"^--\s*name:\s*(\S+)\s*$")
_VALID_NAME = re.compile(r"^(?:[a-z]+\.)?[a-z][a-z0-9_]*$")


class QueryFileError(Exception):
    """A query file is malformed (a packaging or editing mistake, caught at load)."""


class Queries(Mapping[str, str]):
    """The named statements of one dialect; ``queries["get_stream"]`` is its SQL text."""

    def __init__(self, dialect: str, statements: dict[str, str]):
        self.dialect = dialect
        self._statements = statements

    def __getitem__(self, name: str) -> str:
        try:
            return self._statements[name]
        except KeyError:
            raise KeyError(f"no query named {name!r} in store/sql/{self.dialect}.sql") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._statements)

    def __len__(self) -> int:
        return len(self._statements)

    @property
    def public(self) -> frozenset[str]:
        """The names every dialect must have (those without a ``<dialect>.`` prefix)."""
        return frozenset(name for name in self._statements if "." not in name)

    def with_where(self, name: str, conditions: list[str]) -> str:
        """Query ``name`` with ``WHERE`` and the named conditions (AND) in its slot (none: no WHERE)."""
        sql = self[name]
        where = "WHERE " + " AND ".join(f"({self[c]})" for c in conditions) if conditions else ""
        return sql.replace(WHERE_SLOT, where)


def parse_queries(dialect: str, text: str) -> Queries:
    """Split a query file into its sections; raises ``QueryFileError`` for a malformed one."""
    statements: dict[str, str] = {}
    name: str | None = None
    body: list[str] = []

    def close_section() -> None:
        if name is None:
            return
        sql = "\n".join(body).strip().rstrip(";").strip()
        if not any(line.strip() and not line.strip().startswith("--") for line in sql.splitlines()):
            raise QueryFileError(f"store/sql/{dialect}.sql: query {name!r} is empty")
        statements[name] = sql

    for line in text.splitlines():
        match = _NAME.match(line.strip())
        if match is None:
            if name is not None:
                body.append(line)
            continue
        close_section()
        name, body = match.group(1), []
        if not _VALID_NAME.match(name):
            raise QueryFileError(f"store/sql/{dialect}.sql: bad query name {name!r}")
        if "." in name and not name.startswith(f"{dialect}."):
            raise QueryFileError(f"store/sql/{dialect}.sql: {name!r} belongs to another dialect")
        if name in statements:
            raise QueryFileError(f"store/sql/{dialect}.sql: query {name!r} is defined twice")
    close_section()
    return Queries(dialect, statements)


@functools.cache
def load_queries(dialect: Dialect) -> Queries:
    """The named queries of ``dialect`` (read once per process)."""
    text = resources.files("otlp_gateway.store").joinpath("sql", f"{dialect}.sql").read_text(encoding="utf-8")
    return parse_queries(dialect, text)
