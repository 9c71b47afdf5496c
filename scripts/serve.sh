#!/usr/bin/env bash
# Serve the champion (imported into the project's BentoML store by the demo's `bento` asset)
# on 127.0.0.1:${PORT:-3001}. Run `bash scripts/demo.sh` first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export BENTOML_HOME="${BENTOML_HOME:-${AIRQUALITY_DATA_DIR:-$ROOT/.data}/bentoml}"
export BENTOML_DO_NOT_TRACK=true
exec .venv/bin/bentoml serve service:AirQualityForecast --working-dir bento \
  --host 127.0.0.1 --port "${PORT:-3001}"
