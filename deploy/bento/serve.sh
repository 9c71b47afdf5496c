#!/bin/sh
# The prediction service in docker-compose: serve the champion from the shared BentoML
# store, and restart the server when a newly promoted champion lands there.
#
# The training job's `bento` asset imports each new champion into $BENTOML_HOME (a named
# volume shared with the Dagster containers), which moves the store's "latest" pointer of
# the model. This loop polls that pointer; when it moves, it stops the server gracefully
# (in-flight requests finish) and starts it again on the new champion. No code change, no
# image rebuild, nothing to do by hand. Requests arriving during the restart fail: the gap
# is the service's start-up time (README, "Deploy"); run two replicas behind a proxy to
# close it.
set -eu
MODEL="${AIRQUALITY_MODEL_NAME:-airquality-lstm}"
LATEST="${BENTOML_HOME:?}/models/$MODEL/latest"
POLL="${AIRQUALITY_RELOAD_POLL_SECONDS:-15}"
PORT="${PORT:-3001}"

pid=""
trap 'if [ -n "$pid" ]; then kill -TERM "$pid" 2>/dev/null; wait "$pid"; fi; exit 0' TERM INT

until [ -s "$LATEST" ]; do
  echo "no champion in $LATEST yet: run the training job (it imports the champion); waiting"
  sleep "$POLL"
done

while :; do
  served="$(cat "$LATEST")"
  echo "serving $MODEL:$served"
  bentoml serve service:AirQualityForecast --working-dir bento --host 0.0.0.0 --port "$PORT" &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep "$POLL" &
    wait $! || true
    if [ "$(cat "$LATEST")" != "$served" ]; then
      echo "new champion $MODEL:$(cat "$LATEST") (was $served): restarting the server"
      kill -TERM "$pid"
      wait "$pid" || true
      continue 2
    fi
  done
  # The server stopped by itself: exit non-zero so Docker's restart policy takes over.
  wait "$pid" || true
  exit 1
done
