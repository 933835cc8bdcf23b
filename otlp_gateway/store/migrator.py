"""Ordered plain-SQL migrations shipped as package data.

``otlp_gateway/store/migrations/<dialect>/NNNN_description.sql`` files are applied in version order, each
in its own transaction, and recorded in ``schema_migrations`` (version, name, checksum, applied_at). The
checksum lets a rerun notice that an already applied file was edited afterwards, which is refused: a
shipped migration is history and never changes.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import Literal

Dialect = Literal["postgres", "sqlite"]

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        return f"{self.version:04d}_{self.name}"


class MigrationError(Exception):
    """The migration files or the recorded history are inconsistent (never retried)."""


def load_migrations(dialect: Dialect) -> list[Migration]:
    """Every migration of ``dialect`` in version order; a misnamed file or a duplicate version is an error."""
    folder = resources.files("otlp_gateway.store").joinpath("migrations", dialect)
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        if not entry.name.endswith(".sql"):
            continue
        match = _NAME.match(entry.name)
        if not match:
            raise MigrationError(f"migration file {dialect}/{entry.name}: expected NNNN_description.sql")
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two {dialect} migrations share version {version:04d}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def check_history(migrations: list[Migration], applied: dict[int, str]) -> list[Migration]:
    """The migrations still to apply, after checking the recorded ``version -> checksum`` history."""
    known = {m.version: m for m in migrations}
    for version, checksum in applied.items():
        migration = known.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}, unknown to this version of the gateway "
                "(downgrade is not supported)")
        if migration.checksum != checksum:
            raise MigrationError(f"migration {migration.label} was edited after it was applied")
    return [m for m in migrations if m.version not in applied]
