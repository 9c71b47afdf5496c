#!/usr/bin/env bash
# Create the project's virtualenv from the lock file (idempotent) and point DAGSTER_HOME at
# the project root (its dagster.yaml). Sourced by demo.sh and test.sh; safe to run on its own.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "airquality-assets needs Python 3.11 (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv==0.13.8"
fi
# Installs exactly the locked versions; a no-op in a second or so when nothing changed.
# Bytecode compiled once here: every later process (demo, tests, each run) then skips
# compiling ~10,000 modules on import, also where PYTHONDONTWRITEBYTECODE is set.
echo "==> installing locked dependencies (requirements.lock)"
.venv/bin/uv pip sync --quiet --compile-bytecode --python .venv/bin/python requirements.lock
# compat mode: a plain .pth path entry, so packages and modules added later import too.
.venv/bin/uv pip install --quiet --python .venv/bin/python --no-deps --reinstall-package airquality-assets \
  --config-settings editable_mode=compat -e .

# The embedded default's instance is the project root's dagster.yaml (state under
# .dagster_home/); a DAGSTER_HOME set by the caller wins.
export DAGSTER_HOME="${DAGSTER_HOME:-$ROOT}"
export PATH="$ROOT/.venv/bin:$PATH"
