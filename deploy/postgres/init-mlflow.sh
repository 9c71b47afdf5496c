#!/bin/sh
# First start of the PostgreSQL volume only (docker-entrypoint-initdb.d): a second database
# for the MLflow tracking store, owned by the same role as Dagster's.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE mlflow OWNER \"$POSTGRES_USER\""
