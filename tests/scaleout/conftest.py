"""``store_target`` (both backends) for the lease tests; the scale-out tests use the real Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.store.support import StoreTarget, target_for


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_target(request: pytest.FixtureRequest, tmp_path: Path) -> StoreTarget:
    dsn = request.getfixturevalue("pg_dsn") if request.param == "postgres" else None
    return target_for(request.param, tmp_path, dsn)
