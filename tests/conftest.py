"""Shared fixtures: each lives in its own plugin module under tests/fixtures/."""

pytest_plugins = [
    "tests.fixtures.postgres",
    "tests.fixtures.downstream",
    "tests.fixtures.gateway",
    "tests.fixtures.tls",
]
