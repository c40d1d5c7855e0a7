#!/usr/bin/env bash
# The one test command: installs the test extras, the npm clients and Chromium
# (for the browser tests), then runs lint, types and the whole test suite.
# Usage: scripts/test.sh [pytest args...]
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -e '.[test,lint]'

# Real independent clients for the protocol tests (npm ws, eventsource, socket.io-client, vue).
if [ -f tests/js/package.json ]; then
    (cd tests/js && npm install --no-audit --no-fund --silent)
fi
if [ -f examples/vue/package.json ]; then
    (cd examples/vue && npm install --no-audit --no-fund --silent)
fi

# Debian's Chromium for the dashboard tests (Playwright's own download does not work here).
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "scripts/test.sh: chromium is missing; install Debian's chromium package" >&2
        exit 1
    fi
fi

.venv/bin/ruff check agentwatch tests benchmarks examples
.venv/bin/ruff format --check agentwatch tests benchmarks examples
.venv/bin/mypy
.venv/bin/pytest "$@"
