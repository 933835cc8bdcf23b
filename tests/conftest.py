"""Shared fixtures: each lives in its own plugin module under tests/fixtures/."""

import os

from hypothesis import settings

# In CI property tests draw the same examples every run: a red build is reproducible, never luck.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("ci")

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.downstream",
    "tests.fixtures.gateway",
    "tests.fixtures.tls",
]
