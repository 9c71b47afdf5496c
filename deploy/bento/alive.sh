#!/bin/sh
# The bento service's health check (docker-compose.yml): alive, not ready. Alive while
# serve.sh waits for a first champion (none in the store yet), or once the server answers
# /livez. Readiness (a champion loaded) is GET /readyz, asked by whoever routes requests.
MODEL="${AIRQUALITY_MODEL_NAME:-airquality-lstm}"
if [ ! -s "${BENTOML_HOME:?}/models/$MODEL/latest" ]; then
  exit 0
fi
exec python -c "import urllib.request; urllib.request.urlopen('http://localhost:${PORT:-3001}/livez', timeout=4)"
