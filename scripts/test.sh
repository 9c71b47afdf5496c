#!/usr/bin/env bash
# One command from a fresh clone: set up, lint, build the docs, then run the whole test suite.
# Extra arguments go to pytest (e.g. `-m "not slow"` skips the end-to-end runs).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
# Tests use their own temporary DAGSTER_HOME and data directories.
unset DAGSTER_HOME AIRQUALITY_DATA_DIR
# PostgreSQL (and promtool) for the deployment tests: installed and started when we are root
# with apt-get; otherwise those tests use AIRQUALITY_TEST_POSTGRES_URL if set, or skip.
source "$ROOT/scripts/postgres.sh"
# Debian's Chromium for the forecast page's browser test (installed when we are root).
source "$ROOT/scripts/chromium.sh"
echo "==> ruff"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
echo "==> docs (mkdocs build --strict)"
# A broken link, anchor or API reference fails the build; the site itself is thrown away.
SITE_DIR="$(mktemp -d)"
NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --quiet --site-dir "$SITE_DIR"
rm -rf "$SITE_DIR"
echo "==> pytest"
exec .venv/bin/python -m pytest "$@"
