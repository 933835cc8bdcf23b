"""Shared fixtures: each lives in its own plugin module under tests/fixtures/."""

import os

from hypothesis import settings

from otlp_gateway.jit import cache_dir

# Before any kernel module is imported: the tests and the gateways they start as child processes share the
# gateway's per-user JIT cache (a child compiling every kernel from cold takes about a minute).
os.environ["NUMBA_CACHE_DIR"] = str(cache_dir(None))

# In CI property tests draw the same examples every run: a red build is reproducible, never luck.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("ci")

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.downstream",
    "tests.fixtures.gateway",
    "tests.fixtures.tls",
    "tests.fixtures.alertmanager",
]
