#!/bin/sh
# The prediction service in docker-compose: wait for a first champion in the shared BentoML
# store, then serve it. Newly promoted champions are picked up by the running service
# itself (airquality_assets/serving/reload.py): the training job's `bento` asset imports
# each one into $BENTOML_HOME (a named volume shared with the Dagster containers), which
# moves the store's "latest" tag; every AIRQUALITY_RELOAD_POLL_SECONDS each worker loads and
# warms up the new model beside the old one and swaps it in, so no request fails. No code
# change, no image rebuild, no restart.
set -eu
MODEL="${AIRQUALITY_MODEL_NAME:-airquality-lstm}"
LATEST="${BENTOML_HOME:?}/models/$MODEL/latest"
POLL="${AIRQUALITY_RELOAD_POLL_SECONDS:-15}"
PORT="${PORT:-3001}"

until [ -s "$LATEST" ]; do
  echo "no champion in $LATEST yet: run the training job (it imports the champion); waiting"
  sleep "$POLL"
done
echo "serving $MODEL:$(cat "$LATEST") and reloading newer champions in place"
# exec: the server gets the container's signals; if it dies, Docker's restart policy acts.
exec bentoml serve service:AirQualityForecast --working-dir bento --host 0.0.0.0 --port "$PORT"
