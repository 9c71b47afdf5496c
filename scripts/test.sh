#!/usr/bin/env bash
# One command from a fresh clone: set up, lint, build the docs, run the whole test suite, then
# the stack test (scripts/stack.sh: docker-compose.yml's services started natively, operated
# end to end and put through three faults; as root with apt-get, else it says why it skips).
# Extra arguments go to pytest (e.g. `-m "not slow"` skips the end-to-end runs) and run only
# that part of the suite: the stack test is skipped then (run `bash scripts/stack.sh` alone).
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
.venv/bin/python -m pytest "$@"
if [ "$#" -gt 0 ]; then
  echo "==> stack: skipped: pytest arguments given (a part of the suite); run bash scripts/stack.sh"
  exit 0
fi
exec bash "$ROOT/scripts/stack.sh"
