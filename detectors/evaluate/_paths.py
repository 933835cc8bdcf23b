"""Where the shared datasets and tools live (read-only; never copied into the repo)."""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[2]


def shared_root() -> Path:
    """``$DRIFTLOCK_SHARED`` or the ``shared`` folder beside the repository."""
    env = os.environ.get("DRIFTLOCK_SHARED")
    return Path(env) if env else _REPO.parent / "shared"


def datasets() -> Path:
    return shared_root() / "datasets"


def nab_root() -> Path:
    return datasets() / "nab"


def nab_scorer() -> Path:
    return shared_root() / "tools" / "nab_score.py"


def nab_zscore_baseline() -> Path:
    return shared_root() / "tools" / "nab_zscore_baseline.py"


def docs_dir() -> Path:
    return _REPO / "docs"
