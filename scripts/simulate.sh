#!/usr/bin/env bash
# After `bash scripts/demo.sh`: advance the replay clock through part of 2014 and let the
# real schedules and sensors run the operating loop. `--help` lists the options.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/setup.sh"
cd "$ROOT"
# MLflow draws a progress bar per artifact download: noise in a log read by people.
export MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="${MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR:-false}"
exec .venv/bin/python -m airquality_assets.programs.simulate "$@"
