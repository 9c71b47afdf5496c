#!/usr/bin/env bash
# One command from a fresh clone: set up, then run the main job on the embedded default
# (bundled replay data, no API keys, SQLite and local files).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
# MLflow draws a progress bar per artifact download: noise in a log read by people.
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="${MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR:-false}"
exec .venv/bin/python -m airquality_assets.programs.demo "$@"
