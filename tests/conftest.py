"""Shared fixtures: each lives in its own plugin module under tests/fixtures/."""

import importlib.util
import os

from hypothesis import settings

# In CI property tests draw the same examples every run: a red build is reproducible, never luck.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
    settings.load_profile("ci")

_FIXTURES_IMPORT = ("otlp_gateway", "grpc", "psycopg", "psutil", "httpx", "yaml")
"""What the fixture plugins import: the gateway (its source beside these tests is always found from the
repository root, so its dependencies are what tell an environment that has it installed)."""


def _gateway_installed() -> bool:
    try:
        return all(importlib.util.find_spec(name) is not None for name in _FIXTURES_IMPORT)
    except ImportError:  # an import hook refused one
        return False


# The fixture plugins start the gateway, Postgres, a gRPC downstream. The detector library's own tests
# (tests/detectors, tests/evaluate) use none of them and must run where only the library's dependencies are
# installed (docs/detectors.md, "Testing the library alone").
if _gateway_installed():
    from otlp_gateway.jit import cache_dir

    # Before any kernel module is imported: the tests and the gateways they start as child processes share
    # the gateway's per-user JIT cache (a child compiling every kernel from cold takes about a minute).
    os.environ["NUMBA_CACHE_DIR"] = str(cache_dir(None))

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.downstream",
    "tests.fixtures.gateway",
    "tests.fixtures.tls",
    "tests.fixtures.alertmanager",
] if _gateway_installed() else []
