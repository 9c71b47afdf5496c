#!/usr/bin/env bash
# Serve the champion (imported into the project's BentoML store by the demo's `bento` asset)
# on 127.0.0.1:${PORT:-3001}. Run `bash scripts/demo.sh` first.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
# The store the pipeline's `bento` asset wrote to, as the settings resolve it (BENTOML_HOME,
# else <data dir>/bentoml; the data-dir default lives in airquality_assets/settings.py).
BENTOML_HOME="$(.venv/bin/python -m airquality_assets.settings --get bentoml_home)"
export BENTOML_HOME
export BENTOML_DO_NOT_TRACK=true
exec .venv/bin/bentoml serve service:AirQualityForecast --working-dir bento \
  --host 127.0.0.1 --port "${PORT:-3001}"
