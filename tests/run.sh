#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine, then checks and runs every test.
# Usage: bash tests/run.sh [--fast] [pytest args...]
#   (no flag)  ruff, mypy, import-linter, then the whole suite (the CI entry point, .ci/run)
#   --fast     the same checks, then only the tests that need no service, no child gateway and no system
#              binary, without the slow ones (-m "not postgres and not gateway and not system and not slow";
#              tests/conftest.py sets the first three marks, the tests themselves `slow`). No apt step.
set -euo pipefail
cd "$(dirname "$0")/.."

fast=0
if [ "${1:-}" = "--fast" ]; then
  fast=1
  shift
fi

# System packages: PostgreSQL 15 (the suite starts its own cluster), promtool (alert-rule tests),
# Alertmanager (the notification tests start it), openssl, Chromium (the web UI's browser tests drive
# Debian's build through Playwright; no browser is downloaded), Node.js and npm (esbuild, package.json).
if [ "$fast" -eq 0 ]; then
  missing=()
  [ -x /usr/lib/postgresql/15/bin/initdb ] || command -v initdb >/dev/null || missing+=(postgresql-15)
  command -v promtool >/dev/null || missing+=(prometheus)
  command -v prometheus-alertmanager >/dev/null || command -v alertmanager >/dev/null || missing+=(prometheus-alertmanager)
  command -v openssl >/dev/null || missing+=(openssl)  # throw-away TLS certificates
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  command -v node >/dev/null || missing+=(nodejs)  # the UI bundles' staleness test runs esbuild
  command -v npm >/dev/null || missing+=(npm)
  python3 -c "import ensurepip" 2>/dev/null || missing+=(python3-venv)
  command -v kubectl >/dev/null || echo "tests/run.sh: kubectl is not on PATH; the Kubernetes manifest tests will fail" >&2
  if [ ${#missing[@]} -gt 0 ]; then
    sudo_=""; [ "$(id -u)" -eq 0 ] || sudo_="sudo"
    $sudo_ apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# Python environment: the project with its test extras, in .venv.
[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[test]'

# The npm dev tools (package-lock.json: esbuild, which bundles the web UI's pages; a UI test rebuilds the
# committed bundles with it and fails when they are stale). Not needed by the fast target.
if [ "$fast" -eq 0 ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi

# Static checks (configured in pyproject.toml): lint, types, the import boundaries.
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/lint-imports --no-logo

# Compile the kernels into the JIT cache the tests share (tests/conftest.py), as the image build does: on a
# clean clone the cache is cold, and whichever test came first would otherwise spend a minute compiling
# inside its own time limits. The cold start itself is tested with a cache of its own.
.venv/bin/otlp-gateway warmup >/dev/null

if [ "$fast" -eq 1 ]; then
  exec .venv/bin/python -m pytest -m "not postgres and not gateway and not system and not slow" "$@"
fi
exec .venv/bin/python -m pytest "$@"
