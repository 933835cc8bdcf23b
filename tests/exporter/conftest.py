"""Exporter tests use the shared throw-away CA (tests/fixtures/tls.py)."""
