"""Shared fixtures: each lives in its own plugin module under tests/fixtures/."""

from pathlib import Path

# TEMPORARY during parallel development: load the fixture plugins that exist. Made strict at integration.
pytest_plugins = [
    f"tests.fixtures.{name}"
    for name in ("postgres", "downstream", "gateway")
    if (Path(__file__).parent / "fixtures" / f"{name}.py").exists()
]
