"""Shared fixtures: each lives in its own plugin module under tests/fixtures/."""

import importlib.util
import os

import pytest
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


# The fast target (`bash tests/run.sh --fast`) runs what needs neither a service nor a child gateway:
# `-m "not postgres and not gateway and not system and not slow"`. These three marks are set here, once, by
# what a test uses, so a new test is classified without anyone remembering to mark it (`slow` is set by
# the few tests it applies to).
_MARK_BY_FIXTURE = {
    "pg_cluster": "postgres",  # pg_dsn and every Postgres-backed fixture depend on it
    "alertmanager": "system",  # a real Alertmanager binary
}
_MARK_BY_DIRECTORY = {
    "e2e": "gateway",  # gateways as child processes, driven through the SDK's exporters
    "reliability": "gateway",  # child gateways under floods, slow clients, bad input
    "ecosystem": "gateway",  # a real OpenTelemetry Collector in front of a gateway
    "deploy": "system",  # docker, kubectl, hadolint, promtool
    "ui": "system",  # a real browser (Chromium through Playwright)
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        marks = {mark for fixture, mark in _MARK_BY_FIXTURE.items() if fixture in names}
        relative = os.path.relpath(str(item.path), tests_dir).split(os.sep)
        if relative[0] in _MARK_BY_DIRECTORY:
            marks.add(_MARK_BY_DIRECTORY[relative[0]])
        for mark in sorted(marks - {m.name for m in item.iter_markers()}):
            item.add_marker(getattr(pytest.mark, mark))
